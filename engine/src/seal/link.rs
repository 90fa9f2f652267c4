//! Link grants (docs/design-epochs-e2ee.md D9, §5.1): how an existing
//! device E hands a new device N the generation root, so that the relay,
//! which carries the grant, cannot read it or substitute a key of its own.
//!
//! 1. N makes a [`LinkSession`] (a KEM key pair and a 32-byte pre-shared
//!    key, all from the entropy source) and shows its [`LinkCode`]: version
//!    ‖ N's id ‖ N's signing key ‖ N's KEM public key ‖ the PSK, 113 bytes,
//!    carried out of band (a QR code), never through the relay.
//! 2. E seals a [`LinkGrant`] to the code with [`link_grant`]: the root,
//!    the epoch it belongs to and E's roster as it stands (every linked
//!    device's keys and the Link operation that listed it), with RFC 9180
//!    HPKE, mode PSK, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
//!    ChaCha20-Poly1305, with `info` = `"tandem link v1\0"` ‖ u64be(account
//!    length) ‖ account ‖ N id ‖ E id and `psk_id` = `"tandem link v1\0"` ‖
//!    N id. Inside, the grant is followed by E's ed25519 signature over
//!    `"tandem link grant sig v1\0"` ‖ info ‖ the encapsulated key ‖ the
//!    grant's bytes. The message is: version (2) ‖ E id (16) ‖ encapsulated
//!    key (32) ‖ ciphertext ‖ tag (16).
//! 3. N opens it with [`accept_link_grant`] (its KEM secret and the PSK)
//!    and gets an [`UnverifiedGrant`]; once it knows E's key (the roster of
//!    the epoch the grant names, step 3 of the plan) it calls
//!    [`UnverifiedGrant::verify`], which also checks that the roster lists
//!    E with that key. N then deletes the session, so a replayed grant
//!    finds nothing to open it with.
//!
//! The roster travels in the grant because N can read an envelope only
//! once it trusts its signer, and the Links that list the account's other
//! devices were signed by whoever performed them, not by E: the roster E
//! signs is where N's trust starts (design §13.1).
//!
//! Pure: the caller keeps the session, its expiry and its deletion.

use std::fmt;

use ed25519_dalek::{Signer, VerifyingKey};
use hpke::aead::{AeadTag, ChaCha20Poly1305};
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem, OpModeR, OpModeS, PskBundle, Serializable};
use serde::{Deserialize, Serialize};
use tandem_transport::envelope::{SnapshotId, SIGNATURE_BYTES};
use tandem_transport::{AccountId, DeviceId, DevicePublicKey, Entropy};
use zeroize::Zeroize;

use super::keys::{GenerationRoot, KEY_BYTES};
use super::OriginSigner;

/// The version byte of a link code.
pub const LINK_VERSION: u8 = 1;

/// The version byte of a grant: 2 since grants carry the granter's roster
/// (a grant of version 1 is refused as [`LinkError::Malformed`]).
pub const GRANT_VERSION: u8 = 2;

/// The most devices a grant's roster lists.
pub const GRANT_ROSTER_MAX: usize = 256;

/// Bytes in a [`LinkCode`]: version, device id, signing key, KEM key, PSK.
pub const LINK_CODE_BYTES: usize = 1 + 16 + 32 + 32 + 32;

/// Bytes in a grant's fixed parts: version, granter id, encapsulated key,
/// signature and tag; the grant's own fields come on top.
const GRANT_FIXED_BYTES: usize = 1 + 16 + 32 + SIGNATURE_BYTES + 16;

/// The largest grant message accepted: the fixed parts, a grant whose
/// account id is at its longest and a roster of [`GRANT_ROSTER_MAX`]
/// devices at 116 bytes each at most (29,696), with room to spare.
pub const LINK_GRANT_BYTES_MAX: usize = 32 * 1024;

const CONTEXT: &[u8] = b"tandem link v1\0";
const SIGNATURE_CONTEXT: &[u8] = b"tandem link grant sig v1\0";

type Suite = X25519HkdfSha256;

