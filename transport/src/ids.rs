//! Identifiers shared by every crate that speaks the protocol.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Bytes in a [`DeviceId`].
pub const DEVICE_ID_BYTES: usize = 16;

/// Bytes allowed in an [`AccountId`].
pub const ACCOUNT_ID_BYTES_MAX: usize = 128;

/// A device's identity: 128 random bits, generated once when the device is
/// first opened and persisted from then on.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeviceId(pub [u8; DEVICE_ID_BYTES]);

impl DeviceId {
    /// The id as lowercase hex, 32 characters.
    pub fn to_hex(&self) -> String {
        let mut out = String::with_capacity(DEVICE_ID_BYTES * 2);
        for byte in self.0 {
            out.push(char::from_digit(u32::from(byte >> 4), 16).expect("nibble"));
            out.push(char::from_digit(u32::from(byte & 0xf), 16).expect("nibble"));
        }
        out
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({})", self.to_hex())
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Why a string is not a [`DeviceId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a device id is 32 hex characters, got {0:?}")]
pub struct ParseDeviceIdError(pub String);

impl FromStr for DeviceId {
    type Err = ParseDeviceIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseDeviceIdError(s.to_owned());
        if s.len() != DEVICE_ID_BYTES * 2 || !s.is_ascii() {
            return Err(bad());
        }
        let mut out = [0u8; DEVICE_ID_BYTES];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[i * 2..i * 2 + 2], 16).map_err(|_| bad())?;
        }
        Ok(DeviceId(out))
    }
}

/// An account (one user) id: non-empty UTF-8, at most
/// [`ACCOUNT_ID_BYTES_MAX`] bytes, no control characters.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccountId(String);

/// Why a string is not an [`AccountId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an account id is 1 to {ACCOUNT_ID_BYTES_MAX} bytes of text without control characters, got {0:?}")]
pub struct InvalidAccountId(pub String);

impl AccountId {
    /// Validates `id` and wraps it.
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidAccountId> {
        let id = id.into();
        if id.is_empty() || id.len() > ACCOUNT_ID_BYTES_MAX || id.chars().any(char::is_control) {
            return Err(InvalidAccountId(id));
        }
        Ok(AccountId(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AccountId {
    type Error = InvalidAccountId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        AccountId::new(value)
    }
}

impl From<AccountId> for String {
    fn from(value: AccountId) -> Self {
        value.0
    }
}

impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountId({:?})", self.0)
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The platform a device runs on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Platform {
    /// Android phones and tablets.
    Android,
    /// iPhone and iPad.
    Ios,
    /// A browser.
    Web,
    /// Windows desktops.
    Windows,
    /// macOS desktops.
    Macos,
    /// Linux desktops.
    Linux,
    /// Any other platform, named by the app.
    Custom(String),
}

impl Platform {
    /// The platform's lowercase name, as the CLI and JSON output spell it.
    pub fn as_str(&self) -> &str {
        match self {
            Platform::Android => "android",
            Platform::Ios => "ios",
            Platform::Web => "web",
            Platform::Windows => "windows",
            Platform::Macos => "macos",
            Platform::Linux => "linux",
            Platform::Custom(name) => name,
        }
    }
}

impl FromStr for Platform {
    type Err = std::convert::Infallible;

    /// Known names map to their variant; anything else is `Custom`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "android" => Platform::Android,
            "ios" => Platform::Ios,
            "web" => Platform::Web,
            "windows" => Platform::Windows,
            "macos" => Platform::Macos,
            "linux" => Platform::Linux,
            other => Platform::Custom(other.to_owned()),
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_id_hex_round_trips_and_rejects_bad_text() {
        let id = DeviceId([0xab; DEVICE_ID_BYTES]);
        assert_eq!(id.to_hex(), "ab".repeat(16));
        assert_eq!(id.to_hex().parse::<DeviceId>(), Ok(id));
        for bad in [
            "",
            "ab",
            &"zz".repeat(16),
            &"ab".repeat(17),
            &"é".repeat(16),
        ] {
            assert!(bad.parse::<DeviceId>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn account_id_limits() {
        assert!(AccountId::new("").is_err());
        assert!(AccountId::new("a\nb").is_err());
        assert!(AccountId::new("a".repeat(ACCOUNT_ID_BYTES_MAX)).is_ok());
        assert!(AccountId::new("a".repeat(ACCOUNT_ID_BYTES_MAX + 1)).is_err());
    }

    #[test]
    fn platform_names_round_trip() {
        for name in ["android", "ios", "web", "windows", "macos", "linux", "tv"] {
            assert_eq!(name.parse::<Platform>().unwrap().as_str(), name);
        }
    }
}
