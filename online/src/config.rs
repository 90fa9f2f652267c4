//! How a device reaches its relay: [`OnlineConfig`] and the reconnect
//! [`Backoff`].

/// Default for [`OnlineConfig::connect_timeout_ms`]: long enough for a slow
/// mobile network's handshake, short enough that an address that drops
/// packets does not hold a device for the kernel's two minutes of SYN
/// retries.
pub const CONNECT_TIMEOUT_MS_DEFAULT: u64 = 10_000;

/// How often the device thread checks, by its clock, whether the device's
/// enrollment expires soon (and journals `CredentialsExpiring` once if so).
pub const CREDENTIALS_CHECK_INTERVAL_MS: u64 = 3_600_000;

/// How long closing a connection (going offline, shutting down) may wait
/// for its last frames (a final acknowledgement) to be written before the
/// connection is dropped: a relay that stopped reading cannot hold a
/// device's shutdown.
pub const CLOSE_TIMEOUT_MS: u64 = 1_000;

/// How a device reaches its relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnlineConfig {
    /// The relay's address: `host:port` for its TCP listener, or
    /// `ws://host[:port][/path]` for its WebSocket listener (`tandem relay
    /// --listen-ws`). Parsed once, when the device starts; an address this
    /// build cannot reach (another scheme, `wss://`: TLS is not built)
    /// stops the device with
    /// [`StopReason::Address`](crate::StopReason::Address) when it goes
    /// online. [`RelayAddress::parse`](tandem_transport::RelayAddress::parse)
    /// checks one beforehand.
    pub relay: String,
    /// A login token from the app's auth service, for a device that is not
    /// enrolled yet (or was kicked): presented until a login succeeds,
    /// then forgotten; from then on the device logs in with its key alone.
    /// `None` for a device that is enrolled. See
    /// [`OnlineDevice::relogin`](crate::OnlineDevice::relogin) for a new one.
    pub login_token: Option<String>,
    /// Whether to connect at once; see
    /// [`OnlineDevice::set_online`](crate::OnlineDevice::set_online).
    pub start_online: bool,
    /// How long to wait before each reconnect attempt.
    pub backoff: Backoff,
    /// How long one connection attempt (name resolution, the TCP
    /// handshake and, for WebSocket, the upgrade) may take before it counts as failed and is retried
    /// after the backoff. 0 gives an attempt no time at all.
    pub connect_timeout_ms: u64,
}

impl OnlineConfig {
    /// A config that connects at once with the device's key alone, with
    /// the default backoff and connect timeout.
    pub fn new(relay: impl Into<String>) -> Self {
        OnlineConfig {
            relay: relay.into(),
            login_token: None,
            start_online: true,
            backoff: Backoff::default(),
            connect_timeout_ms: CONNECT_TIMEOUT_MS_DEFAULT,
        }
    }

    /// The same config, presenting `login_token` until a login succeeds.
    pub fn with_login_token(mut self, login_token: impl Into<String>) -> Self {
        self.login_token = Some(login_token.into());
        self
    }
}

/// Capped exponential backoff with jitter, as pure arithmetic: the caller
/// passes the randomness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The longest first wait, in ms; the ceiling doubles with every failed
    /// attempt.
    pub initial_ms: u64,
    /// The most the ceiling grows to, in ms.
    pub max_ms: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial_ms: 200,
            max_ms: 30_000,
        }
    }
}

impl Backoff {
    /// The wait before reconnect attempt `attempt` (0 for the first retry):
    /// `initial · 2^attempt`, capped at `max`, of which a random half is
    /// taken off ("equal jitter") so that devices that lost the relay
    /// together do not all come back at the same instant.
    pub fn delay_ms(&self, attempt: u32, random: u64) -> u64 {
        let ceiling = self
            .initial_ms
            .saturating_mul(1u64 << attempt.min(32))
            .min(self.max_ms);
        let half = ceiling / 2;
        half + random % (ceiling - half + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters_within_bounds() {
        let backoff = Backoff {
            initial_ms: 100,
            max_ms: 1_000,
        };
        for attempt in 0..40 {
            let ceiling = (100u64 << attempt.min(20)).min(1_000);
            for random in [0, 1, 77, u64::MAX] {
                let delay = backoff.delay_ms(attempt, random);
                assert!(
                    delay >= ceiling / 2 && delay <= ceiling,
                    "{attempt} {random} {delay}"
                );
            }
        }
        assert_eq!(backoff.delay_ms(0, 0), 50);
        assert_eq!(backoff.delay_ms(10, 0), 500);
    }

    #[test]
    fn backoff_at_the_edges_of_u64() {
        let huge = Backoff {
            initial_ms: u64::MAX,
            max_ms: u64::MAX,
        };
        // The ceiling saturates instead of overflowing, at any attempt.
        for attempt in [0, 1, 63, 64, u32::MAX] {
            let delay = huge.delay_ms(attempt, u64::MAX);
            assert!(delay >= u64::MAX / 2, "{attempt} {delay}");
        }
        let zero = Backoff {
            initial_ms: 0,
            max_ms: 0,
        };
        assert_eq!(zero.delay_ms(u32::MAX, u64::MAX), 0);
    }
}
