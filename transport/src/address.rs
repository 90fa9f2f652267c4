//! Where a relay listens, as a device names it: [`RelayAddress`].
//!
//! Two forms, the way a user writes them:
//!
//! - `host:port` (or `tcp://host:port`): the relay's TCP listener, frames
//!   with a length prefix.
//! - `ws://host[:port][/path]`: the relay's WebSocket listener (`tandem
//!   relay --listen-ws`), one binary message per frame; the port defaults
//!   to 80 and the path to `/`.
//!
//! `wss://` (WebSocket over TLS) is refused with its own error: TLS is not
//! built. A TLS-terminating proxy in front of the relay's WebSocket
//! listener serves `wss://` clients; a device of this build connects to
//! the relay (or to a proxy that speaks plain `ws://`) directly.
//!
//! Parsing is pure (no name resolution); the drivers connect.

use std::fmt;
use std::str::FromStr;

/// Bytes in a relay address, at most: what a device keeps in its file
/// (the engine's limit is this one), and a bound on what a command line
/// can make a device parse. A DNS name is at most 253 bytes.
pub const RELAY_ADDRESS_BYTES_MAX: usize = 255;

/// The port a `ws://` address without one means (RFC 6455).
pub const WEBSOCKET_PORT_DEFAULT: u16 = 80;

/// A relay's address, parsed and checked: which link to use and where.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RelayAddress {
    /// The TCP listener (`host:port`).
    Tcp {
        /// A name or an IP address (an IPv6 one without its brackets).
        host: String,
        /// The port.
        port: u16,
    },
    /// The WebSocket listener (`ws://host[:port][/path]`).
    WebSocket {
        /// A name or an IP address (an IPv6 one without its brackets).
        host: String,
        /// The port (80 when the address gives none).
        port: u16,
        /// The request path, starting with `/` (`/` when the address gives
        /// none), query included. The relay serves any path, so a proxy
        /// may route by it.
        path: String,
    },
}

/// Why a text is not a relay address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// Nothing was given.
    #[error("the relay address is empty: give host:port or ws://host:port")]
    Empty,
    /// Longer than [`RELAY_ADDRESS_BYTES_MAX`].
    #[error("the relay address is {bytes} bytes, above the limit of {RELAY_ADDRESS_BYTES_MAX}")]
    TooLong {
        /// Its length.
        bytes: usize,
    },
    /// A scheme this build does not speak.
    #[error(
        "unknown scheme {scheme:?} in the relay address: give host:port (TCP) or ws://host:port (WebSocket)"
    )]
    UnknownScheme {
        /// The scheme as given.
        scheme: String,
    },
    /// `wss://`: WebSocket over TLS is not built.
    #[error(
        "wss:// (WebSocket over TLS) is not supported by this build: connect with ws:// to the relay, or to a TLS-terminating proxy's plain side"
    )]
    TlsNotSupported,
    /// The host part is missing or not a host.
    #[error("the relay address {address:?} has no valid host")]
    Host {
        /// The address as given.
        address: String,
    },
    /// A TCP address without a port, or a port that is not 1..=65535.
    #[error("the relay address {address:?} needs a port from 1 to 65535 (host:port)")]
    Port {
        /// The address as given.
        address: String,
    },
    /// Credentials (`user@`), a fragment (`#…`), spaces or control
    /// characters, which no relay address has.
    #[error("the relay address {address:?} has {what}, which a relay address cannot have")]
    Unexpected {
        /// The address as given.
        address: String,
        /// What was found.
        what: &'static str,
    },
}

