"""The Python bindings, end to end: a relay on loopback, two devices, events through a listener, typed errors.

Run by ffi/tests/python.rs (`cargo test -p tandem-ffi --test python`),
which generates the bindings, puts them on PYTHONPATH and names the test
relay binary in TANDEM_FFI_TEST_RELAY. By hand:

    ffi/scripts/generate-bindings.sh target/bindings python
    cargo build -p tandem-ffi --bin tandem-ffi-test-relay
    TANDEM_FFI_TEST_RELAY=target/debug/tandem-ffi-test-relay \\
        PYTHONPATH=target/bindings/python python3 -m unittest discover -s ffi/tests/python -v

Only the standard library is used. Every wait is bounded (TIMEOUT_S).
"""

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import unittest

import tandem

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples", "python"))
import two_devices  # noqa: E402  (the README's example, run as it is)

TIMEOUT_S = 20
TIMEOUT_MS = TIMEOUT_S * 1000
RELAY = None
# One account per test that goes online: a new device of an account gets
# the account's whole history from the relay.
ACCOUNTS = ["alice", "carol", "dave", "erin", "frank", "gina", "hana", "iris"]
# The bound on a program that ends without shutting down (not a speed
# check: it catches a hang).
EXIT_TIMEOUT_S = 30


def setUpModule():
    """Starts the test relay; it stops when its stdin closes."""
    global RELAY
    binary = os.environ.get("TANDEM_FFI_TEST_RELAY")
    if not binary:
        raise RuntimeError("TANDEM_FFI_TEST_RELAY must name the tandem-ffi-test-relay binary")
    process = subprocess.Popen([binary, *ACCOUNTS], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    line = process.stdout.readline()
    if not line:
        process.kill()
        raise RuntimeError(f"the test relay printed nothing (exit {process.wait(TIMEOUT_S)})")
    started = json.loads(line)
    RELAY = {"process": process, "addr": started["relay"], "tokens": started["tokens"]}


def tearDownModule():
    if RELAY is not None:
        process = RELAY["process"]
        process.stdin.close()
        try:
            process.wait(TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            raise


def config(store=None, account="alice", device_name="test", platform=None):
    return tandem.Config(
        store=store if store is not None else tandem.StorePath.MEMORY(),
        account=account,
        device_name=device_name,
        platform=platform if platform is not None else tandem.Platform.LINUX(),
    )


def take_token(account):
    """A login token of `account` no device has used: each is single use."""
    return RELAY["tokens"][account].pop()


def online(account, name, start_online=True):
    return tandem.OnlineDevice.open(
        config(account=account, device_name=name),
        tandem.OnlineConfig(
            relay=RELAY["addr"], login_token=take_token(account), start_online=start_online
        ),
    )


async def shut_down(*devices):
    """Shuts devices down (stopping their listeners' threads) whatever the test did."""
    for device in devices:
        try:
            await device.shutdown()
        except tandem.DeviceError.ShutDown:
            pass


async def connected(device):
    status = await device.wait_status(tandem.StatusCondition.CONNECTED, TIMEOUT_MS)
    if status is None:
        raise AssertionError(f"not connected within {TIMEOUT_S} s: {device.status()}")


class Collect(tandem.EventListener):
    """Keeps every event; `wait(n)` returns the operations' events (not the
    connection's, such as a changed device list) once n have come."""

    def __init__(self):
        self.all = []
        self.events = []
        self.cond = threading.Condition()

    def on_event(self, event):
        with self.cond:
            self.all.append(event)
            if not isinstance(event.kind, tandem.EventKind.CONNECTION):
                self.events.append(event)
            self.cond.notify_all()

    def wait(self, n):
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.events) >= n, TIMEOUT_S):
                raise AssertionError(f"{len(self.events)} events within {TIMEOUT_S} s, wanted {n}")
            return list(self.events)


class Throwing(tandem.EventListener):
    """Fails on every event: with ListenerError on odd seqs, ValueError on even."""

    def on_event(self, event):
        if event.seq % 2:
            raise tandem.ListenerError.Failed(f"refusing event {event.seq}")
        raise ValueError(f"not a ListenerError, event {event.seq}")


