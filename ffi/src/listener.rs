//! Delivering multi-device events to a listener the app implements, one thread per listener.
//!
//! # Design
//!
//! Each listener added with `OnlineDevice::add_listener` gets a thread of
//! its own that pages events out of the device's journal (the engine's
//! `EventStream`: at most [`EVENTS_PER_READ`] events in memory at a time)
//! and calls `on_event` with each, in journal order, starting with the
//! oldest event the app has not acknowledged.
//!
//! - No lock is held while the listener runs: the thread owns its stream
//!   and shares only atomic counters with its handle, so a listener may
//!   call back into the device (queries, `ack_events`, even `stop`).
//! - A listener that blocks holds up only its own thread. The device
//!   thread never waits for a listener: the journal is on disk, so the
//!   events a slow listener has not taken yet simply wait there, and its
//!   thread reads them when the listener returns. Nothing is dropped and
//!   nothing is lost; memory stays bounded by one page per listener.
//! - A listener that throws (or returns `ListenerError`) has the failure
//!   logged (`tracing`, target `tandem_ffi::listener`) and counted on its
//!   handle (`failures`, `last_failure`); delivery goes on with the next
//!   event. The engine never sees the failure.
//! - Delivering is not acknowledging: the app acknowledges with
//!   `ack_events(seq)` once it has handled an event, and events not
//!   acknowledged are delivered again to the next listener, also after a
//!   restart (at-least-once, in order).
//! - `stop` returns at once; a listener inside `on_event` finishes that
//!   call, and is not called again. Shutting the device down, or dropping
//!   it, stops its listeners.
//! - [`stop_all_listeners`] stops every listener in the process and waits,
//!   bounded, until their threads are done with the app's code. The Python
//!   package calls it from an `atexit` hook (`ffi/python/tandem/__init__.py`):
//!   a listener's thread that asks for the GIL once the interpreter is
//!   being finalized is ended by CPython with `pthread_exit`, whose forced
//!   unwind would run into the `catch_unwind`s on this thread (ours below,
//!   and std's around every thread) and abort the process ("FATAL:
//!   exception not rethrown"). `atexit` hooks run before finalization
//!   starts, so after the hook no listener thread calls into Python again.
//!   Nothing here catches or stops a forced unwind: it is prevented from
//!   starting.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use tandem_online::EventStream;
use tokio::sync::Notify;

use crate::error::{DeviceError, ListenerError};
use crate::event::Event;

pub use tandem_online::events::EVENTS_PER_READ;

/// How long a listener's thread waits before reading the journal again
/// after the read failed (the store failed; a retry may succeed).
pub const LISTENER_RETRY_MS: u64 = 1_000;

/// The app's side: called with each multi-device event, in order, on a
/// thread of the listener's own.
#[uniffi::export(foreign)]
pub trait EventListener: Send + Sync {
    /// Handles one event. Throwing (any exception) is logged and counted
    /// on the listener's handle; the next event comes all the same.
    fn on_event(&self, event: Event) -> Result<(), ListenerError>;
}

/// Stops every listener of every device in this process, as `stop` does,
/// and waits until their threads are done with the app's code: returned
/// from the `on_event` call in progress, if any, and dropped the listener
/// (which calls into the app's language too). Waits at most `timeout_ms`
/// in all; returns how many listeners' threads were not done by then (0:
/// all done). A listener calling this from its own `on_event` is not
/// waited for (it is counted as not done).
///
/// The Python package calls this at interpreter exit (see the module docs);
/// an app may call it before it ends, in any language. The events the
/// listeners did not get stay in the journal: delivering is not
/// acknowledging, and the next listener gets them.
#[uniffi::export]
pub fn stop_all_listeners(timeout_ms: u64) -> u32 {
    let listeners: Vec<Arc<Shared>> = registry().iter().filter_map(Weak::upgrade).collect();
    for shared in &listeners {
        shared.request_stop();
    }
    let deadline = Instant::now() + Duration::from_millis(timeout_ms);
    let me = std::thread::current().id();
    let not_done = listeners
        .iter()
        .filter(|shared| shared.thread.get() == Some(&me) || !shared.wait_ended(deadline))
        .count();
    u32::try_from(not_done).unwrap_or(u32::MAX)
}

/// Every listener whose thread was started, as long as its thread or its
/// handle lives; pruned of the others whenever one is added.
static LISTENERS: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

fn registry() -> MutexGuard<'static, Vec<Weak<Shared>>> {
    LISTENERS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a listener's thread and its handle share.
#[derive(Debug, Default)]
struct Shared {
    stop: Notify,
    stopping: AtomicBool,
    /// Set by the thread once it is done with the listener: after its last
    /// `on_event` returned and the listener was dropped.
    ended: Mutex<bool>,
    ended_changed: Condvar,
    /// The listener's thread, set first thing on it.
    thread: OnceLock<ThreadId>,
    delivered: AtomicU64,
    failures: AtomicU64,
    last_failure: Mutex<Option<String>>,
}

