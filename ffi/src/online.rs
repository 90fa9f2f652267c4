//! The online device, `OnlineDevice`: an engine on its own thread, connected to a relay.
//!
//! A thin layer over `tandem_online::OnlineDevice`: every method is one
//! command to the device thread, answered at once whether the device is
//! connected, connecting or offline (relay requests fail with
//! `DeviceError.NotConnected` unless logged in). The methods are async
//! (Kotlin `suspend`, Swift `async`, Python coroutines), run by UniFFI in
//! a tokio context. The status, the device id and listeners are
//! synchronous.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tandem_engine as e;
use tandem_online as o;
use tokio::sync::{watch, RwLock};

use crate::engine::{before, index, open_engine, Config, Engine};
use crate::error::{DeviceError, OpenError};
use crate::event::Event;
use crate::ids::{self, hex};
use crate::listener::{self, EventListener, ListenerHandle};
use crate::model::{
    list, AccountState, BlockedRow, ContactRow, ConversationRow, DeviceIdentity, DoNotDisturb,
    GroupMember, GroupRow, MessageCursor, MessageView, Performed, PinnedMessage, RemindType,
    ThreadRow,
};
use crate::op::Op;
use crate::status::{DeviceInfo, Status, StatusCondition};

/// Reconnect backoff: capped exponential with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct Backoff {
    /// The longest first wait, in ms; the ceiling doubles with every failed
    /// attempt.
    #[uniffi(default = 200)]
    pub initial_ms: u64,
    /// The most the ceiling grows to, in ms.
    #[uniffi(default = 30000)]
    pub max_ms: u64,
}

/// How a device reaches its relay.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct OnlineConfig {
    /// The relay: `host:port` (its TCP listener) or `ws://host:port/path`
    /// (its WebSocket listener); or several relay nodes serving one
    /// database, comma-separated (`"10.0.0.1:7700,10.0.0.2:7700"`, as the
    /// CLI's `--relay` takes them): the device connects to the first and,
    /// when a connection is lost or an attempt fails, moves to the next,
    /// round robin. `wss://`, an empty item or an address that does not
    /// parse stops the device with a stop reason that names it.
    pub relay: String,
    /// A login token from the app's auth service, for a device that is not
    /// enrolled yet (or was kicked): presented until a login succeeds, then
    /// forgotten; the device then logs in with its key alone. Each device
    /// needs a token of its own (tokens are single use). `None` for a
    /// device that is enrolled already.
    #[uniffi(default = None)]
    pub login_token: Option<String>,
    /// Whether to connect at once (else call `set_online(true)`).
    #[uniffi(default = true)]
    pub start_online: bool,
    /// How long to wait before each reconnect attempt.
    #[uniffi(default)]
    pub backoff: Backoff,
    /// How long one connection attempt may take, in ms.
    #[uniffi(default = 10000)]
    pub connect_timeout_ms: u64,
}

impl From<OnlineConfig> for o::OnlineConfig {
    fn from(value: OnlineConfig) -> Self {
        let mut config = o::OnlineConfig::with_relays(o::split_relays(&value.relay));
        config.login_token = value.login_token;
        config.start_online = value.start_online;
        config.backoff = o::Backoff {
            initial_ms: value.backoff.initial_ms,
            max_ms: value.backoff.max_ms,
        };
        config.connect_timeout_ms = value.connect_timeout_ms;
        config
    }
}

/// An engine on its own thread, online with a relay. See the module docs.
#[derive(uniffi::Object)]
pub struct OnlineDevice {
    /// `None` once shut down. Calls hold a read guard while they wait for
    /// the device thread (never while foreign code runs); `shutdown` takes
    /// the write guard.
    device: RwLock<Option<o::OnlineDevice>>,
    status: watch::Receiver<o::Status>,
    device_id: String,
    listeners: Mutex<Vec<Arc<ListenerHandle>>>,
}

impl std::fmt::Debug for OnlineDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnlineDevice")
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

impl OnlineDevice {
    fn spawn(engine: e::Engine, config: OnlineConfig) -> Result<OnlineDevice, OpenError> {
        let device =
            o::OnlineDevice::spawn(engine, config.into()).map_err(|error| OpenError::Spawn {
                details: error.to_string(),
            })?;
        Ok(OnlineDevice {
            status: device.status(),
            device_id: device.device_id().to_hex(),
            device: RwLock::new(Some(device)),
            listeners: Mutex::new(Vec::new()),
        })
    }