impl RelayAddress {
    /// Parses `text` (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<RelayAddress, AddressError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(AddressError::Empty);
        }
        if text.len() > RELAY_ADDRESS_BYTES_MAX {
            return Err(AddressError::TooLong { bytes: text.len() });
        }
        let unexpected = |what| AddressError::Unexpected {
            address: text.to_owned(),
            what,
        };
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(unexpected("spaces or control characters"));
        }
        if text.contains('#') {
            return Err(unexpected("a fragment (#)"));
        }
        let (scheme, rest) = match text.split_once("://") {
            Some((scheme, rest)) => (Some(scheme.to_ascii_lowercase()), rest),
            None => (None, text),
        };
        match scheme.as_deref() {
            None | Some("tcp") => {
                if rest.len() > authority_len(rest) {
                    return Err(unexpected("a path after host:port (only ws:// has one)"));
                }
                let (host, port) = split_authority(text, rest, None)?;
                Ok(RelayAddress::Tcp { host, port })
            }
            Some("ws") => {
                let end = authority_len(rest);
                let (host, port) =
                    split_authority(text, &rest[..end], Some(WEBSOCKET_PORT_DEFAULT))?;
                let path = match &rest[end..] {
                    "" => "/".to_owned(),
                    // A query without a path asks for the root.
                    query if query.starts_with('?') => format!("/{query}"),
                    path => path.to_owned(),
                };
                Ok(RelayAddress::WebSocket { host, port, path })
            }
            Some("wss") => Err(AddressError::TlsNotSupported),
            Some(other) => Err(AddressError::UnknownScheme {
                scheme: other.to_owned(),
            }),
        }
    }

    /// The host to connect to.
    pub fn host(&self) -> &str {
        match self {
            RelayAddress::Tcp { host, .. } | RelayAddress::WebSocket { host, .. } => host,
        }
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        match self {
            RelayAddress::Tcp { port, .. } | RelayAddress::WebSocket { port, .. } => *port,
        }
    }

    /// Whether this is the WebSocket listener.
    pub fn is_websocket(&self) -> bool {
        matches!(self, RelayAddress::WebSocket { .. })
    }
}

impl FromStr for RelayAddress {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        RelayAddress::parse(text)
    }
}

impl fmt::Display for RelayAddress {
    /// The canonical text: `host:port` for TCP, `ws://host:port/path` for
    /// WebSocket; it parses back to the same address.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = self.host();
        let bracketed = host.contains(':');
        let (open, close) = if bracketed { ("[", "]") } else { ("", "") };
        match self {
            RelayAddress::Tcp { port, .. } => write!(f, "{open}{host}{close}:{port}"),
            RelayAddress::WebSocket { port, path, .. } => {
                write!(f, "ws://{open}{host}{close}:{port}{path}")
            }
        }
    }
}

/// Bytes of `rest` up to the path or query.
fn authority_len(rest: &str) -> usize {
    rest.find(['/', '?']).unwrap_or(rest.len())
}

