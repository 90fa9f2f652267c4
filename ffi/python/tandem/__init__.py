"""Tandem's Python bindings: the UniFFI-generated module, and listeners stopped at interpreter exit.

Everything public comes from the generated module (`tandem.tandem`,
re-exported here: `import tandem` is all an app needs). This file adds one
thing the generated code cannot: an `atexit` hook that stops every
listener's thread before the interpreter is finalized.

Why: a listener's thread is not a Python thread. Once finalization has
begun, CPython ends any such thread that asks for the GIL (to call
`on_event`, or to drop the listener) with `pthread_exit`; its forced unwind
runs into Rust frames that catch unwinds and glibc aborts the process
("FATAL: exception not rethrown"). `atexit` hooks run before finalization
begins, so the hook stops the listeners and waits, with the GIL released
(ctypes releases it around every call), until their threads are done with
Python: a call to `on_event` in progress finishes, no other starts.

The events the listeners did not get stay in the device's journal, as
after any stop: delivering is not acknowledging, and the next listener,
after the next start, gets every event not acknowledged with `ack_events`.
"""

import atexit as _atexit
import sys as _sys

from .tandem import *  # noqa: F401,F403  (the whole generated API)
from .tandem import stop_all_listeners as _stop_all_listeners

# The longest the exit hook waits for the listeners' threads, in all. A
# listener still inside `on_event` then is left running (the hook says how
# many on stderr): should it return while the interpreter is being
# finalized, the process aborts as described above.
LISTENERS_EXIT_WAIT_MS = 5_000


def _stop_listeners_at_exit():
    not_done = _stop_all_listeners(LISTENERS_EXIT_WAIT_MS)
    if not_done:
        print(
            f"tandem: {not_done} listener(s) still inside on_event after "
            f"{LISTENERS_EXIT_WAIT_MS} ms at interpreter exit; left running",
            file=_sys.stderr,
        )


_atexit.register(_stop_listeners_at_exit)
