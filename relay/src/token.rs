//! Account tokens: `t1.<expiry>.<mac>`, where the MAC is a keyed blake3 hash
//! (key: the relay's [`Secret`]) over the account id and the expiry.
//!
//! A token proves "the holder may use this account until this time". It
//! names no device: revoking one device's use of a token is the relay
//! store's job (it remembers the pair). Issuing twice for the same account
//! and expiry yields the same token, so a kicked device needs a token with
//! another expiry.

use tandem_transport::AccountId;

use crate::secret::Secret;

/// The prefix of this token format.
const FORMAT: &str = "t1";
/// Domain separation, so this MAC can never be confused with another use of
/// the same key.
const CONTEXT: &[u8] = b"tandem account token v1\0";

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not of the form `t1.<expiry>.<64 hex digits>`.
    #[error("the token is malformed")]
    Malformed,
    /// The MAC does not match: forged, damaged, made with another secret, or
    /// issued for another account.
    #[error("the token is not valid for this account")]
    BadSignature,
    /// Genuine, but its expiry has passed.
    #[error("the token expired at {expires_at_unix_s} (unix seconds)")]
    Expired {
        /// When it expired.
        expires_at_unix_s: u64,
    },
}

fn mac(secret: &Secret, account: &AccountId, expires_at_unix_s: u64) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new_keyed(secret.key());
    hasher.update(CONTEXT);
    hasher.update(&(account.as_str().len() as u64).to_be_bytes());
    hasher.update(account.as_str().as_bytes());
    hasher.update(&expires_at_unix_s.to_be_bytes());
    hasher.finalize()
}

/// A token for `account`, valid until `expires_at_unix_s`.
pub fn issue(secret: &Secret, account: &AccountId, expires_at_unix_s: u64) -> String {
    format!(
        "{FORMAT}.{expires_at_unix_s}.{}",
        mac(secret, account, expires_at_unix_s).to_hex()
    )
}

/// Checks that `token` was issued by `secret` for `account` and has not
/// expired at `now_unix_s`.
pub fn verify(
    secret: &Secret,
    account: &AccountId,
    token: &str,
    now_unix_s: u64,
) -> Result<(), TokenError> {
    let mut parts = token.split('.');
    let (Some(FORMAT), Some(expiry), Some(hex), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    if expiry.is_empty() || !expiry.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TokenError::Malformed);
    }
    let expires_at_unix_s: u64 = expiry.parse().map_err(|_| TokenError::Malformed)?;
    let claimed = blake3::Hash::from_hex(hex).map_err(|_| TokenError::Malformed)?;
    // blake3::Hash compares in constant time.
    if claimed != mac(secret, account, expires_at_unix_s) {
        return Err(TokenError::BadSignature);
    }
    if now_unix_s >= expires_at_unix_s {
        return Err(TokenError::Expired { expires_at_unix_s });
    }
    Ok(())
}

/// The hash the relay store keeps for a token (never the token itself).
pub fn hash(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
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
        let token = issue(&secret, &alice(), 1_000);
        assert!(token.len() <= tandem_transport::limits::TOKEN_BYTES_MAX);
        assert_eq!(verify(&secret, &alice(), &token, 999), Ok(()));
        assert_eq!(
            verify(&secret, &alice(), &token, 1_000),
            Err(TokenError::Expired {
                expires_at_unix_s: 1_000
            })
        );
    }

    #[test]
    fn forged_and_foreign_tokens_are_refused() {
        let secret = Secret::from_bytes([7; 32]);
        let token = issue(&secret, &alice(), 1_000);
        let bob = AccountId::new("bob").unwrap();
        assert_eq!(
            verify(&secret, &bob, &token, 0),
            Err(TokenError::BadSignature)
        );
        let other = Secret::from_bytes([8; 32]);
        assert_eq!(
            verify(&other, &alice(), &token, 0),
            Err(TokenError::BadSignature)
        );
        // Moving the expiry breaks the MAC.
        let extended = token.replacen("1000", "9000", 1);
        assert_eq!(
            verify(&secret, &alice(), &extended, 0),
            Err(TokenError::BadSignature)
        );
        for bad in [
            "",
            "t1",
            "t1.5",
            "t2.1000.00",
            "t1..ab",
            "t1.+5.ab",
            &format!("{token}.x"),
        ] {
            assert_eq!(
                verify(&secret, &alice(), bad, 0),
                Err(TokenError::Malformed),
                "{bad}"
            );
        }
    }
}