/// What N keeps while it waits for a grant: its KEM secret and the PSK it
/// showed. Wiped on drop; `Debug` prints neither.
pub struct LinkSession {
    device: DeviceId,
    kem_seed: [u8; KEY_BYTES],
    psk: [u8; KEY_BYTES],
}

impl Drop for LinkSession {
    fn drop(&mut self) {
        self.kem_seed.zeroize();
        self.psk.zeroize();
    }
}

impl fmt::Debug for LinkSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LinkSession({:?}, redacted)", self.device)
    }
}

/// What N shows E out of band. It holds the PSK: whoever reads the code can
/// seal a grant N accepts, so it must not travel through the relay.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkCode {
    /// The new device.
    pub device: DeviceId,
    /// Its ed25519 device key, for E's roster entry.
    pub sign_pk: DevicePublicKey,
    /// Its X25519 KEM public key, which the grant is sealed to.
    pub kem_pk: [u8; 32],
    /// The one-time pre-shared key.
    pub psk: [u8; KEY_BYTES],
}

impl fmt::Debug for LinkCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LinkCode({:?}, psk redacted)", self.device)
    }
}

/// One device of the roster a grant carries: its keys and the Link
/// operation that listed it, so the new device holds the same register
/// entry it would have made by merging that operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterMember {
    /// The linked device.
    pub device: DeviceId,
    /// Its ed25519 signing key.
    pub sign_pk: DevicePublicKey,
    /// Its X25519 KEM public key.
    pub kem_pk: [u8; 32],
    /// The device that performed the Link.
    pub linked_by: DeviceId,
    /// The Link's operation number on that device (at least 1).
    pub linked_seq: u64,
    /// When it was made, by that device's clock.
    pub linked_at_ms: i64,
}

/// What a grant hands the new device.
#[derive(Debug)]
pub struct LinkGrant {
    /// The account.
    pub account: AccountId,
    /// The key generation of `root`.
    pub generation: u32,
    /// The generation root.
    pub root: GenerationRoot,
    /// The epoch to adopt.
    pub epoch: u64,
    /// Its snapshot.
    pub snapshot_id: SnapshotId,
    /// The granting device (E).
    pub granted_by: DeviceId,
    /// E's clock when it granted.
    pub granted_at_ms: i64,
    /// E's roster as it stood, by device id: at most
    /// [`GRANT_ROSTER_MAX`] devices, E and the new device among them.
    pub roster: Vec<RosterMember>,
}

/// A grant's fields as they are encrypted (postcard).
#[derive(Serialize, Deserialize)]
struct GrantFields {
    account: String,
    generation: u32,
    root: [u8; KEY_BYTES],
    epoch: u64,
    snapshot_id: [u8; 32],
    granted_by: [u8; 16],
    granted_at_ms: i64,
    roster: Vec<RosterMember>,
}

impl Drop for GrantFields {
    fn drop(&mut self) {
        self.root.zeroize();
    }
}

/// Why a code or a grant is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The code is not [`LINK_CODE_BYTES`] long, has another version, or
    /// its KEM key is not an X25519 key.
    #[error("not a link code")]
    BadCode,
    /// The grant is not a grant message: too short, too long, another
    /// version.
    #[error("not a link grant")]
    Malformed,
    /// The grant does not open with this session: sealed to another key,
    /// with another PSK (a wrong or substituted code), for another device
    /// or account, or from another granter than it names, or tampered.
    #[error("the link grant does not open with this session")]
    BadGrant,
    /// It opened, but its contents are not a grant of this account from
    /// the device it names.
    #[error("the link grant's contents do not match its envelope")]
    Mismatch,
    /// The granter's key is not a valid ed25519 key.
    #[error("the granter's key is not a valid ed25519 key")]
    BadGranterKey,
    /// The signature is not the granter's.
    #[error("the link grant's signature does not verify")]
    BadSignature,
    /// The grant's roster does not list the granter with the key that
    /// signed it, or the new device with the keys its code shows, or
    /// lists more than [`GRANT_ROSTER_MAX`] devices.
    #[error("the link grant's roster does not list the granter and this device with their keys")]
    Roster,
}

