//! Device operations: the account's roster, the devices linked to it and
//! their keys (docs/design-epochs-e2ee.md §13 item 1).
//!
//! The roster is how every device learns the other devices' keys from
//! operations of the account itself, never from the relay: the signing key
//! that checks a device's envelopes, and the KEM key a new key generation
//! is sealed to. It is not in the account document but a register per
//! device in the store (`roster`): of two Link operations for the same
//! device, the one with the smallest `(made_at_ms, origin, origin_seq)`
//! holds on every device, whatever order they merged in.
//!
//! The engine performs Link itself: [`Engine::create_account_key`] for the
//! first device, [`Engine::grant_link`] for a device it grants the key to.
//! Removal, and checking that a Link comes from a device in the roster,
//! come with the roster's checks (plan step 3).
//!
//! [`Engine::create_account_key`]: crate::Engine::create_account_key
//! [`Engine::grant_link`]: crate::Engine::grant_link

use serde::{Deserialize, Serialize};
use tandem_storage::device::{DeviceTx, RosterRow};
use tandem_storage::StoreError;
use tandem_transport::{DeviceId, DevicePublicKey};

use super::{InvalidOp, Lookup};
use crate::delta::Delta;
use crate::event::hex;

/// Operations on the account's roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DeviceOp {
    /// Record that `device` is linked to the account, with its keys. Made
    /// by the engine when a device makes the account key (for itself) or
    /// grants it to a new device; an app has no reason to perform it. When
    /// the roster holds the device already (from an earlier Link) it
    /// changes nothing and is not recorded.
    Link {
        /// The linked device.
        device: DeviceId,
        /// Its ed25519 signing key: the key its envelopes are checked
        /// against.
        sign_pk: DevicePublicKey,
        /// Its X25519 KEM public key: what a new key generation is sealed
        /// to.
        kem_pk: [u8; 32],
    },
}

impl DeviceOp {
    pub(crate) fn validate(&self) -> Result<(), InvalidOp> {
        // Every field has a fixed size, checked by decoding.
        Ok(())
    }

    /// Writes the operation's roster entry; returns whether the roster
    /// changed.
    pub(crate) fn effects(&self, tx: &DeviceTx<'_>, delta: &Delta) -> Result<bool, StoreError> {
        match self {
            DeviceOp::Link {
                device,
                sign_pk,
                kem_pk,
            } => tx.link_roster_device(&RosterRow {
                device: device.0,
                sign_pk: sign_pk.0,
                kem_pk: *kem_pk,
                linked_by: delta.origin.0,
                linked_seq: delta.origin_seq,
                linked_at_ms: delta.made_at_ms,
            }),
        }
    }

    /// The device the operation is about.
    pub(crate) fn device(&self) -> DeviceId {
        match self {
            DeviceOp::Link { device, .. } => *device,
        }
    }

    /// The event the operation becomes on another device.
    pub(crate) fn event(&self) -> DeviceEvent {
        match self {
            DeviceOp::Link {
                device,
                sign_pk,
                kem_pk,
            } => DeviceEvent::Linked {
                device: device.to_hex(),
                sign_pk: sign_pk.to_hex(),
                kem_pk: hex(kem_pk),
            },
        }
    }
}

/// Roster operations done on another device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DeviceEvent {
    /// Another device linked a device to the account (or, when `device` is
    /// the source device itself, made the account key). An app can show
    /// it as "a new device was linked", with the keys' hex for a safety
    /// check. Superseded if the roster holds other keys for the device
    /// (an earlier Link won).
    Linked {
        /// The linked device, 32 hex digits.
        device: String,
        /// Its signing key, 64 hex digits.
        sign_pk: String,
        /// Its KEM public key, 64 hex digits.
        kem_pk: String,
    },
}

impl DeviceEvent {
    /// Whether the roster after the merge holds other keys for the device.
    pub(crate) fn superseded(&self, lookup: &Lookup<'_>) -> bool {
        match self {
            DeviceEvent::Linked {
                device,
                sign_pk,
                kem_pk,
            } => device
                .parse::<DeviceId>()
                .ok()
                .and_then(|id| lookup.roster.get(&id.0))
                .is_none_or(|row| &hex(&row.sign_pk) != sign_pk || &hex(&row.kem_pk) != kem_pk),
        }
    }
}
