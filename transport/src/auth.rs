//! Device keys and the login proof: the signature with which a device shows
//! the relay that it holds the key its id is enrolled with.
//!
//! Each device has an ed25519 key pair made at its first open (the engine
//! keeps the secret half in its store). At login the relay sends a fresh
//! random challenge; the device signs [`login_proof_message`], which binds
//! the protocol version, the account, the device id, the public key, the
//! challenge and the login token (if one is presented), and sends the
//! signature in its `Proof`. No bearer secret crosses the wire after
//! enrollment.
//!
//! What this protects against, and what not, is in ARCHITECTURE.md
//! ("Cryptographic constructions").

use std::fmt;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::frame::{Hello, ProtocolVersion};
use crate::ids::{AccountId, DeviceId};

/// Bytes in a [`DevicePublicKey`].
pub const PUBLIC_KEY_BYTES: usize = 32;
/// Bytes in a [`ProofSignature`].
pub const SIGNATURE_BYTES: usize = 64;
/// Bytes in the seed a [`DeviceKey`] is made from.
pub const KEY_SEED_BYTES: usize = 32;
/// Bytes in a [`ChallengeNonce`].
pub const NONCE_BYTES: usize = 32;

/// Domain separation of the login proof: no other message signed with a
/// device key can be mistaken for one.
const PROOF_CONTEXT: &[u8] = b"tandem login proof v2\0";

/// A device's ed25519 public key, as it travels and as the relay binds it
/// to the device id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DevicePublicKey(pub [u8; PUBLIC_KEY_BYTES]);

impl DevicePublicKey {
    /// Lowercase hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

impl fmt::Debug for DevicePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DevicePublicKey({}…)", &self.to_hex()[..16])
    }
}

impl fmt::Display for DevicePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The relay's challenge: fresh random bytes for every login attempt.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChallengeNonce(pub [u8; NONCE_BYTES]);

impl fmt::Debug for ChallengeNonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChallengeNonce({}…)", &hex(&self.0)[..16])
    }
}

/// An ed25519 signature over a [`login_proof_message`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ProofSignature(pub [u8; SIGNATURE_BYTES]);

impl fmt::Debug for ProofSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProofSignature({}…)", &hex(&self.0)[..16])
    }
}

// Serde implements arrays only up to 32 elements. A tuple of 64 bytes is
// what postcard writes for a fixed array: the 64 bytes themselves, no
// length.
impl Serialize for ProofSignature {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut tuple = serializer.serialize_tuple(SIGNATURE_BYTES)?;
        for byte in &self.0 {
            tuple.serialize_element(byte)?;
        }
        tuple.end()
    }
}

impl<'de> Deserialize<'de> for ProofSignature {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Bytes64;
        impl<'de> serde::de::Visitor<'de> for Bytes64 {
            type Value = ProofSignature;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{SIGNATURE_BYTES} bytes")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ProofSignature, A::Error> {
                let mut out = [0u8; SIGNATURE_BYTES];
                for (i, byte) in out.iter_mut().enumerate() {
                    *byte = seq
                        .next_element()?
                        .ok_or_else(|| serde::de::Error::invalid_length(i, &self))?;
                }
                Ok(ProofSignature(out))
            }
        }
        deserializer.deserialize_tuple(SIGNATURE_BYTES, Bytes64)
    }
}

/// A device's signing key. Its `Debug` shows the public half only, and the
/// secret half is wiped from memory when the key is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceKey(SigningKey);

impl DeviceKey {
    /// The key made from `seed` (32 random bytes, kept by the device).
    pub fn from_seed(seed: &[u8; KEY_SEED_BYTES]) -> Self {
        DeviceKey(SigningKey::from_bytes(seed))
    }

    /// The seed, to keep in the device's store.
    pub fn seed(&self) -> [u8; KEY_SEED_BYTES] {
        self.0.to_bytes()
    }

    /// The public half, which the relay binds to the device id.
    pub fn public_key(&self) -> DevicePublicKey {
        DevicePublicKey(self.0.verifying_key().to_bytes())
    }

    /// Signs the login proof for `hello` and the relay's `nonce`.
    pub fn prove(&self, hello: &Hello, nonce: &ChallengeNonce) -> ProofSignature {
        let message = login_proof_message(
            hello.version,
            &hello.account,
            hello.device,
            &self.public_key(),
            nonce,
            hello.login_token.as_deref(),
        );
        ProofSignature(self.0.sign(&message).to_bytes())
    }
}

impl fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceKey(public {:?})", self.public_key())
    }
}

/// Why a login proof was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The public key is not a valid ed25519 point (or a weak one).
    #[error("the public key is not a valid ed25519 key")]
    BadKey,
    /// The signature does not verify: made with another key, over another
    /// challenge, or for another login.
    #[error("the signature does not verify")]
    BadSignature,
}

/// Checks that `signature` is `public_key`'s signature of the proof for
/// `hello` and `nonce`. Strict verification: weak keys and malleable
/// signatures are refused.
pub fn verify_login_proof(
    hello: &Hello,
    public_key: &DevicePublicKey,
    nonce: &ChallengeNonce,
    signature: &ProofSignature,
) -> Result<(), ProofError> {
    let key = VerifyingKey::from_bytes(&public_key.0).map_err(|_| ProofError::BadKey)?;
    if key.is_weak() {
        return Err(ProofError::BadKey);
    }
    let message = login_proof_message(
        hello.version,
        &hello.account,
        hello.device,
        public_key,
        nonce,
        hello.login_token.as_deref(),
    );
    let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
    key.verify_strict(&message, &signature)
        .map_err(|_| ProofError::BadSignature)
}

