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
//!    ([`Engine::grant_link`]): HPKE in PSK mode, signed by the granter's
//!    device key inside the encryption.
//! 4. The new device opens the grant with the session it keeps, checks the
//!    granter's signature and stores the key, in one transaction that also
//!    deletes the session ([`Engine::accept_link_grant`]), so a replayed
//!    grant finds nothing to open it with.
//!
//! Built so far: the key and linking only. Nothing is sealed with the key
//! yet (deltas still travel in the clear), and the key is made locally:
//! publishing it as the account's first epoch, so that of two first
//! devices only one wins, comes with epochs.

use std::fmt;

use data_encoding::BASE32_NOPAD;
use tandem_storage::device::{AccountKeyRow, KeySource, LinkSessionRow};
use tandem_storage::StoreError;
use tandem_transport::envelope::SnapshotId;
use tandem_transport::DevicePublicKey;
use zeroize::Zeroize;

use super::Engine;
use crate::limits::LINK_SESSION_TTL_MS;
use crate::seal::{
    accept_link_grant, link_grant, GenerationRoot, LinkCode, LinkError, LinkGrant, LinkSession,
    OriginSigner, LINK_CODE_BYTES,
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
    pub fn create_account_key(&mut self, now_ms: i64) -> Result<KeyFingerprint, LinkingError> {
        self.refuse_if_linked()?;
        let root = GenerationRoot::generate(self.entropy.as_mut());
        let printed = fingerprint(&root);
        let tx = self.store.transaction()?;
        tx.insert_account_key(&AccountKeyRow {
            generation: 0,
            root: root.to_bytes(),
            source: KeySource::Created,
            epoch: 0,
            snapshot_id: GENESIS_SNAPSHOT_ID.0,
            granted_by: None,
            added_at_ms: now_ms,
        })?;
        // A new device's session has no use once it holds the key.
        tx.delete_link_session()?;
        tx.commit()?;
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
                let session = LinkSession::new(me, self.entropy.as_mut());
                let expires_at_ms = now_ms.saturating_add(LINK_SESSION_TTL_MS);
                let (kem_seed, psk) = session.secrets();
                let mut row = LinkSessionRow {
                    kem_seed,
                    psk,
                    created_at_ms: now_ms,
                    expires_at_ms,
                };
                let tx = self.store.transaction()?;
                let stored = tx.put_link_session(&row).and_then(|()| tx.commit());
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
        let grant = LinkGrant {
            account: self.device.account.clone(),
            generation: key.generation,
            root: GenerationRoot::from_bytes(key.root),
            epoch: key.epoch,
            snapshot_id: SnapshotId(key.snapshot_id),
            granted_by: self.device.device_id,
            granted_at_ms: now_ms,
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
    /// it, and stores the account key. The code is spent: a second grant,
    /// or the same one again, is refused with [`LinkingError::NoLinkCode`].
    ///
    /// Until the account's roster exists (plan step 3), the caller supplies
    /// the granter's key. The pre-shared key already proves the grant was
    /// sealed by whoever read the code; the signature adds which device.
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
        row.kem_seed.zeroize();
        row.psk.zeroize();
        let grant = accept_link_grant(grant, &session, &self.device.account)
            .and_then(|unverified| unverified.verify(granter_key))
            .map_err(LinkingError::Grant)?;
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
        let tx = self.store.transaction()?;
        let stored = tx
            .insert_account_key(&key)
            .and_then(|_| tx.delete_link_session())
            .and_then(|_| tx.commit());
        key.root.zeroize();
        stored?;
        Ok(printed)
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
