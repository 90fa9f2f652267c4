// Two devices of one account through a relay: what the phone does, the laptop hears.
//
//     TANDEM_RELAY=127.0.0.1:7700 TANDEM_TOKEN=t1.… java … tandem.example.TwoDevicesKt
//
// The relay address and a token for the account `alice` come from the
// environment (see the README: `tandem relay` and `tandem token`). The two
// devices keep their SQLite files in a temporary folder. The phone pins a
// conversation and sends a message; the laptop hears both through its
// listener; then the phone lists the account's devices and kicks the
// laptop. The bindings' Kotlin test runs this same program (`run`) against
// a test relay. The same as ffi/examples/python/two_devices.py.
package tandem.example

import java.nio.file.Files
import kotlin.system.exitProcess
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import tandem.*

const val TIMEOUT_MS: Long = 20_000

/** Hands each event to a channel: listeners run on a thread of their own,
 *  so they pass events on rather than doing the work there. */
class Forward(private val heard: Channel<Event>) : EventListener {
    override fun onEvent(event: Event) {
        heard.trySend(event)
    }
}

/** What the laptop heard and saw, for the tests. */
data class Outcome(
    val events: List<Event>,
    val pinned: Boolean,
    val devices: List<DeviceInfo>,
    val kicked: Status,
    val phoneId: String,
    val laptopId: String,
)

fun device(folder: String, name: String, platform: Platform, relay: String, loginToken: String): OnlineDevice =
    OnlineDevice.open(
        Config(store = StorePath.File("$folder/$name.db"), account = "alice", deviceName = name, platform = platform),
        OnlineConfig(relay = relay, loginToken = loginToken),
    )

// Each device logs in with a login token of its own (tokens are single use).
suspend fun run(relay: String, phoneToken: String, laptopToken: String, folder: String, say: (String) -> Unit = ::println): Outcome {
    val phone = device(folder, "phone", Platform.Ios, relay, phoneToken)
    val laptop = device(folder, "laptop", Platform.Linux, relay, laptopToken)
    try {
        return phoneAndLaptop(phone, laptop, say)
    } finally {
        // Shutting down stops the listeners' threads.
        laptop.shutdown()
        phone.shutdown()
    }
}

suspend fun phoneAndLaptop(phone: OnlineDevice, laptop: OnlineDevice, say: (String) -> Unit): Outcome {
    val heard = Channel<Event>(Channel.UNLIMITED)
    val listener = laptop.addListener(Forward(heard))
    for (d in listOf(phone, laptop)) {
        checkNotNull(d.waitStatus(StatusCondition.CONNECTED, TIMEOUT_MS.toULong())) { "not connected: ${d.status()}" }
    }

    phone.perform(Op.Conversation(ConversationOp.Pin("u:bob")))
    val sent = phone.perform(Op.Message(MessageOp.Send("u:bob", "hi bob")))
    say("phone: pinned u:bob, sent ${sent.messageId}")

    val events = mutableListOf<Event>()
    while (events.size < 2) {
        val event = withTimeout(TIMEOUT_MS) { heard.receive() }
        laptop.ackEvents(event.seq)
        // Connection events (the device list changed) come too; this
        // example wants the phone's operations.
        if (event.kind !is EventKind.Connection) {
            say("laptop heard: ${event.json}")
            events.add(event)
        }
    }
    val pinned = laptop.conversation("u:bob")!!.settings.pinned
    say("laptop: u:bob pinned = $pinned")

    val devices = phone.devices()
    for (d in devices) say("device ${d.id} ${d.name} ${d.platform::class.simpleName} online=${d.online}")
    phone.kickDevice(laptop.deviceId())
    val kicked = checkNotNull(laptop.waitStatus(StatusCondition.STOPPED, TIMEOUT_MS.toULong())) { "not stopped" }
    say("laptop: stopped, ${kicked.stopped}")

    listener.stop()
    return Outcome(events, pinned, devices, kicked, phone.deviceId(), laptop.deviceId())
}

fun main() {
    val relay = System.getenv("TANDEM_RELAY")
    val phoneToken = System.getenv("TANDEM_PHONE_TOKEN")
    val laptopToken = System.getenv("TANDEM_LAPTOP_TOKEN")
    if (relay.isNullOrEmpty() || phoneToken.isNullOrEmpty() || laptopToken.isNullOrEmpty()) {
        System.err.println("set TANDEM_RELAY (host:port), TANDEM_PHONE_TOKEN and TANDEM_LAPTOP_TOKEN (two login tokens for the account alice: `tandem token` twice)")
        exitProcess(2)
    }
    val folder = Files.createTempDirectory("tandem-example")
    try {
        runBlocking { run(relay, phoneToken, laptopToken, folder.toString()) }
    } finally {
        folder.toFile().deleteRecursively()
    }
}