/// The caller's entropy source as the RNG `hpke` draws its ephemeral key
/// from.
struct EntropyRng<'a>(&'a mut dyn Entropy);

impl hpke::rand_core::RngCore for EntropyRng<'_> {
    fn next_u32(&mut self) -> u32 {
        let mut bytes = [0u8; 4];
        self.0.fill(&mut bytes);
        u32::from_le_bytes(bytes)
    }

    fn next_u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        self.0.fill(&mut bytes);
        u64::from_le_bytes(bytes)
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        self.0.fill(dst);
    }
}

impl hpke::rand_core::CryptoRng for EntropyRng<'_> {}

fn info(account: &AccountId, new: DeviceId, granter: DeviceId) -> Vec<u8> {
    let account = account.as_str().as_bytes();
    let mut info = Vec::with_capacity(CONTEXT.len() + 8 + account.len() + 32);
    info.extend_from_slice(CONTEXT);
    info.extend_from_slice(&(account.len() as u64).to_be_bytes());
    info.extend_from_slice(account);
    info.extend_from_slice(&new.0);
    info.extend_from_slice(&granter.0);
    info
}

fn psk_id(new: DeviceId) -> Vec<u8> {
    let mut id = CONTEXT.to_vec();
    id.extend_from_slice(&new.0);
    id
}

fn signed_message(info: &[u8], encapped: &[u8], fields: &[u8]) -> Vec<u8> {
    let mut message = SIGNATURE_CONTEXT.to_vec();
    message.extend_from_slice(info);
    message.extend_from_slice(encapped);
    message.extend_from_slice(fields);
    message
}

impl LinkSession {
    /// A new session for device `device`. Draws 64 bytes from `entropy`.
    /// Show [`LinkSession::code`].
    pub fn new(device: DeviceId, entropy: &mut dyn Entropy) -> LinkSession {
        let mut session = LinkSession {
            device,
            kem_seed: [0; KEY_BYTES],
            psk: [0; KEY_BYTES],
        };
        entropy.fill(&mut session.kem_seed);
        entropy.fill(&mut session.psk);
        session
    }

    /// The session from its secrets, as the device's store keeps them.
    pub fn from_secrets(
        device: DeviceId,
        kem_seed: [u8; KEY_BYTES],
        psk: [u8; KEY_BYTES],
    ) -> LinkSession {
        LinkSession {
            device,
            kem_seed,
            psk,
        }
    }

    /// The KEM seed and the PSK, to keep in the device's store until a
    /// grant arrives. The caller wipes its copies.
    pub fn secrets(&self) -> ([u8; KEY_BYTES], [u8; KEY_BYTES]) {
        (self.kem_seed, self.psk)
    }

    /// The code to show for this session; `sign_pk` is the device's
    /// signing key. The same session always shows the same code.
    pub fn code(&self, sign_pk: DevicePublicKey) -> LinkCode {
        LinkCode {
            device: self.device,
            sign_pk,
            kem_pk: kem_public_key(&self.kem_seed),
            psk: self.psk,
        }
    }
}

/// The X25519 public key of the KEM key pair derived from `seed` (RFC 9180
/// `DeriveKeyPair`): a link session's, and, once its grant is accepted, the
/// device's own.
pub fn kem_public_key(seed: &[u8; KEY_BYTES]) -> [u8; 32] {
    let (_, public) = Suite::derive_keypair(seed);
    let mut kem_pk = [0u8; 32];
    kem_pk.copy_from_slice(&public.to_bytes());
    kem_pk
}

impl LinkCode {
    /// The code's bytes, for a QR code or a printable string.
    pub fn to_bytes(&self) -> [u8; LINK_CODE_BYTES] {
        let mut out = [0u8; LINK_CODE_BYTES];
        out[0] = LINK_VERSION;
        out[1..17].copy_from_slice(&self.device.0);
        out[17..49].copy_from_slice(&self.sign_pk.0);
        out[49..81].copy_from_slice(&self.kem_pk);
        out[81..].copy_from_slice(&self.psk);
        out
    }

