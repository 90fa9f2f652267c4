//! The sans-IO sync driver: an `Engine` in step with a relay over one session.
//!
//! A connection that starts behind the relay journals
//! `ConnectionEvent::CatchUpStarted` before it merges anything and
//! `CatchUpFinished` once it has merged up to the head it saw at login.
//!
//! [`Syncer`] reacts to the session's events by calling the engine (merge a
//! page, record acknowledgements) and the session (push, pull, ack). The
//! async shell (the `tandem-online` crate) only moves bytes and time; a
//! simulation can drive the same code over an in-memory link.

use tandem_transport::client::{CloseReason, SessionEvent};
use tandem_transport::frame::{
    DeviceInfo, ErrorCode, OfflineReason, PayloadId, Refusal, WireDelta,
};
use tandem_transport::limits::{DELTAS_PER_PAGE_MAX, DELTAS_PER_PUSH_MAX, FRAME_BYTES_MAX};
use tandem_transport::{ClientSession, CommandError, DeviceId};

use std::collections::{BTreeSet, VecDeque};

use crate::delta::{DeltaError, EncodedDelta, Tamper};
use crate::engine::{
    Applied, ApplyError, BlockedEntry, Engine, NeedsKey, OutboxPosition, RelayDelta,
    SealOutboxError,
};
use crate::event::{ConnectionEvent, DeviceSummary};
use crate::{ContentId, StoreError};

/// Bytes of delta content put in one push frame: half a frame, so the
/// frame's own overhead always fits and any single delta (at most
/// `DELTA_BYTES_MAX`, a quarter frame) can go alone.
pub const PUSH_BYTES_BUDGET: usize = FRAME_BYTES_MAX / 2;

/// How long a push waits for its acknowledgement, or a pull for its page,
/// before the syncer sends it again (both are safe to repeat). Over TCP a
/// reply is never lost while the connection lives; over an app-provided,
/// message-based transport one can be, and this keeps the device from
/// waiting forever.
pub const REQUEST_TIMEOUT_MS: i64 = 30_000;

/// Pushes a connection keeps in flight at once. Operations made while
/// this many wait for their acknowledgements accumulate and go out in one
/// batch when one is answered (the relay takes a connection's pushes in
/// order and answers each with its own acknowledgement). Bounds the bytes a
/// device has unacknowledged on the wire to this many times
/// [`PUSH_BYTES_BUDGET`].
///
/// One, measured: with four in flight B3 (live fan-out, 2 cores) got
/// worse, p50 30–32 ms against 23–24 ms and 234–276 against 355–426
/// operations a second achieved, because every operation then costs its
/// own push, acknowledgement and acknowledge transaction on the sender and
/// its own merge transaction on every receiver, where a batch shares them.
/// More pays only where the round trip, not the CPU, is the limit.
pub const PUSHES_IN_FLIGHT_MAX: usize = 1;

