//! The relay's decisions, with no IO of its own: who may log in (the
//! challenge, the proof, the enrollment), the device limits and what
//! overflows them, kicks and revocations, what is stored, who hears about
//! it. The async shell ([`crate::server`]) feeds it validated requests with
//! the time, and carries out what it returns. Randomness (the challenges)
//! comes from the [`Entropy`] it is given.
//!
//! The store is the one side effect: it is called synchronously, so the core
//! runs on the store's thread, one request at a time. That makes every
//! request atomic with respect to every other, across all accounts, without
//! locks.
//!
//! Several relay nodes may share one store ([`RelayCore::with_cross_node`]).
//! Then what another node changed reaches this core as
//! [`RelayCore::changed`] (the store's change feed names the accounts), and
//! the core reads the store to learn what is new for the devices it serves:
//! deltas after the last one it fanned out (live, or `PullNeeded` past one
//! page), revoked enrollments (their sessions are closed with the
//! revocation's reason), payloads it has not delivered on a connection yet,
//! and bans and removals.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use tandem_storage::relay::{
    AccountStatus, ChangeKinds, Changes, DeviceMention, DeviceRow, LogRow, Login, LoginOutcome,
    PayloadRow, PutPayload, RelayStore, Revocation, RevocationKind, RevokeOutcome, SessionRow,
    TokenUse,
};
use tandem_storage::StoreError;
use tandem_transport::auth::{self, ChallengeNonce, DevicePublicKey, ProofSignature, NONCE_BYTES};
use tandem_transport::frame::{
    AdminReply, AdminRequest, Enrollment, EnrollmentState, Hello, PushAckEntry, Welcome,
};
use tandem_transport::limits::{DELTAS_PER_PAGE_MAX, DEVICES_PER_ACCOUNT_MAX, PAGE_BYTES_MAX};
use tandem_transport::{
    AccountId, ContentId, DeviceId, DeviceInfo, DeviceRef, Entropy, ErrorCode, Frame, LogDelta,
    OfflineReason, PayloadId, Platform, Refusal, Request, Role, WireDelta, PROTOCOL_VERSION,
};

use crate::config::{OfflinePushPolicy, OverflowPolicy};
use crate::hook::{OfflineDelta, OfflinePushHook};
pub use crate::metrics::{Counters, CountersSnapshot};
use crate::secret::Secret;
use crate::token::{self, Purpose, TokenError};

/// A connection's id, unique for the relay's lifetime.
pub type ConnId = u64;

/// Pages of an account's log the core reads at most for one change of
/// another node; a device further behind is told to pull instead.
pub const CROSS_NODE_PAGES_MAX: usize = 4;

/// How long a node's sessions count on the other nodes after it last
/// renewed its lease: a node that crashed stops holding places under the
/// online-device limit this long after.
pub const NODE_LEASE_MS: u64 = 15_000;

/// How often a node renews its lease ([`RelayCore::tick`]).
pub const NODE_LEASE_RENEW_INTERVAL_MS: u64 = 5_000;

/// Connection ids from here up stand for sessions on other nodes while the
/// limits are checked; a node never hands out this many.
const ELSEWHERE_CONN_BASE: ConnId = u64::MAX - DEVICES_PER_ACCOUNT_MAX as u64;

/// How often the core forgets used login tokens that have expired.
pub const USED_TOKENS_PURGE_INTERVAL_MS: u64 = 60_000;

/// The limits and policy the core enforces.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// The key login tokens and admin proofs are verified with.
    pub secret: Secret,
    /// Devices of one account online at once (at least 1).
    pub devices_online_max: usize,
    /// Devices of one account and platform online at once, if limited.
    pub devices_online_per_platform_max: Option<usize>,
    /// What happens past the limits.
    pub overflow_policy: OverflowPolicy,
    /// When the offline-push hook hears of new deltas.
    pub offline_push_policy: OfflinePushPolicy,
    /// Payloads waiting for one device.
    pub payloads_pending_max: usize,
    /// How long an enrollment lasts after a login or renewal.
    pub enrollment_ttl_ms: u64,
    /// How often an online device's enrollment is renewed.
    pub enrollment_renew_interval_ms: u64,
}

impl CoreConfig {
    /// The core's part of a relay's config.
    pub fn from_relay(config: &crate::RelayConfig) -> CoreConfig {
        CoreConfig {
            secret: config.secret.clone(),
            devices_online_max: config.devices_online_max,
            devices_online_per_platform_max: config.devices_online_per_platform_max,
            overflow_policy: config.overflow_policy,
            offline_push_policy: config.offline_push_policy,
            payloads_pending_max: config.payloads_pending_max,
            enrollment_ttl_ms: config.enrollment_ttl_ms,
            enrollment_renew_interval_ms: config.enrollment_renew_interval_ms,
        }
    }
}

/// What [`RelayCore::group_accounts`] found a group's requests need, each
/// list sorted and without repeats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupAccounts {
    /// Every account whose row the requests lock.
    pub lock: Vec<String>,
    /// The accounts of logins with a valid login token, which may be new.
    pub create: Vec<String>,
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
    /// The device was forced offline: send `Kicked` and close. Never
    /// dropped.
    Kicked {
        /// Why, and who caused it.
        reason: OfflineReason,
    },
    /// The same device connected again; close this older connection
    /// without a word.
    Superseded,
    /// Deltas landed that this connection will not get live (more than a
    /// page of them, from another node): the device is told to pull.
    /// Coalesced when the queue is full.
    PullNeeded,
}