    /// Reads a code.
    pub fn from_bytes(bytes: &[u8]) -> Result<LinkCode, LinkError> {
        if bytes.len() != LINK_CODE_BYTES || bytes[0] != LINK_VERSION {
            return Err(LinkError::BadCode);
        }
        let array = |range: std::ops::Range<usize>| -> [u8; 32] {
            let mut out = [0u8; 32];
            out.copy_from_slice(&bytes[range]);
            out
        };
        let mut device = [0u8; 16];
        device.copy_from_slice(&bytes[1..17]);
        Ok(LinkCode {
            device: DeviceId(device),
            sign_pk: DevicePublicKey(array(17..49)),
            kem_pk: array(49..81),
            psk: array(81..113),
        })
    }
}

/// Seals `grant` for the device that showed `code`, signed by the granter
/// (`grant.granted_by`, whose signer is `signer`). Draws the HPKE ephemeral
/// key from `entropy`.
pub fn link_grant(
    code: &LinkCode,
    grant: &LinkGrant,
    signer: &OriginSigner,
    entropy: &mut dyn Entropy,
) -> Result<Vec<u8>, LinkError> {
    let recipient =
        <Suite as Kem>::PublicKey::from_bytes(&code.kem_pk).map_err(|_| LinkError::BadCode)?;
    let info = info(&grant.account, code.device, grant.granted_by);
    let psk_id = psk_id(code.device);
    let bundle = PskBundle::new(&code.psk, &psk_id).map_err(|_| LinkError::BadCode)?;
    let mode = OpModeS::Psk(bundle);
    let fields = GrantFields {
        account: grant.account.as_str().to_owned(),
        generation: grant.generation,
        root: grant.root.to_bytes(),
        epoch: grant.epoch,
        snapshot_id: grant.snapshot_id.0,
        granted_by: grant.granted_by.0,
        granted_at_ms: grant.granted_at_ms,
        roster: grant.roster.clone(),
    };
    if !roster_is_well_formed(&fields.roster)
        || !fields.roster.iter().any(|m| m.device == code.device)
    {
        return Err(LinkError::Roster);
    }
    let mut plaintext = postcard::to_stdvec(&fields).map_err(|_| LinkError::Malformed)?;
    drop(fields);
    if plaintext.len() + GRANT_FIXED_BYTES > LINK_GRANT_BYTES_MAX {
        plaintext.zeroize();
        return Err(LinkError::Malformed);
    }
    // The ephemeral key is drawn first, so that the signature can cover
    // the encapsulated key: a grant cannot be re-encapsulated unseen.
    let mut rng = EntropyRng(entropy);
    let (encapped, mut ctx) = hpke::setup_sender::<ChaCha20Poly1305, HkdfSha256, Suite, _>(
        &mode, &recipient, &info, &mut rng,
    )
    .map_err(|_| LinkError::BadCode)?;
    let encapped = encapped.to_bytes();
    let signature = signer.0.sign(&signed_message(&info, &encapped, &plaintext));
    plaintext.extend_from_slice(&signature.to_bytes());
    let tag = ctx
        .seal_in_place_detached(&mut plaintext, &[])
        .map_err(|_| LinkError::Malformed)?;
    let mut out = Vec::with_capacity(GRANT_FIXED_BYTES + plaintext.len());
    out.push(GRANT_VERSION);
    out.extend_from_slice(&grant.granted_by.0);
    out.extend_from_slice(&encapped);
    out.extend_from_slice(&plaintext);
    out.extend_from_slice(&tag.to_bytes());
    Ok(out)
}

/// A grant opened with the session but whose signature is not checked
/// yet: the new device learns the granter's key from the epoch it names.
/// Nothing in it may be used before [`UnverifiedGrant::verify`].
pub struct UnverifiedGrant {
    grant: LinkGrant,
    message: Vec<u8>,
    signature: [u8; SIGNATURE_BYTES],
}