class ExampleTest(unittest.TestCase):
    """The README's example program, against the test relay."""

    def test_two_devices(self):
        with tempfile.TemporaryDirectory() as folder:
            said = []
            out = asyncio.run(two_devices.run(
                RELAY["addr"], take_token("alice"), take_token("alice"), folder, said.append))
        kinds = [e.kind for e in out["events"]]
        self.assertEqual(len(kinds), 2, said)
        self.assertIsInstance(kinds[0], tandem.EventKind.CONVERSATION)
        self.assertIsInstance(kinds[0].event, tandem.ConversationEvent.PINNED)
        self.assertEqual(kinds[0].event.conversation, "u:bob")
        self.assertIsInstance(kinds[1].event, tandem.MessageEvent.SENT)
        for event in out["events"]:
            self.assertEqual(event.source_device, out["phone_id"])
            self.assertEqual(json.loads(event.json)["seq"], event.seq)
        self.assertLess(out["events"][0].seq, out["events"][1].seq)
        self.assertTrue(out["pinned"])
        ids = {d.id for d in out["devices"]}
        self.assertTrue({out["phone_id"], out["laptop_id"]} <= ids, ids)
        self.assertIsInstance(out["kicked"].stopped, tandem.StopReason.KICKED)
        reason = out["kicked"].stopped.reason
        self.assertIsInstance(reason, tandem.OfflineReason.KICKED_BY_DEVICE)
        self.assertEqual(reason.by.id, out["phone_id"])
        self.assertEqual(reason.by.name, "phone")


class OnlineTest(unittest.TestCase):
    def test_listener_events_ack_and_kick_all(self):
        async def run():
            a, b, c = online("carol", "a"), online("carol", "b"), online("carol", "c")
            try:
                await body(a, b, c)
            finally:
                await shut_down(a, b, c)

        async def body(a, b, c):
            heard = Collect()
            handle = b.add_listener(heard)
            failing = b.add_listener(Throwing())
            for d in (a, b, c):
                await connected(d)
            await a.perform(tandem.Op.CONTACT_WITH_EXT(tandem.ContactOp.ADD("bob", "hello"), "from the app"))
            sent = await a.perform(tandem.Op.MESSAGE(tandem.MessageOp.SEND("u:bob", "hi")))
            events = await asyncio.to_thread(heard.wait, 2)
            self.assertIsInstance(events[0].kind.event, tandem.ContactEvent.ADDED)
            self.assertEqual(events[0].kind.event.greeting, "hello")
            self.assertEqual(events[0].ext, "from the app")
            self.assertEqual(events[1].kind.event.message, sent.message_id)
            # The throwing listener's failures are counted, not propagated.
            for _ in range(TIMEOUT_S * 10):
                if failing.delivered() >= 2:
                    break
                await asyncio.sleep(0.1)
            self.assertGreaterEqual(failing.failures(), 2)
            self.assertRegex(failing.last_failure(), "refusing event|not a ListenerError")
            self.assertTrue(failing.is_running())
            # Acknowledged events are not delivered again.
            acked = max(e.seq for e in heard.all)
            await b.ack_events(acked)
            self.assertEqual(await b.events_acked(), acked)
            self.assertTrue(all(e.seq > acked for e in await b.pending_events(100)))
            again = Collect()
            later = b.add_listener(again)
            await a.perform(tandem.Op.CONVERSATION(tandem.ConversationOp.PIN("u:bob")))
            self.assertIsInstance((await asyncio.to_thread(again.wait, 1))[0].kind.event,
                                  tandem.ConversationEvent.PINNED)
            self.assertEqual(len(again.events), 1)
            self.assertEqual((await b.contacts())[0].user_id, "bob")
            handle.stop()
            failing.stop()
            later.stop()
            self.assertEqual(len(await a.other_device_ids()), 2)
            await a.kick_all_other_devices()
            for d in (b, c):
                status = await d.wait_status(tandem.StatusCondition.STOPPED, TIMEOUT_MS)
                self.assertIsNotNone(status, d.status())
                self.assertIsInstance(status.stopped, tandem.StopReason.KICKED)
            for d in (a, b, c):
                await d.shutdown()
            # `stop` returns at once; the listener's thread ends soon after.
            for _ in range(TIMEOUT_S * 10):
                if not handle.is_running():
                    break
                await asyncio.sleep(0.1)
            self.assertFalse(handle.is_running())
        asyncio.run(run())

    def test_online_errors(self):
        async def run():
            offline = online("dave", "offline", start_online=False)
            try:
                await body(offline)
            finally:
                await shut_down(offline)

        async def body(offline):
            with self.assertRaises(tandem.DeviceError.NotConnected):
                await offline.devices()
            with self.assertRaises(tandem.DeviceError.InvalidId) as caught:
                await offline.kick_device("not-a-device")
            self.assertEqual(caught.exception.value, "not-a-device")
            with self.assertRaises(tandem.DeviceError.Op) as caught:
                await offline.perform(tandem.Op.CONTACT(tandem.ContactOp.REMOVE("nobody")))
            self.assertIsInstance(caught.exception.error, tandem.OpError.Refused)
            await offline.set_online(True)
            await connected(offline)
            too_large = bytes(tandem.limits().payload_bytes_max + 1)
            with self.assertRaises(tandem.DeviceError.Session) as caught:
                await offline.send_to_device(offline.device_id(), too_large)
            self.assertIsInstance(caught.exception.error, tandem.CommandError.PayloadTooLarge)
            engine = await offline.shutdown()
            with self.assertRaises(tandem.DeviceError.ShutDown):
                await offline.state()
            # The engine handed back works offline.
            self.assertEqual(engine.contacts(), [])
        asyncio.run(run())


