//! The relay's decisions, with no IO of its own: who may log in, what is
//! stored, who hears about it. The async shell ([`crate::server`]) feeds it
//! validated requests with the time, and carries out what it returns.
//!
//! The store is the one side effect: it is called synchronously, so the core
//! runs on the store's thread, one request at a time. That makes every
//! request atomic with respect to every other, across all accounts, without
//! locks.

use std::collections::{BTreeSet, HashMap};

use tandem_storage::relay::{
    DeviceRow, LogRow, Login, LoginOutcome, PayloadRow, PutPayload, RelayStore,
};
use tandem_storage::StoreError;
use tandem_transport::frame::{Hello, PushAckEntry, Welcome};
use tandem_transport::limits::{DEVICES_PER_ACCOUNT_MAX, PAGE_BYTES_MAX};
use tandem_transport::{
    AccountId, ContentId, DeviceId, DeviceInfo, ErrorCode, Frame, LogDelta, PayloadId, Platform,
    Request, WireDelta, PROTOCOL_VERSION,
};

use crate::config::OverflowPolicy;
use crate::hook::{OfflineDelta, OfflinePushHook};
use crate::secret::Secret;
use crate::token::{self, TokenError};

/// A connection's id, unique for the relay's lifetime.
pub type ConnId = u64;

/// The kick reason when the device limit pushes a device out.
pub const REASON_TOO_MANY_DEVICES: &str = "too many devices";
/// The kick reason when another device kicks this one.
pub const REASON_KICKED: &str = "kicked by another device";

/// The limits and policy the core enforces.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// The key tokens are verified with.
    pub secret: Secret,
    /// Devices of one account online at once.
    pub devices_online_max: usize,
    /// What happens past it.
    pub overflow_policy: OverflowPolicy,
    /// Payloads waiting for one device.
    pub payloads_pending_max: usize,
}

/// Something for a connection other than the requester.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// A delta another device pushed. May be dropped when the connection's
    /// queue is full (the device is then told to pull).
    Live(LogDelta),
    /// A payload for this device. May be dropped when the queue is full: it
    /// stays stored and is delivered on the next connection.
    Payload {
        /// The sender.
        from: DeviceId,
        /// Its id.
        id: PayloadId,
        /// The payload.
        bytes: Vec<u8>,
    },
    /// The device list changed. Coalesced when the queue is full.
    DeviceListChanged,
    /// The device was kicked: send `Kicked` and close. Never dropped.
    Kicked {
        /// The kicking device.
        by: DeviceId,
        /// Why.
        reason: String,
    },
    /// The same device connected again; close this older connection
    /// without a word.
    Superseded,
}

/// What the shell must do after one request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Frames for the requester, in order.
    pub replies: Vec<Frame>,
    /// Close the requester's connection after the replies.
    pub close: bool,
    /// The requester's `Hello` was accepted: let its session go on.
    pub accepted_hello: bool,
    /// Frames for other connections.
    pub notices: Vec<(ConnId, Notice)>,
}

impl Outcome {
    fn reply(frame: Frame) -> Self {
        Outcome {
            replies: vec![frame],
            ..Outcome::default()
        }
    }

    fn fatal(code: ErrorCode, text: impl Into<String>) -> Self {
        debug_assert!(code.is_fatal());
        Outcome {
            replies: vec![Frame::error(code, text)],
            close: true,
            ..Outcome::default()
        }
    }

    /// The outcome for a request whose writes the store could not make
    /// durable: a `StoreUnavailable` error, closing the connection when
    /// `fatal`.
    pub fn store_failed(error: &StoreError, fatal: bool) -> Self {
        tracing::error!(%error, "relay store failed");
        let frame = Frame::error(
            ErrorCode::StoreUnavailable,
            "the relay's store failed; retry",
        );
        Outcome {
            replies: vec![frame],
            close: fatal,
            ..Outcome::default()
        }
    }
}

#[derive(Debug, Clone)]
struct Online {
    account: AccountId,
    device: DeviceId,
    last_active_ms: u64,
}

/// The relay's state machine over a [`RelayStore`].
pub struct RelayCore {
    store: Box<dyn RelayStore>,
    config: CoreConfig,
    hook: Box<dyn OfflinePushHook>,
    online: OnlineSet,
}

/// The logged-in connections, indexed by account, so that fan-out and the
/// per-account checks cost the account's connections rather than every
/// connection of the relay (with 10,000 connections the linear scan was the
/// relay's top cost in `tandem bench` B6).
#[derive(Default)]
struct OnlineSet {
    conns: HashMap<ConnId, Online>,
    by_account: HashMap<AccountId, BTreeSet<ConnId>>,
}

