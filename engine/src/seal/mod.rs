//! Sealed envelopes (docs/design-epochs-e2ee.md §1): the key schedule, the
//! encrypted body, and sealing and opening an ops envelope. Pure and
//! sans-IO: every random byte comes from the caller's [`Entropy`], and
//! nothing here reads a clock or a store.
//!
//! Sealing, in order:
//!
//! 1. the body is checked as [`open`] will check it ([`BodyV1::check`]),
//!    so a device never seals what it would refuse;
//! 2. its padded plaintext is made ([`BodyV1::to_plaintext`]);
//! 3. a 24-byte nonce is drawn from the entropy source;
//! 4. the plaintext is encrypted with XChaCha20-Poly1305 under the epoch's
//!    [`EnvelopeKey`], with the associated data [`envelope_aad`]: a domain
//!    string, the account, and the clear header up to the nonce;
//! 5. the envelope is encoded (transport's [`Envelope`]) and the origin
//!    signs [`signature_message`]: a domain string, the account, and every
//!    byte of the envelope before the signature.
//!
//! Opening checks in the reverse order and stops at the first failure:
//! the envelope's structure, its kind, the signature (before decrypting
//! anything), the AEAD tag, the plaintext's padding and encoding, then the
//! body's rules. It is deterministic: the same bytes and keys always give
//! the same body or the same error.
//!
//! A sealed envelope is sealed once and kept: resending it sends the same
//! bytes (ed25519 signatures are deterministic), so its content id, the
//! blake3 hash of all its bytes, is stable.

mod body;
mod keys;
mod link;

#[cfg(test)]
mod tests;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use tandem_transport::envelope::{
    Envelope, EnvelopeError, EnvelopeHeader, EnvelopeKind, ENVELOPE_FORMAT, ENVELOPE_NONCE_BYTES,
    ENVELOPE_TAG_BYTES, SIGNATURE_BYTES,
};
use tandem_transport::{AccountId, ContentId, DeviceId, DeviceKey, DevicePublicKey, Entropy};
use zeroize::Zeroize;

pub use body::{BodyError, BodyV1, Changes, OpEntry, ViewEntry};
pub use keys::{
    EnvelopeKey, EpochKey, GenerationRoot, HistoryKey, PayloadKey, SnapshotKey, TagKey, KEY_BYTES,
    TAG_BYTES,
};
pub use link::{
    accept_link_grant, kem_public_key, link_grant, LinkCode, LinkError, LinkGrant, LinkSession,
    RosterMember, UnverifiedGrant, GRANT_ROSTER_MAX, GRANT_VERSION, LINK_CODE_BYTES,
    LINK_GRANT_BYTES_MAX, LINK_VERSION,
};

/// Domain separation of the envelope's associated data.
const AAD_CONTEXT: &[u8] = b"tandem envelope aad v2\0";
/// Domain separation of the envelope's signature: no other message signed
/// with a device key (the login proof has its own) can be taken for one.
const SIGNATURE_CONTEXT: &[u8] = b"tandem envelope sig v2\0";

/// The origin's signing half, made once from its [`DeviceKey`] and kept
/// for every envelope it seals (making it costs a scalar multiplication).
/// Wiped on drop.
pub struct OriginSigner(SigningKey);

impl OriginSigner {
    /// The signer of the device whose key is `key`.
    pub fn new(key: &DeviceKey) -> OriginSigner {
        let mut seed = key.seed();
        let signer = OriginSigner(SigningKey::from_bytes(&seed));
        seed.zeroize();
        signer
    }

    /// The public half, which verifies what this signer seals.
    pub fn public_key(&self) -> DevicePublicKey {
        DevicePublicKey(self.0.verifying_key().to_bytes())
    }
}

impl std::fmt::Debug for OriginSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OriginSigner(public {:?})", self.public_key())
    }
}