class LinkTest(unittest.TestCase):
    def test_linked_devices_sync_sealed(self):
        """Two devices linked offline (key, code, grant, accept) sync through the relay."""
        folder = tempfile.mkdtemp()
        files = [os.path.join(folder, name) for name in ("phone.db", "laptop.db")]

        def store(path):
            return tandem.StorePath.FILE(path=path)

        phone = tandem.Engine.open(config(store=store(files[0]), account="hana", device_name="phone"))
        laptop = tandem.Engine.open(config(store=store(files[1]), account="hana", device_name="laptop"))
        self.assertIsNone(laptop.key_fingerprint())
        with self.assertRaises(tandem.LinkingError.NotLinked):
            laptop.grant_link(phone.show_link_code())
        fingerprint = phone.create_account_key()
        with self.assertRaises(tandem.LinkingError.AlreadyLinked):
            phone.create_account_key()
        code = laptop.show_link_code()
        self.assertEqual(len(code), 181)
        with self.assertRaises(tandem.LinkingError.BadCode):
            phone.grant_link("not a code")
        grant = phone.grant_link(code)
        with self.assertRaises(tandem.LinkingError.BadKey):
            laptop.accept_link_grant(grant, "zz")
        self.assertEqual(laptop.accept_link_grant(grant, phone.public_key()), fingerprint)
        self.assertEqual(laptop.key_fingerprint(), fingerprint)
        with self.assertRaises(tandem.LinkingError.AlreadyLinked):
            laptop.accept_link_grant(grant, phone.public_key())
        del phone, laptop

        async def run():
            devices = [
                tandem.OnlineDevice.open(
                    config(store=store(path), account="hana", device_name=name),
                    tandem.OnlineConfig(relay=RELAY["addr"], login_token=take_token("hana"), start_online=True),
                )
                for path, name in zip(files, ("phone", "laptop"))
            ]
            try:
                for d in devices:
                    await connected(d)
                await devices[0].perform(tandem.Op.MESSAGE(tandem.MessageOp.SEND("u:bob", "sealed hello")))
                for _ in range(TIMEOUT_S * 10):
                    messages = (await devices[1].state()).messages
                    if any(m.body == "sealed hello" for m in messages):
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError("the laptop never got the message")
                self.assertIsNone(devices[1].status().waiting_for_key)
            finally:
                await shut_down(*devices)

        asyncio.run(run())

    def test_a_running_device_is_linked_and_reads_on(self):
        """Linked while both devices run, the one that waited for the key opens what it waited at."""
        folder = tempfile.mkdtemp()

        async def run():
            phone, laptop = [
                tandem.OnlineDevice.open(
                    config(store=tandem.StorePath.FILE(path=os.path.join(folder, name + ".db")), account="iris", device_name=name),
                    tandem.OnlineConfig(relay=RELAY["addr"], login_token=take_token("iris"), start_online=True),
                )
                for name in ("phone", "laptop")
            ]
            try:
                for d in (phone, laptop):
                    await connected(d)
                fingerprint = await phone.create_account_key()
                self.assertEqual(await phone.key_fingerprint(), fingerprint)
                await phone.perform(tandem.Op.MESSAGE(tandem.MessageOp.SEND("u:bob", "sealed while running")))
                for _ in range(TIMEOUT_S * 10):
                    if laptop.status().waiting_for_key is not None:
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError(f"the laptop never waited for the key: {laptop.status()}")
                self.assertIsNone(await laptop.key_fingerprint())

                code = await laptop.show_link_code()
                with self.assertRaises(tandem.DeviceError.Linking):
                    await laptop.grant_link(code)
                grant = await phone.grant_link(code)
                self.assertEqual(await laptop.accept_link_grant(grant, await phone.public_key()), fingerprint)
                with self.assertRaises(tandem.DeviceError.Linking):
                    await laptop.accept_link_grant(grant, await phone.public_key())
                for _ in range(TIMEOUT_S * 10):
                    messages = (await laptop.state()).messages
                    if any(m.body == "sealed while running" for m in messages) and laptop.status().waiting_for_key is None:
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError(f"the laptop never opened the message: {laptop.status()}")
            finally:
                await shut_down(phone, laptop)

        asyncio.run(run())