    /// Runs `f` on the engine, on the device thread.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&e::Engine) -> Result<T, DeviceError> + Send + 'static,
    ) -> Result<T, DeviceError> {
        let guard = self.device.read().await;
        let device = guard.as_ref().ok_or(DeviceError::ShutDown)?;
        device.read(f).await?
    }

    fn stop_listeners(&self) {
        let listeners = std::mem::take(
            &mut *self
                .listeners
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for listener in listeners {
            listener.stop();
        }
    }
}

impl Drop for OnlineDevice {
    /// Listeners hold the device thread's command channel: stop them, so
    /// that dropping the device stops its thread.
    fn drop(&mut self) {
        self.stop_listeners();
    }
}

#[uniffi::export(async_runtime = "tokio")]
impl OnlineDevice {
    /// Opens (or creates) the device and starts its thread, which connects
    /// to the relay at once unless `online.start_online` is false.
    #[uniffi::constructor]
    pub fn open(config: Config, online: OnlineConfig) -> Result<Arc<OnlineDevice>, OpenError> {
        Ok(Arc::new(OnlineDevice::spawn(open_engine(config)?, online)?))
    }

    /// This device's id, 32 hex characters.
    pub fn device_id(&self) -> String {
        self.device_id.clone()
    }

    /// The connection state now.
    pub fn status(&self) -> Status {
        Status::from(&*self.status.borrow())
    }

    /// Waits until `until` holds (or already does) and returns the status
    /// then; `None` when `timeout_ms` passed first.
    pub async fn wait_status(&self, until: StatusCondition, timeout_ms: u64) -> Option<Status> {
        let mut status = self.status.clone();
        let wait = async move {
            loop {
                {
                    let now = status.borrow_and_update();
                    if until.holds(&now) {
                        return Some(Status::from(&*now));
                    }
                }
                if status.changed().await.is_err() {
                    // The device thread is gone: the status no longer moves.
                    let now = status.borrow();
                    return until.holds(&now).then(|| Status::from(&*now));
                }
            }
        };
        tokio::time::timeout(Duration::from_millis(timeout_ms), wait)
            .await
            .unwrap_or(None)
    }