/// `host:port` or `[v6]:port` (the port optional when a default is given).
fn split_authority(
    address: &str,
    authority: &str,
    default_port: Option<u16>,
) -> Result<(String, u16), AddressError> {
    let host_error = || AddressError::Host {
        address: address.to_owned(),
    };
    let port_error = || AddressError::Port {
        address: address.to_owned(),
    };
    if authority.contains('@') {
        return Err(AddressError::Unexpected {
            address: address.to_owned(),
            what: "credentials (user@)",
        });
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(host_error)?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(host_error());
        }
        match after {
            "" => (host, None),
            port => (host, Some(port.strip_prefix(':').ok_or_else(port_error)?)),
        }
    } else {
        match authority.rsplit_once(':') {
            // `::1:7700` is ambiguous: IPv6 hosts take brackets.
            Some((host, _)) if host.contains(':') => return Err(host_error()),
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let valid_name = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
    if !valid_name {
        return Err(host_error());
    }
    let port = match port {
        Some(text) => match text.parse::<u16>() {
            // Only digits: `u16::from_str` takes a leading `+`.
            Ok(port) if port > 0 && text.bytes().all(|b| b.is_ascii_digit()) => port,
            _ => return Err(port_error()),
        },
        None => default_port.ok_or_else(port_error)?,
    };
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> RelayAddress {
        RelayAddress::Tcp {
            host: host.into(),
            port,
        }
    }

    fn ws(host: &str, port: u16, path: &str) -> RelayAddress {
        RelayAddress::WebSocket {
            host: host.into(),
            port,
            path: path.into(),
        }
    }

    #[test]
    fn the_forms_a_user_writes() {
        let cases = [
            ("127.0.0.1:7700", tcp("127.0.0.1", 7700)),
            ("  relay.example:1 ", tcp("relay.example", 1)),
            ("tcp://relay:65535", tcp("relay", 65535)),
            ("TCP://relay:7700", tcp("relay", 7700)),
            ("[::1]:7700", tcp("::1", 7700)),
            ("ws://relay:7701", ws("relay", 7701, "/")),
            ("ws://relay", ws("relay", 80, "/")),
            ("WS://relay:8080/tandem", ws("relay", 8080, "/tandem")),
            ("ws://relay/a/b?x=1", ws("relay", 80, "/a/b?x=1")),
            ("ws://relay:9?x", ws("relay", 9, "/?x")),
            ("ws://[::1]:7701/", ws("::1", 7701, "/")),
            ("ws://[::1]", ws("::1", 80, "/")),
        ];
        for (text, want) in cases {
            let got = RelayAddress::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(got, want, "{text}");
            // The canonical text parses back to the same address.
            assert_eq!(RelayAddress::parse(&got.to_string()).unwrap(), got);
        }
        assert_eq!(ws("::1", 80, "/x").to_string(), "ws://[::1]:80/x");
        assert_eq!(tcp("relay", 7700).to_string(), "relay:7700");
    }

    #[test]
    fn what_is_refused_and_why() {
        use AddressError as E;
        let long = format!("ws://relay/{}", "a".repeat(RELAY_ADDRESS_BYTES_MAX));
        type Check = fn(&AddressError) -> bool;
        let cases: Vec<(&str, Check)> = vec![
            ("", |e| *e == E::Empty),
            ("   ", |e| *e == E::Empty),
            (&long, |e| matches!(e, E::TooLong { .. })),
            ("wss://relay:443", |e| *e == E::TlsNotSupported),
            ("WSS://relay", |e| *e == E::TlsNotSupported),
            ("http://relay:80", |e| {
                *e == E::UnknownScheme {
                    scheme: "http".into(),
                }
            }),
            ("quic://relay:1", |e| matches!(e, E::UnknownScheme { .. })),
            ("relay", |e| matches!(e, E::Port { .. })),
            ("relay:", |e| matches!(e, E::Port { .. })),
            ("relay:0", |e| matches!(e, E::Port { .. })),
            ("relay:65536", |e| matches!(e, E::Port { .. })),
            ("relay:+80", |e| matches!(e, E::Port { .. })),
            ("ws://relay:x", |e| matches!(e, E::Port { .. })),
            ("[::1]", |e| matches!(e, E::Port { .. })),
            ("[::1]x", |e| matches!(e, E::Port { .. })),
            (":7700", |e| matches!(e, E::Host { .. })),
            ("ws://:7700", |e| matches!(e, E::Host { .. })),
            ("::1:7700", |e| matches!(e, E::Host { .. })),
            ("[nothost]:1", |e| matches!(e, E::Host { .. })),
            ("re$lay:1", |e| matches!(e, E::Host { .. })),
            ("relay:7700/path", |e| matches!(e, E::Unexpected { .. })),
            ("ws://user@relay:1", |e| matches!(e, E::Unexpected { .. })),
            ("ws://relay/#top", |e| matches!(e, E::Unexpected { .. })),
            ("ws://relay/a b", |e| matches!(e, E::Unexpected { .. })),
        ];
        for (text, expected) in cases {
            match RelayAddress::parse(text) {
                Ok(address) => panic!("{text:?} parsed as {address:?}"),
                Err(e) => assert!(expected(&e), "{text:?}: {e:?}"),
            }
        }
        // The message names the way out.
        let tls = AddressError::TlsNotSupported.to_string();
        assert!(
            tls.contains("not supported") && tls.contains("proxy"),
            "{tls}"
        );
    }

    #[test]
    fn the_length_limit_below_at_above() {
        let prefix = "ws://relay/";
        for (bytes, ok) in [
            (RELAY_ADDRESS_BYTES_MAX - 1, true),
            (RELAY_ADDRESS_BYTES_MAX, true),
            (RELAY_ADDRESS_BYTES_MAX + 1, false),
        ] {
            let text = format!("{prefix}{}", "a".repeat(bytes - prefix.len()));
            assert_eq!(RelayAddress::parse(&text).is_ok(), ok, "{bytes}");
        }
    }
}