/// The bytes a device signs to log in: a fixed context, then every field
/// the login depends on, each of variable length prefixed by its length
/// (so no two different logins share a message).
pub fn login_proof_message(
    version: ProtocolVersion,
    account: &AccountId,
    device: DeviceId,
    public_key: &DevicePublicKey,
    nonce: &ChallengeNonce,
    login_token: Option<&str>,
) -> Vec<u8> {
    let mut message = Vec::with_capacity(256);
    message.extend_from_slice(PROOF_CONTEXT);
    message.extend_from_slice(&version.major.to_be_bytes());
    message.extend_from_slice(&version.minor.to_be_bytes());
    let account = account.as_str().as_bytes();
    message.extend_from_slice(&(account.len() as u64).to_be_bytes());
    message.extend_from_slice(account);
    message.extend_from_slice(&device.0);
    message.extend_from_slice(&public_key.0);
    message.extend_from_slice(&nonce.0);
    match login_token {
        None => message.push(0),
        Some(token) => {
            message.push(1);
            message.extend_from_slice(&(token.len() as u64).to_be_bytes());
            message.extend_from_slice(token.as_bytes());
        }
    }
    message
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::PROTOCOL_VERSION;
    use crate::ids::Platform;

    fn hello(token: Option<&str>) -> Hello {
        Hello {
            version: PROTOCOL_VERSION,
            account: AccountId::new("alice").unwrap(),
            device: DeviceId([1; 16]),
            device_name: "phone".into(),
            platform: Platform::Ios,
            login_token: token.map(str::to_owned),
            resume_cursor: 0,
        }
    }

    #[test]
    fn a_proof_verifies_only_for_its_key_challenge_and_login() {
        let key = DeviceKey::from_seed(&[7; 32]);
        let nonce = ChallengeNonce([9; 32]);
        let h = hello(Some("lt2.x"));
        let sig = key.prove(&h, &nonce);
        assert_eq!(
            verify_login_proof(&h, &key.public_key(), &nonce, &sig),
            Ok(())
        );
        // Another challenge, another key, another token, another device,
        // another account, another version: all refused.
        let bad = Err(ProofError::BadSignature);
        assert_eq!(
            verify_login_proof(&h, &key.public_key(), &ChallengeNonce([8; 32]), &sig),
            bad
        );
        let other = DeviceKey::from_seed(&[6; 32]).public_key();
        assert_eq!(verify_login_proof(&h, &other, &nonce, &sig), bad);
        for changed in [
            hello(None),
            hello(Some("lt2.y")),
            Hello {
                device: DeviceId([2; 16]),
                ..h.clone()
            },
            Hello {
                account: AccountId::new("bob").unwrap(),
                ..h.clone()
            },
            Hello {
                version: ProtocolVersion { major: 2, minor: 1 },
                ..h.clone()
            },
        ] {
            assert_eq!(
                verify_login_proof(&changed, &key.public_key(), &nonce, &sig),
                bad
            );
        }
        // The name, platform and cursor are not part of the proof: they
        // are descriptive, not credentials.
        let renamed = Hello {
            device_name: "renamed".into(),
            resume_cursor: 5,
            ..h.clone()
        };
        assert_eq!(
            verify_login_proof(&renamed, &key.public_key(), &nonce, &sig),
            Ok(())
        );
        // A flipped signature bit is refused.
        let mut flipped = sig;
        flipped.0[10] ^= 1;
        assert_eq!(
            verify_login_proof(&h, &key.public_key(), &nonce, &flipped),
            bad
        );
    }

    #[test]
    fn invalid_and_weak_public_keys_are_refused() {
        let key = DeviceKey::from_seed(&[7; 32]);
        let nonce = ChallengeNonce([9; 32]);
        let h = hello(None);
        let sig = key.prove(&h, &nonce);
        // The identity point (all zero but the first byte 1) is weak.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            verify_login_proof(&h, &DevicePublicKey(identity), &nonce, &sig),
            Err(ProofError::BadKey)
        );
        // Not a point at all on some inputs: refused either way.
        let refused = verify_login_proof(&h, &DevicePublicKey([0xff; 32]), &nonce, &sig);
        assert!(refused.is_err());
    }

    #[test]
    fn the_message_separates_fields_by_length() {
        let key = DeviceKey::from_seed(&[1; 32]).public_key();
        let nonce = ChallengeNonce([0; 32]);
        let v = PROTOCOL_VERSION;
        let d = DeviceId([0; 16]);
        let a = login_proof_message(v, &AccountId::new("ab").unwrap(), d, &key, &nonce, None);
        let b = login_proof_message(v, &AccountId::new("a").unwrap(), d, &key, &nonce, None);
        assert_ne!(a, b);
        let none = login_proof_message(v, &AccountId::new("a").unwrap(), d, &key, &nonce, None);
        let empty =
            login_proof_message(v, &AccountId::new("a").unwrap(), d, &key, &nonce, Some(""));
        assert_ne!(none, empty);
        assert!(a.starts_with(PROOF_CONTEXT));
    }

    #[test]
    fn keys_round_trip_through_their_seed_and_hide_it_in_debug() {
        let key = DeviceKey::from_seed(&[3; 32]);
        assert_eq!(DeviceKey::from_seed(&key.seed()), key);
        let shown = format!("{key:?}");
        assert!(shown.starts_with("DeviceKey(public"), "{shown}");
        assert!(!shown.contains("0303"), "{shown}");
    }
}
