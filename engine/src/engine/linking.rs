//! The account key this device holds, and linking: how a new device gets
//! it from a device that has it (docs/design-epochs-e2ee.md §5.1, D9).
//!
//! 1. The account's first device makes the key:
//!    [`Engine::create_account_key`].
//! 2. A new device shows a link code ([`Engine::show_link_code`]): its id,
//!    its signing key, an X25519 key and a one-time pre-shared key, as 181
//!    characters of base32 for a QR code. The code travels out of band
//!    (the user's camera), never through the relay.
//! 3. A device that holds the key seals a grant to the code
//!    ([`Engine::grant_link`]): the key and its roster, HPKE in PSK mode,
//!    signed by the granter's device key inside the encryption.
//! 4. The new device opens the grant with the session it keeps, checks the
//!    granter's signature and stores the key and the roster, in one
//!    transaction that also deletes the session
//!    ([`Engine::accept_link_grant`]), so a replayed grant finds nothing
//!    to open it with.
//!
//! Every device that gets the key is put in the account's roster by a
//! Link operation ([`DeviceOp::Link`]), made in the transaction that
//! stores the key (the first device, for itself) or before the grant is
//! sealed (the granter, for the new device), so the other devices learn
//! each linked device's signing and KEM keys from the account's own
//! operations ([`Engine::roster`]). A device has one KEM key, made the
//! first time it shows a code or makes the account key: every code it
//! shows names it, and only the pre-shared key is new per code.
//!
//! Built so far: the key, linking and the roster. Nothing is sealed with
//! the key yet (deltas still travel in the clear), and the key is made
//! locally: publishing it as the account's first epoch, so that of two
//! first devices only one wins, comes with epochs.

use std::fmt;

use data_encoding::BASE32_NOPAD;
use tandem_storage::device::{AccountKeyRow, DeviceTx, KeySource, LinkSessionRow, RosterRow};
use tandem_storage::StoreError;
use tandem_transport::envelope::SnapshotId;
use tandem_transport::{DeviceId, DevicePublicKey};
use zeroize::Zeroize;

use super::{Engine, OpError};
use crate::limits::LINK_SESSION_TTL_MS;
use crate::op::{DeviceOp, Op};
use crate::seal::{
    accept_link_grant, kem_public_key, link_grant, GenerationRoot, LinkCode, LinkError, LinkGrant,
    LinkSession, OriginSigner, RosterMember, GRANT_ROSTER_MAX, KEY_BYTES, LINK_CODE_BYTES,
};

/// The snapshot id of epoch 0, which has no snapshot: all zeros. Epoch 0's
/// key is derived with it (design §1.3); every later epoch names the hash
/// of its snapshot.
pub const GENESIS_SNAPSHOT_ID: SnapshotId = SnapshotId([0; 32]);

/// Whether this device holds the account key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// It holds no key: a new device, or one never linked.
    Unlinked {
        /// Until when the link code it shows accepts a grant (its clock),
        /// or `None` when it shows none.
        code_expires_at_ms: Option<i64>,
    },
    /// It holds the account key.
    Linked {
        /// The newest key generation it holds.
        generation: u32,
        /// How it got that generation.
        source: KeySource,
        /// The generation's fingerprint: the same on every device that
        /// holds the same key.
        fingerprint: KeyFingerprint,
    },
}

/// A fingerprint of a key generation (16 bytes of a blake3 key derivation
/// from the root, under a context of its own): two devices show the same
/// one exactly when they hold the same key, and it tells nothing about the
/// key. Displayed as eight groups of four hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyFingerprint(pub [u8; 16]);

impl fmt::Display for KeyFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, pair) in self.0.chunks(2).enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{:02x}{:02x}", pair[0], pair[1])?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyFingerprint({self})")
    }
}

/// One device of the account's roster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterEntry {
    /// The linked device.
    pub device: DeviceId,
    /// Its signing key: what its envelopes are checked against.
    pub sign_pk: DevicePublicKey,
    /// Its X25519 KEM public key: what a new key generation is sealed to.
    pub kem_pk: [u8; 32],
    /// The device that linked it (itself, for the device that made the
    /// account key).
    pub linked_by: DeviceId,
    /// When it was linked, by the linking device's clock.
    pub linked_at_ms: i64,
}

