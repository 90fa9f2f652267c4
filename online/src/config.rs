//! How a device reaches its relays: [`OnlineConfig`], the reconnect
//! [`Backoff`], and [`Rotation`], which of several relay addresses to try
//! next and how long to wait first.

use tandem_engine::limits::RELAYS_MAX;
use tandem_transport::{AddressError, RelayAddress};

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

/// How a device reaches its relays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnlineConfig {
    /// The relay addresses, at least one and at most [`RELAYS_MAX`]: each
    /// `host:port` for a relay's TCP listener, or `ws://host[:port][/path]`
    /// for its WebSocket listener (`tandem relay --listen-ws`). Several
    /// addresses are nodes serving one database: the device connects to
    /// the first, and on a lost connection or a failed attempt moves to
    /// the next (round robin) and resumes from its cursor; see
    /// [`Rotation`]. Parsed once, when the device starts; a list this
    /// build cannot use (empty, too long, or one address that does not
    /// parse: another scheme, `wss://`, TLS not being built) stops the
    /// device with [`StopReason::Address`](crate::StopReason::Address),
    /// naming the address, when it goes online. [`parse_relays`] checks a
    /// list beforehand; [`split_relays`] makes one of `host:port,host:port`.
    pub relays: Vec<String>,
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
    /// A config for one relay address that connects at once with the
    /// device's key alone, with the default backoff and connect timeout.
    pub fn new(relay: impl Into<String>) -> Self {
        OnlineConfig::with_relays([relay])
    }

    /// [`OnlineConfig::new`] with several relay addresses, tried in this
    /// order.
    pub fn with_relays<S: Into<String>>(relays: impl IntoIterator<Item = S>) -> Self {
        OnlineConfig {
            relays: relays.into_iter().map(Into::into).collect(),
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

/// Why a list of relay addresses cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RelaysError {
    /// No address at all.
    #[error("no relay address: give at least one host:port or ws://host:port")]
    Empty,
    /// More addresses than [`RELAYS_MAX`].
    #[error("{count} relay addresses, above the limit of {RELAYS_MAX}")]
    TooMany {
        /// How many were given.
        count: usize,
    },
    /// One address does not parse.
    #[error("relay address {} of {count} ({address:?}): {error}", .index + 1)]
    Address {
        /// Its place in the list, from 0.
        index: usize,
        /// How many addresses the list has.
        count: usize,
        /// The address as given.
        address: String,
        /// Why it does not parse.
        error: AddressError,
    },
}

/// Parses every address of a list, in order: the first one that does not
/// parse is the error, named with its place.
pub fn parse_relays<S: AsRef<str>>(relays: &[S]) -> Result<Vec<RelayAddress>, RelaysError> {
    if relays.is_empty() {
        return Err(RelaysError::Empty);
    }
    if relays.len() > RELAYS_MAX {
        return Err(RelaysError::TooMany {
            count: relays.len(),
        });
    }
    relays
        .iter()
        .enumerate()
        .map(|(index, text)| {
            RelayAddress::parse(text.as_ref()).map_err(|error| RelaysError::Address {
                index,
                count: relays.len(),
                address: text.as_ref().to_owned(),
                error,
            })
        })
        .collect()
}

/// The items of a comma-separated list (`host:port,host:port`, as the
/// CLI's `--relay` and the bindings take it), each trimmed. Empty items
/// stay, as empty addresses, so that [`parse_relays`] refuses
/// `a:1,,b:2` by name rather than guessing what was meant.
pub fn split_relays(text: &str) -> Vec<String> {
    text.split(',').map(|item| item.trim().to_owned()).collect()
}

/// Which of a device's relay addresses to try next, and how long to wait
/// first: pure arithmetic, the caller passes the randomness.
///
/// Every end of a connection or failed attempt moves to the next address,
/// round robin. While some address has not been tried since the last
/// login (or since the last full round of failures), the wait is short:
/// a random part of half the backoff's first step, so that the devices of
/// a node that died arrive at the others spread out, but none waits the
/// grown backoff before trying a node that may be up. A full round of
/// failures waits [`Backoff::delay_ms`], its exponent the number of full
/// rounds failed in a row: with one address, every failure is a full round
/// and the waits are exactly the backoff's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// Addresses in the list, at least one.
    count: usize,
    /// The address to try next.
    current: usize,
    /// Failures since the last login or the last full round.
    round_failures: usize,
    /// Full rounds failed since the last login.
    rounds: u32,
    /// Failed attempts in a row since the last login.
    failures: u32,
}