/// Where an envelope goes in its origin's chain, and in which epoch: the
/// clear header without the nonce, which sealing draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealHeader {
    /// The epoch whose [`EnvelopeKey`] seals it.
    pub epoch: u64,
    /// The sealing device.
    pub origin: DeviceId,
    /// Its position in the origin's chain, from 1.
    pub chain_pos: u64,
    /// The content id of the origin's envelope at `chain_pos - 1`; zeros at
    /// position 1.
    pub prev: ContentId,
}

/// Why a body cannot be sealed. Nothing was drawn from the entropy source
/// when the body is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The body breaks a rule [`open`] would refuse it for.
    #[error("the body cannot be sealed: {0}")]
    Body(#[from] BodyError),
    /// The header breaks the envelope's structure (chain position 0, a
    /// previous id at position 1 or none after it), or the envelope would
    /// be over the size limit.
    #[error("the envelope cannot be encoded: {0}")]
    Envelope(#[from] EnvelopeError),
}

/// Why bytes are not an envelope this device can open. Each case names
/// what was wrong; nothing from a refused envelope is usable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Not a well-formed envelope (size, format, field, chain shape,
    /// ciphertext length, trailing bytes).
    #[error("not an envelope: {0}")]
    Envelope(#[from] EnvelopeError),
    /// A payload envelope where an ops envelope was expected.
    #[error("a {0:?} envelope is not an ops envelope")]
    WrongKind(EnvelopeKind),
    /// The origin's public key given is not a valid (or is a weak) ed25519
    /// key.
    #[error("the origin's public key is not a valid ed25519 key")]
    BadOriginKey,
    /// The signature is not the origin's over this account and these
    /// bytes: forged, modified, or moved from another account.
    #[error("the envelope's signature does not verify")]
    BadSignature,
    /// The ciphertext does not decrypt under this key with this account
    /// and header: another key or epoch, another account, or tampered.
    #[error("the envelope does not decrypt")]
    Aead,
    /// The decrypted body is refused.
    #[error("the envelope's body is refused: {0}")]
    Body(#[from] BodyError),
}

/// An opened envelope: its clear header, its body, and the body's
/// automerge changes decoded (in the order the operations name them).
#[derive(Debug)]
pub struct Opened {
    /// The clear header.
    pub header: EnvelopeHeader,
    /// The body, every rule checked.
    pub body: BodyV1,
    /// The decoded changes, each made by the origin.
    pub changes: Vec<automerge::Change>,
}

/// The clear header's bytes as the envelope encodes them: format, kind,
/// epoch, origin, chain position, previous id, nonce (postcard: varints
/// for the integers, the arrays as their bytes).
fn header_bytes(header: &EnvelopeHeader) -> Vec<u8> {
    let fields = (
        ENVELOPE_FORMAT,
        header.kind.to_byte(),
        header.epoch,
        header.origin.0,
        header.chain_pos,
        header.prev.0,
        header.nonce,
    );
    postcard::to_stdvec(&fields).expect("fixed-size fields always encode")
}

/// Appends the account, its UTF-8 length first (u64 big-endian).
fn put_account(out: &mut Vec<u8>, account: &AccountId) {
    let account = account.as_str().as_bytes();
    out.extend_from_slice(&(account.len() as u64).to_be_bytes());
    out.extend_from_slice(account);
}

/// The associated data an envelope is encrypted with:
/// `"tandem envelope aad v2\0"` ‖ u64be(account length) ‖ account ‖ the
/// header's bytes (format through nonce, as encoded in the envelope).
pub fn envelope_aad(account: &AccountId, header: &EnvelopeHeader) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_CONTEXT.len() + 8 + 64 + 96);
    aad.extend_from_slice(AAD_CONTEXT);
    put_account(&mut aad, account);
    aad.extend_from_slice(&header_bytes(header));
    aad
}

/// The message the origin signs: `"tandem envelope sig v2\0"` ‖
/// u64be(account length) ‖ account ‖ every byte of the envelope before its
/// signature (the header, the ciphertext's length and the ciphertext).
pub fn signature_message(account: &AccountId, unsigned: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNATURE_CONTEXT.len() + 8 + 64 + unsigned.len());
    message.extend_from_slice(SIGNATURE_CONTEXT);
    put_account(&mut message, account);
    message.extend_from_slice(unsigned);
    message
}

