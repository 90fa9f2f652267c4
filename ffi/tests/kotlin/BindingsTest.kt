// The Kotlin bindings, end to end: the README's example against the test relay, a listener that throws, typed exceptions.
//
// Compiled with the generated bindings and ffi/examples/kotlin/TwoDevices.kt
// and run by ffi/tests/kotlin.rs, which starts the test relay and passes
// TANDEM_RELAY, TANDEM_TOKENS (account alice), TANDEM_TOKENS_CAROL and
// TANDEM_TOKENS_DANA. Exits
// 1 on the first failed check, printing it; 0 when every check passed.
package tandem.test

import java.nio.file.Files
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit
import kotlin.system.exitProcess
import kotlinx.coroutines.runBlocking
import tandem.*
import tandem.example.TIMEOUT_MS

var checks = 0

inline fun check(ok: Boolean, what: () -> String) {
    checks++
    if (!ok) throw AssertionError(what())
}

// Inline: `body` may call suspend functions when the caller is one.
inline fun <reified E : Throwable> throws(what: String, body: () -> Unit): E {
    try {
        body()
    } catch (e: Throwable) {
        check(e is E) { "$what: threw ${e::class.qualifiedName} ($e), wanted ${E::class.qualifiedName}" }
        return e as E
    }
    throw AssertionError("$what: threw nothing, wanted ${E::class.qualifiedName}")
}

fun config(account: String = "alice", name: String = "test", store: StorePath = StorePath.Memory) =
    Config(store = store, account = account, deviceName = name, platform = Platform.Linux)

/** Keeps every event of an operation (not the connection's). */
class Collect : EventListener {
    val events = LinkedBlockingQueue<Event>()
    override fun onEvent(event: Event) {
        if (event.kind !is EventKind.Connection) events.put(event)
    }
    fun next(): Event = checkNotNull(events.poll(TIMEOUT_MS, TimeUnit.MILLISECONDS)) { "no event within $TIMEOUT_MS ms" }
}

/** Throws on every event: ListenerException on odd seqs, another exception on even ones. */
class Throwing : EventListener {
    override fun onEvent(event: Event) {
        if (event.seq % 2 == 1L) throw ListenerException.Failed("refusing event ${event.seq}")
        throw IllegalStateException("not a ListenerException, event ${event.seq}")
    }
}

suspend fun example(relay: String, tokens: MutableList<String>) {
    val folder = Files.createTempDirectory("tandem-kotlin-test")
    try {
        val out = tandem.example.run(relay, tokens.removeLast(), tokens.removeLast(), folder.toString()) { println("example: $it") }
        check(out.events.size == 2) { "events: ${out.events}" }
        val first = out.events[0].kind
        check(first is EventKind.Conversation && first.event is ConversationEvent.Pinned) { "first: $first" }
        val second = out.events[1].kind
        check(second is EventKind.Message && second.event is MessageEvent.Sent) { "second: $second" }
        check(out.events.all { it.sourceDevice == out.phoneId }) { "sources: ${out.events}" }
        check(out.pinned) { "u:bob is not pinned on the laptop" }
        check(out.devices.map { it.id }.containsAll(listOf(out.phoneId, out.laptopId))) { "devices: ${out.devices}" }
        val stopped = out.kicked.stopped
        val reason = (stopped as? StopReason.Kicked)?.reason
        check(reason is OfflineReason.KickedByDevice && reason.by.id == out.phoneId && reason.by.name == "phone") { "stopped: $stopped" }
    } finally {
        folder.toFile().deleteRecursively()
    }
}

suspend fun listeners(relay: String, tokens: MutableList<String>) {
    // Each device logs in with a login token of its own (single use).
    val a = OnlineDevice.open(config("carol", "a"), OnlineConfig(relay = relay, loginToken = tokens.removeLast()))
    val b = OnlineDevice.open(config("carol", "b"), OnlineConfig(relay = relay, loginToken = tokens.removeLast()))
    try {
        val heard = Collect()
        val handle = b.addListener(heard)
        val failing = b.addListener(Throwing())
        for (d in listOf(a, b)) check(d.waitStatus(StatusCondition.CONNECTED, TIMEOUT_MS.toULong()) != null) { "not connected" }
        a.perform(Op.Contact(ContactOp.Add("bob", "hello")))
        val added = heard.next().kind
        check(added is EventKind.Contact && added.event is ContactEvent.Added && (added.event as ContactEvent.Added).greeting == "hello") { "added: $added" }
        var waited = 0
        while (failing.delivered() < 1UL && waited < TIMEOUT_MS) { Thread.sleep(50); waited += 50 }
        check(failing.failures() >= 1UL && failing.isRunning()) { "failures ${failing.failures()}, running ${failing.isRunning()}" }
        check(failing.lastFailure()!!.contains(Regex("refusing event|not a ListenerException"))) { "last failure: ${failing.lastFailure()}" }
        // The engine went on: the next operation still arrives.
        a.perform(Op.Conversation(ConversationOp.Pin("u:bob")))
        check(heard.next().kind is EventKind.Conversation) { "the pin did not arrive" }
        check(b.contacts().single().userId == "bob") { "contacts: ${b.contacts()}" }
        handle.stop()
        failing.stop()
    } finally {
        a.shutdown()
        b.shutdown()
    }
}