impl fmt::Debug for UnverifiedGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UnverifiedGrant(from {:?})", self.grant.granted_by)
    }
}

impl UnverifiedGrant {
    /// The device that claims to have granted it.
    pub fn granted_by(&self) -> DeviceId {
        self.grant.granted_by
    }

    /// The epoch and snapshot it names, to fetch the roster from.
    pub fn epoch(&self) -> (u64, SnapshotId) {
        (self.grant.epoch, self.grant.snapshot_id)
    }

    /// The grant, once its signature verifies with the granter's key and
    /// its roster lists the granter with that key.
    pub fn verify(self, granter_key: &DevicePublicKey) -> Result<LinkGrant, LinkError> {
        let key = VerifyingKey::from_bytes(&granter_key.0).map_err(|_| LinkError::BadGranterKey)?;
        if key.is_weak() {
            return Err(LinkError::BadGranterKey);
        }
        let signature = ed25519_dalek::Signature::from_bytes(&self.signature);
        key.verify_strict(&self.message, &signature)
            .map_err(|_| LinkError::BadSignature)?;
        let UnverifiedGrant { grant, .. } = self;
        let granter = grant.granted_by;
        if !grant
            .roster
            .iter()
            .any(|m| m.device == granter && m.sign_pk == *granter_key)
        {
            return Err(LinkError::Roster);
        }
        Ok(grant)
    }
}

/// Opens a grant sealed to `session` for `account`. A wrong code, a grant
/// sealed to another key or device, for another account, or altered on the
/// way: [`LinkError::BadGrant`]. The caller deletes the session after the
/// first grant that opens, so a replay is refused.
pub fn accept_link_grant(
    bytes: &[u8],
    session: &LinkSession,
    account: &AccountId,
) -> Result<UnverifiedGrant, LinkError> {
    if bytes.len() < GRANT_FIXED_BYTES
        || bytes.len() > LINK_GRANT_BYTES_MAX
        || bytes[0] != GRANT_VERSION
    {
        return Err(LinkError::Malformed);
    }
    let mut granter = [0u8; 16];
    granter.copy_from_slice(&bytes[1..17]);
    let granter = DeviceId(granter);
    let encapped_bytes = &bytes[17..49];
    let (ciphertext, tag) = bytes[49..].split_at(bytes.len() - 49 - 16);
    let encapped =
        <Suite as Kem>::EncappedKey::from_bytes(encapped_bytes).map_err(|_| LinkError::BadGrant)?;
    let tag = AeadTag::<ChaCha20Poly1305>::from_bytes(tag).map_err(|_| LinkError::Malformed)?;
    let (secret, _) = Suite::derive_keypair(&session.kem_seed);
    let info = info(account, session.device, granter);
    let psk_id = psk_id(session.device);
    let bundle = PskBundle::new(&session.psk, &psk_id).map_err(|_| LinkError::BadGrant)?;
    let mut plaintext = ciphertext.to_vec();
    hpke::single_shot_open_in_place_detached::<ChaCha20Poly1305, HkdfSha256, Suite>(
        &OpModeR::Psk(bundle),
        &secret,
        &encapped,
        &info,
        &mut plaintext,
        &[],
        &tag,
    )
    .map_err(|_| LinkError::BadGrant)?;
    let result = read_grant(&plaintext, account, granter, &info, encapped_bytes);
    plaintext.zeroize();
    result
}