class ExitTest(unittest.TestCase):
    """A program that ends without shutting its devices down, a listener's thread
    running, exits cleanly, and its journal keeps what the listener did not get.

    Each runs exit_without_shutdown.py in a process of its own (see there).
    """

    def exit_without_shutdown(self, mode, account):
        program = os.path.join(HERE, "exit_without_shutdown.py")
        with tempfile.TemporaryDirectory() as folder:
            store = os.path.join(folder, "a.db")
            args = [sys.executable, program, mode, RELAY["addr"], account, store,
                    take_token(account), take_token(account)]
            try:
                done = subprocess.run(args, capture_output=True, text=True, timeout=EXIT_TIMEOUT_S)
            except subprocess.TimeoutExpired as timeout:
                self.fail(f"{mode}: did not end within {EXIT_TIMEOUT_S} s:\n{timeout.stderr}")
            said = f"{mode}: exit {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
            self.assertEqual(done.returncode, 0, said)
            self.assertNotIn("FATAL", done.stderr, said)
            lines = done.stdout.splitlines()
            self.assertIn("exiting", lines, said)
            seqs = lambda word: [int(line.split()[1]) for line in lines if line.startswith(word + " ")]
            heard, returned, [acked] = seqs("heard"), seqs("returned"), seqs("acked")
            # The device's journal, opened again: acknowledged up to the
            # ack, every later event still there, none missing.
            engine = tandem.Engine.open(config(
                store=tandem.StorePath.FILE(path=store), account=account, device_name="a"))
            self.assertEqual(engine.events_acked(), acked, said)
            head = engine.events_head()
            pending = [e.seq for e in engine.pending_events(head + 1)]
            self.assertEqual(pending, list(range(acked + 1, head + 1)), said)
            self.assertGreaterEqual(head, max(heard), said)
            return heard, returned, done.stderr

    def test_listener_busy_at_exit(self):
        """Events still arriving as the program ends (it aborted here before the exit hook)."""
        heard, returned, _ = self.exit_without_shutdown("returning", "erin")
        # Each call begun was let finish.
        self.assertEqual(returned, heard)

    def test_listener_inside_on_event_at_exit(self):
        """The listener sleeps 1 s inside on_event as the program ends."""
        heard, returned, stderr = self.exit_without_shutdown("blocked", "frank")
        # The call in progress at exit finished before the process ended
        # (before the exit hook, the process ended first).
        self.assertEqual(returned, heard)
        self.assertNotIn("still inside on_event", stderr)

    def test_listener_stuck_at_exit(self):
        """The listener never returns: the exit hook waits its bound, says so, and the program ends."""
        heard, returned, stderr = self.exit_without_shutdown("stuck", "gina")
        self.assertEqual(len(heard), 1)
        self.assertEqual(returned, [])
        self.assertIn(f"1 listener(s) still inside on_event after {tandem.LISTENERS_EXIT_WAIT_MS} ms", stderr)


