//! The multi-device events of an online device as an async stream:
//! [`EventStream`].

use std::collections::VecDeque;

use tandem_engine::{Engine, Event, OpError};
use tokio::sync::{mpsc, oneshot, watch};

use crate::command::Command;
use crate::error::DeviceError;

/// Events read from the journal per round trip to the device thread.
pub const EVENTS_PER_READ: usize = 256;

/// The multi-device events of an [`OnlineDevice`](crate::OnlineDevice), in
/// order, starting with the oldest the app has not acknowledged.
/// Acknowledge with
/// [`OnlineDevice::ack_events`](crate::OnlineDevice::ack_events) once
/// handled; events not acknowledged are delivered again by the next stream
/// (also after a restart).
pub struct EventStream {
    commands: mpsc::Sender<Command>,
    journal_head: watch::Receiver<i64>,
    /// The last event this stream handed out; `None` until the first read
    /// finds where the unacknowledged events start.
    cursor: Option<i64>,
    buffered: VecDeque<Event>,
}

impl EventStream {
    pub(crate) fn new(commands: mpsc::Sender<Command>, journal_head: watch::Receiver<i64>) -> Self {
        EventStream {
            commands,
            journal_head,
            cursor: None,
            buffered: VecDeque::new(),
        }
    }

    /// The next event, waiting for one if there is none yet. Fails only
    /// when the device has shut down (or its store failed).
    pub async fn next(&mut self) -> Result<Event, DeviceError> {
        loop {
            if let Some(event) = self.buffered.pop_front() {
                self.cursor = Some(event.seq);
                return Ok(event);
            }
            // Mark the head as seen before reading, so an event journaled
            // during the read wakes the wait below.
            self.journal_head.borrow_and_update();
            let cursor = self.cursor;
            let (tx, rx) = oneshot::channel();
            let job = Box::new(move |engine: &Engine| {
                let after = match cursor {
                    Some(c) => Ok(c),
                    None => engine.events_acked(),
                };
                let _ = tx.send(after.and_then(|after| {
                    engine
                        .events_after(after, EVENTS_PER_READ)
                        .map(|e| (after, e))
                }));
            });
            self.commands
                .send(Command::Read(job))
                .await
                .map_err(|_| DeviceError::ShutDown)?;
            let (after, events) = rx
                .await
                .map_err(|_| DeviceError::ShutDown)?
                .map_err(|e| DeviceError::Op(OpError::Store(e)))?;
            self.cursor = Some(after);
            if events.is_empty() {
                self.journal_head
                    .changed()
                    .await
                    .map_err(|_| DeviceError::ShutDown)?;
            }
            self.buffered.extend(events);
        }
    }
}
