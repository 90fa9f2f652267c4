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

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// What a listener's thread and its handle share.
#[derive(Debug, Default)]
struct Shared {
    stop: Notify,
    stopping: AtomicBool,
    running: AtomicBool,
    delivered: AtomicU64,
    failures: AtomicU64,
    last_failure: Mutex<Option<String>>,
}

impl Shared {
    fn fail(&self, why: String) {
        tracing::warn!(target: "tandem_ffi::listener", "{why}");
        self.failures.fetch_add(1, Ordering::Relaxed);
        *self
            .last_failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(why);
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
        self.shared.stopping.store(true, Ordering::SeqCst);
        // A stored permit: a thread inside `on_event` sees it next time.
        self.shared.stop.notify_one();
    }

    /// Whether the listener's thread is still delivering (false once
    /// stopped, or once the device shut down).
    pub fn is_running(&self) -> bool {
        self.shared.running.load(Ordering::SeqCst)
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
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
    shared.running.store(true, Ordering::SeqCst);
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
            runtime.block_on(deliver(listener, stream, &thread_shared));
            thread_shared.running.store(false, Ordering::SeqCst);
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
        // No lock is held here (see the module docs).
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
