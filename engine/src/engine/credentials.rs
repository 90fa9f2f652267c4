//! The device's credentials: the relay addresses it uses, its enrollment as
//! the relay last confirmed it, the session config its key signs, and the
//! warning before the enrollment expires.

use tandem_storage::device::{Credentials as StoredCredentials, DeviceEnrollment as Stored};
use tandem_storage::StoreError;
use tandem_transport::frame::Enrollment;
use tandem_transport::ClientConfig;

use super::Engine;
use crate::event::ConnectionEvent;
use crate::limits::{CREDENTIALS_EXPIRING_WARNING_MS, RELAYS_MAX, RELAY_ADDRESS_BYTES_MAX};

pub use tandem_storage::device::{Credentials, DeviceEnrollment};

/// Why credentials could not be recorded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// More relay addresses than [`RELAYS_MAX`].
    #[error("{count} relay addresses, the limit is {RELAYS_MAX}")]
    TooManyRelays {
        /// How many were given.
        count: usize,
    },
    /// An address that is empty, above [`RELAY_ADDRESS_BYTES_MAX`] bytes, or
    /// holds whitespace.
    #[error("{0:?} is not a relay address (host:port, no spaces)")]
    BadRelay(String),
    /// The store failed; nothing was recorded.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Engine {
    /// The session config this device logs in with: its identity, its key,
    /// its relay cursor, and `login_token` if given (to enroll, enroll
    /// again, or manage the account's devices). The transport checks the
    /// token's length.
    pub fn session_config(&self, login_token: Option<String>) -> Result<ClientConfig, StoreError> {
        let mut config = ClientConfig::new(
            self.device.account.clone(),
            self.device.device_id,
            self.device.name.clone(),
            self.device.platform.clone(),
            self.key.clone(),
        );
        config.login_token = login_token;
        config.resume_cursor = self.relay_cursor()?;
        Ok(config)
    }

    /// What the device keeps of its credentials: its relay addresses and
    /// its enrollment as the relay last confirmed it.
    pub fn credentials(&self) -> Result<StoredCredentials, StoreError> {
        self.store.credentials()
    }

    /// Replaces the relay addresses the device uses (`host:port` each, in
    /// order of preference, at most [`RELAYS_MAX`]).
    pub fn set_relays(&mut self, relays: &[String]) -> Result<(), CredentialsError> {
        if relays.len() > RELAYS_MAX {
            return Err(CredentialsError::TooManyRelays {
                count: relays.len(),
            });
        }
        if let Some(bad) = relays.iter().find(|r| {
            r.is_empty() || r.len() > RELAY_ADDRESS_BYTES_MAX || r.chars().any(char::is_whitespace)
        }) {
            return Err(CredentialsError::BadRelay(bad.clone()));
        }
        let tx = self.store.transaction()?;
        tx.set_relays(relays)?;
        tx.commit()?;
        Ok(())
    }

    /// Records the enrollment the relay confirmed at a login.
    pub fn record_enrollment(&mut self, enrollment: &Enrollment) -> Result<(), StoreError> {
        self.write_enrollment(&Stored {
            token_id: enrollment.token_id,
            enrolled_at_ms: enrollment.enrolled_at_ms,
            expires_at_ms: enrollment.expires_at_ms,
            active: true,
        })
    }

    /// Records that the relay renewed the enrollment until `expires_at_ms`.
    /// Nothing happens without an active enrollment.
    pub fn record_renewal(&mut self, expires_at_ms: u64) -> Result<(), StoreError> {
        match self.store.credentials()?.enrollment {
            Some(e) if e.active => self.write_enrollment(&Stored {
                expires_at_ms: e.expires_at_ms.max(expires_at_ms),
                ..e
            }),
            _ => Ok(()),
        }
    }

    /// Records that the enrollment no longer logs the device in (it was
    /// kicked, logged out, expired…): a login token is needed again.
    pub fn record_enrollment_ended(&mut self) -> Result<(), StoreError> {
        match self.store.credentials()?.enrollment {
            Some(e) if e.active => self.write_enrollment(&Stored { active: false, ..e }),
            _ => Ok(()),
        }
    }

    /// Whether `token`, a login token given to this device, is the one its
    /// active enrollment was made with (`token_id` is its id, read from the
    /// token by whoever knows the format): then presenting it again adds
    /// nothing, and the device logs in with its key alone.
    pub fn is_enrolled_with(&self, token_id: [u8; 16]) -> Result<bool, StoreError> {
        Ok(self
            .store
            .credentials()?
            .enrollment
            .is_some_and(|e| e.active && e.token_id == token_id))
    }

    /// Journals a [`ConnectionEvent::CredentialsExpiring`] when the active
    /// enrollment expires within [`CREDENTIALS_EXPIRING_WARNING_MS`] of
    /// `now_ms` (the caller's clock: the engine reads none). Once per
    /// expiry: a renewal moves the expiry, and a later warning is a new
    /// event. Returns the event's sequence number when one was journaled.
    pub fn check_credentials(&mut self, now_ms: i64) -> Result<Option<i64>, StoreError> {
        let Some(e) = self.store.credentials()?.enrollment.filter(|e| e.active) else {
            return Ok(None);
        };
        let expires_at_ms = i64::try_from(e.expires_at_ms).unwrap_or(i64::MAX);
        if now_ms < expires_at_ms.saturating_sub(CREDENTIALS_EXPIRING_WARNING_MS) {
            return Ok(None);
        }
        let me = self.device.device_id;
        // Journaled once per expiry: the event's identity is the expiry,
        // not the time of the check.
        self.record_connection_event_once(
            now_ms,
            me,
            ConnectionEvent::CredentialsExpiring { expires_at_ms },
        )
    }

    /// Fills `out` from the engine's entropy: for ids the shell around it
    /// makes (payload ids), so that a simulation replays them too.
    pub fn fill_random(&mut self, out: &mut [u8]) {
        self.entropy.fill(out);
    }

    fn write_enrollment(&mut self, enrollment: &Stored) -> Result<(), StoreError> {
        let tx = self.store.transaction()?;
        tx.record_enrollment(enrollment)?;
        tx.commit()
    }
}
