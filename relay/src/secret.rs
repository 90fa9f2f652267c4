//! The relay's secret: 32 random bytes in a file only its owner can read,
//! the key of every login token's MAC and of the operator's admin proof.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Bytes in a [`Secret`].
pub const SECRET_BYTES: usize = 32;

/// The key tokens are signed with. Its `Debug` prints no key material.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; SECRET_BYTES]);

impl Secret {
    /// A secret from known bytes (tests, or a key kept elsewhere).
    pub fn from_bytes(bytes: [u8; SECRET_BYTES]) -> Self {
        Secret(bytes)
    }

    /// A fresh secret from the operating system's random source.
    pub fn generate() -> io::Result<Self> {
        let mut bytes = [0u8; SECRET_BYTES];
        getrandom::fill(&mut bytes).map_err(io::Error::other)?;
        Ok(Secret(bytes))
    }

    pub(crate) fn key(&self) -> &[u8; SECRET_BYTES] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Why the secret file could not be loaded or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// Reading, creating or writing the file failed.
    #[error("secret file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: io::Error,
    },
    /// The file exists but does not hold exactly [`SECRET_BYTES`] bytes
    /// (perhaps a write was cut short); delete it to make a new secret,
    /// which invalidates every token issued so far.
    #[error("secret file {path} holds {bytes} bytes, expected {SECRET_BYTES}")]
    WrongLength {
        /// The file.
        path: PathBuf,
        /// Its length.
        bytes: usize,
    },
    /// Group or others may read or write the file; anyone who reads it can
    /// forge tokens. Fix with `chmod 600`.
    #[error(
        "secret file {path} has mode {mode:o}; it must be readable by its owner only (chmod 600)"
    )]
    InsecurePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// Loads the secret at `path`, creating it (random, mode 0600) if missing.
pub fn load_or_create(path: &Path) -> Result<Secret, SecretError> {
    let io_err = |source| SecretError::Io {
        path: path.to_owned(),
        source,
    };
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            let secret = Secret::generate().map_err(io_err)?;
            file.write_all(&secret.0).map_err(io_err)?;
            file.sync_all().map_err(io_err)?;
            Ok(secret)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => load(path),
        Err(e) => Err(io_err(e)),
    }
}

fn load(path: &Path) -> Result<Secret, SecretError> {
    let io_err = |source| SecretError::Io {
        path: path.to_owned(),
        source,
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(io_err)?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(SecretError::InsecurePermissions {
                path: path.to_owned(),
                mode,
            });
        }
    }
    let bytes = std::fs::read(path).map_err(io_err)?;
    let len = bytes.len();
    let key = <[u8; SECRET_BYTES]>::try_from(bytes).map_err(|_| SecretError::WrongLength {
        path: path.to_owned(),
        bytes: len,
    })?;
    Ok(Secret(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_with_owner_only_mode_then_loads_the_same_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        let first = load_or_create(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert_eq!(load_or_create(&path).unwrap(), first);
        assert_ne!(load_or_create(&dir.path().join("other")).unwrap(), first);
        assert_eq!(format!("{first:?}"), "Secret(..)");
    }

    #[test]
    fn refuses_a_short_file_and_loose_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        for (len, ok) in [
            (SECRET_BYTES - 1, false),
            (SECRET_BYTES, true),
            (SECRET_BYTES + 1, false),
        ] {
            std::fs::write(&path, vec![1; len]).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            }
            let got = load_or_create(&path);
            assert_eq!(got.is_ok(), ok, "{len}: {got:?}");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(
                load_or_create(&path),
                Err(SecretError::InsecurePermissions { mode: 0o644, .. })
            ));
        }
    }
}
