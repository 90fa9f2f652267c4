"""Two devices of one account through a relay: what the phone does, the laptop hears.

    TANDEM_RELAY=127.0.0.1:7700 TANDEM_TOKEN=t1.… python3 two_devices.py

The relay address and a token for the account `alice` come from the
environment (see the README: `tandem relay` and `tandem token`). The two
devices keep their SQLite files in a temporary folder. The phone pins a
conversation and sends a message; the laptop hears both through its
listener; then the phone lists the account's devices and kicks the laptop.
The bindings' test suite runs this same program (`run`) against a test
relay.
"""

import asyncio
import os
import sys
import tempfile

import tandem

TIMEOUT_MS = 20_000


class Forward(tandem.EventListener):
    """Hands each event to the asyncio loop: listeners run on a thread of
    their own, so they pass events on rather than doing the work there."""

    def __init__(self, loop, queue):
        self.loop = loop
        self.queue = queue

    def on_event(self, event):
        self.loop.call_soon_threadsafe(self.queue.put_nowait, event)


def device(folder, name, platform, relay, login_token):
    config = tandem.Config(
        store=tandem.StorePath.FILE(path=os.path.join(folder, name + ".db")),
        account="alice",
        device_name=name,
        platform=platform,
    )
    return tandem.OnlineDevice.open(config, tandem.OnlineConfig(relay=relay, login_token=login_token))


async def run(relay, phone_token, laptop_token, folder, say=print):
    """Runs the example; returns what the laptop heard and saw, for the tests.

    Each device logs in with a login token of its own (tokens are single use).
    """
    phone = device(folder, "phone", tandem.Platform.IOS(), relay, phone_token)
    laptop = device(folder, "laptop", tandem.Platform.LINUX(), relay, laptop_token)
    try:
        return await phone_and_laptop(phone, laptop, say)
    finally:
        # Shutting down stops the listeners' threads.
        await laptop.shutdown()
        await phone.shutdown()


async def phone_and_laptop(phone, laptop, say):
    heard = asyncio.Queue()
    listener = laptop.add_listener(Forward(asyncio.get_running_loop(), heard))
    for d in (phone, laptop):
        if await d.wait_status(tandem.StatusCondition.CONNECTED, TIMEOUT_MS) is None:
            raise RuntimeError(f"not connected: {d.status()}")

    await phone.perform(tandem.Op.CONVERSATION(tandem.ConversationOp.PIN("u:bob")))
    sent = await phone.perform(tandem.Op.MESSAGE(tandem.MessageOp.SEND("u:bob", "hi bob")))
    say(f"phone: pinned u:bob, sent {sent.message_id}")

    events = []
    while len(events) < 2:
        event = await asyncio.wait_for(heard.get(), TIMEOUT_MS / 1000)
        await laptop.ack_events(event.seq)
        # Connection events (the device list changed) come too; this
        # example wants the phone's operations.
        if not isinstance(event.kind, tandem.EventKind.CONNECTION):
            say(f"laptop heard: {event.json}")
            events.append(event)
    pinned = (await laptop.conversation("u:bob")).settings.pinned
    say(f"laptop: u:bob pinned = {pinned}")

    devices = await phone.devices()
    for d in devices:
        say(f"device {d.id} {d.name} {d.platform} online={d.online}")
    await phone.kick_device(laptop.device_id())
    kicked = await laptop.wait_status(tandem.StatusCondition.STOPPED, TIMEOUT_MS)
    say(f"laptop: stopped, {kicked.stopped}")

    listener.stop()
    return {"events": events, "pinned": pinned, "devices": devices, "kicked": kicked,
            "phone_id": phone.device_id(), "laptop_id": laptop.device_id()}


def main():
    relay = os.environ.get("TANDEM_RELAY")
    phone_token = os.environ.get("TANDEM_PHONE_TOKEN")
    laptop_token = os.environ.get("TANDEM_LAPTOP_TOKEN")
    if not relay or not phone_token or not laptop_token:
        sys.exit("set TANDEM_RELAY (host:port), TANDEM_PHONE_TOKEN and TANDEM_LAPTOP_TOKEN "
                 "(two login tokens for the account alice: `tandem token` twice)")
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(run(relay, phone_token, laptop_token, folder))


if __name__ == "__main__":
    main()