fn read_grant(
    plaintext: &[u8],
    account: &AccountId,
    granter: DeviceId,
    info: &[u8],
    encapped: &[u8],
) -> Result<UnverifiedGrant, LinkError> {
    let split = plaintext
        .len()
        .checked_sub(SIGNATURE_BYTES)
        .ok_or(LinkError::Mismatch)?;
    let (fields_bytes, signature) = plaintext.split_at(split);
    let (fields, rest) =
        postcard::take_from_bytes::<GrantFields>(fields_bytes).map_err(|_| LinkError::Mismatch)?;
    if !rest.is_empty() {
        return Err(LinkError::Mismatch);
    }
    if fields.account != account.as_str() || fields.granted_by != granter.0 {
        return Err(LinkError::Mismatch);
    }
    if !roster_is_well_formed(&fields.roster) {
        return Err(LinkError::Roster);
    }
    let mut sig = [0u8; SIGNATURE_BYTES];
    sig.copy_from_slice(signature);
    Ok(UnverifiedGrant {
        grant: LinkGrant {
            account: account.clone(),
            generation: fields.generation,
            root: GenerationRoot::from_bytes(fields.root),
            epoch: fields.epoch,
            snapshot_id: SnapshotId(fields.snapshot_id),
            granted_by: granter,
            granted_at_ms: fields.granted_at_ms,
            roster: fields.roster.clone(),
        },
        message: signed_message(info, encapped, fields_bytes),
        signature: sig,
    })
}

/// A roster as a grant carries it: at most [`GRANT_ROSTER_MAX`] devices,
/// strictly by device id (so each once), every Link numbered from 1 to
/// `i64::MAX` (what a store can hold).
fn roster_is_well_formed(roster: &[RosterMember]) -> bool {
    roster.len() <= GRANT_ROSTER_MAX
        && roster.windows(2).all(|w| w[0].device.0 < w[1].device.0)
        && roster
            .iter()
            .all(|m| (1..=i64::MAX as u64).contains(&m.linked_seq))
}

#[cfg(test)]
mod tests {
    use tandem_transport::{DeviceKey, SeededEntropy};

    use super::*;

    const NEW: DeviceId = DeviceId([1; 16]);
    const GRANTER: DeviceId = DeviceId([2; 16]);

    fn account() -> AccountId {
        AccountId::new("alice").expect("valid")
    }

    fn granter_key() -> DeviceKey {
        DeviceKey::from_seed(&[7; 32])
    }

    fn new_key() -> DeviceKey {
        DeviceKey::from_seed(&[5; 32])
    }

    fn member(device: DeviceId, sign_pk: DevicePublicKey, seq: u64) -> RosterMember {
        RosterMember {
            device,
            sign_pk,
            kem_pk: [device.0[0]; 32],
            linked_by: GRANTER,
            linked_seq: seq,
            linked_at_ms: 1_000,
        }
    }

    /// The granter's roster: itself and the new device, by device id.
    fn roster() -> Vec<RosterMember> {
        vec![
            member(NEW, new_key().public_key(), 2),
            member(GRANTER, granter_key().public_key(), 1),
        ]
    }

    fn grant_with(roster: Vec<RosterMember>) -> LinkGrant {
        LinkGrant {
            account: account(),
            generation: 0,
            root: GenerationRoot::from_bytes([9; 32]),
            epoch: 3,
            snapshot_id: SnapshotId([4; 32]),
            granted_by: GRANTER,
            granted_at_ms: 12_345,
            roster,
        }
    }

    fn session(seed: u64) -> (LinkSession, LinkCode) {
        let session = LinkSession::new(NEW, &mut SeededEntropy::new(seed));
        let code = session.code(new_key().public_key());
        (session, code)
    }

    fn sealed(code: &LinkCode) -> Vec<u8> {
        seal_with(code, roster()).expect("seals")
    }

    fn seal_with(code: &LinkCode, roster: Vec<RosterMember>) -> Result<Vec<u8>, LinkError> {
        link_grant(
            code,
            &grant_with(roster),
            &OriginSigner::new(&granter_key()),
            &mut SeededEntropy::new(99),
        )
    }

    #[test]
    fn a_session_restored_from_its_secrets_shows_the_same_code_and_opens_its_grant() {
        let (session, code) = session(1);
        let (kem_seed, psk) = session.secrets();
        drop(session);
        let restored = LinkSession::from_secrets(NEW, kem_seed, psk);
        assert_eq!(
            restored.code(DeviceKey::from_seed(&[5; 32]).public_key()),
            code
        );
        let opened = accept_link_grant(&sealed(&code), &restored, &account()).expect("opens");
        assert_eq!(opened.granted_by(), GRANTER);
    }