suspend fun linking(relay: String, tokens: MutableList<String>) {
    // Two running devices: the phone makes the key and seals; the laptop
    // waits for it, is linked while it runs and reads on.
    val phone = OnlineDevice.open(config("dana", "phone"), OnlineConfig(relay = relay, loginToken = tokens.removeLast()))
    val laptop = OnlineDevice.open(config("dana", "laptop"), OnlineConfig(relay = relay, loginToken = tokens.removeLast()))
    try {
        for (d in listOf(phone, laptop)) check(d.waitStatus(StatusCondition.CONNECTED, TIMEOUT_MS.toULong()) != null) { "not connected" }
        val fingerprint = phone.createAccountKey()
        check(phone.keyFingerprint() == fingerprint) { "fingerprint: ${phone.keyFingerprint()}" }
        phone.perform(Op.Message(MessageOp.Send("u:bob", "sealed from kotlin")))
        var waited = 0
        while (laptop.status().waitingForKey == null && waited < TIMEOUT_MS) { Thread.sleep(50); waited += 50 }
        check(laptop.status().waitingForKey != null) { "the laptop never waited for the key: ${laptop.status()}" }
        check(laptop.keyFingerprint() == null) { "the laptop holds a key already" }

        val code = laptop.showLinkCode()
        val own = throws<DeviceException.Linking>("a device granting its own code") { laptop.grantLink(code) }
        check(own.error is LinkingException.OwnCode) { "error: ${own.error}" }
        val grant = phone.grantLink(code)
        throws<DeviceException.Linking>("a granter key that is not hex") { laptop.acceptLinkGrant(grant, "zz") }
        check(laptop.acceptLinkGrant(grant, phone.publicKey()) == fingerprint) { "another fingerprint" }
        waited = 0
        while (waited < TIMEOUT_MS) {
            if (laptop.state().messages.any { it.body == "sealed from kotlin" } && laptop.status().waitingForKey == null) break
            Thread.sleep(50); waited += 50
        }
        check(laptop.state().messages.any { it.body == "sealed from kotlin" }) { "the laptop never opened the message: ${laptop.status()}" }
        check(laptop.status().refusedEntry == null) { "refused: ${laptop.status().refusedEntry}" }
    } finally {
        phone.shutdown()
        laptop.shutdown()
    }
}

suspend fun errors() {
    val limits = limits()
    Engine.open(config(name = "n".repeat(limits.deviceNameBytesMax.toInt())))
    val long = throws<OpenException.DeviceNameTooLong>("a device name over the limit") {
        Engine.open(config(name = "n".repeat(limits.deviceNameBytesMax.toInt() + 1)))
    }
    check(long.bytes == limits.deviceNameBytesMax + 1UL) { "bytes: ${long.bytes}" }
    throws<OpenException.InvalidId>("an empty account") { Engine.open(config(account = "")) }
    val store = throws<OpenException.Store>("a store in no folder") {
        Engine.open(config(store = StorePath.File("/nonexistent/dir/x.db")))
    }
    check(store.error is StoreOpenException.Sqlite) { "store: ${store.error}" }

    val engine = Engine.open(config())
    val refused = throws<OpException.Refused>("removing no contact") { engine.perform(Op.Contact(ContactOp.Remove("bob"))) }
    check(refused.reason is RefusedException.NoSuchContact) { "reason: ${refused.reason}" }
    val body = "x".repeat(limits.messageBodyBytesMax.toInt() + 1)
    val invalid = throws<OpException.Invalid>("a body over the limit") { engine.perform(Op.Message(MessageOp.Send("u:bob", body))) }
    check(invalid.error is InvalidOpException.TextTooLong) { "error: ${invalid.error}" }
    throws<QueryException.InvalidId>("a conversation id without u:") { engine.conversation("bob") }
    val apply = throws<ApplyException.Delta>("bytes that are no delta") { engine.applyRemote(listOf(byteArrayOf(1, 2, 3))) }
    check(apply.index == 0UL) { "index: ${apply.index}" }

    val offline = OnlineDevice.open(config(name = "offline"), OnlineConfig(relay = "127.0.0.1:9", loginToken = "t", startOnline = false))
    throws<DeviceException.NotConnected>("devices while offline") { offline.devices() }
    throws<DeviceException.InvalidId>("kicking a bad device id") { offline.kickDevice("not-a-device") }
    val handed = offline.shutdown()
    check(handed.contacts().isEmpty()) { "the engine handed back has contacts" }
    throws<DeviceException.ShutDown>("a call after shutdown") { offline.state() }
}

fun main() {
    val relay = System.getenv("TANDEM_RELAY")
    val alice = System.getenv("TANDEM_TOKENS")?.split(" ")?.filter { it.isNotEmpty() }?.toMutableList()
    val carol = System.getenv("TANDEM_TOKENS_CAROL")?.split(" ")?.filter { it.isNotEmpty() }?.toMutableList()
    val dana = System.getenv("TANDEM_TOKENS_DANA")?.split(" ")?.filter { it.isNotEmpty() }?.toMutableList()
    if (relay.isNullOrEmpty() || alice == null || alice.size < 2 || carol == null || carol.size < 2 || dana == null || dana.size < 2) {
        System.err.println("set TANDEM_RELAY, TANDEM_TOKENS (login tokens of alice), TANDEM_TOKENS_CAROL and TANDEM_TOKENS_DANA, two or more each")
        exitProcess(2)
    }
    try {
        runBlocking {
            errors()
            println("errors: ok")
            example(relay, alice)
            println("example: ok")
            listeners(relay, carol)
            println("listeners: ok")
            linking(relay, dana)
            println("linking: ok")
        }
    } catch (e: Throwable) {
        System.err.println("FAILED after $checks checks: $e")
        e.printStackTrace()
        exitProcess(1)
    }
    println("all $checks checks passed")
}