impl From<RosterRow> for RosterEntry {
    fn from(row: RosterRow) -> RosterEntry {
        RosterEntry {
            device: DeviceId(row.device),
            sign_pk: DevicePublicKey(row.sign_pk),
            kem_pk: row.kem_pk,
            linked_by: DeviceId(row.linked_by),
            linked_at_ms: row.linked_at_ms,
        }
    }
}

/// A link code to show, and until when it accepts a grant.
#[derive(Clone, PartialEq, Eq)]
pub struct ShownCode {
    /// The code as text: [`LINK_CODE_TEXT_CHARS`] characters of RFC 4648
    /// base32 (A–Z, 2–7), for a QR code or to type. It holds a secret:
    /// whoever reads it can hand this device a key, so it must not travel
    /// through the relay.
    pub code: String,
    /// Until when the code accepts a grant, by this device's clock.
    pub expires_at_ms: i64,
}

impl fmt::Debug for ShownCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShownCode(redacted, expires {})", self.expires_at_ms)
    }
}

/// Characters in a link code's text: 113 bytes in base32 without padding.
pub const LINK_CODE_TEXT_CHARS: usize = (LINK_CODE_BYTES * 8).div_ceil(5);

/// Why a key or linking call was refused. Nothing was stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkingError {
    /// This device holds the account key already.
    #[error("this device holds the account key already (generation {generation})")]
    AlreadyLinked {
        /// The newest generation it holds.
        generation: u32,
    },
    /// This device holds no account key, so it has none to grant.
    #[error("this device holds no account key: link it first")]
    NotLinked,
    /// The text is not a link code: not [`LINK_CODE_TEXT_CHARS`] base32
    /// characters, or not a code of this build's version.
    #[error("not a link code ({0})")]
    BadCode(String),
    /// The code is this device's own.
    #[error("the link code is this device's own")]
    OwnCode,
    /// No link code is shown: none was, a grant was accepted already (a
    /// replayed grant), or the store was reset.
    #[error("this device shows no link code: show one, then accept its grant")]
    NoLinkCode,
    /// The code this device showed has expired; show a new one.
    #[error("the link code expired at {expired_at_ms}; show a new one")]
    CodeExpired {
        /// When it expired, by this device's clock.
        expired_at_ms: i64,
    },
    /// The grant was refused: not a grant, sealed to another code or key,
    /// for another account, altered, or not signed by the granter.
    #[error("link grant refused: {0}")]
    Grant(LinkError),
    /// The roster holds the code's device with other keys than the code
    /// shows: an earlier Link put it there, and the device's envelopes
    /// are checked against those, so it is not granted the key.
    #[error("device {device} is in the roster with other keys than its code shows")]
    RosterConflict {
        /// The device of the code.
        device: DeviceId,
    },
    /// The roster has more devices than a grant carries
    /// ([`GRANT_ROSTER_MAX`]).
    #[error("the roster lists {devices} devices; a grant carries at most {GRANT_ROSTER_MAX}")]
    RosterFull {
        /// Devices in the roster, the new one included.
        devices: usize,
    },
    /// Recording the roster's Link operation failed.
    #[error("recording the roster entry: {0}")]
    Record(#[source] Box<OpError>),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Engine {
    /// Whether this device holds the account key, and which.
    pub fn link_state(&self, now_ms: i64) -> Result<LinkState, StoreError> {
        if let Some(key) = self.store.account_keys()?.pop() {
            return Ok(LinkState::Linked {
                generation: key.generation,
                source: key.source,
                fingerprint: fingerprint(&GenerationRoot::from_bytes(key.root)),
            });
        }
        let code_expires_at_ms = self
            .store
            .link_session()?
            .map(|s| s.expires_at_ms)
            .filter(|&at| at > now_ms);
        Ok(LinkState::Unlinked { code_expires_at_ms })
    }

    /// Makes the account key (generation 0, 32 bytes from the engine's
    /// entropy) on the account's first device; every other device gets it
    /// by linking. Refused on a device that holds a key already.
    ///
    /// In the same transaction the device puts itself in the roster (a
    /// [`DeviceOp::Link`] with its signing key and its KEM key): the one
    /// its link codes show if it showed one (another device may have
    /// listed it from such a code already), else a new one.
    pub fn create_account_key(&mut self, now_ms: i64) -> Result<KeyFingerprint, LinkingError> {
        self.refuse_if_linked()?;
        let root = GenerationRoot::generate(self.entropy.as_mut());
        let printed = fingerprint(&root);
        let mut kem_seed = self.device_kem_seed()?;
        let mut key = AccountKeyRow {
            generation: 0,
            root: root.to_bytes(),
            source: KeySource::Created,
            epoch: 0,
            snapshot_id: GENESIS_SNAPSHOT_ID.0,
            granted_by: None,
            added_at_ms: now_ms,
        };
        let link = DeviceOp::Link {
            device: self.device.device_id,
            sign_pk: self.key.public_key(),
            kem_pk: kem_public_key(&kem_seed),
        };
        let store_key = |tx: &DeviceTx<'_>| {
            tx.insert_account_key(&key)?;
            tx.insert_device_kem(&kem_seed, now_ms)?;
            // A new device's session has no use once it holds the key.
            tx.delete_link_session()?;
            Ok(())
        };
        let recorded = self.record(now_ms, Op::Device(link), Some(&store_key));
        key.root.zeroize();
        kem_seed.zeroize();
        recorded.map_err(|e| LinkingError::Record(Box::new(e)))?;
        Ok(printed)
    }

    /// The link code this device shows so that a device holding the
    /// account key can grant it (see [`Engine::grant_link`]). The code
    /// stays the same until it expires ([`LINK_SESSION_TTL_MS`] after it
    /// was made, also across restarts); after that a new one is made.
    pub fn show_link_code(&mut self, now_ms: i64) -> Result<ShownCode, LinkingError> {
        self.refuse_if_linked()?;
        let me = self.device.device_id;
        let (session, expires_at_ms) = match self.store.link_session()? {
            Some(row) if row.expires_at_ms > now_ms => (
                LinkSession::from_secrets(me, row.kem_seed, row.psk),
                row.expires_at_ms,
            ),
            _ => {
                // A new pre-shared key, the device's one KEM key: a code
                // shown after an expired one names the same KEM key, so a
                // granter that listed the device from the old code lists
                // the same keys again.
                let kem_seed = self.device_kem_seed()?;
                let mut psk = [0; KEY_BYTES];
                self.entropy.fill(&mut psk);
                let session = LinkSession::from_secrets(me, kem_seed, psk);
                let expires_at_ms = now_ms.saturating_add(LINK_SESSION_TTL_MS);
                let mut row = LinkSessionRow {
                    kem_seed,
                    psk,
                    created_at_ms: now_ms,
                    expires_at_ms,
                };
                psk.zeroize();
                let tx = self.store.transaction()?;
                let stored = tx
                    .insert_device_kem(&row.kem_seed, now_ms)
                    .and_then(|_| tx.put_link_session(&row))
                    .and_then(|()| tx.commit());
                row.kem_seed.zeroize();
                row.psk.zeroize();
                stored?;
                (session, expires_at_ms)
            }
        };
        let mut bytes = session.code(self.key.public_key()).to_bytes();
        let code = BASE32_NOPAD.encode(&bytes);
        bytes.zeroize();
        Ok(ShownCode {
            code,
            expires_at_ms,
        })
    }

    /// Seals the account key to the device that shows `code`: the grant
    /// bytes to hand it (through the relay or any other channel: only that
    /// device can open them, and only while its code is live). Needs this
    /// device to hold the key.
    ///
    /// First it puts the device in the roster with the keys its code
    /// shows ([`DeviceOp::Link`], recorded for the other devices; granting
    /// the same code again records nothing more). A code whose device the
    /// roster holds with other keys is refused
    /// ([`LinkingError::RosterConflict`]). The grant carries the roster as
    /// it then stands (this device's and the new one's entries among
    /// them): the new device trusts the other devices' envelopes from it.
    pub fn grant_link(&mut self, code: &str, now_ms: i64) -> Result<Vec<u8>, LinkingError> {
        let code = parse_code(code)?;
        if code.device == self.device.device_id {
            return Err(LinkingError::OwnCode);
        }
        let mut key = self
            .store
            .account_keys()?
            .pop()
            .ok_or(LinkingError::NotLinked)?;
        let listed = self
            .store
            .roster()?
            .into_iter()
            .find(|row| row.device == code.device.0);
        if listed.is_some_and(|row| row.sign_pk != code.sign_pk.0 || row.kem_pk != code.kem_pk) {
            key.root.zeroize();
            return Err(LinkingError::RosterConflict {
                device: code.device,
            });
        }
        let link = DeviceOp::Link {
            device: code.device,
            sign_pk: code.sign_pk,
            kem_pk: code.kem_pk,
        };
        if let Err(e) = self.record(now_ms, Op::Device(link), None) {
            key.root.zeroize();
            return Err(LinkingError::Record(Box::new(e)));
        }
        let roster: Vec<RosterMember> = match self.store.roster() {
            Ok(rows) => rows.into_iter().map(member).collect(),
            Err(e) => {
                key.root.zeroize();
                return Err(e.into());
            }
        };
        if roster.len() > GRANT_ROSTER_MAX {
            key.root.zeroize();
            return Err(LinkingError::RosterFull {
                devices: roster.len(),
            });
        }
        let grant = LinkGrant {
            account: self.device.account.clone(),
            generation: key.generation,
            root: GenerationRoot::from_bytes(key.root),
            epoch: key.epoch,
            snapshot_id: SnapshotId(key.snapshot_id),
            granted_by: self.device.device_id,
            granted_at_ms: now_ms,
            roster,
        };
        key.root.zeroize();
        link_grant(
            &code,
            &grant,
            &OriginSigner::new(&self.key),
            self.entropy.as_mut(),
        )
        .map_err(LinkingError::Grant)
    }

    /// Opens a grant sealed to the code this device shows, checks that
    /// `granter_key` (the signing key of the device the grant names) signed
    /// it, and stores the account key and the grant's roster. The code is
    /// spent: a second grant, or the same one again, is refused with
    /// [`LinkingError::NoLinkCode`].
    ///
    /// Until epochs carry a roster (plan step 4) the caller supplies the
    /// granter's key: it is where this device's trust starts. The
    /// pre-shared key already proves the grant was sealed by whoever read
    /// the code; the signature adds which device. The roster must list the
    /// granter with that key and this device with the keys its code
    /// shows; its entries are stored as the Link operations that made them
    /// would have stored them, so the roster stays the same register on
    /// every device.
    pub fn accept_link_grant(
        &mut self,
        grant: &[u8],
        granter_key: &DevicePublicKey,
        now_ms: i64,
    ) -> Result<KeyFingerprint, LinkingError> {
        self.refuse_if_linked()?;
        let mut row = self.store.link_session()?.ok_or(LinkingError::NoLinkCode)?;
        if row.expires_at_ms <= now_ms {
            return Err(LinkingError::CodeExpired {
                expired_at_ms: row.expires_at_ms,
            });
        }
        let session = LinkSession::from_secrets(self.device.device_id, row.kem_seed, row.psk);
        row.psk.zeroize();
        let grant = accept_link_grant(grant, &session, &self.device.account)
            .and_then(|unverified| unverified.verify(granter_key))
            .map_err(|e| {
                row.kem_seed.zeroize();
                LinkingError::Grant(e)
            })?;
        let me = (
            self.device.device_id,
            self.key.public_key(),
            kem_public_key(&row.kem_seed),
        );
        if !grant
            .roster
            .iter()
            .any(|m| (m.device, m.sign_pk, m.kem_pk) == me)
        {
            row.kem_seed.zeroize();
            return Err(LinkingError::Grant(LinkError::Roster));
        }
        let printed = fingerprint(&grant.root);
        let mut key = AccountKeyRow {
            generation: grant.generation,
            root: grant.root.to_bytes(),
            source: KeySource::Linked,
            epoch: grant.epoch,
            snapshot_id: grant.snapshot_id.0,
            granted_by: Some(grant.granted_by.0),
            added_at_ms: now_ms,
        };
        // The session's KEM key is the device's own (stored when the code
        // was first shown): the granter put its public half in the roster.
        let tx = self.store.transaction()?;
        let stored = tx
            .insert_account_key(&key)
            .and_then(|_| tx.insert_device_kem(&row.kem_seed, now_ms))
            .and_then(|_| tx.delete_link_session())
            .and_then(|_| {
                for member in &grant.roster {
                    tx.link_roster_device(&roster_row(member))?;
                }
                Ok(())
            })
            .and_then(|()| tx.commit());
        key.root.zeroize();
        row.kem_seed.zeroize();
        stored?;
        Ok(printed)
    }

    /// This device's own KEM public key, the one its roster entry
    /// carries; `None` until it holds the account key.
    pub fn kem_public_key(&self) -> Result<Option<[u8; 32]>, StoreError> {
        Ok(self.store.device_kem_seed()?.map(|mut seed| {
            let public = kem_public_key(&seed);
            seed.zeroize();
            public
        }))
    }

    /// The account's roster as this device knows it: every device linked
    /// to the account, with its keys, by device id. A device learns it
    /// from the Link operations it merged (and made).
    pub fn roster(&self) -> Result<Vec<RosterEntry>, StoreError> {
        Ok(self
            .store
            .roster()?
            .into_iter()
            .map(RosterEntry::from)
            .collect())
    }

    /// The seed of this device's KEM key: the stored one, else a new one
    /// from the entropy (which the caller stores with what it writes).
    fn device_kem_seed(&mut self) -> Result<[u8; KEY_BYTES], StoreError> {
        if let Some(seed) = self.store.device_kem_seed()? {
            return Ok(seed);
        }
        let mut seed = [0; KEY_BYTES];
        self.entropy.fill(&mut seed);
        Ok(seed)
    }

    fn refuse_if_linked(&self) -> Result<(), LinkingError> {
        match self.store.account_keys()?.pop() {
            Some(key) => Err(LinkingError::AlreadyLinked {
                generation: key.generation,
            }),
            None => Ok(()),
        }
    }
}