impl Rotation {
    /// A rotation over `count` addresses starting at the first.
    ///
    /// # Panics
    ///
    /// If `count` is 0: a device starts only with a parsed, non-empty list.
    pub fn new(count: usize) -> Rotation {
        assert!(count > 0, "a rotation needs at least one address");
        Rotation {
            count,
            current: 0,
            round_failures: 0,
            rounds: 0,
            failures: 0,
        }
    }

    /// The address to try next, from 0.
    pub fn current(&self) -> usize {
        self.current
    }

    /// Failed attempts in a row since the last login (the last one
    /// included).
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// A connection logged in: the counts start over and the device stays
    /// on this address while the connection lives.
    pub fn logged_in(&mut self) {
        self.round_failures = 0;
        self.rounds = 0;
        self.failures = 0;
    }

    /// The app asked to connect again (went online, a new login token):
    /// the counts start over, the next attempt is at the current address.
    pub fn restart(&mut self) {
        self.logged_in();
    }

    /// A connection ended or an attempt failed at the current address:
    /// moves to the next one and returns how long to wait first, in ms.
    pub fn failed(&mut self, backoff: &Backoff, random: u64) -> u64 {
        self.failures = self.failures.saturating_add(1);
        self.round_failures += 1;
        self.current = (self.current + 1) % self.count;
        if self.round_failures < self.count {
            // Another address has not been tried since the last success.
            let quick_max = backoff.initial_ms.min(backoff.max_ms) / 2;
            return random % (quick_max + 1);
        }
        self.round_failures = 0;
        let delay = backoff.delay_ms(self.rounds, random);
        self.rounds = self.rounds.saturating_add(1);
        delay
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

    const FAST: Backoff = Backoff {
        initial_ms: 100,
        max_ms: 1_000,
    };

    /// The address each failure moves to, and the wait, for a run of
    /// failures with the given randomness.
    fn run(rotation: &mut Rotation, random: u64, failures: usize) -> Vec<(usize, u64)> {
        (0..failures)
            .map(|_| {
                let delay = rotation.failed(&FAST, random);
                (rotation.current(), delay)
            })
            .collect()
    }

    #[test]
    fn one_address_backs_off_exactly_like_the_backoff() {
        for random in [0, 1, 77, u64::MAX] {
            let mut rotation = Rotation::new(1);
            for attempt in 0..40u32 {
                let delay = rotation.failed(&FAST, random);
                assert_eq!(rotation.current(), 0);
                assert_eq!(delay, FAST.delay_ms(attempt, random), "{attempt} {random}");
                assert_eq!(rotation.failures(), attempt + 1);
            }
        }
    }

    #[test]
    fn untried_addresses_come_quickly_then_a_full_round_backs_off() {
        let mut rotation = Rotation::new(3);
        assert_eq!(rotation.current(), 0);
        // random 0: the quick waits are 0, the backoff its lower half.
        assert_eq!(
            run(&mut rotation, 0, 9),
            vec![
                (1, 0),
                (2, 0),
                (0, 50),
                (1, 0),
                (2, 0),
                (0, 100),
                (1, 0),
                (2, 0),
                (0, 200),
            ]
        );
        assert_eq!(rotation.failures(), 9);
        // The quick wait is at most half the first step, whatever the
        // randomness; a full round's at least half the grown ceiling.
        let mut rotation = Rotation::new(2);
        for round in 0..20u32 {
            for random in [1, 49, 50, 51, u64::MAX] {
                let mut probe = rotation.clone();
                assert!(probe.failed(&FAST, random) <= 50);
            }
            assert!(rotation.failed(&FAST, u64::MAX) <= 50);
            let ceiling = (100u64 << round.min(20)).min(1_000);
            let full = rotation.failed(&FAST, 12_345);
            assert!(full >= ceiling / 2 && full <= ceiling, "{round} {full}");
        }
    }

    #[test]
    fn a_login_starts_the_counts_over_and_the_next_loss_moves_on() {
        let mut rotation = Rotation::new(2);
        run(&mut rotation, 0, 6);
        assert_eq!(rotation.current(), 0);
        assert_eq!(rotation.failures(), 6);
        rotation.logged_in();
        assert_eq!(rotation.failures(), 0);
        assert_eq!(rotation.current(), 0, "a login stays where it is");
        // The connection is lost: the other address at once, then the
        // first step of the backoff, not the grown one.
        assert_eq!(run(&mut rotation, 0, 2), vec![(1, 0), (0, 50)]);
        // Going online again (restart) also starts over, in place.
        run(&mut rotation, 0, 5);
        rotation.restart();
        let current = rotation.current();
        assert_eq!(rotation.failed(&FAST, 0), 0);
        assert_eq!(rotation.current(), (current + 1) % 2);
        assert_eq!(rotation.failed(&FAST, 0), 50);
    }

    #[test]
    fn rotation_edges_zero_backoff_and_saturated_counts() {
        let zero = Backoff {
            initial_ms: 0,
            max_ms: 0,
        };
        let mut rotation = Rotation::new(RELAYS_MAX);
        for _ in 0..RELAYS_MAX * 3 {
            assert_eq!(rotation.failed(&zero, u64::MAX), 0);
        }
        // Counts saturate instead of overflowing.
        let mut rotation = Rotation {
            failures: u32::MAX,
            rounds: u32::MAX,
            ..Rotation::new(1)
        };
        let delay = rotation.failed(&FAST, 0);
        assert_eq!(delay, 500);
        assert_eq!(rotation.failures(), u32::MAX);
    }

    #[test]
    fn relay_lists_parse_every_address_or_name_the_bad_one() {
        let parsed = parse_relays(&split_relays(
            " 127.0.0.1:7700 , ws://relay.example/tandem,h:1",
        ))
        .unwrap();
        assert_eq!(
            parsed.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["127.0.0.1:7700", "ws://relay.example:80/tandem", "h:1"]
        );
        assert_eq!(split_relays("a:1"), ["a:1"]);
        // Empty items are refused by place, not skipped.
        for (text, index) in [
            ("a:1,,b:2", 1),
            (",a:1", 0),
            ("a:1,", 1),
            ("", 0),
            (" , ", 0),
        ] {
            match parse_relays(&split_relays(text)) {
                Err(RelaysError::Address {
                    index: at,
                    error: AddressError::Empty,
                    ..
                }) => assert_eq!(at, index, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
        // One bad address among good ones: named, with its place.
        let error = parse_relays(&["a:1", "wss://b:443", "c:3"]).unwrap_err();
        assert_eq!(
            error,
            RelaysError::Address {
                index: 1,
                count: 3,
                address: "wss://b:443".into(),
                error: AddressError::TlsNotSupported,
            }
        );
        assert!(
            error
                .to_string()
                .contains("relay address 2 of 3 (\"wss://b:443\")"),
            "{error}"
        );
        assert_eq!(parse_relays::<String>(&[]), Err(RelaysError::Empty));
        // At, and just above, the limit.
        let at: Vec<String> = (1..=RELAYS_MAX).map(|p| format!("h:{p}")).collect();
        assert_eq!(parse_relays(&at).unwrap().len(), RELAYS_MAX);
        let above: Vec<String> = (1..=RELAYS_MAX + 1).map(|p| format!("h:{p}")).collect();
        assert_eq!(
            parse_relays(&above),
            Err(RelaysError::TooMany {
                count: RELAYS_MAX + 1
            })
        );
    }
}