/// What the shell must do after one request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Frames for the requester, in order.
    pub replies: Vec<Frame>,
    /// Close the requester's connection after the replies.
    pub close: bool,
    /// The requester's login was accepted with this role: let its session
    /// go on.
    pub accepted: Option<Role>,
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

    fn closed() -> Self {
        Outcome {
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

/// A refused login: the `Refused` frame and the close.
fn refused(
    code: ErrorCode,
    text: impl Into<String>,
    reason: Option<OfflineReason>,
    devices: Vec<DeviceInfo>,
) -> Outcome {
    Outcome {
        replies: vec![Frame::Refused(Refusal {
            code,
            text: tandem_transport::frame::truncate_text(text.into()),
            reason,
            devices,
        })],
        close: true,
        ..Outcome::default()
    }
}

/// An online device's connection.
#[derive(Debug, Clone)]
struct Online {
    account: AccountId,
    device: DeviceId,
    name: String,
    platform: Platform,
    last_active_ms: u64,
    /// When its enrollment was made: "the earliest login" of
    /// [`OverflowPolicy::ReplaceSamePlatform`].
    enrolled_at_ms: u64,
    /// When its enrollment was last renewed (by its login or online).
    renewed_at_ms: u64,
    /// The head its `Welcome` named: it pulls up to there, so only deltas
    /// after it reach it live from other nodes.
    head_at_login: u64,
}

impl Online {
    fn as_ref(&self) -> DeviceRef {
        DeviceRef {
            id: self.device,
            name: self.name.clone(),
            platform: self.platform.clone(),
        }
    }
}

/// A connection between its hello and its proof.
#[derive(Debug)]
enum Pending {
    Device { hello: Hello, nonce: ChallengeNonce },
    Admin { nonce: ChallengeNonce },
}

/// A management connection: a login token with the "manage" purpose.
#[derive(Debug, Clone)]
struct Manager {
    account: AccountId,
    /// The device that presented the token: it is named as the kicker.
    by: DeviceRef,
}

/// Who asks for a kick.
#[derive(Debug, Clone)]
struct Kicker {
    conn: ConnId,
    account: AccountId,
    by: DeviceRef,
    /// Whether it is an online device (then it cannot kick itself with
    /// `Kick`, and `KickAll` closes its own connection).
    online: bool,
}

/// The relay's state machine over a [`RelayStore`].
pub struct RelayCore {
    store: Box<dyn RelayStore>,
    config: CoreConfig,
    hook: Box<dyn OfflinePushHook>,
    entropy: Box<dyn Entropy>,
    online: OnlineSet,
    pending: HashMap<ConnId, Pending>,
    managers: HashMap<ConnId, Manager>,
    admins: BTreeSet<ConnId>,
    last_purge_ms: u64,
    counters: Arc<Counters>,
    /// Other relay nodes share the store: keep what [`RelayCore::changed`]
    /// needs, and record sessions in the store.
    cross_node: bool,
    /// Across nodes only: the sessions this node recorded, by connection,
    /// to forget when the connection ends.
    sessions: HashMap<ConnId, (AccountId, DeviceId)>,
    /// When this node last renewed its lease, ms since the epoch.
    lease_renewed_ms: u64,
}

/// The logged-in connections, indexed by account, so that fan-out and the
/// per-account checks cost the account's connections rather than every
/// connection of the relay (with 10,000 connections the linear scan was the
/// relay's top cost in `tandem bench` B6).
#[derive(Default)]
struct OnlineSet {
    conns: HashMap<ConnId, Online>,
    by_account: HashMap<AccountId, BTreeSet<ConnId>>,
    /// Across nodes only: per account with connections here, how far its
    /// log has been fanned out to them.
    fanned: HashMap<AccountId, Fanned>,
    /// Across nodes only: per connection, the payloads it was given and has
    /// not acknowledged, so that a payload reaches it once.
    delivered: HashMap<ConnId, HashSet<PayloadId>>,
}

/// How far an account's log has been fanned out to its connections on this
/// node: every seq up to `to`, and the seqs in `ahead` (local pushes that
/// landed after deltas of other nodes this node has not read yet).
#[derive(Debug, Default)]
struct Fanned {
    to: u64,
    ahead: BTreeSet<u64>,
}

impl Fanned {
    /// `seq` has been fanned out.
    fn fanned(&mut self, seq: u64) {
        if seq == self.to + 1 {
            self.to = seq;
            while self.ahead.remove(&(self.to + 1)) {
                self.to += 1;
            }
        } else if seq > self.to {
            self.ahead.insert(seq);
        }
    }
}

impl OnlineSet {
    fn len(&self) -> usize {
        self.conns.len()
    }

    fn get_mut(&mut self, conn: &ConnId) -> Option<&mut Online> {
        // Callers only touch the times; the account, which the index is
        // keyed by, never changes for a connection.
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
        self.delivered.remove(conn);
        self.unindex(*conn, &gone.account);
        Some(gone)
    }

    fn unindex(&mut self, conn: ConnId, account: &AccountId) {
        if let Some(conns) = self.by_account.get_mut(account) {
            conns.remove(&conn);
            if conns.is_empty() {
                self.by_account.remove(account);
                self.fanned.remove(account);
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
            .field("handshaking", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl RelayCore {
    /// A core over `store`, calling `hook` for offline devices and drawing
    /// its challenges from `entropy`.
    pub fn new(
        store: Box<dyn RelayStore>,
        config: CoreConfig,
        hook: Box<dyn OfflinePushHook>,
        entropy: Box<dyn Entropy>,
    ) -> Self {
        assert!(config.devices_online_max >= 1, "a device limit of 0");
        assert!(
            config.devices_online_per_platform_max != Some(0),
            "a platform limit of 0"
        );
        RelayCore {
            store,
            config,
            hook,
            entropy,
            online: OnlineSet::default(),
            pending: HashMap::new(),
            managers: HashMap::new(),
            admins: BTreeSet::new(),
            last_purge_ms: 0,
            counters: Arc::new(Counters::default()),
            cross_node: false,
            sessions: HashMap::new(),
            lease_renewed_ms: 0,
        }
    }

    /// Time passes: across nodes, renews this node's lease every
    /// [`NODE_LEASE_RENEW_INTERVAL_MS`], so that its sessions keep counting
    /// on the other nodes. The shell calls it at least that often.
    pub fn tick(&mut self, now_ms: u64) {
        if !self.cross_node
            || now_ms.saturating_sub(self.lease_renewed_ms) < NODE_LEASE_RENEW_INTERVAL_MS
        {
            return;
        }
        match self
            .store
            .renew_node_lease(now_ms.saturating_add(NODE_LEASE_MS))
        {
            Ok(()) => self.lease_renewed_ms = now_ms,
            Err(error) => tracing::warn!(%error, "could not renew this node's lease"),
        }
    }

    /// Other relay nodes share the store, and their changes will come in
    /// through [`RelayCore::changed`]: the core keeps, per account, how far
    /// it fanned the log out, and per connection which payloads it
    /// delivered.
    pub fn with_cross_node(mut self) -> Self {
        self.cross_node = true;
        self
    }

    /// The counters this core adds to (the shell adds its own to the same).
    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// Adds to `counters` instead of counters of its own.
    pub fn with_counters(mut self, counters: Arc<Counters>) -> Self {
        self.counters = counters;
        self
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

    /// The accounts whose store rows these requests will lock (logins,
    /// pushes, kicks, logouts, operator requests on an account), and of
    /// those the ones a login with a valid login token may create. The
    /// server creates the latter before a group
    /// ([`RelayCore::create_accounts`]) and locks the former at its start
    /// ([`RelayCore::lock_accounts`]), so that two nodes' groups lock
    /// accounts in one order and never create one inside both at once.
    /// Empty on a node that is alone on its store.
    pub fn group_accounts<'a>(
        &self,
        requests: impl IntoIterator<Item = (ConnId, &'a Request)>,
        now_ms: u64,
    ) -> GroupAccounts {
        let mut group = GroupAccounts::default();
        if !self.cross_node {
            // Alone on its store, a node has nobody to lock against: no
            // token check or name copy per request.
            return group;
        }
        for (conn, request) in requests {
            let account = match request {
                Request::Proof { .. } => match self.pending.get(&conn) {
                    Some(Pending::Device { hello, .. }) => {
                        // Only an authorized login may create an account:
                        // its token names it under the relay's key.
                        let authorized = hello.login_token.as_deref().is_some_and(|text| {
                            token::verify_login(
                                &self.config.secret,
                                &hello.account,
                                text,
                                now_ms / 1000,
                            )
                            .is_ok_and(|t| t.purpose == Purpose::Login)
                        });
                        if authorized {
                            group.create.push(hello.account.as_str().to_owned());
                        }
                        Some(&hello.account)
                    }
                    _ => None,
                },
                Request::Push(_)
                | Request::Kick { .. }
                | Request::KickAllOthers
                | Request::KickAll
                | Request::Logout => self
                    .online
                    .conns
                    .get(&conn)
                    .map(|o| &o.account)
                    .or_else(|| self.managers.get(&conn).map(|m| &m.account)),
                Request::Admin(
                    AdminRequest::Kick { account, .. }
                    | AdminRequest::RevokeAll { account }
                    | AdminRequest::Ban { account }
                    | AdminRequest::Unban { account }
                    | AdminRequest::Remove { account },
                ) if self.admins.contains(&conn) => Some(account),
                _ => None,
            };
            if let Some(account) = account {
                group.lock.push(account.as_str().to_owned());
            }
        }
        for list in [&mut group.lock, &mut group.create] {
            list.sort_unstable();
            list.dedup();
        }
        group
    }

    /// Creates the accounts that [`RelayCore::group_accounts`] found an
    /// authorized login for, outside any group (so each is committed at
    /// once, in one sorted statement); only across nodes. A failure is only
    /// logged: the login then creates its account itself.
    pub fn create_accounts(&mut self, accounts: &[String]) {
        if accounts.is_empty() || !self.cross_node {
            return;
        }
        let names: Vec<&str> = accounts.iter().map(String::as_str).collect();
        if let Err(error) = self.store.create_accounts(&names) {
            tracing::warn!(%error, "could not create the group's new accounts beforehand");
        }
    }

    /// Locks [`GroupAccounts::lock`] in the store's open group; only across
    /// nodes. A failure is only logged (the operations then lock as they
    /// go, as without it).
    pub fn lock_accounts(&mut self, accounts: &[String]) {
        if accounts.is_empty() || !self.cross_node {
            return;
        }
        let names: Vec<&str> = accounts.iter().map(String::as_str).collect();
        if let Err(error) = self.store.lock_accounts(&names) {
            tracing::warn!(%error, "could not lock the group's accounts in order");
        }
    }

    /// Handles one validated request from connection `conn` at `now_ms`
    /// (wall clock, ms since the Unix epoch).
    pub fn handle(&mut self, conn: ConnId, request: Request, now_ms: u64) -> Outcome {
        match request {
            Request::Hello(hello) => return self.challenge(conn, Some(hello)),
            Request::AdminHello => return self.challenge(conn, None),
            Request::Proof {
                public_key,
                signature,
            } => return self.proof(conn, public_key, signature, now_ms),
            Request::AdminProof { mac } => return self.admin_proof(conn, &mac),
            Request::PeerError { code, text } => {
                tracing::info!(conn, ?code, %text, "peer reported an error");
                return Outcome::closed();
            }
            Request::Ping { nonce }
                if self.admins.contains(&conn) || self.managers.contains_key(&conn) =>
            {
                return Outcome::reply(Frame::Pong { nonce });
            }
            Request::Pong { .. }
                if self.admins.contains(&conn) || self.managers.contains_key(&conn) =>
            {
                return Outcome::default();
            }
            _ => {}
        }
        if self.admins.contains(&conn) {
            return match request {
                Request::Admin(request) => self.admin(request, now_ms),
                _ => Outcome::fatal(ErrorCode::NotAllowed, "an operator's connection"),
            };
        }
        if let Some(manager) = self.managers.get(&conn).cloned() {
            let kicker = Kicker {
                conn,
                account: manager.account.clone(),
                by: manager.by,
                online: false,
            };
            return match request {
                Request::ListDevices => self.list_devices(&manager.account, now_ms),
                Request::Kick { device } => self.kick(&kicker, device, now_ms),
                Request::KickAllOthers => self.kick_all(&kicker, false, now_ms),
                Request::KickAll => self.kick_all(&kicker, true, now_ms),
                _ => Outcome::fatal(ErrorCode::NotAllowed, "a management connection"),
            };
        }
        let Some(me) = self.online.get_mut(&conn) else {
            // Kicked or superseded while this request was in flight.
            return Outcome::closed();
        };
        me.last_active_ms = now_ms;
        let me = me.clone();
        let mut outcome = match request {
            Request::Push(deltas) => self.push(conn, &me, deltas, now_ms),
            Request::Pull {
                after_seq,
                count_max,
            } => {
                match self
                    .store
                    .read_log(me.account.as_str(), after_seq, count_max, PAGE_BYTES_MAX)
                {
                    Ok(page) => {
                        Counters::add(&self.counters.pulls);
                        Counters::add_n(&self.counters.deltas_served, page.rows.len());
                        Outcome::reply(Frame::Deltas {
                            deltas: page.rows.into_iter().map(log_delta).collect(),
                            more: page.more,
                        })
                    }
                    // Closed, like a failed push: the device waits for this
                    // page, and reconnects (to another node, if it knows
                    // one) sooner than its request times out.
                    Err(e) => Outcome::store_failed(&e, true),
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
            Request::ListDevices => self.list_devices(&me.account, now_ms),
            Request::Kick { device } => self.kick(&kicker_of(conn, &me), device, now_ms),
            Request::KickAllOthers => self.kick_all(&kicker_of(conn, &me), false, now_ms),
            Request::KickAll => self.kick_all(&kicker_of(conn, &me), true, now_ms),
            Request::Logout => return self.logout(conn, &me, now_ms),
            Request::SendToDevice { to, id, bytes } => {
                self.send_to_device(&me, to, id, bytes, now_ms)
            }
            Request::PayloadAck { id } => {
                match self
                    .store
                    .ack_payload(me.account.as_str(), me.device.0, id.0)
                {
                    Ok(_) => {
                        // A payload sent again with this id later is a new
                        // one for this connection.
                        if let Some(delivered) = self.online.delivered.get_mut(&conn) {
                            delivered.remove(&id);
                        }
                        Outcome::default()
                    }
                    Err(e) => Outcome::store_failed(&e, false),
                }
            }
            Request::Ping { nonce } => Outcome::reply(Frame::Pong { nonce }),
            Request::Pong { .. } => Outcome::default(),
            other => {
                // A request kind added to the transport but not yet here.
                tracing::warn!(conn, ?other, "unhandled request");
                return Outcome::fatal(
                    ErrorCode::UnexpectedFrame,
                    "this relay does not handle that frame",
                );
            }
        };
        if !outcome.close && self.online.conns.contains_key(&conn) {
            self.renew_if_due(conn, &me, now_ms, &mut outcome);
        }
        outcome
    }

    /// The connection ended (its socket closed) at `now_ms`.
    pub fn disconnected(&mut self, conn: ConnId, now_ms: u64) {
        if let Some((account, device)) = self.sessions.remove(&conn) {
            if let Err(error) = self.store.close_session(account.as_str(), device.0, conn) {
                // It stops counting when this node's lease ends.
                tracing::warn!(%error, "could not forget a session");
            }
        }
        self.pending.remove(&conn);
        self.managers.remove(&conn);
        self.admins.remove(&conn);
        if let Some(gone) = self.online.remove(&conn) {
            if let Err(error) = self
                .store
                .touch(gone.account.as_str(), gone.device.0, now_ms)
            {
                tracing::warn!(%error, "could not record last seen time");
            }
        }
    }

    // ---- What other nodes changed. ----

    /// Other relay nodes sharing the store changed `changes` (from the
    /// store's change feed): reads what is new for the connections of the
    /// accounts named (of every account served here, for
    /// [`Changes::Everything`]) and returns it as notices. Nothing is
    /// written, so the notices need no commit; they come in the store's
    /// order.
    pub fn changed(&mut self, changes: Changes, now_ms: u64) -> Outcome {
        let every = |set: &OnlineSet| -> Vec<(AccountId, ChangeKinds)> {
            set.by_account
                .keys()
                .map(|a| (a.clone(), ChangeKinds::ALL))
                .collect()
        };
        let accounts = match changes {
            Changes::Accounts(accounts) => accounts
                .into_iter()
                .filter_map(|(account, kinds)| {
                    // A name no device could log in with has no one here.
                    let account = AccountId::new(account).ok()?;
                    self.online
                        .by_account
                        .contains_key(&account)
                        .then_some((account, kinds))
                })
                .collect(),
            Changes::Everything => every(&self.online),
            // A kind of report this build does not know: read everything.
            _ => every(&self.online),
        };
        let mut outcome = Outcome::default();
        for (account, kinds) in accounts {
            if let Err(error) = self.refresh(&account, kinds, now_ms, &mut outcome) {
                // What was not read now is read at the next change of the
                // account (each read starts where the last one ended), or
                // by the device's own pull.
                tracing::warn!(%account, %error, "could not read another node's changes");
            }
        }
        outcome
    }

    fn refresh(
        &mut self,
        account: &AccountId,
        kinds: ChangeKinds,
        now_ms: u64,
        outcome: &mut Outcome,
    ) -> Result<(), StoreError> {
        if kinds.status {
            let reason = match self.store.account_status(account.as_str())? {
                AccountStatus::Banned => Some(OfflineReason::AccountBanned),
                AccountStatus::Removed => Some(OfflineReason::AccountRemoved),
                _ => None,
            };
            if let Some(reason) = reason {
                let closed = self.force_offline(account, None, &reason, outcome);
                tracing::info!(%account, closed, %reason, "account closed on another node");
                return Ok(());
            }
        }
        if kinds.devices {
            self.refresh_devices(account, now_ms, outcome)?;
        }
        if kinds.deltas {
            self.refresh_log(account, outcome)?;
        }
        if kinds.payloads {
            self.refresh_payloads(account, outcome)?;
        }
        Ok(())
    }

    /// Closes the sessions here of devices whose enrollment another node
    /// revoked (a kick, a logout, a displacement), with the revocation's
    /// reason; tells the others that the device list changed.
    fn refresh_devices(
        &mut self,
        account: &AccountId,
        now_ms: u64,
        outcome: &mut Outcome,
    ) -> Result<(), StoreError> {
        let rows = self.store.devices(account.as_str())?;
        // A device of ours whose session is now on another node logged in
        // there since: this older connection goes, without a word.
        let far = self.store.sessions_elsewhere(account.as_str(), now_ms)?;
        let here: Vec<(ConnId, DeviceId)> = self
            .online
            .of_account(account)
            .map(|(c, o)| (c, o.device))
            .collect();
        let mut kicked = HashSet::new();
        for (conn, device) in here {
            if far.iter().any(|s| s.device == device.0) {
                self.online.remove(&conn);
                outcome.notices.push((conn, Notice::Superseded));
                tracing::info!(%account, %device, "logged in on another node");
                continue;
            }
            let revoked = rows
                .iter()
                .find(|r| r.device == device.0)
                .and_then(|r| r.enrollment.as_ref())
                .and_then(|e| e.revoked.as_ref());
            match revoked {
                Some(revocation) => {
                    if kicked.insert(device) {
                        let reason = offline_reason(revocation);
                        self.force_offline(account, Some(device), &reason, outcome);
                        tracing::info!(%account, %device, %reason, "forced offline by another node");
                    }
                }
                None => outcome.notices.push((conn, Notice::DeviceListChanged)),
            }
        }
        Ok(())
    }

    /// Fans out to the connections here the deltas of the account's log
    /// they have not had, one page at most; past it they are told to pull.
    fn refresh_log(
        &mut self,
        account: &AccountId,
        outcome: &mut Outcome,
    ) -> Result<(), StoreError> {
        let here: Vec<(ConnId, DeviceId, u64)> = self
            .online
            .of_account(account)
            .map(|(c, o)| (c, o.device, o.head_at_login))
            .collect();
        // Read up to the head as it is now. Deltas committed later are
        // told by notifications that come later; those told already were
        // committed before this read, so below this head.
        let target = self.store.head_seq(account.as_str())?;
        for _ in 0..CROSS_NODE_PAGES_MAX {
            let Some(after) = self.online.fanned.get(account).map(|f| f.to) else {
                return Ok(());
            };
            if after >= target {
                return Ok(());
            }
            let page = self.store.read_log(
                account.as_str(),
                after,
                DELTAS_PER_PAGE_MAX,
                PAGE_BYTES_MAX,
            )?;
            let Some(fanned) = self.online.fanned.get_mut(account) else {
                return Ok(());
            };
            for row in page.rows {
                debug_assert!(row.seq > fanned.to);
                fanned.to = row.seq;
                if fanned.ahead.remove(&row.seq) {
                    // Pushed through this node: fanned out when it was
                    // pushed.
                    continue;
                }
                let live = log_delta(row);
                for &(conn, device, head_at_login) in &here {
                    if device != live.origin && live.seq > head_at_login {
                        outcome.notices.push((conn, Notice::Live(live.clone())));
                    }
                }
            }
            while fanned.ahead.remove(&(fanned.to + 1)) {
                fanned.to += 1;
            }
            if !page.more {
                return Ok(());
            }
        }
        // Further behind than the pages read: the devices pull the rest.
        let Some(fanned) = self.online.fanned.get_mut(account) else {
            return Ok(());
        };
        if fanned.to >= target {
            return Ok(());
        }
        fanned.to = target;
        fanned.ahead.retain(|&seq| seq > target);
        for &(conn, _, _) in &here {
            outcome.notices.push((conn, Notice::PullNeeded));
        }
        Ok(())
    }

    /// Delivers to each connection here the payloads waiting for its device
    /// that it was not given yet.
    fn refresh_payloads(
        &mut self,
        account: &AccountId,
        outcome: &mut Outcome,
    ) -> Result<(), StoreError> {
        let here: Vec<(ConnId, DeviceId)> = self
            .online
            .of_account(account)
            .map(|(c, o)| (c, o.device))
            .collect();
        for (conn, device) in here {
            let waiting = self.store.payloads(account.as_str(), device.0)?;
            let delivered = self.online.delivered.entry(conn).or_default();
            for p in waiting {
                if delivered.insert(PayloadId(p.id)) {
                    outcome.notices.push((
                        conn,
                        Notice::Payload {
                            from: DeviceId(p.sender),
                            id: PayloadId(p.id),
                            bytes: p.bytes,
                        },
                    ));
                }
            }
        }
        Ok(())
    }

    // ---- Logging in. ----

    /// Answers a `Hello` (or an operator's `AdminHello`) with a fresh
    /// challenge.
    fn challenge(&mut self, conn: ConnId, hello: Option<Hello>) -> Outcome {
        let mut nonce = [0u8; NONCE_BYTES];
        self.entropy.fill(&mut nonce);
        let nonce = ChallengeNonce(nonce);
        let pending = match hello {
            Some(hello) => Pending::Device { hello, nonce },
            None => Pending::Admin { nonce },
        };
        self.pending.insert(conn, pending);
        Outcome::reply(Frame::Challenge { nonce })
    }

    fn proof(
        &mut self,
        conn: ConnId,
        public_key: DevicePublicKey,
        signature: ProofSignature,
        now_ms: u64,
    ) -> Outcome {
        let Some(Pending::Device { hello, nonce }) = self.pending.remove(&conn) else {
            return Outcome::fatal(ErrorCode::UnexpectedFrame, "a Proof without a Hello");
        };
        let outcome = self.login(conn, &hello, public_key, &nonce, &signature, now_ms);
        match outcome.accepted {
            Some(Role::Device) => Counters::add(&self.counters.logins_accepted),
            Some(_) => Counters::add(&self.counters.manage_accepted),
            None => {
                let code = match outcome.replies.first() {
                    Some(Frame::Refused(r)) => {
                        tracing::info!(
                            account = %hello.account, device = %hello.device, code = %r.code,
                            text = %r.text, "login refused"
                        );
                        r.code
                    }
                    Some(Frame::Error { code, .. }) => *code,
                    _ => ErrorCode::Unknown(0),
                };
                self.counters.refused(code.as_str());
            }
        }
        outcome
    }

    fn login(
        &mut self,
        conn: ConnId,
        hello: &Hello,
        public_key: DevicePublicKey,
        nonce: &ChallengeNonce,
        signature: &ProofSignature,
        now_ms: u64,
    ) -> Outcome {
        if let Err(e) = auth::verify_login_proof(hello, &public_key, nonce, signature) {
            return refused(ErrorCode::BadProof, e.to_string(), None, Vec::new());
        }
        let token = match &hello.login_token {
            None => None,
            Some(text) => {
                match token::verify_login(&self.config.secret, &hello.account, text, now_ms / 1000)
                {
                    Ok(token) => Some(token),
                    Err(e) => {
                        let code = match e {
                            TokenError::Expired { .. } => ErrorCode::TokenExpired,
                            TokenError::AccountTokenRetired => ErrorCode::AccountTokenRetired,
                            _ => ErrorCode::Unauthorized,
                        };
                        return refused(code, e.to_string(), None, Vec::new());
                    }
                }
            }
        };
        self.purge_if_due(now_ms);
        let token_use = token.map(|t| TokenUse {
            id: t.id,
            // A token valid past what a store keeps is remembered as long
            // as it keeps anything: the same, in practice.
            expires_at_ms: t
                .expires_at_unix_s
                .saturating_mul(1000)
                .min(tandem_storage::relay::STORED_VALUE_MAX),
        });
        if let (Some(token), Some(token_use)) = (token, token_use) {
            if token.purpose == Purpose::Manage {
                return self.manage(conn, hello, public_key, token_use, now_ms);
            }
        }
        let login = Login {
            account: hello.account.as_str(),
            device: hello.device.0,
            public_key: public_key.0,
            name: &hello.device_name,
            platform: hello.platform.as_str(),
            token: token_use,
            resume_cursor: hello.resume_cursor,
            now_ms,
            enrollment_ttl_ms: self.config.enrollment_ttl_ms,
            devices_max: DEVICES_PER_ACCOUNT_MAX,
        };
        let row = match self.store.login(&login) {
            Ok(LoginOutcome::Accepted { device, .. }) => device,
            Ok(refusal) => return self.login_refused(&hello.account, refusal, now_ms),
            Err(e) => return Outcome::store_failed(&e, true),
        };
        let enrollment = row
            .enrollment
            .clone()
            .expect("an accepted login has an enrollment");
        let newcomer = Online {
            account: hello.account.clone(),
            device: hello.device,
            name: hello.device_name.clone(),
            platform: hello.platform.clone(),
            last_active_ms: now_ms,
            enrolled_at_ms: enrollment.enrolled_at_ms,
            renewed_at_ms: now_ms,
            head_at_login: 0,
        };
        let mut outcome = Outcome {
            accepted: Some(Role::Device),
            ..Outcome::default()
        };
        // Across nodes the limits count the account's sessions on the other
        // nodes too. The login above locked the account's row for the rest
        // of the group, so no other node's login can interleave.
        let elsewhere = if self.cross_node {
            match self
                .store
                .sessions_elsewhere(hello.account.as_str(), now_ms)
            {
                Ok(sessions) => sessions,
                Err(e) => return Outcome::store_failed(&e, true),
            }
        } else {
            Vec::new()
        };
        if let Err(mut refusal) = self.make_room(&newcomer, &elsewhere, now_ms, &mut outcome) {
            // Devices displaced before a store failure stay displaced: tell
            // them.
            refusal.notices.append(&mut outcome.notices);
            return refusal;
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
        if self.cross_node {
            let session = SessionRow {
                device: hello.device.0,
                conn,
                platform: hello.platform.as_str().to_owned(),
                last_active_ms: now_ms,
                enrolled_at_ms: newcomer.enrolled_at_ms,
            };
            let lease = now_ms.saturating_add(NODE_LEASE_MS);
            if let Err(e) = self
                .store
                .open_session(hello.account.as_str(), &session, lease)
            {
                return Outcome::store_failed(&e, true);
            }
            self.sessions
                .insert(conn, (hello.account.clone(), hello.device));
        }
        self.online.insert(conn, newcomer);
        let account = hello.account.as_str();
        let welcome = (|| {
            let devices = self.device_list(&hello.account, now_ms)?;
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
        if let Some(online) = self.online.get_mut(&conn) {
            online.head_at_login = head_seq;
        }
        if self.cross_node {
            // The first connection of the account here starts the fan-out
            // at its head; a later one keeps the account's place (an
            // earlier connection may still wait for deltas below it).
            self.online
                .fanned
                .entry(hello.account.clone())
                .or_insert(Fanned {
                    to: head_seq,
                    ahead: BTreeSet::new(),
                });
            self.online
                .delivered
                .insert(conn, payloads.iter().map(|p| PayloadId(p.id)).collect());
        }
        let me = device_info(&row, true, now_ms);
        outcome.replies.push(Frame::Welcome(Welcome {
            version: PROTOCOL_VERSION,
            device: me,
            devices,
            head_seq,
            enrollment: Enrollment {
                token_id: enrollment.token_id,
                enrolled_at_ms: enrollment.enrolled_at_ms,
                expires_at_ms: enrollment.expires_at_ms,
            },
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
            account = %hello.account, device = %hello.device, conn, head_seq,
            enrolled = hello.login_token.is_some(), "device logged in"
        );
        outcome
    }

    /// The refusal for what the store decided.
    fn login_refused(
        &mut self,
        account: &AccountId,
        refusal: LoginOutcome,
        now_ms: u64,
    ) -> Outcome {
        match refusal {
            LoginOutcome::AccountBanned => refused(
                ErrorCode::AccountBanned,
                "the account is banned",
                Some(OfflineReason::AccountBanned),
                Vec::new(),
            ),
            LoginOutcome::AccountRemoved => refused(
                ErrorCode::AccountRemoved,
                "the account was removed",
                Some(OfflineReason::AccountRemoved),
                Vec::new(),
            ),
            LoginOutcome::KeyMismatch => refused(
                ErrorCode::KeyMismatch,
                "this device id is enrolled with another key",
                None,
                Vec::new(),
            ),
            LoginOutcome::NotEnrolled => refused(
                ErrorCode::NotEnrolled,
                "this device is not logged in: log in with a login token",
                None,
                Vec::new(),
            ),
            LoginOutcome::Revoked(revocation) => {
                let reason = offline_reason(&revocation);
                refused(
                    ErrorCode::CredentialsRevoked,
                    format!("{reason}; log in again with a new login token"),
                    Some(reason),
                    Vec::new(),
                )
            }
            LoginOutcome::Expired { at_ms } => refused(
                ErrorCode::CredentialsExpired,
                format!(
                    "this device's login expired at {at_ms} (ms since the epoch); log in again \
                     with a login token"
                ),
                None,
                Vec::new(),
            ),
            LoginOutcome::TokenUsed => refused(
                ErrorCode::LoginTokenUsed,
                "the login token was used already; ask for a new one",
                None,
                Vec::new(),
            ),
            LoginOutcome::TooManyDevices => {
                let devices = self.device_list(account, now_ms).unwrap_or_default();
                refused(
                    ErrorCode::TooManyDevices,
                    format!(
                        "the account has {DEVICES_PER_ACCOUNT_MAX} devices registered, the most \
                         a relay keeps"
                    ),
                    None,
                    devices,
                )
            }
            other => {
                tracing::error!(?other, "unknown login outcome");
                Outcome::store_failed(&StoreError::Corrupt("unknown login outcome".into()), true)
            }
        }
    }

    /// A login token with the "manage" purpose: the connection may list and
    /// kick, and is not admitted. The token is used up like any other, so a
    /// copy seen on the wire is worth nothing afterwards.
    fn manage(
        &mut self,
        conn: ConnId,
        hello: &Hello,
        public_key: DevicePublicKey,
        token: TokenUse,
        now_ms: u64,
    ) -> Outcome {
        let account = hello.account.as_str();
        match self.store.account_status(account) {
            Ok(AccountStatus::Active) => {}
            Ok(AccountStatus::Banned) => {
                return self.login_refused(&hello.account, LoginOutcome::AccountBanned, now_ms)
            }
            Ok(_) => {
                return self.login_refused(&hello.account, LoginOutcome::AccountRemoved, now_ms)
            }
            Err(e) => return Outcome::store_failed(&e, true),
        }
        // An enrolled id names its kicks only with its own key.
        let rows = match self.store.devices(account) {
            Ok(rows) => rows,
            Err(e) => return Outcome::store_failed(&e, true),
        };
        let enrolled_key = rows
            .iter()
            .find(|r| r.device == hello.device.0)
            .and_then(|r| r.enrollment.as_ref())
            .map(|e| e.public_key);
        if enrolled_key.is_some_and(|key| key != public_key.0) {
            return self.login_refused(&hello.account, LoginOutcome::KeyMismatch, now_ms);
        }
        match self.store.use_token(account, &token, hello.device.0) {
            Ok(true) => {}
            Ok(false) => {
                return self.login_refused(&hello.account, LoginOutcome::TokenUsed, now_ms)
            }
            Err(e) => return Outcome::store_failed(&e, true),
        }
        let devices = match self.device_list(&hello.account, now_ms) {
            Ok(devices) => devices,
            Err(e) => return Outcome::store_failed(&e, true),
        };
        self.managers.insert(
            conn,
            Manager {
                account: hello.account.clone(),
                by: DeviceRef {
                    id: hello.device,
                    name: hello.device_name.clone(),
                    platform: hello.platform.clone(),
                },
            },
        );
        tracing::info!(account = %hello.account, device = %hello.device, conn, "management connection");
        Outcome {
            replies: vec![Frame::Managing { devices }],
            accepted: Some(Role::Manager),
            ..Outcome::default()
        }
    }

    fn admin_proof(&mut self, conn: ConnId, mac: &[u8; 32]) -> Outcome {
        let Some(Pending::Admin { nonce }) = self.pending.remove(&conn) else {
            return Outcome::fatal(
                ErrorCode::UnexpectedFrame,
                "an AdminProof without AdminHello",
            );
        };
        if !crate::admin::verify_admin_proof(&self.config.secret, &nonce, mac) {
            tracing::warn!(conn, "operator's proof refused");
            self.counters.refused(ErrorCode::BadProof.as_str());
            return Outcome::fatal(
                ErrorCode::BadProof,
                "the admin proof does not match this relay's secret",
            );
        }
        self.admins.insert(conn);
        tracing::info!(conn, "operator connected");
        Outcome {
            replies: vec![Frame::AdminReady],
            accepted: Some(Role::Admin),
            ..Outcome::default()
        }
    }

    fn purge_if_due(&mut self, now_ms: u64) {
        if now_ms.saturating_sub(self.last_purge_ms) < USED_TOKENS_PURGE_INTERVAL_MS {
            return;
        }
        self.last_purge_ms = now_ms;
        match self.store.purge_used_tokens(now_ms) {
            Ok(0) => {}
            Ok(purged) => tracing::debug!(purged, "expired login tokens forgotten"),
            Err(error) => tracing::warn!(%error, "could not purge used login tokens"),
        }
    }

    /// Renews an online device's enrollment once per renewal interval.
    fn renew_if_due(&mut self, conn: ConnId, me: &Online, now_ms: u64, outcome: &mut Outcome) {
        if now_ms.saturating_sub(me.renewed_at_ms) < self.config.enrollment_renew_interval_ms {
            return;
        }
        let expires_at_ms = now_ms.saturating_add(self.config.enrollment_ttl_ms);
        match self
            .store
            .renew_enrollment(me.account.as_str(), me.device.0, expires_at_ms, now_ms)
        {
            Ok(true) => {
                if let Some(online) = self.online.get_mut(&conn) {
                    online.renewed_at_ms = now_ms;
                }
                outcome
                    .replies
                    .push(Frame::CredentialsRenewed { expires_at_ms });
            }
            Ok(false) => {
                // Revoked where this node could not see it (another node
                // on a shared store): the connection ends.
                self.online.remove(&conn);
                outcome.replies.push(Frame::error(
                    ErrorCode::CredentialsRevoked,
                    "this device's login no longer holds",
                ));
                outcome.close = true;
            }
            Err(error) => tracing::warn!(%error, "could not renew an enrollment"),
        }
    }

    /// Makes room for `newcomer` under the limits and the policy: nothing
    /// when it fits, a refusal for [`OverflowPolicy::RefuseNew`], otherwise
    /// the displaced devices (revoked, told who displaced them).
    fn make_room(
        &mut self,
        newcomer: &Online,
        elsewhere: &[SessionRow],
        now_ms: u64,
        outcome: &mut Outcome,
    ) -> Result<(), Outcome> {
        let mut others: Vec<(ConnId, Online)> = self
            .online
            .of_account(&newcomer.account)
            .filter(|(_, o)| o.device != newcomer.device)
            .map(|(c, o)| (c, o.clone()))
            .collect();
        // The account's devices online on other nodes, each once, under
        // stand-in connection ids.
        let mut far = Vec::new();
        for session in elsewhere {
            let device = DeviceId(session.device);
            if device == newcomer.device || others.iter().any(|(_, o)| o.device == device) {
                continue;
            }
            let conn = ELSEWHERE_CONN_BASE + far.len() as u64;
            far.push(device);
            others.push((
                conn,
                Online {
                    account: newcomer.account.clone(),
                    device,
                    name: String::new(),
                    platform: session
                        .platform
                        .parse::<Platform>()
                        .unwrap_or_else(|e| match e {}),
                    last_active_ms: session.last_active_ms,
                    enrolled_at_ms: session.enrolled_at_ms,
                    renewed_at_ms: session.last_active_ms,
                    head_at_login: 0,
                },
            ));
        }
        let same_platform = others
            .iter()
            .filter(|(_, o)| o.platform == newcomer.platform)
            .count();
        let over_platform = self
            .config
            .devices_online_per_platform_max
            .map_or(0, |max| (same_platform + 1).saturating_sub(max));
        let over_account = (others.len() + 1).saturating_sub(self.config.devices_online_max);
        if over_platform == 0 && over_account == 0 {
            return Ok(());
        }
        let victims: Vec<ConnId> = match self.config.overflow_policy {
            OverflowPolicy::RefuseNew => {
                let devices = self
                    .device_list(&newcomer.account, now_ms)
                    .map_err(|e| Outcome::store_failed(&e, true))?;
                let limit = if over_platform > 0 {
                    format!(
                        "{same_platform} {} devices are online, the limit for a platform",
                        newcomer.platform
                    )
                } else {
                    format!(
                        "{} devices are online, the limit",
                        self.config.devices_online_max
                    )
                };
                return Err(refused(
                    ErrorCode::TooManyDevices,
                    format!(
                        "{limit}; log out on one, or kick one with a login token (this device \
                         stays logged in and gets in once there is room)"
                    ),
                    None,
                    devices,
                ));
            }
            OverflowPolicy::KickLongestIdle => pick_victims(
                &others,
                &newcomer.platform,
                over_platform,
                over_account,
                |o| o.last_active_ms,
            ),
            OverflowPolicy::ReplaceSamePlatform => pick_victims(
                &others,
                &newcomer.platform,
                over_platform.max(over_account),
                over_account,
                |o| o.enrolled_at_ms,
            ),
        };
        let reason = OfflineReason::Displaced {
            by: newcomer.as_ref(),
        };
        for victim in victims {
            if victim >= ELSEWHERE_CONN_BASE {
                // Online on another node: revoked here, under the account's
                // lock; that node closes its session when it reads the
                // revocation (the store tells it).
                let Some(&device) = far.get((victim - ELSEWHERE_CONN_BASE) as usize) else {
                    continue;
                };
                let account = newcomer.account.as_str();
                let revoked = self
                    .store
                    .revoke(account, device.0, &revocation(&reason, now_ms))
                    .and_then(|_| self.store.end_session(account, device.0));
                if let Err(e) = revoked {
                    return Err(Outcome::store_failed(&e, true));
                }
                Counters::add(&self.counters.devices_forced_offline);
                tracing::info!(
                    account = %newcomer.account, %device, by = %newcomer.device,
                    "device on another node displaced by the device limit"
                );
                continue;
            }
            let Some(gone) = self.online.remove(&victim) else {
                continue;
            };
            let revocation = revocation(&reason, now_ms);
            if let Err(e) = self
                .store
                .revoke(gone.account.as_str(), gone.device.0, &revocation)
            {
                return Err(Outcome::store_failed(&e, true));
            }
            // Every connection of the displaced device goes.
            let mut conns = vec![victim];
            conns.extend(
                self.online
                    .of_account(&gone.account)
                    .filter(|(_, o)| o.device == gone.device)
                    .map(|(c, _)| c)
                    .collect::<Vec<_>>(),
            );
            for c in conns {
                self.online.remove(&c);
                Counters::add(&self.counters.devices_forced_offline);
                outcome.notices.push((
                    c,
                    Notice::Kicked {
                        reason: reason.clone(),
                    },
                ));
            }
            tracing::info!(
                account = %gone.account, device = %gone.device, by = %newcomer.device,
                "device displaced by the device limit"
            );
        }
        Ok(())
    }

    // ---- Kicks. ----

    fn kick(&mut self, kicker: &Kicker, device: DeviceId, now_ms: u64) -> Outcome {
        if kicker.online && device == kicker.by.id {
            return Outcome::reply(Frame::error(
                ErrorCode::InvalidRequest,
                "a device does not kick itself: log out, or kick all devices",
            ));
        }
        let reason = OfflineReason::KickedByDevice {
            by: kicker.by.clone(),
        };
        match self.store.revoke(
            kicker.account.as_str(),
            device.0,
            &revocation(&reason, now_ms),
        ) {
            Ok(RevokeOutcome::NotFound) => {
                return Outcome::reply(Frame::error(
                    ErrorCode::NotFound,
                    format!("the account has no device {device}"),
                ))
            }
            Ok(_) => {}
            Err(e) => return Outcome::store_failed(&e, false),
        }
        let mut outcome = Outcome::default();
        self.force_offline(&kicker.account, Some(device), &reason, &mut outcome);
        self.announce_device_change(&kicker.account, kicker.conn, &mut outcome);
        outcome.replies.push(Frame::DeviceListChanged);
        tracing::info!(account = %kicker.account, by = %kicker.by.id, %device, "device kicked");
        outcome
    }

    /// Kicks every device of the account but the kicker (`all`: the kicker
    /// too).
    fn kick_all(&mut self, kicker: &Kicker, all: bool, now_ms: u64) -> Outcome {
        let reason = OfflineReason::KickedByDevice {
            by: kicker.by.clone(),
        };
        let except = (!all).then_some(kicker.by.id.0);
        let revoked = match self.store.revoke_all(
            kicker.account.as_str(),
            except,
            &revocation(&reason, now_ms),
        ) {
            Ok(revoked) => revoked,
            Err(e) => return Outcome::store_failed(&e, false),
        };
        let mut outcome = Outcome::default();
        for device in &revoked {
            let device = DeviceId(*device);
            if all && kicker.online && device == kicker.by.id {
                continue;
            }
            self.force_offline(&kicker.account, Some(device), &reason, &mut outcome);
        }
        self.announce_device_change(&kicker.account, kicker.conn, &mut outcome);
        if all && kicker.online {
            // This connection's own device goes too, after hearing why.
            self.online.remove(&kicker.conn);
            Counters::add(&self.counters.devices_forced_offline);
            outcome.replies.push(Frame::Kicked { reason });
            outcome.close = true;
        } else {
            outcome.replies.push(Frame::DeviceListChanged);
        }
        tracing::info!(
            account = %kicker.account, by = %kicker.by.id, all, revoked = revoked.len(),
            "devices kicked"
        );
        outcome
    }

    fn logout(&mut self, conn: ConnId, me: &Online, now_ms: u64) -> Outcome {
        let reason = OfflineReason::LoggedOut;
        if let Err(e) = self.store.revoke(
            me.account.as_str(),
            me.device.0,
            &revocation(&reason, now_ms),
        ) {
            return Outcome::store_failed(&e, false);
        }
        self.online.remove(&conn);
        let mut outcome = Outcome::default();
        // Any other connection of the same device goes too.
        self.force_offline(&me.account, Some(me.device), &reason, &mut outcome);
        self.announce_device_change(&me.account, conn, &mut outcome);
        outcome.replies.push(Frame::Kicked { reason });
        outcome.close = true;
        tracing::info!(account = %me.account, device = %me.device, "device logged out");
        outcome
    }

    /// Closes every connection of `device` (every device of the account for
    /// `None`, management connections included) with a `Kicked` for
    /// `reason`. Returns how many.
    fn force_offline(
        &mut self,
        account: &AccountId,
        device: Option<DeviceId>,
        reason: &OfflineReason,
        outcome: &mut Outcome,
    ) -> u32 {
        let victims: Vec<ConnId> = self
            .online
            .of_account(account)
            .filter(|(_, o)| device.is_none_or(|d| o.device == d))
            .map(|(c, _)| c)
            .collect();
        let mut closed = 0;
        for victim in victims {
            self.online.remove(&victim);
            Counters::add(&self.counters.devices_forced_offline);
            outcome.notices.push((
                victim,
                Notice::Kicked {
                    reason: reason.clone(),
                },
            ));
            closed += 1;
        }
        if device.is_none() {
            let managers: Vec<ConnId> = self
                .managers
                .iter()
                .filter(|(_, m)| &m.account == account)
                .map(|(c, _)| *c)
                .collect();
            for conn in managers {
                self.managers.remove(&conn);
                outcome.notices.push((
                    conn,
                    Notice::Kicked {
                        reason: reason.clone(),
                    },
                ));
                closed += 1;
            }
        }
        closed
    }

    /// Tells every online device of the account but `except` that the
    /// device list changed.
    fn announce_device_change(&self, account: &AccountId, except: ConnId, outcome: &mut Outcome) {
        for (conn, _) in self.online.of_account(account) {
            if conn != except {
                outcome.notices.push((conn, Notice::DeviceListChanged));
            }
        }
    }

    // ---- The operator's requests. ----

    fn admin(&mut self, request: AdminRequest, now_ms: u64) -> Outcome {
        let done = |devices_revoked: usize, connections_closed: u32| {
            Frame::AdminReply(AdminReply::Done {
                devices_revoked: u32::try_from(devices_revoked).unwrap_or(u32::MAX),
                connections_closed,
            })
        };
        let mut outcome = Outcome::default();
        match request {
            AdminRequest::Devices { account } => {
                return match self.device_list(&account, now_ms) {
                    Ok(devices) => {
                        Outcome::reply(Frame::AdminReply(AdminReply::Devices { devices }))
                    }
                    Err(e) => Outcome::store_failed(&e, false),
                }
            }
            AdminRequest::Kick { account, device } => {
                let reason = OfflineReason::RevokedByOperator;
                let revoked = match self.store.revoke(
                    account.as_str(),
                    device.0,
                    &revocation(&reason, now_ms),
                ) {
                    Ok(RevokeOutcome::NotFound) => {
                        return Outcome::reply(Frame::error(
                            ErrorCode::NotFound,
                            format!("account {account} has no device {device}"),
                        ))
                    }
                    Ok(RevokeOutcome::Revoked) => 1,
                    Ok(_) => 0,
                    Err(e) => return Outcome::store_failed(&e, false),
                };
                let closed = self.force_offline(&account, Some(device), &reason, &mut outcome);
                self.announce_device_change(&account, 0, &mut outcome);
                tracing::info!(%account, %device, "operator revoked a device");
                outcome.replies.push(done(revoked, closed));
            }
            AdminRequest::RevokeAll { account } => {
                let reason = OfflineReason::AllCredentialsRevoked;
                let revoked = match self.store.revoke_all(
                    account.as_str(),
                    None,
                    &revocation(&reason, now_ms),
                ) {
                    Ok(revoked) => revoked,
                    Err(e) => return Outcome::store_failed(&e, false),
                };
                let closed = self.force_offline(&account, None, &reason, &mut outcome);
                tracing::info!(%account, revoked = revoked.len(), "operator revoked every device");
                outcome.replies.push(done(revoked.len(), closed));
            }
            AdminRequest::Ban { account } => {
                match self.store.set_banned(account.as_str(), true) {
                    Ok(AccountStatus::Banned) => {}
                    Ok(_) => {
                        return Outcome::reply(Frame::error(
                            ErrorCode::InvalidRequest,
                            format!("account {account} was removed"),
                        ))
                    }
                    Err(e) => return Outcome::store_failed(&e, false),
                }
                let closed =
                    self.force_offline(&account, None, &OfflineReason::AccountBanned, &mut outcome);
                tracing::info!(%account, closed, "operator banned an account");
                outcome.replies.push(done(0, closed));
            }
            AdminRequest::Unban { account } => match self.store.set_banned(account.as_str(), false)
            {
                Ok(AccountStatus::Active) => {
                    tracing::info!(%account, "operator lifted a ban");
                    outcome.replies.push(done(0, 0));
                }
                Ok(_) => {
                    return Outcome::reply(Frame::error(
                        ErrorCode::InvalidRequest,
                        format!("account {account} was removed"),
                    ))
                }
                Err(e) => return Outcome::store_failed(&e, false),
            },
            AdminRequest::Remove { account } => {
                let devices = match self.store.remove_account(account.as_str()) {
                    Ok(devices) => devices,
                    Err(e) => return Outcome::store_failed(&e, false),
                };
                let closed = self.force_offline(
                    &account,
                    None,
                    &OfflineReason::AccountRemoved,
                    &mut outcome,
                );
                tracing::info!(%account, devices, closed, "operator removed an account");
                outcome
                    .replies
                    .push(done(usize::try_from(devices).unwrap_or(usize::MAX), closed));
            }
            other => {
                tracing::warn!(?other, "unhandled admin request");
                return Outcome::reply(Frame::error(
                    ErrorCode::InvalidRequest,
                    "this relay does not handle that admin request",
                ));
            }
        }
        outcome
    }

    // ---- Deltas and payloads. ----

    fn push(&mut self, conn: ConnId, me: &Online, deltas: Vec<WireDelta>, now_ms: u64) -> Outcome {
        let input: Vec<([u8; 32], &[u8])> = deltas
            .iter()
            .map(|d| (d.content_id().0, d.bytes()))
            .collect();
        let appended = match self.store.append(me.account.as_str(), me.device.0, &input) {
            Ok(appended) => appended,
            // The connection is closed: the device waits for this push's
            // acknowledgement (one push in flight), so an error alone
            // would hold its pushes until its request timeout (30 s). On a
            // new connection, with its backoff and maybe on another node,
            // it pushes everything unacknowledged again.
            Err(e) => return Outcome::store_failed(&e, true),
        };
        debug_assert_eq!(appended.len(), deltas.len());
        Counters::add(&self.counters.pushes);
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
            if self.cross_node {
                if let Some(fanned) = self.online.fanned.get_mut(&me.account) {
                    fanned.fanned(a.seq);
                }
            }
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
        Counters::add_n(&self.counters.deltas_appended, deltas_new);
        Counters::add_n(
            &self.counters.deltas_resent,
            appended.len().saturating_sub(deltas_new),
        );
        if deltas_new > 0 {
            self.notify_offline(me, deltas_new, head_seq, now_ms);
        }
        outcome
    }

    /// Tells the offline-push hook about each of the account's devices
    /// that is offline: online on no node (across nodes, a device online
    /// on another node is online), enrolled and not revoked. Reads nothing
    /// when the hook is not enabled, and the other nodes' sessions only
    /// when some device is offline here.
    fn notify_offline(&mut self, me: &Online, deltas_new: usize, head_seq: u64, now_ms: u64) {
        if !self.hook.enabled() {
            return;
        }
        let here: BTreeSet<DeviceId> = self
            .online
            .of_account(&me.account)
            .map(|(_, o)| o.device)
            .collect();
        let all_others_offline =
            self.config.offline_push_policy == OfflinePushPolicy::WhenAllOthersOffline;
        // Under "all others offline", another device on a screen means no
        // notification (and no store read).
        if all_others_offline && here.iter().any(|d| *d != me.device) {
            return;
        }
        let devices = match self.store.devices(me.account.as_str()) {
            Ok(devices) => devices,
            Err(error) => {
                tracing::warn!(%error, "could not list devices for the offline-push hook");
                return;
            }
        };
        // A device whose enrollment was revoked gets nothing pushed: it is
        // logged out.
        let mut offline: Vec<DeviceId> = devices
            .iter()
            .filter(|row| row.enrollment.as_ref().is_some_and(|e| e.revoked.is_none()))
            .map(|row| DeviceId(row.device))
            .filter(|device| !here.contains(device))
            .collect();
        if offline.is_empty() {
            return;
        }
        if self.cross_node {
            let elsewhere = match self.store.sessions_elsewhere(me.account.as_str(), now_ms) {
                Ok(sessions) => sessions,
                Err(error) => {
                    // Online state unknown: no notification rather than one
                    // to a device that may be on a screen.
                    tracing::warn!(%error, "could not list sessions for the offline-push hook");
                    return;
                }
            };
            if all_others_offline && elsewhere.iter().any(|s| s.device != me.device.0) {
                return;
            }
            offline.retain(|device| !elsewhere.iter().any(|s| s.device == device.0));
        }
        for device in offline {
            self.hook.delta_for_offline_device(&OfflineDelta {
                account: &me.account,
                device,
                origin: me.device,
                deltas_new,
                head_seq,
            });
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
                Counters::add(&self.counters.payloads_stored);
                let mut outcome = Outcome::reply(Frame::PayloadStored { id });
                let targets: Vec<ConnId> = self
                    .online
                    .of_account(&me.account)
                    .filter(|(_, o)| o.device == to)
                    .map(|(c, _)| c)
                    .collect();
                for conn in targets {
                    if let Some(delivered) = self.online.delivered.get_mut(&conn) {
                        delivered.insert(id);
                    }
                    let notice = Notice::Payload {
                        from: me.device,
                        id,
                        bytes: row.bytes.clone(),
                    };
                    outcome.notices.push((conn, notice));
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

    fn list_devices(&mut self, account: &AccountId, now_ms: u64) -> Outcome {
        match self.device_list(account, now_ms) {
            Ok(devices) => Outcome::reply(Frame::Devices { devices }),
            Err(e) => Outcome::store_failed(&e, false),
        }
    }

    fn device_list(
        &mut self,
        account: &AccountId,
        now_ms: u64,
    ) -> Result<Vec<DeviceInfo>, StoreError> {
        let rows = self.store.devices(account.as_str())?;
        let far: Vec<SessionRow> = if self.cross_node {
            self.store.sessions_elsewhere(account.as_str(), now_ms)?
        } else {
            Vec::new()
        };
        Ok(rows
            .iter()
            .take(DEVICES_PER_ACCOUNT_MAX)
            .map(|row| {
                let online = self
                    .online
                    .of_account(account)
                    .filter(|(_, o)| o.device.0 == row.device)
                    .map(|(_, o)| o.last_active_ms)
                    .chain(
                        far.iter()
                            .filter(|s| s.device == row.device)
                            .map(|s| s.last_active_ms),
                    )
                    .max();
                let mut info = device_info(row, online.is_some(), now_ms);
                if let Some(active_ms) = online {
                    info.last_seen_ms = info.last_seen_ms.max(active_ms);
                }
                info
            })
            .collect())
    }
}

fn kicker_of(conn: ConnId, me: &Online) -> Kicker {
    Kicker {
        conn,
        account: me.account.clone(),
        by: me.as_ref(),
        online: true,
    }
}

/// The connections to force offline under a kicking policy: `on_platform`
/// of the newcomer's platform first (by `order`, least first), then as many
/// more of any platform as the account limit still needs.
fn pick_victims(
    others: &[(ConnId, Online)],
    platform: &Platform,
    on_platform: usize,
    over_account: usize,
    order: impl Fn(&Online) -> u64,
) -> Vec<ConnId> {
    let mut same: Vec<&(ConnId, Online)> = others
        .iter()
        .filter(|(_, o)| &o.platform == platform)
        .collect();
    same.sort_by_key(|(c, o)| (order(o), *c));
    let mut victims: Vec<ConnId> = same.iter().take(on_platform).map(|(c, _)| *c).collect();
    if victims.len() < over_account {
        let mut rest: Vec<&(ConnId, Online)> = others
            .iter()
            .filter(|(c, _)| !victims.contains(c))
            .collect();
        rest.sort_by_key(|(c, o)| (order(o), *c));
        let needed = over_account - victims.len();
        victims.extend(rest.iter().take(needed).map(|(c, _)| *c));
    }
    victims
}

/// The stored form of an offline reason that revokes.
fn revocation(reason: &OfflineReason, at_ms: u64) -> Revocation {
    let mention = |by: &DeviceRef| DeviceMention {
        device: by.id.0,
        name: by.name.clone(),
        platform: by.platform.as_str().to_owned(),
    };
    let (kind, by) = match reason {
        OfflineReason::KickedByDevice { by } => (RevocationKind::KickedByDevice, Some(mention(by))),
        OfflineReason::Displaced { by } => (RevocationKind::Displaced, Some(mention(by))),
        OfflineReason::LoggedOut => (RevocationKind::LoggedOut, None),
        OfflineReason::AllCredentialsRevoked => (RevocationKind::AllCredentials, None),
        // Operator revocations; banned and removed accounts revoke nothing.
        _ => (RevocationKind::Operator, None),
    };
    Revocation { kind, by, at_ms }
}

/// The wire form of a stored revocation.
fn offline_reason(revocation: &Revocation) -> OfflineReason {
    let by = || {
        let mention = revocation.by.as_ref();
        DeviceRef {
            id: DeviceId(mention.map_or([0; 16], |m| m.device)),
            name: mention.map(|m| m.name.clone()).unwrap_or_default(),
            platform: mention
                .map(|m| m.platform.as_str())
                .unwrap_or("")
                .parse::<Platform>()
                .unwrap_or_else(|e| match e {}),
        }
    };
    match revocation.kind {
        RevocationKind::KickedByDevice => OfflineReason::KickedByDevice { by: by() },
        RevocationKind::Displaced => OfflineReason::Displaced { by: by() },
        RevocationKind::LoggedOut => OfflineReason::LoggedOut,
        RevocationKind::AllCredentials => OfflineReason::AllCredentialsRevoked,
        _ => OfflineReason::RevokedByOperator,
    }
}

fn device_info(row: &DeviceRow, online: bool, now_ms: u64) -> DeviceInfo {
    let enrollment = match &row.enrollment {
        None => EnrollmentState::NotEnrolled,
        Some(e) => match &e.revoked {
            Some(r) => EnrollmentState::Revoked {
                reason: offline_reason(r),
                at_ms: r.at_ms,
            },
            None if e.expires_at_ms <= now_ms => EnrollmentState::Expired {
                at_ms: e.expires_at_ms,
            },
            None => EnrollmentState::Active {
                expires_at_ms: e.expires_at_ms,
            },
        },
    };
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
        enrollment,
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