fn member(row: RosterRow) -> RosterMember {
    RosterMember {
        device: DeviceId(row.device),
        sign_pk: DevicePublicKey(row.sign_pk),
        kem_pk: row.kem_pk,
        linked_by: DeviceId(row.linked_by),
        linked_seq: row.linked_seq,
        linked_at_ms: row.linked_at_ms,
    }
}

fn roster_row(member: &RosterMember) -> RosterRow {
    RosterRow {
        device: member.device.0,
        sign_pk: member.sign_pk.0,
        kem_pk: member.kem_pk,
        linked_by: member.linked_by.0,
        linked_seq: member.linked_seq,
        linked_at_ms: member.linked_at_ms,
    }
}

fn fingerprint(root: &GenerationRoot) -> KeyFingerprint {
    KeyFingerprint(root.fingerprint())
}

/// Reads a link code's text: base32 as [`Engine::show_link_code`] writes
/// it. Spaces and line breaks (a code typed in groups) are ignored, and
/// lower case reads as upper case.
fn parse_code(text: &str) -> Result<LinkCode, LinkingError> {
    let cleaned: String = text
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if cleaned.len() != LINK_CODE_TEXT_CHARS {
        return Err(LinkingError::BadCode(format!(
            "{} characters, a code has {LINK_CODE_TEXT_CHARS}",
            cleaned.len()
        )));
    }
    let mut bytes = BASE32_NOPAD
        .decode(cleaned.as_bytes())
        .map_err(|e| LinkingError::BadCode(e.to_string()))?;
    let code = LinkCode::from_bytes(&bytes)
        .map_err(|_| LinkingError::BadCode("another version, or not a code".into()));
    bytes.zeroize();
    code
}
