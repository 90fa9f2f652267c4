//! Login tokens: `lt2.<purpose>.<expiry>.<id>.<mac>`, issued by the app's
//! auth service (`tandem token` for the demo and tests), short-lived and
//! single use.
//!
//! The MAC is a keyed blake3 hash (key: the relay's [`Secret`]) over a
//! fixed context, the account, the purpose, the expiry and the token's
//! random id. A token proves "whoever holds this may log a device into this
//! account (or manage its devices) once, until this time"; the relay store
//! remembers used ids until they expire. What this protects against, and
//! what not, is in ARCHITECTURE.md ("Cryptographic constructions").
//!
//! Protocol 1's account tokens (`t1.…`, reusable for 30 days) are retired:
//! they are recognised only to be refused with a clear error.

use std::fmt;

use tandem_transport::AccountId;

use crate::secret::Secret;

/// The prefix of this token format.
const FORMAT: &str = "lt2";
/// The prefix of protocol 1's account tokens, refused.
const RETIRED_FORMAT: &str = "t1";
/// Domain separation, so this MAC can never be confused with another use of
/// the same key.
const CONTEXT: &[u8] = b"tandem login token v2\0";

/// How long `tandem token` makes a login token valid by default: long
/// enough to type it into a device, short enough that a copy found later is
/// useless.
pub const LOGIN_TOKEN_VALID_S_DEFAULT: u64 = 10 * 60;

/// Bytes in a token's id.
pub const TOKEN_ID_BYTES: usize = 16;

/// What a login token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// Enroll a device (or enroll it again after a kick).
    Login,
    /// List and kick the account's devices without being admitted: how a
    /// device refused for the device limit frees a slot.
    Manage,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Login => "login",
            Purpose::Manage => "manage",
        }
    }

    fn parse(text: &str) -> Option<Purpose> {
        match text {
            "login" => Some(Purpose::Login),
            "manage" => Some(Purpose::Manage),
            _ => None,
        }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not of the form `lt2.<purpose>.<expiry>.<32 hex digits>.<64 hex
    /// digits>`.
    #[error("the login token is malformed")]
    Malformed,
    /// The MAC does not match: forged, damaged, made with another secret, or
    /// issued for another account.
    #[error("the login token is not valid for this account")]
    BadSignature,
    /// Genuine, but its expiry has passed.
    #[error("the login token expired at {expires_at_unix_s} (unix seconds)")]
    Expired {
        /// When it expired.
        expires_at_unix_s: u64,
    },
    /// A protocol-1 account token.
    #[error(
        "account tokens (t1.…) are retired: log in with a login token from the app's auth \
         service (`tandem token`)"
    )]
    AccountTokenRetired,
}

/// A token that verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedToken {
    /// What it may do.
    pub purpose: Purpose,
    /// Its id, unique per issue.
    pub id: [u8; TOKEN_ID_BYTES],
    /// When it expires.
    pub expires_at_unix_s: u64,
}

fn mac(
    secret: &Secret,
    account: &AccountId,
    purpose: Purpose,
    expires_at_unix_s: u64,
    id: &[u8; TOKEN_ID_BYTES],
) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new_keyed(secret.key());
    hasher.update(CONTEXT);
    hasher.update(&(account.as_str().len() as u64).to_be_bytes());
    hasher.update(account.as_str().as_bytes());
    hasher.update(&[match purpose {
        Purpose::Login => 1,
        Purpose::Manage => 2,
    }]);
    hasher.update(&expires_at_unix_s.to_be_bytes());
    hasher.update(id);
    hasher.finalize()
}

/// A login token for `account`, valid until `expires_at_unix_s`. `id` must
/// be random (16 bytes from the issuer's entropy): the relay refuses an id
/// it has seen used.
pub fn issue_login(
    secret: &Secret,
    account: &AccountId,
    purpose: Purpose,
    expires_at_unix_s: u64,
    id: [u8; TOKEN_ID_BYTES],
) -> String {
    format!(
        "{FORMAT}.{purpose}.{expires_at_unix_s}.{}.{}",
        hex(&id),
        mac(secret, account, purpose, expires_at_unix_s, &id).to_hex()
    )
}

/// Checks that `token` was issued by `secret` for `account` and has not
/// expired at `now_unix_s`. Whether it was used already is the store's to
/// say.
pub fn verify_login(
    secret: &Secret,
    account: &AccountId,
    token: &str,
    now_unix_s: u64,
) -> Result<VerifiedToken, TokenError> {
    let (purpose, expires_at_unix_s, id, claimed) = parse(token)?;
    // blake3::Hash compares in constant time.
    if claimed != mac(secret, account, purpose, expires_at_unix_s, &id) {
        return Err(TokenError::BadSignature);
    }
    if now_unix_s >= expires_at_unix_s {
        return Err(TokenError::Expired { expires_at_unix_s });
    }
    Ok(VerifiedToken {
        purpose,
        id,
        expires_at_unix_s,
    })
}