/// What the app hears from syncing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncEvent {
    /// The relay accepted the login; the account's devices as it knows them.
    Connected {
        /// The account's devices the relay knows, this one included.
        devices: Vec<DeviceInfo>,
    },
    /// Deltas from the relay were merged.
    Merged(Applied),
    /// An entry of the relay's log could not be merged by this build and
    /// was passed over (only on a device that holds no account key; one
    /// that does waits instead, [`SyncEvent::EntryRefused`]).
    Skipped {
        /// The entry's position in the relay log; the cursor has moved past it.
        seq: u64,
        /// Why this build cannot merge it, in words.
        error: String,
    },
    /// An entry of the relay's log was refused, and nothing of it merged:
    /// a sealed envelope of this account tampered with (`tamper` names
    /// how), or, on a device that holds the account key, any entry it
    /// cannot merge (it never passes over one: the entry may carry another
    /// device's operations). Everything before it merged; the cursor waits
    /// before it and the page is fetched again after
    /// [`REQUEST_TIMEOUT_MS`] (what a corrupting hop or a passing fault
    /// broke then arrives whole), reported again each time it is refused.
    EntryRefused {
        /// The entry's position in the relay log.
        seq: u64,
        /// How it was tampered with, when it was.
        tamper: Option<Tamper>,
        /// Why it was refused, in words.
        error: String,
    },
    /// Everything local is pushed and everything at the relay is merged.
    InStep,
    /// The relay log holds a sealed envelope this device cannot open yet
    /// (it holds no account key, or not the envelope's epoch's, or does not
    /// know its origin). Everything before it merged; the cursor waits
    /// before it. The page is read again after [`Syncer::keys_changed`]
    /// (link the device: [`Engine::accept_link_grant`]), and, for an
    /// unknown origin or epoch, when new entries arrive (origin) or after
    /// [`REQUEST_TIMEOUT_MS`] (either: the header may have been altered
    /// on the way).
    NeedsKey(BlockedEntry),
    /// The device connected behind the relay's head and is pulling what
    /// it missed; journaled too, as
    /// [`ConnectionEvent::CatchUpStarted`](crate::event::ConnectionEvent::CatchUpStarted).
    CatchUpStarted {
        /// The position the device had merged up to.
        from_seq: u64,
        /// The relay's head at login.
        to_seq: u64,
    },
    /// The device merged everything the relay had at login; journaled too,
    /// as [`ConnectionEvent::CatchUpFinished`](crate::event::ConnectionEvent::CatchUpFinished).
    CatchUpFinished {
        /// The position it has merged up to.
        cursor: u64,
    },
    /// The account's device list, answering a request.
    Devices(Vec<DeviceInfo>),
    /// A device logged in or was kicked; ask for the list again to see it.
    DeviceListChanged,
    /// A payload another device sent to this one. It is in the events
    /// journal, as
    /// [`MessageEvent::PayloadReceived`](crate::event::MessageEvent::PayloadReceived)
    /// read with [`Engine::next_event`], and acknowledged to the relay, which
    /// will not deliver it again. Reported once, even if the relay delivers
    /// it twice.
    Payload {
        /// The device that sent it.
        from: DeviceId,
        /// The payload's id, chosen by the sender.
        id: PayloadId,
        /// The payload, as sent.
        bytes: Vec<u8>,
    },
    /// This device was forced offline (kicked, displaced, logged out,
    /// revoked, banned, removed). Journaled as its typed connection event;
    /// its enrollment no longer logs it in (a ban aside): do not reconnect
    /// without a new login token.
    Kicked(OfflineReason),
    /// The relay refused the login, with its typed code (and the reason or
    /// the device list, when there is one). Journaled when it says
    /// something about the account (revoked, too many devices, banned…).
    Refused(Refusal),
    /// A login token with the "manage" purpose was accepted: the session
    /// lists and kicks devices only, and nothing syncs.
    Managing {
        /// The account's devices.
        devices: Vec<DeviceInfo>,
    },
    /// The relay renewed this device's enrollment (recorded in its store).
    CredentialsRenewed {
        /// The new expiry, in ms since the Unix epoch.
        expires_at_ms: u64,
    },
    /// The relay refused something.
    RelayError {
        /// What the relay refused, as a code to act on.
        code: ErrorCode,
        /// The relay's explanation, in words.
        text: String,
    },
    /// The session is over.
    Closed(CloseReason),
}