    #[test]
    fn a_grant_opens_with_its_session_and_verifies_with_the_granter_s_key() {
        let (session, code) = session(1);
        assert_eq!(LinkCode::from_bytes(&code.to_bytes()), Ok(code.clone()));
        let bytes = sealed(&code);
        let opened = accept_link_grant(&bytes, &session, &account()).expect("opens");
        assert_eq!(opened.granted_by(), GRANTER);
        assert_eq!(opened.epoch(), (3, SnapshotId([4; 32])));
        let grant = opened
            .verify(&granter_key().public_key())
            .expect("verifies");
        assert_eq!(grant.root.to_bytes(), [9; 32]);
        assert_eq!(grant.granted_at_ms, 12_345);
        assert_eq!(grant.generation, 0);
        assert_eq!(grant.roster, roster());
    }

    #[test]
    fn the_roster_must_list_the_new_device_and_the_granter_with_its_key() {
        let (session, code) = session(1);
        let without_new = vec![member(GRANTER, granter_key().public_key(), 1)];
        assert_eq!(seal_with(&code, without_new).err(), Some(LinkError::Roster));
        // A granter that lists itself with another key than it signs
        // with: the grant opens, but does not verify.
        let other_key = DeviceKey::from_seed(&[8; 32]).public_key();
        let bytes = seal_with(
            &code,
            vec![
                member(NEW, new_key().public_key(), 2),
                member(GRANTER, other_key, 1),
            ],
        )
        .expect("seals");
        let opened = accept_link_grant(&bytes, &session, &account()).expect("opens");
        assert_eq!(
            opened.verify(&granter_key().public_key()).err(),
            Some(LinkError::Roster)
        );
        let bytes = seal_with(&code, vec![member(NEW, new_key().public_key(), 2)]).expect("seals");
        let opened = accept_link_grant(&bytes, &session, &account()).expect("opens");
        assert_eq!(
            opened.verify(&granter_key().public_key()).err(),
            Some(LinkError::Roster),
            "a roster without the granter"
        );
    }

    #[test]
    fn a_roster_out_of_order_with_a_device_twice_or_a_number_no_store_holds_is_refused() {
        let (_, code) = session(1);
        let mut reversed = roster();
        reversed.reverse();
        let mut twice = roster();
        twice.push(twice[1].clone());
        let mut zero = roster();
        zero[0].linked_seq = 0;
        let mut past_a_store = roster();
        past_a_store[1].linked_seq = i64::MAX as u64 + 1;
        for bad in [reversed, twice, zero, past_a_store] {
            assert_eq!(seal_with(&code, bad).err(), Some(LinkError::Roster));
        }
    }

    #[test]
    fn a_roster_of_the_most_devices_fits_a_grant_and_one_more_is_refused() {
        let (session, code) = session(1);
        // 256 devices at the widest encoding: numbers and times at the
        // edges of their types.
        let mut full: Vec<RosterMember> = (0..GRANT_ROSTER_MAX)
            .map(|i| {
                let mut device = [0xff; 16];
                device[14..].copy_from_slice(&(i as u16).to_be_bytes());
                RosterMember {
                    linked_seq: i64::MAX as u64,
                    linked_at_ms: i64::MIN,
                    ..member(DeviceId(device), new_key().public_key(), 1)
                }
            })
            .collect();
        full[0] = member(NEW, new_key().public_key(), 2);
        full[1] = member(GRANTER, granter_key().public_key(), 1);
        full.sort_by_key(|m| m.device);
        let bytes = seal_with(&code, full.clone()).expect("a full roster seals");
        assert!(bytes.len() <= LINK_GRANT_BYTES_MAX, "{}", bytes.len());
        let grant = accept_link_grant(&bytes, &session, &account())
            .and_then(|g| g.verify(&granter_key().public_key()))
            .expect("and opens");
        assert_eq!(grant.roster, full);
        let mut more = full;
        more.push(RosterMember {
            device: DeviceId([0xff; 16]),
            ..more[0].clone()
        });
        assert_eq!(seal_with(&code, more).err(), Some(LinkError::Roster));
    }