impl OnlineSet {
    fn len(&self) -> usize {
        self.conns.len()
    }

    fn get_mut(&mut self, conn: &ConnId) -> Option<&mut Online> {
        // Callers only touch `last_active_ms`; the account, which the index
        // is keyed by, never changes for a connection.
        self.conns.get_mut(conn)
    }

    fn insert(&mut self, conn: ConnId, online: Online) {
        self.by_account
            .entry(online.account.clone())
            .or_default()
            .insert(conn);
        if let Some(old) = self.conns.insert(conn, online) {
            self.unindex(conn, &old.account);
        }
    }

    fn remove(&mut self, conn: &ConnId) -> Option<Online> {
        let gone = self.conns.remove(conn)?;
        self.unindex(*conn, &gone.account);
        Some(gone)
    }

    fn unindex(&mut self, conn: ConnId, account: &AccountId) {
        if let Some(conns) = self.by_account.get_mut(account) {
            conns.remove(&conn);
            if conns.is_empty() {
                self.by_account.remove(account);
            }
        }
    }

    /// The account's connections, in connection order (deterministic, so a
    /// simulation replays identically).
    fn of_account<'a>(
        &'a self,
        account: &AccountId,
    ) -> impl Iterator<Item = (ConnId, &'a Online)> + 'a {
        self.by_account
            .get(account)
            .into_iter()
            .flatten()
            .filter_map(|conn| self.conns.get(conn).map(|o| (*conn, o)))
    }
}

impl std::fmt::Debug for RelayCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayCore")
            .field("online", &self.online.len())
            .finish_non_exhaustive()
    }
}

impl RelayCore {
    /// A core over `store`, calling `hook` for offline devices.
    pub fn new(
        store: Box<dyn RelayStore>,
        config: CoreConfig,
        hook: Box<dyn OfflinePushHook>,
    ) -> Self {
        RelayCore {
            store,
            config,
            hook,
            online: OnlineSet::default(),
        }
    }

    /// Starts a store group: the writes of the requests handled until
    /// [`RelayCore::commit_group`] become durable together. Nothing handled
    /// inside a group may be acknowledged before it commits.
    pub fn begin_group(&mut self) -> Result<(), StoreError> {
        self.store.begin_group()
    }

    /// Makes the group's writes durable; on an error none of them is.
    pub fn commit_group(&mut self) -> Result<(), StoreError> {
        self.store.commit_group()
    }

    /// Connections whose device is logged in right now.
    pub fn online_count(&self) -> usize {
        self.online.len()
    }

    /// Handles one validated request from connection `conn` at `now_ms`
    /// (wall clock, ms since the Unix epoch).
    pub fn handle(&mut self, conn: ConnId, request: Request, now_ms: u64) -> Outcome {
        if let Request::Hello(hello) = request {
            return self.hello(conn, hello, now_ms);
        }
        let Some(me) = self.online.get_mut(&conn) else {
            // Kicked or superseded while this request was in flight.
            return Outcome {
                close: true,
                ..Outcome::default()
            };
        };
        me.last_active_ms = now_ms;
        let me = me.clone();
        match request {
            Request::Hello(_) => unreachable!("handled above"),
            Request::Push(deltas) => self.push(conn, &me, deltas),
            Request::Pull {
                after_seq,
                count_max,
            } => {
                match self
                    .store
                    .read_log(me.account.as_str(), after_seq, count_max, PAGE_BYTES_MAX)
                {
                    Ok(page) => Outcome::reply(Frame::Deltas {
                        deltas: page.rows.into_iter().map(log_delta).collect(),
                        more: page.more,
                    }),
                    Err(e) => Outcome::store_failed(&e, false),
                }
            }
            Request::Ack { cursor } => {
                match self
                    .store
                    .set_cursor(me.account.as_str(), me.device.0, cursor)
                {
                    Ok(_) => Outcome::default(),
                    Err(e) => Outcome::store_failed(&e, false),
                }
            }
            Request::ListDevices => match self.device_list(&me.account) {
                Ok(devices) => Outcome::reply(Frame::Devices { devices }),
                Err(e) => Outcome::store_failed(&e, false),
            },
            Request::Kick { device } => self.kick(&me, device),
            Request::KickAllOthers => self.kick_all_others(&me),
            Request::SendToDevice { to, id, bytes } => {
                self.send_to_device(&me, to, id, bytes, now_ms)
            }
            Request::PayloadAck { id } => {
                match self
                    .store
                    .ack_payload(me.account.as_str(), me.device.0, id.0)
                {
                    Ok(_) => Outcome::default(),
                    Err(e) => Outcome::store_failed(&e, false),
                }
            }
            Request::Ping { nonce } => Outcome::reply(Frame::Pong { nonce }),
            Request::Pong { .. } => Outcome::default(),
            Request::PeerError { code, text } => {
                tracing::info!(conn, ?code, %text, "device reported an error");
                Outcome {
                    close: true,
                    ..Outcome::default()
                }
            }
            other => {
                // A request kind added to the transport but not yet here.
                tracing::warn!(conn, ?other, "unhandled request");
                Outcome::fatal(
                    ErrorCode::UnexpectedFrame,
                    "this relay does not handle that frame",
                )
            }
        }
    }