/// Why syncing could not go on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The engine's store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A page from the relay could not be merged (a bad delta in the
    /// account's log, or a store failure). Nothing of it was written.
    #[error("merging from the relay: {0}")]
    Apply(#[from] ApplyError),
    /// The session refused a command (it closed meanwhile).
    #[error("session: {0}")]
    Session(#[from] CommandError),
    /// The outbox could not be sealed; nothing was pushed.
    #[error("sealing the outbox: {0}")]
    Seal(#[from] SealOutboxError),
}

/// The sync state of one connection. Make a new one per connection.
///
/// Drive contract: after the session reports `Connected`, and after every
/// other session event, call [`Syncer::handle`] with it; after every local
/// operation, call [`Syncer::push`]. Then drain the session as its own
/// contract says. [`Syncer::is_in_step`] tells when both directions are
/// done.
#[derive(Debug, Default)]
pub struct Syncer {
    connected: bool,
    /// Pushes sent and not yet acknowledged, oldest first, each by the
    /// content id of its first entry; at most [`PUSHES_IN_FLIGHT_MAX`]. The
    /// relay answers a connection's pushes in order, one acknowledgement
    /// each, listing the entries in push order, so an answer whose first
    /// entry is not the oldest push's is a repeat or a late one, and
    /// answers none of them.
    in_flight: VecDeque<ContentId>,
    /// The outbox position of the last delta pushed on this connection:
    /// the next push starts after it.
    pushed_through: OutboxPosition,
    pull_in_flight: bool,
    /// The relay's head at login: a pull is due until the cursor reaches it.
    head_seq: u64,
    /// The engine's relay cursor: read once when the connection starts,
    /// then taken from what the engine's mutators return.
    cursor: Option<u64>,
    reported_in_step: bool,
    /// When [`Syncer::handle_timeout`] first saw the push (or pull) in
    /// flight: the start of its deadline.
    push_since_ms: Option<i64>,
    pull_since_ms: Option<i64>,
    /// Devices of the account this connection has seen.
    known_devices: BTreeSet<DeviceId>,
    /// The relay's head at login while a catch-up to it is under way.
    catch_up_to: Option<u64>,
    /// The time of the last event handled: what a catch-up that finishes
    /// on live deltas ([`Syncer::handle_live`], which takes no time) is
    /// journaled at.
    last_now_ms: i64,
    /// The relay entry this device cannot open yet: while it is set the
    /// connection neither pulls nor merges live deltas, until
    /// [`Syncer::keys_changed`] or, when it waits for an origin's Link, a
    /// new log entry makes it read the page from there again.
    blocked: Option<BlockedEntry>,
    /// The relay entry refused ([`SyncEvent::EntryRefused`]) that the cursor
    /// waits before, and since when [`Syncer::handle_timeout`] has seen it
    /// waiting: a pull reads it again after [`REQUEST_TIMEOUT_MS`].
    refused: Option<(u64, Option<i64>)>,
    /// Since when [`Syncer::handle_timeout`] has seen the cursor waiting
    /// for a key (`blocked`): for an unknown epoch or origin the page is
    /// read again after [`REQUEST_TIMEOUT_MS`], since a header altered on
    /// the way names what no device sealed.
    blocked_since_ms: Option<i64>,
}

impl Syncer {
    /// A syncer for a new connection, before its session reports
    /// `Connected`.
    pub fn new() -> Self {
        Syncer::default()
    }

    /// Whether nothing is left to push and everything the relay had at
    /// login, and sent since, is merged.
    pub fn is_in_step(&self, engine: &Engine) -> Result<bool, StoreError> {
        Ok(self.connected
            && self.in_flight.is_empty()
            && !self.pull_in_flight
            && self.cursor.is_some_and(|cursor| cursor >= self.head_seq)
            && engine.outbox(1)?.is_empty())
    }

    /// The engine's relay cursor, read from its store the first time only.
    fn cursor(&mut self, engine: &Engine) -> Result<u64, StoreError> {
        match self.cursor {
            Some(cursor) => Ok(cursor),
            None => {
                let cursor = engine.relay_cursor()?;
                self.cursor = Some(cursor);
                Ok(cursor)
            }
        }
    }

    /// Records where an engine mutator says the cursor ended. The cursor
    /// only rises.
    fn cursor_moved_to(&mut self, cursor: u64) {
        if let Some(before) = self.cursor {
            assert!(
                cursor >= before,
                "the relay cursor moved back from {before} to {cursor}"
            );
        }
        self.cursor = Some(cursor);
    }

    /// Pushes what the outbox holds beyond what this connection pushed
    /// already, in batches, while fewer than [`PUSHES_IN_FLIGHT_MAX`]
    /// pushes are in flight; nothing before the session is connected (the
    /// login pushes then). A device that holds the account key seals its
    /// new operations first ([`Engine::seal_outbox`], stamped `now_ms`).
    pub fn push(
        &mut self,
        engine: &mut Engine,
        session: &mut ClientSession,
        now_ms: i64,
    ) -> Result<(), SyncError> {
        if !self.connected || self.in_flight.len() >= PUSHES_IN_FLIGHT_MAX {
            return Ok(());
        }
        engine.seal_outbox(now_ms)?;
        while self.connected && self.in_flight.len() < PUSHES_IN_FLIGHT_MAX {
            let mut batch = Vec::new();
            let mut bytes = 0;
            let mut last = self.pushed_through;
            for (position, item) in engine.outbox_after(self.pushed_through, DELTAS_PER_PUSH_MAX)? {
                if !batch.is_empty() && bytes + item.len() > PUSH_BYTES_BUDGET {
                    break;
                }
                bytes += item.len();
                batch.push(WireDelta::new(item));
                last = position;
            }
            let Some(first) = batch.first().map(WireDelta::content_id) else {
                break;
            };
            session.push(batch)?;
            self.in_flight.push_back(first);
            self.pushed_through = last;
            self.reported_in_step = false;
        }
        Ok(())
    }

    fn pull(&mut self, engine: &Engine, session: &mut ClientSession) -> Result<(), SyncError> {
        if !self.pull_in_flight && self.blocked.is_none() && self.refused.is_none() {
            let cursor = self.cursor(engine)?;
            session.pull(cursor, DELTAS_PER_PAGE_MAX as u32)?;
            self.pull_in_flight = true;
            self.reported_in_step = false;
        }
        Ok(())
    }

    /// The cursor waits before `entry`, which this device cannot open yet.
    fn wait_for_key(&mut self, entry: BlockedEntry, out: &mut Vec<SyncEvent>) {
        self.blocked = Some(entry.clone());
        self.blocked_since_ms = None;
        out.push(SyncEvent::NeedsKey(entry));
    }

    /// Tells the syncer that this device now holds keys it did not (it was
    /// just linked, or learnt a new epoch's key): a cursor waiting before
    /// an envelope it could not open ([`SyncEvent::NeedsKey`]) pulls again
    /// from there.
    pub fn keys_changed(
        &mut self,
        engine: &Engine,
        session: &mut ClientSession,
    ) -> Result<(), SyncError> {
        if self.blocked.take().is_some() && self.connected {
            self.pull(engine, session)?;
        }
        Ok(())
    }

    /// The relay has entries this connection has not read. When the cursor
    /// waits for an origin this device does not know yet, the Link naming
    /// it may be among them: the page from the waiting entry is read again
    /// (one page per new entry while it waits).
    fn pull_again_for_origin(
        &mut self,
        engine: &Engine,
        session: &mut ClientSession,
    ) -> Result<(), SyncError> {
        if let Some(BlockedEntry {
            reason: NeedsKey::UnknownOrigin { .. },
            ..
        }) = self.blocked
        {
            self.blocked = None;
            self.pull(engine, session)?;
        }
        Ok(())
    }

    /// The time by which [`Syncer::handle_timeout`] should be called next,
    /// if a request is waiting for its reply.
    pub fn poll_timeout(&self) -> Option<i64> {
        let refused_since = self.refused.and_then(|(_, since)| since);
        [
            self.push_since_ms,
            self.pull_since_ms,
            refused_since,
            self.blocked_since_ms,
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|since| since + REQUEST_TIMEOUT_MS)
    }

    /// Sends again a push or pull whose reply has not come within
    /// [`REQUEST_TIMEOUT_MS`]. Call it now and then while connected (the
    /// first call that sees a request in flight starts its deadline).
    pub fn handle_timeout(
        &mut self,
        engine: &mut Engine,
        session: &mut ClientSession,
        now_ms: i64,
    ) -> Result<(), SyncError> {
        if !self.in_flight.is_empty() {
            let since = *self.push_since_ms.get_or_insert(now_ms);
            if now_ms - since >= REQUEST_TIMEOUT_MS {
                // Everything unacknowledged goes again, from the outbox's
                // start (the relay keeps a delta once by content id).
                self.in_flight.clear();
                self.pushed_through = OutboxPosition::default();
                self.push_since_ms = None;
                self.push(engine, session, now_ms)?;
            }
        }
        if let Some((_, since)) = &mut self.refused {
            let since = *since.get_or_insert(now_ms);
            if now_ms - since >= REQUEST_TIMEOUT_MS {
                self.refused = None;
                self.pull(engine, session)?;
            }
        }
        let key_may_come = self
            .blocked
            .as_ref()
            .is_some_and(|entry| !matches!(entry.reason, NeedsKey::NotLinked));
        if key_may_come {
            let since = *self.blocked_since_ms.get_or_insert(now_ms);
            if now_ms - since >= REQUEST_TIMEOUT_MS {
                self.blocked = None;
                self.blocked_since_ms = None;
                self.pull(engine, session)?;
            }
        }
        if self.pull_in_flight {
            let since = *self.pull_since_ms.get_or_insert(now_ms);
            if now_ms - since >= REQUEST_TIMEOUT_MS {
                self.pull_in_flight = false;
                self.pull_since_ms = None;
                self.pull(engine, session)?;
            }
        }
        Ok(())
    }

    /// Reacts to one session event at `now_ms`; returns what the app should
    /// hear.
    pub fn handle(
        &mut self,
        engine: &mut Engine,
        session: &mut ClientSession,
        event: SessionEvent,
        now_ms: i64,
    ) -> Result<Vec<SyncEvent>, SyncError> {
        self.last_now_ms = now_ms;
        let mut out = Vec::new();
        match event {
            SessionEvent::Connected(welcome) => {
                engine.record_enrollment(&welcome.enrollment)?;
                self.connected = true;
                self.known_devices = welcome.devices.iter().map(|d| d.id).collect();
                self.head_seq = welcome.head_seq;
                out.push(SyncEvent::Connected {
                    devices: welcome.devices,
                });
                // The one read of the cursor: the connection starts here.
                self.cursor = Some(engine.relay_cursor()?);
                let cursor = self.cursor(engine)?;
                if cursor < welcome.head_seq {
                    // Journaled before anything it merges, so the app
                    // reads the catch-up's events between its two signals.
                    let me = engine.device().device_id;
                    let (from_seq, to_seq) = (cursor, welcome.head_seq);
                    engine.record_connection_event(
                        now_ms,
                        me,
                        ConnectionEvent::CatchUpStarted { from_seq, to_seq },
                    )?;
                    out.push(SyncEvent::CatchUpStarted { from_seq, to_seq });
                    self.catch_up_to = Some(to_seq);
                    self.pull(engine, session)?;
                }
                self.push(engine, session, now_ms)?;
            }
            SessionEvent::PushAcked(entries) => {
                let accepted: Vec<_> = entries.iter().map(|e| (e.content_id, e.seq)).collect();
                let cursor_before = self.cursor(engine)?;
                let cursor = engine.acknowledge(&accepted)?;
                self.cursor_moved_to(cursor);
                // The oldest push in flight is answered, if this answers
                // it; the next one's deadline starts when the timer next
                // sees it. A repeated answer (a transport that duplicates
                // frames), or a late one to a push sent before a timeout
                // resent everything, answers nothing more: counting it
                // would let a push go while an earlier one is unanswered,
                // and put one device's envelopes in the log out of order.
                let first = entries.first().map(|e| e.content_id);
                if first.is_some() && first.as_ref() == self.in_flight.front() {
                    self.in_flight.pop_front();
                    self.push_since_ms = None;
                }
                if let Some(newest) = entries.iter().map(|e| e.seq).max() {
                    self.head_seq = self.head_seq.max(newest);
                }
                if cursor > cursor_before {
                    session.ack(cursor)?;
                }
                // Another device's delta sits below this device's own: it
                // arrives live or, if it was missed, by a pull.
                if cursor < self.head_seq && !self.pull_in_flight {
                    self.pull(engine, session)?;
                }
                self.push(engine, session, now_ms)?;
            }
            SessionEvent::Deltas { deltas, more } => {
                self.pull_in_flight = false;
                self.pull_since_ms = None;
                if let Some(last) = deltas.last() {
                    self.head_seq = self.head_seq.max(last.seq);
                }
                self.merge(engine, session, deltas, &mut out)?;
                if more {
                    self.pull(engine, session)?;
                }
            }
            SessionEvent::Live(delta) => self.live(engine, session, vec![delta], &mut out)?,
            SessionEvent::PullNeeded => {
                self.pull_again_for_origin(engine, session)?;
                self.pull(engine, session)?;
            }
            SessionEvent::Devices(devices) => {
                // Devices this connection has not seen before logged in
                // meanwhile.
                for device in &devices {
                    if self.known_devices.insert(device.id) {
                        engine.record_connection_event(
                            now_ms,
                            device.id,
                            ConnectionEvent::LoggedInOnNewDevice {
                                name: device.name.clone(),
                                platform: device.platform.to_string(),
                            },
                        )?;
                    }
                }
                out.push(SyncEvent::Devices(devices));
            }
            SessionEvent::DeviceListChanged => {
                let me = engine.device().device_id;
                engine.record_connection_event(now_ms, me, ConnectionEvent::DeviceListChanged)?;
                // Fetch the list to see who is new.
                session.list_devices()?;
                out.push(SyncEvent::DeviceListChanged);
            }
            SessionEvent::DevicePayload { from, id, bytes } => {
                // Journaled before it is acknowledged: a crash in between
                // means a second delivery, which the journal absorbs.
                let new = engine.record_payload(now_ms, from, id.0, &bytes)?;
                session.ack_payload(id)?;
                if new.is_some() {
                    out.push(SyncEvent::Payload { from, id, bytes });
                }
            }
            SessionEvent::Kicked(reason) => {
                Self::journal_offline(engine, now_ms, &reason)?;
                out.push(SyncEvent::Kicked(reason));
            }
            SessionEvent::Refused(refusal) => {
                let me = engine.device().device_id;
                match refusal.code {
                    ErrorCode::TooManyDevices => {
                        let devices = refusal
                            .devices
                            .iter()
                            .map(|d| DeviceSummary {
                                device: d.id.to_hex(),
                                name: d.name.clone(),
                                platform: d.platform.to_string(),
                                online: d.online,
                            })
                            .collect();
                        engine.record_connection_event(
                            now_ms,
                            me,
                            ConnectionEvent::TooManyDevicesOnline { devices },
                        )?;
                    }
                    // A revocation this device heard of already (it was
                    // told when it was kicked) is not journaled again.
                    ErrorCode::CredentialsRevoked
                        if engine.credentials()?.enrollment.is_some_and(|e| !e.active) => {}
                    ErrorCode::CredentialsRevoked
                    | ErrorCode::AccountBanned
                    | ErrorCode::AccountRemoved => {
                        let reason = refusal.reason.clone().unwrap_or(match refusal.code {
                            ErrorCode::AccountBanned => OfflineReason::AccountBanned,
                            ErrorCode::AccountRemoved => OfflineReason::AccountRemoved,
                            _ => OfflineReason::RevokedByOperator,
                        });
                        Self::journal_offline(engine, now_ms, &reason)?;
                    }
                    ErrorCode::CredentialsExpired => {
                        engine.record_enrollment_ended()?;
                        engine.record_connection_event(
                            now_ms,
                            me,
                            ConnectionEvent::CredentialsExpired,
                        )?;
                    }
                    ErrorCode::NotEnrolled => engine.record_enrollment_ended()?,
                    _ => {}
                }
                out.push(SyncEvent::Refused(refusal));
            }
            SessionEvent::Managing(devices) => out.push(SyncEvent::Managing { devices }),
            SessionEvent::CredentialsRenewed { expires_at_ms } => {
                engine.record_renewal(expires_at_ms)?;
                out.push(SyncEvent::CredentialsRenewed { expires_at_ms });
            }
            SessionEvent::Error { code, text } => {
                out.push(SyncEvent::RelayError { code, text });
            }
            SessionEvent::Closed(reason) => {
                self.connected = false;
                // A catch-up cut short is not finished; the next
                // connection starts its own.
                self.catch_up_to = None;
                out.push(SyncEvent::Closed(reason));
            }
            // Pongs and stored-payload notices need nothing from the engine.
            _ => {}
        }
        self.catch_up_progress(engine, &mut out)?;
        if !self.reported_in_step && self.is_in_step(engine)? {
            self.reported_in_step = true;
            out.push(SyncEvent::InStep);
        }
        Ok(out)
    }

    /// Journals why this device was forced offline, as its typed event, and
    /// records that its enrollment ended (a ban ends none: the key logs it
    /// in once the ban is lifted).
    fn journal_offline(
        engine: &mut Engine,
        now_ms: i64,
        reason: &OfflineReason,
    ) -> Result<(), SyncError> {
        if !matches!(reason, OfflineReason::AccountBanned) {
            engine.record_enrollment_ended()?;
        }
        let (source, event) = ConnectionEvent::from_offline(reason);
        let source = source.unwrap_or(engine.device().device_id);
        engine.record_connection_event(now_ms, source, event)?;
        Ok(())
    }

    /// Journals and reports the end of a catch-up once the cursor reaches
    /// the head the device saw at login.
    fn catch_up_progress(
        &mut self,
        engine: &mut Engine,
        out: &mut Vec<SyncEvent>,
    ) -> Result<(), SyncError> {
        let (Some(target), Some(cursor)) = (self.catch_up_to, self.cursor) else {
            return Ok(());
        };
        if cursor >= target {
            self.catch_up_to = None;
            let me = engine.device().device_id;
            engine.record_connection_event(
                self.last_now_ms,
                me,
                ConnectionEvent::CatchUpFinished { cursor },
            )?;
            out.push(SyncEvent::CatchUpFinished { cursor });
        }
        Ok(())
    }

    /// Reacts to live deltas that arrived together: merged in one
    /// transaction when they continue the cursor, which keeps a device that
    /// falls behind from paying one durable commit per delta. Call it
    /// instead of [`Syncer::handle`] for a run of [`SessionEvent::Live`] events.
    pub fn handle_live(
        &mut self,
        engine: &mut Engine,
        session: &mut ClientSession,
        deltas: Vec<tandem_transport::LogDelta>,
    ) -> Result<Vec<SyncEvent>, SyncError> {
        let mut out = Vec::new();
        self.live(engine, session, deltas, &mut out)?;
        self.catch_up_progress(engine, &mut out)?;
        if !self.reported_in_step && self.is_in_step(engine)? {
            self.reported_in_step = true;
            out.push(SyncEvent::InStep);
        }
        Ok(out)
    }

    fn live(
        &mut self,
        engine: &mut Engine,
        session: &mut ClientSession,
        mut deltas: Vec<tandem_transport::LogDelta>,
        out: &mut Vec<SyncEvent>,
    ) -> Result<(), SyncError> {
        if self.blocked.is_some() || self.refused.is_some() {
            if let Some(newest) = deltas.iter().map(|d| d.seq).max() {
                self.head_seq = self.head_seq.max(newest);
                self.pull_again_for_origin(engine, session)?;
            }
            return Ok(());
        }
        let cursor = self.cursor(engine)?;
        deltas.retain(|d| d.seq > cursor);
        deltas.sort_by_key(|d| d.seq);
        deltas.dedup_by_key(|d| d.seq);
        if let Some(last) = deltas.last() {
            self.head_seq = self.head_seq.max(last.seq);
        }
        // The run that continues the cursor merges now; anything after a
        // hole is fetched in order by a pull.
        let contiguous = deltas
            .iter()
            .zip(cursor + 1..)
            .take_while(|(d, expected)| d.seq == *expected)
            .count();
        let gap = contiguous < deltas.len();
        deltas.truncate(contiguous);
        if !deltas.is_empty() {
            self.merge(engine, session, deltas, out)?;
        }
        if gap {
            self.pull(engine, session)?;
        }
        Ok(())
    }

    /// Merges log entries continuing the cursor and acknowledges the new
    /// cursor to the relay. A gap means a pull. An entry this device cannot
    /// merge (malformed, another format) is skipped and reported on a
    /// device without the account key, rather than blocking every later
    /// delta (it stays in the relay's log, so a newer build can still
    /// fetch it); a sealed envelope tampered with, or any bad entry on a
    /// device that holds the key, is refused and the cursor waits before
    /// it ([`SyncEvent::EntryRefused`]).
    fn merge(
        &mut self,
        engine: &mut Engine,
        session: &mut ClientSession,
        deltas: Vec<tandem_transport::LogDelta>,
        out: &mut Vec<SyncEvent>,
    ) -> Result<(), SyncError> {
        let mut page: Vec<RelayDelta> = deltas
            .into_iter()
            .map(|d| RelayDelta {
                seq: d.seq,
                delta: EncodedDelta(d.bytes),
            })
            .collect();
        let cursor_before = self.cursor(engine)?;
        // Bad entries named while a part of the page before them is still
        // to merge, each with the entries between it and the next one
        // named: dealt with in page order once what precedes each merged.
        let mut named: Vec<(RelayDelta, DeltaError, Vec<RelayDelta>)> = Vec::new();
        loop {
            if !page.is_empty() {
                match engine.apply_relay(&page) {
                    Ok(applied) => {
                        self.cursor_moved_to(applied.relay_cursor);
                        let blocked = applied.blocked.clone();
                        out.push(SyncEvent::Merged(applied));
                        if let Some(entry) = blocked {
                            // The cursor waits before an earlier entry:
                            // the bad ones are dealt with when reached.
                            self.wait_for_key(entry, out);
                            break;
                        }
                    }
                    Err(ApplyError::Gap { .. }) => {
                        self.pull(engine, session)?;
                        break;
                    }
                    Err(ApplyError::RelayEntry { seq, error }) => {
                        // The engine names the entry by its log position:
                        // the page it decoded had the entries at or before
                        // the cursor dropped, so a place in it would not be
                        // one in this page. It need not be the first bad
                        // one: what precedes it merges first, and may name
                        // an earlier one.
                        let at = page
                            .iter()
                            .position(|e| e.seq == seq)
                            .expect("the engine names an entry of the page it was given");
                        let rest = page.split_off(at + 1);
                        let bad = page.pop().expect("at is within the page");
                        named.push((bad, error, rest));
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            let Some((bad, error, rest)) = named.pop() else {
                break;
            };
            let tamper = error.tamper();
            if tamper.is_some() || engine.kem_public_key()?.is_some() {
                self.refused = Some((bad.seq, None));
                out.push(SyncEvent::EntryRefused {
                    seq: bad.seq,
                    tamper,
                    error: error.to_string(),
                });
                break;
            }
            let cursor = engine.skip_relay_entry(bad.seq)?;
            self.cursor_moved_to(cursor);
            out.push(SyncEvent::Skipped {
                seq: bad.seq,
                error: error.to_string(),
            });
            page = rest;
        }
        let cursor = self.cursor(engine)?;
        if self.refused.is_some_and(|(seq, _)| cursor >= seq) {
            // A page that was already on its way brought it whole.
            self.refused = None;
        }
        if cursor > cursor_before {
            session.ack(cursor)?;
        }
        Ok(())
    }
}