    #[test]
    fn a_wrong_code_is_refused() {
        let (session, mut code) = session(1);
        // Another PSK (a mistyped or guessed code), then another session's
        // key entirely (a substituted code).
        code.psk[0] ^= 1;
        let bytes = sealed(&code);
        assert_eq!(
            accept_link_grant(&bytes, &session, &account()).err(),
            Some(LinkError::BadGrant)
        );
        let (_, other) = self::session(2);
        let bytes = sealed(&other);
        assert_eq!(
            accept_link_grant(&bytes, &session, &account()).err(),
            Some(LinkError::BadGrant)
        );
    }

    #[test]
    fn a_grant_for_another_device_account_or_granter_is_refused() {
        let (session, code) = session(1);
        let for_other_device = LinkCode {
            device: DeviceId([3; 16]),
            ..code.clone()
        };
        let mut roster = roster();
        roster.push(member(for_other_device.device, new_key().public_key(), 3));
        let to_other = seal_with(&for_other_device, roster).expect("seals");
        assert_eq!(
            accept_link_grant(&to_other, &session, &account()).err(),
            Some(LinkError::BadGrant)
        );
        let bytes = sealed(&code);
        let other_account = AccountId::new("bob").expect("valid");
        assert_eq!(
            accept_link_grant(&bytes, &session, &other_account).err(),
            Some(LinkError::BadGrant)
        );
        // The clear granter id rewritten: info differs, so it does not open.
        let mut renamed = bytes.clone();
        renamed[1] ^= 1;
        assert_eq!(
            accept_link_grant(&renamed, &session, &account()).err(),
            Some(LinkError::BadGrant)
        );
    }

    #[test]
    fn a_grant_signed_by_another_key_is_refused() {
        let (session, code) = session(1);
        let bytes = sealed(&code);
        let opened = accept_link_grant(&bytes, &session, &account()).expect("opens");
        assert_eq!(
            opened
                .verify(&DeviceKey::from_seed(&[8; 32]).public_key())
                .err(),
            Some(LinkError::BadSignature)
        );
        let opened = accept_link_grant(&bytes, &session, &account()).expect("opens");
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            opened.verify(&DevicePublicKey(identity)).err(),
            Some(LinkError::BadGranterKey)
        );
    }

    #[test]
    fn every_single_bit_flip_of_a_grant_is_refused() {
        let (session, code) = session(1);
        let bytes = sealed(&code);
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(
                accept_link_grant(&flipped, &session, &account())
                    .and_then(|g| g.verify(&granter_key().public_key()))
                    .is_err(),
                "bit {bit}"
            );
        }
    }

    #[test]
    fn malformed_codes_and_grants_are_refused() {
        let (session, code) = session(1);
        let bytes = code.to_bytes();
        assert_eq!(LinkCode::from_bytes(&bytes[..112]), Err(LinkError::BadCode));
        let mut other_version = bytes;
        other_version[0] = 2;
        assert_eq!(
            LinkCode::from_bytes(&other_version),
            Err(LinkError::BadCode)
        );
        let grant = sealed(&code);
        for bad in [&grant[..GRANT_FIXED_BYTES - 1], &[][..]] {
            assert_eq!(
                accept_link_grant(bad, &session, &account()).err(),
                Some(LinkError::Malformed)
            );
        }
        let mut long = grant.clone();
        long.resize(LINK_GRANT_BYTES_MAX + 1, 0);
        assert_eq!(
            accept_link_grant(&long, &session, &account()).err(),
            Some(LinkError::Malformed)
        );
    }

    #[test]
    fn sealing_draws_only_from_the_entropy_and_debug_hides_secrets() {
        let (_, code) = session(1);
        assert_eq!(sealed(&code), sealed(&code));
        let (session, code) = session(1);
        assert!(!format!("{session:?}{code:?}").contains(&format!("{:?}", code.psk)));
        let (_, again) = self::session(1);
        assert_eq!(again, code, "a session is a function of the entropy");
        assert_ne!(self::session(2).1, code);
    }
}