    /// The connection ended (its socket closed) at `now_ms`.
    pub fn disconnected(&mut self, conn: ConnId, now_ms: u64) {
        if let Some(gone) = self.online.remove(&conn) {
            if let Err(error) = self
                .store
                .touch(gone.account.as_str(), gone.device.0, now_ms)
            {
                tracing::warn!(%error, "could not record last seen time");
            }
        }
    }

    fn hello(&mut self, conn: ConnId, hello: Hello, now_ms: u64) -> Outcome {
        let now_s = now_ms / 1000;
        if let Err(e) = token::verify(&self.config.secret, &hello.account, &hello.token, now_s) {
            let code = match e {
                TokenError::Expired { .. } => ErrorCode::TokenExpired,
                _ => ErrorCode::Unauthorized,
            };
            tracing::info!(account = %hello.account, device = %hello.device, %e, "login refused");
            return Outcome::fatal(code, e.to_string());
        }
        // Online devices of the account other than this one (a device that
        // reconnects replaces its own older connection).
        let others: Vec<(ConnId, Online)> = self
            .online
            .of_account(&hello.account)
            .filter(|(_, o)| o.device != hello.device)
            .map(|(c, o)| (c, o.clone()))
            .collect();
        let over_limit = others.len() >= self.config.devices_online_max;
        if over_limit && self.config.overflow_policy == OverflowPolicy::RefuseNew {
            return Outcome::fatal(
                ErrorCode::TooManyDevices,
                format!(
                    "{} devices are online, the limit",
                    self.config.devices_online_max
                ),
            );
        }
        let login = Login {
            account: hello.account.as_str(),
            device: hello.device.0,
            name: &hello.device_name,
            platform: hello.platform.as_str(),
            token_hash: token::hash(&hello.token),
            resume_cursor: hello.resume_cursor,
            now_ms,
            devices_max: DEVICES_PER_ACCOUNT_MAX,
        };
        let device = match self.store.login(&login) {
            Ok(LoginOutcome::Accepted { device, .. }) => device,
            Ok(LoginOutcome::Revoked) => {
                return Outcome::fatal(
                    ErrorCode::CredentialsRevoked,
                    "this device was kicked; log in again with a new token",
                )
            }
            Ok(LoginOutcome::TooManyDevices) => {
                return Outcome::fatal(
                    ErrorCode::TooManyDevices,
                    format!("the account has {DEVICES_PER_ACCOUNT_MAX} devices registered"),
                )
            }
            Ok(other) => {
                tracing::error!(?other, "unknown login outcome");
                return Outcome::store_failed(
                    &StoreError::Corrupt("unknown login outcome".into()),
                    true,
                );
            }
            Err(e) => return Outcome::store_failed(&e, true),
        };
        let mut outcome = Outcome {
            accepted_hello: true,
            ..Outcome::default()
        };
        if over_limit {
            // KickLongestIdle: push out enough of the idlest to make room.
            let mut by_idle = others.clone();
            by_idle.sort_by_key(|(c, o)| (o.last_active_ms, *c));
            let excess = others.len() + 1 - self.config.devices_online_max;
            for (victim, _) in by_idle.into_iter().take(excess) {
                self.online.remove(&victim);
                outcome.notices.push((
                    victim,
                    Notice::Kicked {
                        by: hello.device,
                        reason: REASON_TOO_MANY_DEVICES.into(),
                    },
                ));
            }
        }
        let superseded: Vec<ConnId> = self
            .online
            .of_account(&hello.account)
            .filter(|(_, o)| o.device == hello.device)
            .map(|(c, _)| c)
            .collect();
        for old in superseded {
            self.online.remove(&old);
            outcome.notices.push((old, Notice::Superseded));
        }
        self.online.insert(
            conn,
            Online {
                account: hello.account.clone(),
                device: hello.device,
                last_active_ms: now_ms,
            },
        );
        let account = hello.account.as_str();
        let welcome = (|| {
            let devices = self.device_list(&hello.account)?;
            let head_seq = self.store.head_seq(account)?;
            let payloads = self.store.payloads(account, hello.device.0)?;
            Ok::<_, StoreError>((devices, head_seq, payloads))
        })();
        let (devices, head_seq, payloads) = match welcome {
            Ok(parts) => parts,
            Err(e) => {
                self.online.remove(&conn);
                return Outcome::store_failed(&e, true);
            }
        };
        let me = device_info(&device, true);
        outcome.replies.push(Frame::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            device: me,
            devices,
            head_seq,
        }));
        for p in payloads {
            outcome.replies.push(Frame::DeliverPayload {
                from: DeviceId(p.sender),
                id: PayloadId(p.id),
                bytes: p.bytes,
            });
        }
        for peer in self.peers(&hello.account, conn) {
            outcome.notices.push((peer, Notice::DeviceListChanged));
        }
        tracing::info!(
            account = %hello.account, device = %hello.device, conn, head_seq, "device logged in"
        );
        outcome
    }

    fn push(&mut self, conn: ConnId, me: &Online, deltas: Vec<WireDelta>) -> Outcome {
        let input: Vec<([u8; 32], &[u8])> = deltas
            .iter()
            .map(|d| (d.content_id().0, d.bytes()))
            .collect();
        let appended = match self.store.append(me.account.as_str(), me.device.0, &input) {
            Ok(appended) => appended,
            Err(e) => return Outcome::store_failed(&e, false),
        };
        debug_assert_eq!(appended.len(), deltas.len());
        let entries = appended
            .iter()
            .map(|a| PushAckEntry {
                content_id: ContentId(a.content_id),
                seq: a.seq,
            })
            .collect();
        let mut outcome = Outcome::reply(Frame::PushAck { entries });
        let peers = self.peers(&me.account, conn);
        let mut deltas_new = 0;
        let mut head_seq = 0;
        for (a, delta) in appended.iter().zip(deltas) {
            // A batch may repeat a content id; only its first copy is new.
            if !a.new || a.seq <= head_seq {
                continue;
            }
            deltas_new += 1;
            head_seq = a.seq;
            let live = LogDelta {
                seq: a.seq,
                origin: me.device,
                content_id: ContentId(a.content_id),
                bytes: delta.into_bytes(),
            };
            for &peer in &peers {
                outcome.notices.push((peer, Notice::Live(live.clone())));
            }
        }
        if deltas_new > 0 {
            self.notify_offline(me, deltas_new, head_seq);
        }
        outcome
    }

    fn notify_offline(&mut self, me: &Online, deltas_new: usize, head_seq: u64) {
        let devices = match self.store.devices(me.account.as_str()) {
            Ok(devices) => devices,
            Err(error) => {
                tracing::warn!(%error, "could not list devices for the offline-push hook");
                return;
            }
        };
        for row in devices {
            let device = DeviceId(row.device);
            let online = self
                .online
                .of_account(&me.account)
                .any(|(_, o)| o.device == device);
            if !online {
                self.hook.delta_for_offline_device(&OfflineDelta {
                    account: &me.account,
                    device,
                    origin: me.device,
                    deltas_new,
                    head_seq,
                });
            }
        }
    }

    fn kick(&mut self, me: &Online, device: DeviceId) -> Outcome {
        if device == me.device {
            return Outcome::reply(Frame::error(
                ErrorCode::InvalidRequest,
                "a device cannot kick itself; close the session instead",
            ));
        }
        match self.store.revoke(me.account.as_str(), device.0) {
            Ok(true) => {}
            Ok(false) => {
                return Outcome::reply(Frame::error(
                    ErrorCode::NotFound,
                    format!("the account has no device {device}"),
                ))
            }
            Err(e) => return Outcome::store_failed(&e, false),
        }
        let mut outcome = Outcome::default();
        self.force_offline(me, device, &mut outcome);
        self.announce_device_change(me, &mut outcome);
        tracing::info!(account = %me.account, by = %me.device, %device, "device kicked");
        outcome
    }

    fn kick_all_others(&mut self, me: &Online) -> Outcome {
        let devices = match self.store.devices(me.account.as_str()) {
            Ok(devices) => devices,
            Err(e) => return Outcome::store_failed(&e, false),
        };
        let mut outcome = Outcome::default();
        for row in devices.iter().filter(|d| d.device != me.device.0) {
            match self.store.revoke(me.account.as_str(), row.device) {
                Ok(_) => self.force_offline(me, DeviceId(row.device), &mut outcome),
                Err(e) => {
                    // Devices revoked so far stay revoked; say the rest failed.
                    let mut failed = Outcome::store_failed(&e, false);
                    failed.notices = outcome.notices;
                    return failed;
                }
            }
        }
        self.announce_device_change(me, &mut outcome);
        tracing::info!(account = %me.account, by = %me.device, "all other devices kicked");
        outcome
    }

    /// Closes every connection of `device` with a `Kicked` from `me`.
    fn force_offline(&mut self, me: &Online, device: DeviceId, outcome: &mut Outcome) {
        let victims: Vec<ConnId> = self
            .online
            .of_account(&me.account)
            .filter(|(_, o)| o.device == device)
            .map(|(c, _)| c)
            .collect();
        for victim in victims {
            self.online.remove(&victim);
            outcome.notices.push((
                victim,
                Notice::Kicked {
                    by: me.device,
                    reason: REASON_KICKED.into(),
                },
            ));
        }
    }

    /// Tells every online device of `me`'s account, `me` included, that the
    /// device list changed.
    fn announce_device_change(&self, me: &Online, outcome: &mut Outcome) {
        outcome.replies.push(Frame::DeviceListChanged);
        for (conn, o) in self.online.of_account(&me.account) {
            if o.device != me.device {
                outcome.notices.push((conn, Notice::DeviceListChanged));
            }
        }
    }

    fn send_to_device(
        &mut self,
        me: &Online,
        to: DeviceId,
        id: PayloadId,
        bytes: Vec<u8>,
        now_ms: u64,
    ) -> Outcome {
        let row = PayloadRow {
            id: id.0,
            sender: me.device.0,
            bytes,
            sent_ms: now_ms,
        };
        let put = self.store.put_payload(
            me.account.as_str(),
            to.0,
            &row,
            self.config.payloads_pending_max,
        );
        match put {
            Ok(PutPayload::Stored) => {
                let mut outcome = Outcome::reply(Frame::PayloadStored { id });
                for (conn, o) in self.online.of_account(&me.account) {
                    if o.device == to {
                        let notice = Notice::Payload {
                            from: me.device,
                            id,
                            bytes: row.bytes.clone(),
                        };
                        outcome.notices.push((conn, notice));
                    }
                }
                outcome
            }
            Ok(PutPayload::AlreadyStored) => Outcome::reply(Frame::PayloadStored { id }),
            Ok(PutPayload::UnknownRecipient) => Outcome::reply(Frame::error(
                ErrorCode::NotFound,
                format!("the account has no device {to}"),
            )),
            Ok(PutPayload::QueueFull) => Outcome::reply(Frame::error(
                ErrorCode::PayloadQueueFull,
                format!(
                    "device {to} already has {} payloads waiting",
                    self.config.payloads_pending_max
                ),
            )),
            Ok(other) => {
                tracing::error!(?other, "unknown payload outcome");
                Outcome::store_failed(
                    &StoreError::Corrupt("unknown payload outcome".into()),
                    false,
                )
            }
            Err(e) => Outcome::store_failed(&e, false),
        }
    }

    /// Connections of `account` other than `conn`.
    fn peers(&self, account: &AccountId, conn: ConnId) -> Vec<ConnId> {
        self.online
            .of_account(account)
            .map(|(c, _)| c)
            .filter(|c| *c != conn)
            .collect()
    }

    fn device_list(&mut self, account: &AccountId) -> Result<Vec<DeviceInfo>, StoreError> {
        let rows = self.store.devices(account.as_str())?;
        Ok(rows
            .iter()
            .map(|row| {
                let online = self
                    .online
                    .of_account(account)
                    .filter(|(_, o)| o.device.0 == row.device)
                    .map(|(_, o)| o.last_active_ms)
                    .max();
                let mut info = device_info(row, online.is_some());
                if let Some(active_ms) = online {
                    info.last_seen_ms = info.last_seen_ms.max(active_ms);
                }
                info
            })
            .collect())
    }
}

fn device_info(row: &DeviceRow, online: bool) -> DeviceInfo {
    DeviceInfo {
        id: DeviceId(row.device),
        name: row.name.clone(),
        platform: row
            .platform
            .parse::<Platform>()
            .unwrap_or_else(|e| match e {}),
        first_login_ms: row.first_login_ms,
        last_seen_ms: row.last_seen_ms,
        online,
    }
}

fn log_delta(row: LogRow) -> LogDelta {
    LogDelta {
        seq: row.seq,
        origin: DeviceId(row.origin),
        content_id: ContentId(row.content_id),
        bytes: row.bytes,
    }
}