    /// Starts delivering the multi-device events to `listener`, on a thread
    /// of its own, from the oldest one not acknowledged (see
    /// `ListenerHandle`).
    pub fn add_listener(
        &self,
        listener: Arc<dyn EventListener>,
    ) -> Result<Arc<ListenerHandle>, DeviceError> {
        let stream = {
            let guard = self.device.try_read().map_err(|_| DeviceError::ShutDown)?;
            guard.as_ref().ok_or(DeviceError::ShutDown)?.events()
        };
        let handle = listener::spawn(listener, stream, &self.device_id)?;
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Arc::clone(&handle));
        Ok(handle)
    }

    /// This device's identity.
    pub async fn device(&self) -> Result<DeviceIdentity, DeviceError> {
        self.read(|engine| Ok(engine.device().into())).await
    }

    /// Performs a local operation (online or not), durable when this
    /// returns, and pushes it when connected.
    pub async fn perform(&self, op: Op) -> Result<Performed, DeviceError> {
        let op = op.into_engine().map_err(crate::error::OpError::from)?;
        let guard = self.device.read().await;
        let device = guard.as_ref().ok_or(DeviceError::ShutDown)?;
        Ok(device.perform(op).await?.into())
    }

    /// A page of the conversation list: pinned first, then by last activity.
    pub async fn conversations(
        &self,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<ConversationRow>, DeviceError> {
        self.read(move |engine| Ok(list(engine.conversations(index(offset), index(limit))?)))
            .await
    }

    /// One conversation, listed or not.
    pub async fn conversation(&self, id: String) -> Result<Option<ConversationRow>, DeviceError> {
        let id = ids::conversation(&id).map_err(crate::error::OpError::from)?;
        self.read(move |engine| Ok(engine.conversation(&id)?.map(Into::into)))
            .await
    }

    /// A page of a conversation's messages, newest first, before `before`
    /// when given.
    pub async fn messages(
        &self,
        conversation: String,
        before: Option<MessageCursor>,
        limit: u32,
    ) -> Result<Vec<MessageView>, DeviceError> {
        let conversation = ids::conversation(&conversation).map_err(crate::error::OpError::from)?;
        let before = self::before(before).map_err(crate::error::OpError::from)?;
        self.read(move |engine| {
            let rows = engine.messages(
                &conversation,
                before.as_ref().map(|(at, id)| (*at, id)),
                index(limit),
            )?;
            Ok(list(rows))
        })
        .await
    }

    /// One message, unless unknown or deleted for this account.
    pub async fn message(&self, id: String) -> Result<Option<MessageView>, DeviceError> {
        let id = ids::message(&id).map_err(crate::error::OpError::from)?;
        self.read(move |engine| Ok(engine.message(&id)?.map(Into::into)))
            .await
    }

    /// Every contact entry, in any status, by user id.
    pub async fn contacts(&self) -> Result<Vec<ContactRow>, DeviceError> {
        self.read(|engine| Ok(list(engine.contacts()?))).await
    }

    /// Every blocked user, by user id.
    pub async fn blocklist(&self) -> Result<Vec<BlockedRow>, DeviceError> {
        self.read(|engine| Ok(list(engine.blocklist()?))).await
    }

    /// Every group this account knows, by id.
    pub async fn groups(&self) -> Result<Vec<GroupRow>, DeviceError> {
        self.read(|engine| Ok(list(engine.groups()?))).await
    }

    /// One group, or `None` if this account does not know it.
    pub async fn group(&self, id: String) -> Result<Option<GroupRow>, DeviceError> {
        let id = ids::group(&id).map_err(crate::error::OpError::from)?;
        self.read(move |engine| Ok(engine.group(&id)?.map(Into::into)))
            .await
    }

    /// The members of a group muted at `now_ms`.
    pub async fn muted_members(
        &self,
        group: String,
        now_ms: i64,
    ) -> Result<Vec<GroupMember>, DeviceError> {
        let group = ids::group(&group).map_err(crate::error::OpError::from)?;
        self.read(move |engine| Ok(list(engine.muted_members(&group, now_ms)?)))
            .await
    }

    /// The group members who have read a message, sorted.
    pub async fn group_read_by(&self, message: String) -> Result<Vec<String>, DeviceError> {
        let message = ids::message(&message).map_err(crate::error::OpError::from)?;
        self.read(move |engine| Ok(engine.group_read_by(&message)?))
            .await
    }

    /// The messages pinned in a conversation, oldest pin first.
    pub async fn pinned_messages(
        &self,
        conversation: String,
    ) -> Result<Vec<PinnedMessage>, DeviceError> {
        let conversation = ids::conversation(&conversation).map_err(crate::error::OpError::from)?;
        self.read(move |engine| Ok(list(engine.pinned_messages(&conversation)?)))
            .await
    }

    /// A conversation's do-not-disturb mode (off for one not known).
    pub async fn do_not_disturb(&self, conversation: String) -> Result<DoNotDisturb, DeviceError> {
        let conversation = ids::conversation(&conversation).map_err(crate::error::OpError::from)?;
        self.read(move |engine| Ok(engine.do_not_disturb(&conversation)?.into()))
            .await
    }

    /// Which messages of a conversation notify at `now_ms`.
    pub async fn remind_type_at(
        &self,
        conversation: String,
        now_ms: i64,
    ) -> Result<RemindType, DeviceError> {
        let conversation = ids::conversation(&conversation).map_err(crate::error::OpError::from)?;
        self.read(move |engine| Ok(engine.remind_type_at(&conversation, now_ms)?.into()))
            .await
    }

    /// Whether do-not-disturb holds back any message of a conversation at
    /// `now_ms`.
    pub async fn do_not_disturb_in_force(
        &self,
        conversation: String,
        now_ms: i64,
    ) -> Result<bool, DeviceError> {
        let conversation = ids::conversation(&conversation).map_err(crate::error::OpError::from)?;
        self.read(move |engine| Ok(engine.do_not_disturb_in_force(&conversation, now_ms)?))
            .await
    }

    /// Every thread this account takes part in, by id.
    pub async fn threads(&self) -> Result<Vec<ThreadRow>, DeviceError> {
        self.read(|engine| Ok(list(engine.threads()?))).await
    }

    /// Everything the app can see, in a stable order.
    pub async fn state(&self) -> Result<AccountState, DeviceError> {
        self.read(|engine| Ok(engine.state()?.into())).await
    }

    /// The account document's heads, sorted, as hex.
    pub async fn doc_heads(&self) -> Result<Vec<String>, DeviceError> {
        self.read(|engine| Ok(engine.doc_heads()?)).await
    }

    /// Up to `limit` events not acknowledged yet, oldest first.
    pub async fn pending_events(&self, limit: u32) -> Result<Vec<Event>, DeviceError> {
        self.read(move |engine| {
            let events = engine.pending_events(index(limit))?;
            Ok(events.iter().map(Event::from_engine).collect())
        })
        .await
    }

    /// Journaled events after position `after`, acknowledged or not.
    pub async fn events_after(&self, after: i64, limit: u32) -> Result<Vec<Event>, DeviceError> {
        self.read(move |engine| {
            let events = engine.events_after(after, index(limit))?;
            Ok(events.iter().map(Event::from_engine).collect())
        })
        .await
    }

    /// Acknowledges every event up to and including `seq`: never delivered
    /// again, also after a restart.
    pub async fn ack_events(&self, seq: i64) -> Result<(), DeviceError> {
        let guard = self.device.read().await;
        let device = guard.as_ref().ok_or(DeviceError::ShutDown)?;
        Ok(device.ack_events(seq).await?)
    }

    /// The newest journaled event's sequence number (0 for none).
    pub async fn events_head(&self) -> Result<i64, DeviceError> {
        self.read(|engine| Ok(engine.events_head()?)).await
    }

    /// The highest acknowledged event sequence number (0 for none).
    pub async fn events_acked(&self) -> Result<i64, DeviceError> {
        self.read(|engine| Ok(engine.events_acked()?)).await
    }

    /// The account's devices as the relay knows them, fetched now.
    pub async fn devices(&self) -> Result<Vec<DeviceInfo>, DeviceError> {
        let guard = self.device.read().await;
        let device = guard.as_ref().ok_or(DeviceError::ShutDown)?;
        Ok(device
            .devices()
            .await?
            .iter()
            .map(DeviceInfo::from)
            .collect())
    }

    /// The ids of the account's other devices, fetched now.
    pub async fn other_device_ids(&self) -> Result<Vec<String>, DeviceError> {
        let guard = self.device.read().await;
        let device = guard.as_ref().ok_or(DeviceError::ShutDown)?;
        let ids = device.other_device_ids().await?;
        Ok(ids.iter().map(|id| id.to_hex()).collect())
    }

    /// Sends a payload to another device of the account (at most 64 KiB);
    /// the relay keeps it until that device has it, once. Returns the
    /// payload's id, 32 hex characters.
    pub async fn send_to_device(
        &self,
        device_id: String,
        payload: Vec<u8>,
    ) -> Result<String, DeviceError> {
        let to = ids::device(&device_id)?;
        let guard = self.device.read().await;
        let device = guard.as_ref().ok_or(DeviceError::ShutDown)?;
        let id = device.send_to_device(to, payload).await?;
        Ok(hex(&id.0))
    }

    /// Makes the account key on the account's first device; returns its
    /// fingerprint. From then on the device seals what it pushes (the
    /// Link of itself first).
    pub async fn create_account_key(&self) -> Result<String, DeviceError> {
        let guard = self.device.read().await;
        let device = guard.as_ref().ok_or(DeviceError::ShutDown)?;
        Ok(device.create_account_key().await?.to_string())
    }

    /// On a new device: the link code to show a device that holds the key
    /// (for a QR code). It holds a secret: never send it through the relay.
    pub async fn show_link_code(&self) -> Result<String, DeviceError> {
        let guard = self.device.read().await;
        let device = guard.as_ref().ok_or(DeviceError::ShutDown)?;
        Ok(device.show_link_code().await?.code)
    }

    /// On a device that holds the key: the grant for the device that shows
    /// `code`, to hand back to it with this device's public key. Its Link
    /// is pushed at once when connected.
    pub async fn grant_link(&self, code: String) -> Result<Vec<u8>, DeviceError> {
        let guard = self.device.read().await;
        let device = guard.as_ref().ok_or(DeviceError::ShutDown)?;
        Ok(device.grant_link(code).await?)
    }

    /// On the new device: accepts `grant` from the device whose signing
    /// key is `granter_key` (64 hex characters); returns the key's
    /// fingerprint. A connection waiting for the key
    /// (`Status.waiting_for_key`) reads on at once, without reconnecting.
    pub async fn accept_link_grant(
        &self,
        grant: Vec<u8>,
        granter_key: String,
    ) -> Result<String, DeviceError> {
        let key = crate::engine::parse_public_key(&granter_key)?;
        let guard = self.device.read().await;
        let device = guard.as_ref().ok_or(DeviceError::ShutDown)?;
        Ok(device.accept_link_grant(grant, key).await?.to_string())
    }

    /// The fingerprint of the account key this device holds, or `None`
    /// when it holds none.
    pub async fn key_fingerprint(&self) -> Result<Option<String>, DeviceError> {
        let guard = self.device.read().await;
        let device = guard.as_ref().ok_or(DeviceError::ShutDown)?;
        Ok(match device.link_state().await? {
            e::LinkState::Linked { fingerprint, .. } => Some(fingerprint.to_string()),
            _ => None,
        })
    }

    /// This device's signing public key (64 hex characters): what a device
    /// it grants the key to checks the grant with.
    pub async fn public_key(&self) -> Result<String, DeviceError> {
        self.read(|engine| Ok(engine.device().public_key.to_hex()))
            .await
    }

    /// Forces another device of the account offline; its credentials stop
    /// working.
    pub async fn kick_device(&self, device_id: String) -> Result<(), DeviceError> {
        let target = ids::device(&device_id)?;
        let guard = self.device.read().await;
        let device = guard.as_ref().ok_or(DeviceError::ShutDown)?;
        Ok(device.kick_device(target).await?)
    }

    /// Forces every other device of the account offline.
    pub async fn kick_all_other_devices(&self) -> Result<(), DeviceError> {
        let guard = self.device.read().await;
        let device = guard.as_ref().ok_or(DeviceError::ShutDown)?;
        Ok(device.kick_all_other_devices().await?)
    }

    /// Forces every device of the account offline, this one included (the
    /// reference SDK's kickAllDevices); each logs in again only with a new
    /// login token.
    pub async fn kick_all_devices(&self) -> Result<(), DeviceError> {
        let guard = self.device.read().await;
        let device = guard.as_ref().ok_or(DeviceError::ShutDown)?;
        Ok(device.kick_all_devices().await?)
    }

    /// Logs this device out: the relay revokes its enrollment and the device
    /// stops (`StopReason.Kicked` with `OfflineReason.LoggedOut`); its data
    /// stays.
    pub async fn logout(&self) -> Result<(), DeviceError> {
        let guard = self.device.read().await;
        let device = guard.as_ref().ok_or(DeviceError::ShutDown)?;
        Ok(device.logout().await?)
    }

    /// Logs in again with a new login token, after a kick, a logout or an
    /// expired enrollment.
    pub async fn relogin(&self, login_token: String) -> Result<(), DeviceError> {
        let guard = self.device.read().await;
        let device = guard.as_ref().ok_or(DeviceError::ShutDown)?;
        Ok(device.relogin(login_token).await?)
    }

    /// Goes offline (closing the connection) or back online; going online
    /// also tries again after a stop.
    pub async fn set_online(&self, online: bool) -> Result<(), DeviceError> {
        let guard = self.device.read().await;
        let device = guard.as_ref().ok_or(DeviceError::ShutDown)?;
        Ok(device.set_online(online).await?)
    }

    /// Stops the listeners and the device thread (closing the connection,
    /// its last acknowledgement still sent within 1 s) and hands the engine
    /// back, offline. Every later call fails with `DeviceError.ShutDown`.
    pub async fn shutdown(&self) -> Result<Arc<Engine>, DeviceError> {
        self.stop_listeners();
        let device = self
            .device
            .write()
            .await
            .take()
            .ok_or(DeviceError::ShutDown)?;
        let engine = device.shutdown().await?;
        Ok(Arc::new(Engine::from_engine(engine)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bindings_defaults_are_the_online_crates() {
        // The literals in the `#[uniffi(default = …)]` attributes above.
        let ours = OnlineConfig {
            relay: "r".into(),
            login_token: None,
            start_online: true,
            backoff: Backoff {
                initial_ms: 200,
                max_ms: 30000,
            },
            connect_timeout_ms: 10000,
        };
        assert_eq!(
            o::OnlineConfig::from(ours.clone()),
            o::OnlineConfig::new("r")
        );
        // Several relays, comma-separated, each trimmed; an empty item
        // stays (the device refuses it by name when it starts).
        let several = OnlineConfig {
            relay: "a:1, ws://b/x ,".into(),
            ..ours
        };
        assert_eq!(
            o::OnlineConfig::from(several).relays,
            ["a:1", "ws://b/x", ""]
        );
    }
}