impl Shared {
    fn request_stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        // A stored permit: a thread inside `on_event` sees it next time.
        self.stop.notify_one();
    }

    fn is_ended(&self) -> bool {
        *self.ended.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_ended(&self) {
        *self.ended.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.ended_changed.notify_all();
    }

    /// Waits until the thread has ended or `deadline` passed; whether it
    /// has ended.
    fn wait_ended(&self, deadline: Instant) -> bool {
        let mut ended = self.ended.lock().unwrap_or_else(PoisonError::into_inner);
        while !*ended {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            ended = self
                .ended_changed
                .wait_timeout(ended, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    fn fail(&self, why: String) {
        tracing::warn!(target: "tandem_ffi::listener", "{why}");
        self.failures.fetch_add(1, Ordering::Relaxed);
        *self
            .last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(why);
    }
}

/// A running listener: stop it, and see how it is doing.
#[derive(Debug, uniffi::Object)]
pub struct ListenerHandle {
    shared: Arc<Shared>,
}

#[uniffi::export]
impl ListenerHandle {
    /// Stops delivering; returns at once. A call to `on_event` in progress
    /// finishes; no other follows.
    pub fn stop(&self) {
        self.shared.request_stop();
    }

    /// Whether the listener's thread is still delivering (false once
    /// stopped, or once the device shut down).
    pub fn is_running(&self) -> bool {
        !self.shared.is_ended()
    }

    /// Events whose `on_event` call has returned, failed ones included.
    pub fn delivered(&self) -> u64 {
        self.shared.delivered.load(Ordering::SeqCst)
    }

    /// Calls that threw, and journal reads that failed.
    pub fn failures(&self) -> u64 {
        self.shared.failures.load(Ordering::SeqCst)
    }

    /// What the last failure said.
    pub fn last_failure(&self) -> Option<String> {
        self.shared
            .last_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Starts `listener`'s thread on `stream`.
pub(crate) fn spawn(
    listener: Arc<dyn EventListener>,
    stream: EventStream,
    device_id: &str,
) -> Result<Arc<ListenerHandle>, DeviceError> {
    let shared = Arc::new(Shared::default());
    // Registered before the thread starts, so that `stop_all_listeners`
    // cannot miss it; if the thread does not start, the entry is dead.
    {
        let mut listeners = registry();
        listeners.retain(|weak| weak.upgrade().is_some_and(|shared| !shared.is_ended()));
        listeners.push(Arc::downgrade(&shared));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(|e| DeviceError::Unknown {
            details: format!("cannot start a listener: {e}"),
        })?;
    let thread_shared = Arc::clone(&shared);
    std::thread::Builder::new()
        .name(format!(
            "tandem-listener-{}",
            &device_id[..8.min(device_id.len())]
        ))
        .spawn(move || {
            let _ = thread_shared.thread.set(std::thread::current().id());
            // `deliver` owns the listener: it is dropped when `block_on`
            // returns, before the thread says it has ended.
            runtime.block_on(deliver(listener, stream, &thread_shared));
            thread_shared.set_ended();
        })
        .map_err(|e| DeviceError::Unknown {
            details: format!("cannot start a listener's thread: {e}"),
        })?;
    Ok(Arc::new(ListenerHandle { shared }))
}

async fn deliver(listener: Arc<dyn EventListener>, mut stream: EventStream, shared: &Shared) {
    loop {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let next = tokio::select! {
            biased;
            () = shared.stop.notified() => return,
            next = stream.next() => next,
        };
        let event = match next {
            Ok(event) => Event::from_engine(&event),
            Err(tandem_online::DeviceError::ShutDown) => return,
            Err(error) => {
                shared.fail(format!("reading the events journal failed: {error}"));
                tokio::select! {
                    () = shared.stop.notified() => return,
                    () = tokio::time::sleep(Duration::from_millis(LISTENER_RETRY_MS)) => continue,
                }
            }
        };
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let seq = event.seq;
        // No lock is held here (see the module docs). `catch_unwind` is for
        // a Rust panic in the callback's glue; a forced unwind (CPython's
        // `pthread_exit` at finalization) must never get here, and does
        // not once the exit hook has stopped the listeners (module docs).
        match catch_unwind(AssertUnwindSafe(|| listener.on_event(event))) {
            Ok(Ok(())) => {}
            Ok(Err(ListenerError::Failed { details })) => {
                shared.fail(format!("the listener failed on event {seq}: {details}"));
            }
            Err(_) => shared.fail(format!("the listener panicked on event {seq}")),
        }
        shared.delivered.fetch_add(1, Ordering::SeqCst);
    }
}
