//! `stop_all_listeners`, what the Python package's exit hook calls: it stops every listener, waits for the ones inside `on_event`, and leaves the undelivered events in the journal.
//!
//! In a test binary of its own: the registry of listeners is the
//! process's, and this is the only test here that starts listeners.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tandem_ffi::engine::{Config, Engine, StorePath};
use tandem_ffi::error::ListenerError;
use tandem_ffi::event::Event;
use tandem_ffi::listener::{stop_all_listeners, EventListener};
use tandem_ffi::model::Platform;
use tandem_ffi::online::{Backoff, OnlineConfig, OnlineDevice};
use tandem_ffi::op::{ConversationOp, Op};

/// The longest any step here waits for a listener's thread.
const WAIT_MS: u64 = 20_000;
const WAIT: Duration = Duration::from_millis(WAIT_MS);

/// Events pending on the device before its listener starts.
const EVENTS: usize = 3;

fn config(store: StorePath, name: &str) -> Config {
    Config {
        store,
        account: "alice".into(),
        device_name: name.into(),
        platform: Platform::Linux,
        relaxed_merges: false,
    }
}

/// Says when it is inside `on_event`, then waits there until released.
struct Blocking {
    entered: Mutex<Sender<i64>>,
    release: Mutex<Receiver<()>>,
}

impl EventListener for Blocking {
    fn on_event(&self, event: Event) -> Result<(), ListenerError> {
        let _ = self.entered.lock().expect("not poisoned").send(event.seq);
        let _ = self.release.lock().expect("not poisoned").recv();
        Ok(())
    }
}

/// Calls `stop_all_listeners` from its own `on_event` and passes on what
/// it returned.
struct StopsAll {
    said: Mutex<Sender<u32>>,
}

impl EventListener for StopsAll {
    fn on_event(&self, _event: Event) -> Result<(), ListenerError> {
        // Far longer than the test waits for the answer: were the listener
        // waited for by its own call, the answer would not come in time.
        let not_done = stop_all_listeners(600_000);
        let _ = self.said.lock().expect("not poisoned").send(not_done);
        Ok(())
    }
}

/// An offline device (its relay never dialled) whose journal holds
/// `EVENTS` events of another device's operations.
fn device_with_pending_events(folder: &std::path::Path) -> Arc<OnlineDevice> {
    let phone = Engine::open(config(StorePath::Memory, "phone")).expect("the phone opens");
    for i in 0..EVENTS {
        phone
            .perform(Op::Conversation {
                op: ConversationOp::Pin {
                    conversation: format!("u:{i}"),
                },
            })
            .expect("a pin");
    }
    let store = StorePath::File {
        path: folder.join("laptop.db").to_string_lossy().into_owned(),
    };
    let laptop = Engine::open(config(store.clone(), "laptop")).expect("the laptop opens");
    laptop
        .apply_remote(phone.export(0, 100).expect("an export").deltas)
        .expect("the phone's deltas merge");
    drop(laptop);
    OnlineDevice::open(
        config(store, "laptop"),
        OnlineConfig {
            relay: "127.0.0.1:9".into(),
            login_token: None,
            start_online: false,
            backoff: Backoff {
                initial_ms: 200,
                max_ms: 30_000,
            },
            connect_timeout_ms: 10_000,
        },
    )
    .expect("the online device opens")
}

#[test]
fn stop_all_listeners_waits_for_on_event_and_keeps_the_rest_in_the_journal() {
    let folder = tempfile::tempdir().expect("a temporary folder");
    let device = device_with_pending_events(folder.path());
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let pending = |device: &OnlineDevice| {
        runtime
            .block_on(device.pending_events(100))
            .expect("the journal reads")
    };
    let before = pending(&device);
    assert_eq!(before.len(), EVENTS, "{before:?}");

    // No listener: nothing to wait for.
    assert_eq!(stop_all_listeners(0), 0);

    let (entered_tx, entered) = channel();
    let (release, release_rx) = channel();
    let handle = device
        .add_listener(Arc::new(Blocking {
            entered: Mutex::new(entered_tx),
            release: Mutex::new(release_rx),
        }))
        .expect("a listener");
    let first = entered
        .recv_timeout(WAIT)
        .expect("the first event, within WAIT");
    assert_eq!(first, before[0].seq);

    // Inside `on_event`: stopped, but not done within the (short) bound.
    assert_eq!(stop_all_listeners(50), 1);
    assert!(handle.is_running());
    release.send(()).expect("the listener waits");
    // Let go: its call returns, no other begins, and its thread ends.
    assert_eq!(stop_all_listeners(WAIT_MS), 0);
    assert!(!handle.is_running());
    assert_eq!(handle.delivered(), 1);
    assert!(entered.try_recv().is_err(), "a second call began");
    // Delivered is not acknowledged: every event is still pending.
    let after: Vec<i64> = pending(&device).iter().map(|e| e.seq).collect();
    let before: Vec<i64> = before.iter().map(|e| e.seq).collect();
    assert_eq!(after, before);
    // Once stopped, a handle stays stopped: nothing is left to wait for.
    assert_eq!(stop_all_listeners(0), 0);

    // Called from a listener's own `on_event`: it does not wait for
    // itself, and counts itself as not done.
    let (said_tx, said) = channel();
    let own = device
        .add_listener(Arc::new(StopsAll {
            said: Mutex::new(said_tx),
        }))
        .expect("a listener");
    assert_eq!(said.recv_timeout(WAIT), Ok(1));
    assert_eq!(stop_all_listeners(WAIT_MS), 0);
    assert!(!own.is_running());
    assert_eq!(own.delivered(), 1);
    drop(runtime);
}