/// The id a token carries in the clear, without checking it: how a device
/// knows whether a token it is given again is the one it enrolled with.
pub fn token_id(token: &str) -> Option<[u8; TOKEN_ID_BYTES]> {
    parse(token).ok().map(|(_, _, id, _)| id)
}

/// The purpose a token says it has, without checking it: how the CLI
/// tells a manage token (list and kick from outside) from a login token.
pub fn token_purpose(token: &str) -> Option<Purpose> {
    parse(token).ok().map(|(purpose, _, _, _)| purpose)
}

type Parts = (Purpose, u64, [u8; TOKEN_ID_BYTES], blake3::Hash);

fn parse(token: &str) -> Result<Parts, TokenError> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.first() == Some(&RETIRED_FORMAT) {
        return Err(TokenError::AccountTokenRetired);
    }
    let [FORMAT, purpose, expiry, id, mac] = parts[..] else {
        return Err(TokenError::Malformed);
    };
    let purpose = Purpose::parse(purpose).ok_or(TokenError::Malformed)?;
    if expiry.is_empty() || expiry.len() > 20 || !expiry.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TokenError::Malformed);
    }
    let expires_at_unix_s: u64 = expiry.parse().map_err(|_| TokenError::Malformed)?;
    let id = unhex::<TOKEN_ID_BYTES>(id).ok_or(TokenError::Malformed)?;
    let claimed = blake3::Hash::from_hex(mac).map_err(|_| TokenError::Malformed)?;
    Ok((purpose, expires_at_unix_s, id, claimed))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != N * 2 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> AccountId {
        AccountId::new("alice").unwrap()
    }

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let secret = Secret::from_bytes([7; 32]);
        let token = issue_login(&secret, &alice(), Purpose::Login, 1_000, [3; 16]);
        assert!(token.len() <= tandem_transport::limits::TOKEN_BYTES_MAX);
        assert!(token.starts_with("lt2.login.1000.0303"), "{token}");
        assert_eq!(
            verify_login(&secret, &alice(), &token, 999),
            Ok(VerifiedToken {
                purpose: Purpose::Login,
                id: [3; 16],
                expires_at_unix_s: 1_000
            })
        );
        assert_eq!(
            verify_login(&secret, &alice(), &token, 1_000),
            Err(TokenError::Expired {
                expires_at_unix_s: 1_000
            })
        );
        assert_eq!(token_id(&token), Some([3; 16]));
        assert_eq!(token_purpose(&token), Some(Purpose::Login));
        // The largest expiry still fits the limit.
        let long = issue_login(&secret, &alice(), Purpose::Manage, u64::MAX, [0xff; 16]);
        assert!(long.len() <= tandem_transport::limits::TOKEN_BYTES_MAX);
        assert_eq!(
            verify_login(&secret, &alice(), &long, 0).unwrap().purpose,
            Purpose::Manage
        );
        assert_eq!(token_purpose(&long), Some(Purpose::Manage));
    }

    #[test]
    fn forged_foreign_and_altered_tokens_are_refused() {
        let secret = Secret::from_bytes([7; 32]);
        let token = issue_login(&secret, &alice(), Purpose::Login, 1_000, [3; 16]);
        let bob = AccountId::new("bob").unwrap();
        assert_eq!(
            verify_login(&secret, &bob, &token, 0),
            Err(TokenError::BadSignature)
        );
        let other = Secret::from_bytes([8; 32]);
        assert_eq!(
            verify_login(&other, &alice(), &token, 0),
            Err(TokenError::BadSignature)
        );
        // Moving the expiry, the id or the purpose breaks the MAC.
        for altered in [
            token.replacen("1000", "9000", 1),
            token.replacen(".0303", ".0403", 1),
            token.replacen("login", "manage", 1),
        ] {
            assert_eq!(
                verify_login(&secret, &alice(), &altered, 0),
                Err(TokenError::BadSignature),
                "{altered}"
            );
        }
        for bad in [
            "",
            "lt2",
            "lt2.login.5",
            "lt3.login.1000.00.00",
            "lt2.root.1000.00000000000000000000000000000000.00",
            "lt2.login..00000000000000000000000000000000.00",
            "lt2.login.+5.00000000000000000000000000000000.00",
            "lt2.login.99999999999999999999999.00000000000000000000000000000000.00",
            &token[..token.len() - 1],
            &format!("{token}.x"),
        ] {
            assert_eq!(
                verify_login(&secret, &alice(), bad, 0),
                Err(TokenError::Malformed),
                "{bad}"
            );
            assert_eq!(token_id(bad), None);
            assert_eq!(token_purpose(bad), None);
        }
    }

    #[test]
    fn protocol_1_account_tokens_are_refused_as_retired() {
        let secret = Secret::from_bytes([7; 32]);
        let old = format!("t1.9999999999.{}", "ab".repeat(32));
        let refused = verify_login(&secret, &alice(), &old, 0).unwrap_err();
        assert_eq!(refused, TokenError::AccountTokenRetired);
        assert!(refused.to_string().contains("login token"), "{refused}");
    }
}
