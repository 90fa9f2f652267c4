"""A program that hears events through a listener and ends without shutting its devices down.

    python3 exit_without_shutdown.py MODE RELAY ACCOUNT STORE TOKEN_A TOKEN_B

Run by test_tandem.py (`ExitTest`) in a process of its own. Device `a`
(its store the SQLite file STORE) listens; device `b` (in memory) performs
an operation. Once `a`'s listener has heard it, `a` acknowledges it, `b`
performs EVENTS_SENT more, and the program ends at once: no `shutdown`, no
`stop`; the devices are kept in a global, as a program's would be, so they
live until the interpreter is finalized, and the listener's thread is
still running, events arriving. MODE says what the listener does:

- `returning`: returns at once;
- `blocked`: sleeps BLOCKED_S inside every `on_event`;
- `stuck`: waits inside its first `on_event` for an event nobody sets.

Prints `heard SEQ` as each call begins, `returned SEQ` as it returns,
`acked SEQ` and `exiting`, one whole line at a time.
"""

import asyncio
import sys
import threading
import time

import tandem

EVENTS_SENT = 50
BLOCKED_S = 1
TIMEOUT_S = 20


SAYING = threading.Lock()


def say(line):
    """One whole line at a time: the listener's thread and the main one both print."""
    with SAYING:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


class Listener(tandem.EventListener):
    def __init__(self, mode):
        self.mode = mode
        self.first = threading.Event()
        self.first_seq = None
        self.never = threading.Event()

    def on_event(self, event):
        if isinstance(event.kind, tandem.EventKind.CONNECTION):
            return
        say(f"heard {event.seq}")
        first = not self.first.is_set()
        if first:
            self.first_seq = event.seq
            self.first.set()
        if self.mode == "blocked":
            time.sleep(BLOCKED_S)
        if self.mode == "stuck" and first:
            self.never.wait()
        say(f"returned {event.seq}")


# What the program holds until it ends.
KEPT = []


def device(relay, account, store, name, token):
    return tandem.OnlineDevice.open(
        tandem.Config(store=store, account=account, device_name=name, platform=tandem.Platform.LINUX()),
        tandem.OnlineConfig(relay=relay, login_token=token),
    )


async def run(mode, relay, account, store, token_a, token_b):
    a = device(relay, account, tandem.StorePath.FILE(path=store), "a", token_a)
    b = device(relay, account, tandem.StorePath.MEMORY(), "b", token_b)
    listener = Listener(mode)
    KEPT.extend([a, b, listener, a.add_listener(listener)])
    for d in (a, b):
        if await d.wait_status(tandem.StatusCondition.CONNECTED, TIMEOUT_S * 1000) is None:
            raise RuntimeError(f"not connected: {d.status()}")
    pin = lambda i: b.perform(tandem.Op.CONVERSATION(tandem.ConversationOp.PIN(f"u:{i}")))
    await pin(0)
    if not await asyncio.to_thread(listener.first.wait, TIMEOUT_S):
        raise RuntimeError(f"no event within {TIMEOUT_S} s")
    await a.ack_events(listener.first_seq)
    say(f"acked {listener.first_seq}")
    for i in range(1, EVENTS_SENT + 1):
        await pin(i)
    say("exiting")


if __name__ == "__main__":
    asyncio.run(run(*sys.argv[1:]))