class OfflineErrorTest(unittest.TestCase):
    """Every error the engine can be made to return from outside arrives as its own typed exception."""

    def setUp(self):
        self.engine = tandem.Engine.open(config())

    def test_open_errors(self):
        with self.assertRaises(tandem.OpenError.InvalidId):
            tandem.Engine.open(config(account=""))
        name_max = tandem.limits().device_name_bytes_max
        tandem.Engine.open(config(device_name="n" * name_max))
        with self.assertRaises(tandem.OpenError.DeviceNameTooLong) as caught:
            tandem.Engine.open(config(device_name="n" * (name_max + 1)))
        self.assertEqual(caught.exception.bytes, name_max + 1)
        with self.assertRaises(tandem.OpenError.Store) as caught:
            tandem.Engine.open(config(store=tandem.StorePath.FILE(path="/nonexistent/dir/x.db")))
        self.assertIsInstance(caught.exception.error, tandem.StoreOpenError.Sqlite)
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "d.db")
            tandem.Engine.open(config(store=tandem.StorePath.FILE(path=path)))
            with self.assertRaises(tandem.OpenError.AccountMismatch) as caught:
                tandem.Engine.open(config(store=tandem.StorePath.FILE(path=path), account="bob"))
            self.assertEqual(caught.exception.found, "alice")

    def test_op_errors(self):
        body_max = tandem.limits().message_body_bytes_max
        self.engine.perform(tandem.Op.MESSAGE(tandem.MessageOp.SEND("u:bob", "x" * body_max)))
        with self.assertRaises(tandem.OpError.Invalid) as caught:
            self.engine.perform(tandem.Op.MESSAGE(tandem.MessageOp.SEND("u:bob", "x" * (body_max + 1))))
        self.assertIsInstance(caught.exception.error, tandem.InvalidOpError.TextTooLong)
        self.assertEqual(caught.exception.error.len, body_max + 1)
        with self.assertRaises(tandem.OpError.Refused) as caught:
            self.engine.perform(tandem.Op.CONTACT(tandem.ContactOp.REMOVE("bob")))
        self.assertIsInstance(caught.exception.reason, tandem.RefusedError.NoSuchContact)
        with self.assertRaises(tandem.OpError):
            self.engine.perform(tandem.Op.CONTACT(tandem.ContactOp.REMOVE("")))
        # Just inside and just outside a daily quiet time's limits.
        def quiet(start, end, offset):
            mode = tandem.DoNotDisturb(
                remind=tandem.RemindType.MENTIONS_ONLY,
                quiet=tandem.QuietTime.DAILY(start, end, offset),
            )
            return tandem.Op.CONVERSATION(tandem.ConversationOp.SET_DO_NOT_DISTURB_MODE("u:bob", mode))
        self.engine.perform(quiet(0, 1439, 14 * 60))
        for bad in [quiet(0, 1440, 0), quiet(5, 5, 0), quiet(0, 1, 14 * 60 + 1)]:
            with self.assertRaises(tandem.OpError.Invalid) as caught:
                self.engine.perform(bad)
            self.assertIsInstance(caught.exception.error, tandem.InvalidOpError.BadQuietTime)
        self.assertEqual(self.engine.do_not_disturb("u:bob").remind, tandem.RemindType.MENTIONS_ONLY)
        # Pinning what is pinned records nothing.
        self.assertIsNotNone(self.engine.perform(
            tandem.Op.CONVERSATION(tandem.ConversationOp.PIN("u:bob"))).recorded)
        self.assertIsNone(self.engine.perform(
            tandem.Op.CONVERSATION(tandem.ConversationOp.PIN("u:bob"))).recorded)

    def test_query_and_apply_errors(self):
        with self.assertRaises(tandem.QueryError.InvalidId) as caught:
            self.engine.conversation("bob")
        self.assertEqual(caught.exception.value, "bob")
        with self.assertRaises(tandem.ApplyError.Delta) as caught:
            self.engine.apply_remote([b"not a delta"])
        self.assertEqual(caught.exception.index, 0)
        self.assertIsInstance(caught.exception.error, tandem.DeltaError)
        # A delta of another account is refused as such.
        bob = tandem.Engine.open(config(account="bob"))
        bob.perform(tandem.Op.CONVERSATION(tandem.ConversationOp.PIN("u:carol")))
        with self.assertRaises(tandem.ApplyError.Delta) as caught:
            self.engine.apply_remote(bob.export(0, 10).deltas)
        self.assertIsInstance(caught.exception.error, tandem.DeltaError.ForeignAccount)

    def test_store_errors_are_typed(self):
        # A failing store (disk full, I/O error) cannot be made from here;
        # the errors that only it returns are still their own exception
        # types with their variants (their conversion from the engine's is
        # tested in Rust, ffi/src/error.rs).
        for error, variants in [
            (tandem.StoreError, ["Sqlite", "Corrupt", "OutOfRange", "Unknown"]),
            (tandem.LoadError, ["Doc", "Store", "Unknown"]),
            (tandem.DocError, ["Automerge", "MissingRoot", "Unknown"]),
            (tandem.CommandError, ["Closed", "TooManyDeltas", "DeltaTooLarge", "SeqTooLarge"]),
        ]:
            self.assertTrue(issubclass(error, Exception), error)
            for variant in variants:
                self.assertTrue(issubclass(getattr(error, variant), error), (error, variant))

    def test_offline_exchange(self):
        phone = tandem.Engine.open(config(device_name="phone"))
        phone.perform(tandem.Op.CONVERSATION(tandem.ConversationOp.PIN("u:bob")))
        page = phone.export(0, 100)
        applied = self.engine.apply_remote(page.deltas)
        self.assertEqual(self.engine.doc_heads(), phone.doc_heads())
        event = self.engine.next_event()
        self.assertIsInstance(event.kind.event, tandem.ConversationEvent.PINNED)
        self.assertTrue(self.engine.conversation("u:bob").settings.pinned)
        self.assertIsNotNone(applied)


if __name__ == "__main__":
    unittest.main()