/// Seals `body` as an ops envelope of `account` at `header`'s place in the
/// origin's chain: the envelope's bytes, to keep in the outbox and send
/// as they are. Draws exactly [`ENVELOPE_NONCE_BYTES`] from `entropy`, and
/// only once the body and header have been checked.
pub fn seal(
    key: &EnvelopeKey,
    account: &AccountId,
    header: SealHeader,
    body: &BodyV1,
    signer: &OriginSigner,
    entropy: &mut dyn Entropy,
) -> Result<Vec<u8>, SealError> {
    body.check(header.origin)?;
    let mut buffer = body.to_plaintext()?;
    let mut clear = EnvelopeHeader {
        kind: EnvelopeKind::Ops,
        epoch: header.epoch,
        origin: header.origin,
        chain_pos: header.chain_pos,
        prev: header.prev,
        nonce: [0; ENVELOPE_NONCE_BYTES],
    };
    // The header's shape, checked before a nonce is spent on it.
    Envelope {
        header: clear,
        ciphertext: &[0; tandem_transport::envelope::ENVELOPE_CIPHERTEXT_BYTES_MIN],
        signature: [0; SIGNATURE_BYTES],
    }
    .encode()?;
    entropy.fill(&mut clear.nonce);
    let aad = envelope_aad(account, &clear);
    let cipher = XChaCha20Poly1305::new(key.bytes().into());
    let tag = cipher
        .encrypt_in_place_detached(XNonce::from_slice(&clear.nonce), &aad, &mut buffer)
        .expect("a plaintext under the envelope limit always encrypts");
    buffer.extend_from_slice(&tag);
    let mut bytes = Envelope {
        header: clear,
        ciphertext: &buffer,
        signature: [0; SIGNATURE_BYTES],
    }
    .encode()?;
    let unsigned = bytes.len() - SIGNATURE_BYTES;
    let signature = signer
        .0
        .sign(&signature_message(account, &bytes[..unsigned]));
    bytes[unsigned..].copy_from_slice(&signature.to_bytes());
    Ok(bytes)
}

/// Opens an ops envelope of `account` sealed under `key` by the device
/// whose public key is `origin_key` (the caller looks the header's origin
/// up in the roster). Checks the structure, the kind, the signature, the
/// AEAD tag, the padding and encoding, and every rule of the body.
pub fn open(
    bytes: &[u8],
    account: &AccountId,
    key: &EnvelopeKey,
    origin_key: &DevicePublicKey,
) -> Result<Opened, OpenError> {
    let envelope = Envelope::decode(bytes)?;
    let header = envelope.header;
    if header.kind != EnvelopeKind::Ops {
        return Err(OpenError::WrongKind(header.kind));
    }
    let verifying = VerifyingKey::from_bytes(&origin_key.0).map_err(|_| OpenError::BadOriginKey)?;
    if verifying.is_weak() {
        return Err(OpenError::BadOriginKey);
    }
    let unsigned = bytes.len() - SIGNATURE_BYTES;
    let signature = ed25519_dalek::Signature::from_bytes(&envelope.signature);
    verifying
        .verify_strict(&signature_message(account, &bytes[..unsigned]), &signature)
        .map_err(|_| OpenError::BadSignature)?;
    let split = envelope.ciphertext.len() - ENVELOPE_TAG_BYTES;
    let (ciphertext, tag) = envelope.ciphertext.split_at(split);
    let mut plaintext = ciphertext.to_vec();
    let cipher = XChaCha20Poly1305::new(key.bytes().into());
    cipher
        .decrypt_in_place_detached(
            XNonce::from_slice(&header.nonce),
            &envelope_aad(account, &header),
            &mut plaintext,
            Tag::from_slice(tag),
        )
        .map_err(|_| OpenError::Aead)?;
    let body = BodyV1::from_plaintext(&plaintext);
    plaintext.zeroize();
    let body = body?;
    let changes = body.check(header.origin)?;
    Ok(Opened {
        header,
        body,
        changes,
    })
}
