//! Opening a device: its store, and its identity (id and signing key),
//! created on first open.

use std::cell::OnceCell;
use std::path::PathBuf;

use tandem_storage::device::{DeviceStore, Identity, Location, MetaKey};
use tandem_transport::auth::KEY_SEED_BYTES;
use tandem_transport::ids::DEVICE_ID_BYTES;
use tandem_transport::limits::DEVICE_NAME_BYTES_MAX;
use tandem_transport::{AccountId, DeviceId, DeviceKey, DevicePublicKey, Entropy, Platform};

use super::{Engine, EventDelivery, OpenError};
use crate::doc::AccountDoc;

/// Where the device store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorePath {
    /// A SQLite file, created on first open.
    File(PathBuf),
    /// In memory only: for tests and simulations; nothing survives a drop.
    Memory,
}

/// How to open a device.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the device store lives: a file for an app, memory for tests and
    /// simulations.
    pub store: StorePath,
    /// The account (user) this device belongs to.
    pub account: AccountId,
    /// Shown in the device list. Used when the device is first created.
    pub device_name: String,
    /// Used when the device is first created.
    pub platform: Platform,
}

/// Who this device is: fixed when the device was created. (A device of the
/// account as the relay lists it is a
/// [`DeviceInfo`](tandem_transport::DeviceInfo).)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceIdentity {
    /// The account (user) the device belongs to.
    pub account: AccountId,
    /// The device's random 128-bit id, drawn once when the device was created
    /// and kept in its store.
    pub device_id: DeviceId,
    /// The name shown in the account's device list, fixed when the device was
    /// created.
    pub name: String,
    /// The device's platform, fixed when the device was created.
    pub platform: Platform,
    /// When the device was created: the `now_ms` of the first [`Engine::open`].
    pub created_at_ms: i64,
    /// The public half of the device's signing key, made at its first open
    /// (or the first open by a build with device keys). The relay binds
    /// the device id to it at enrollment, for good.
    pub public_key: DevicePublicKey,
}

impl Engine {
    /// Opens a device, creating it on first open.
    ///
    /// `entropy` is the engine's only source of randomness, kept for its
    /// lifetime: at the first open it draws the device's random 128-bit id
    /// and the 32-byte seed of its signing key, both persisted; a device
    /// made by a build before device keys gets its key at its first open
    /// by this one. Apps pass [`OsEntropy`](crate::OsEntropy); tests and
    /// simulations a [`SeededEntropy`](crate::SeededEntropy), so a seed
    /// replays exactly.
    pub fn open(
        config: Config,
        now_ms: i64,
        mut entropy: Box<dyn Entropy>,
    ) -> Result<Engine, OpenError> {
        let location = match &config.store {
            StorePath::File(path) => Location::File(path),
            StorePath::Memory => Location::Memory,
        };
        let mut store = DeviceStore::open(location)?;
        let identity = match store.identity()? {
            Some(identity) => identity,
            None => {
                if config.device_name.len() > DEVICE_NAME_BYTES_MAX {
                    return Err(OpenError::DeviceNameTooLong(config.device_name.len()));
                }
                let mut device_id = [0u8; DEVICE_ID_BYTES];
                entropy.fill(&mut device_id);
                let mut seed = [0u8; KEY_SEED_BYTES];
                entropy.fill(&mut seed);
                let identity = Identity {
                    account: config.account.as_str().to_owned(),
                    device_id,
                    device_name: config.device_name.clone(),
                    platform: config.platform.as_str().to_owned(),
                    created_at_ms: now_ms,
                    signing_key: Some(seed),
                };
                let tx = store.transaction()?;
                tx.insert_identity(&identity)?;
                tx.append_doc_change(&AccountDoc::genesis())?;
                tx.set_meta_u64(MetaKey::NextOriginSeq, 1)?;
                tx.commit()?;
                identity
            }
        };
        if identity.account != config.account.as_str() {
            return Err(OpenError::AccountMismatch {
                expected: config.account,
                found: identity.account,
            });
        }
        let seed = match identity.signing_key {
            Some(seed) => seed,
            None => {
                // A device from before device keys: it keeps its id and
                // data, and gets its key now (it enrolls once more).
                let mut seed = [0u8; KEY_SEED_BYTES];
                entropy.fill(&mut seed);
                let tx = store.transaction()?;
                tx.set_signing_key(&seed)?;
                tx.commit()?;
                seed
            }
        };
        let key = DeviceKey::from_seed(&seed);
        let device = DeviceIdentity {
            account: config.account,
            device_id: DeviceId(identity.device_id),
            name: identity.device_name,
            platform: identity
                .platform
                .parse()
                .unwrap_or_else(|e: std::convert::Infallible| match e {}),
            created_at_ms: identity.created_at_ms,
            public_key: key.public_key(),
        };
        let next_origin_seq = store
            .meta_u64(MetaKey::NextOriginSeq)?
            .filter(|n| *n >= 1)
            .ok_or_else(|| OpenError::Corrupt("next_origin_seq is missing or 0".into()))?;
        // The document loads on first use (a local operation or a merge):
        // queries are served from the projections, so opening stays fast
        // however long the history.
        Ok(Engine {
            store,
            doc: OnceCell::new(),
            device,
            key,
            entropy,
            next_origin_seq,
            delivery: EventDelivery::default(),
        })
    }

    /// This device's identity.
    pub fn device(&self) -> &DeviceIdentity {
        &self.device
    }

    /// Sets how durable this device's writes are, from now on (not
    /// stored: set it after every open). The default is
    /// [`Durability::Full`].
    pub fn set_durability(&mut self, durability: Durability) {
        self.store
            .set_relaxed_merges(durability == Durability::RelaxedMerges);
    }

    /// How durable this device's writes are.
    pub fn durability(&self) -> Durability {
        match self.store.relaxed_merges() {
            true => Durability::RelaxedMerges,
            false => Durability::Full,
        }
    }
}

/// How durable a device's writes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Every commit is synced to disk before it returns (SQLite
    /// `synchronous=FULL`): whatever the engine reported survives a power
    /// cut. The default. (One write is never synced, in either setting:
    /// recording a push's acknowledgement, which the relay gives again if
    /// a power cut loses it; see [`Engine::acknowledge`].)
    #[default]
    Full,
    /// What this device makes is synced as under `Full` (operations,
    /// acknowledged events, credentials); what it merges from the relay
    /// is not (`synchronous=NORMAL` for those commits, WAL mode). An app
    /// crash loses nothing. A power cut or an OS crash can lose the merges
    /// since the device's last synced commit, with the relay cursor that
    /// covers them, so the device pulls them again at its next login (and
    /// its journal hears their events again: delivery is at least once
    /// anyway). Saves one disk sync per merged batch: what a receiving
    /// device spends most of its time on in live fan-out (B3).
    ///
    /// Relaxing the device's own operations as well (`synchronous=NORMAL`
    /// for everything) is not offered: an operation pushed and then lost
    /// to a power cut would have its number and its automerge change
    /// sequence made again for a different operation, which no device can
    /// merge.
    RelaxedMerges,
}
