//! The operator's side of a running relay: the admin proof, and a small
//! client that sends admin requests over the relay's normal listener.
//!
//! Whoever holds the relay's secret file is its operator (that secret makes
//! every login token, too). An operator's tool sends `AdminHello`, gets a
//! fresh `Challenge`, and answers with a keyed blake3 MAC over it, keyed by
//! a key derived from the secret under its own context: no bearer secret
//! crosses the wire, and an answer is good for one challenge only.

use std::net::SocketAddr;
use std::time::Duration;

use tandem_transport::auth::ChallengeNonce;
use tandem_transport::codec::FrameDecoder;
use tandem_transport::driver::{read_frame, write_frame, ReadFrameError};
use tandem_transport::frame::{AdminReply, AdminRequest};
use tandem_transport::{ErrorCode, Frame, PROTOCOL_VERSION};
use tokio::net::TcpStream;

use crate::secret::Secret;

/// The context the admin key is derived under (blake3's `derive_key`): it
/// can never equal the token key or be confused with any other use of the
/// secret.
const ADMIN_KEY_CONTEXT: &str = "tandem 2026 relay admin proof key v2";
/// Domain separation of the proof itself.
const PROOF_CONTEXT: &[u8] = b"tandem admin proof v2\0";

/// How long [`AdminClient`] waits for the relay at each step.
pub const ADMIN_WAIT_MAX: Duration = Duration::from_secs(30);

/// The MAC an operator's tool answers `nonce` with.
pub fn admin_proof(secret: &Secret, nonce: &ChallengeNonce) -> [u8; 32] {
    let key = blake3::derive_key(ADMIN_KEY_CONTEXT, secret.key());
    let mut hasher = blake3::Hasher::new_keyed(&key);
    hasher.update(PROOF_CONTEXT);
    hasher.update(&PROTOCOL_VERSION.major.to_be_bytes());
    hasher.update(&nonce.0);
    *hasher.finalize().as_bytes()
}

/// Whether `mac` is the admin proof for `nonce` (compared in constant
/// time).
pub fn verify_admin_proof(secret: &Secret, nonce: &ChallengeNonce, mac: &[u8; 32]) -> bool {
    blake3::Hash::from(admin_proof(secret, nonce)) == blake3::Hash::from(*mac)
}

/// Why an admin request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminError {
    /// The relay could not be reached, or the connection broke.
    #[error("talking to the relay at {addr}: {source}")]
    Io {
        /// The relay.
        addr: SocketAddr,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The relay did not answer within [`ADMIN_WAIT_MAX`].
    #[error("the relay at {addr} did not answer within {ADMIN_WAIT_MAX:?}")]
    Timeout {
        /// The relay.
        addr: SocketAddr,
    },
    /// The relay refused: a wrong secret file (`bad_proof`), an unknown
    /// device (`not_found`), a removed account (`invalid_request`)…
    #[error("the relay refused: {code}: {text}")]
    Refused {
        /// The relay's code.
        code: ErrorCode,
        /// Its explanation.
        text: String,
    },
    /// The relay sent something an operator's connection does not expect.
    #[error("the relay broke the protocol: {0}")]
    Protocol(String),
}

/// An operator's connection to a running relay.
#[derive(Debug)]
pub struct AdminClient {
    addr: SocketAddr,
    stream: TcpStream,
    decoder: FrameDecoder,
}

impl AdminClient {
    /// Connects and proves knowledge of `secret`.
    pub async fn connect(addr: SocketAddr, secret: &Secret) -> Result<AdminClient, AdminError> {
        let io = |source| AdminError::Io { addr, source };
        let stream = within(addr, TcpStream::connect(addr)).await?.map_err(io)?;
        let mut client = AdminClient {
            addr,
            stream,
            decoder: FrameDecoder::new(),
        };
        client
            .send(&Frame::AdminHello {
                version: PROTOCOL_VERSION,
            })
            .await?;
        let nonce = match client.receive().await? {
            Frame::Challenge { nonce } => nonce,
            other => return Err(unexpected(&other)),
        };
        let mac = admin_proof(secret, &nonce);
        client.send(&Frame::AdminProof { mac }).await?;
        match client.receive().await? {
            Frame::AdminReady => Ok(client),
            other => Err(unexpected(&other)),
        }
    }

    /// Sends one request and waits for its answer.
    pub async fn request(&mut self, request: AdminRequest) -> Result<AdminReply, AdminError> {
        self.send(&Frame::Admin(request)).await?;
        loop {
            match self.receive().await? {
                Frame::AdminReply(reply) => return Ok(reply),
                Frame::Ping { nonce } => self.send(&Frame::Pong { nonce }).await?,
                other => return Err(unexpected(&other)),
            }
        }
    }

    async fn send(&mut self, frame: &Frame) -> Result<(), AdminError> {
        let addr = self.addr;
        within(addr, write_frame(&mut self.stream, frame))
            .await?
            .map_err(|source| AdminError::Io { addr, source })
    }

    async fn receive(&mut self) -> Result<Frame, AdminError> {
        let addr = self.addr;
        match within(addr, read_frame(&mut self.stream, &mut self.decoder)).await? {
            Ok(Some(frame)) => Ok(frame),
            Ok(None) => Err(AdminError::Io {
                addr,
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the relay closed the connection",
                ),
            }),
            Err(ReadFrameError::Io(source)) => Err(AdminError::Io { addr, source }),
            Err(other) => Err(AdminError::Protocol(other.to_string())),
        }
    }
}

async fn within<T>(
    addr: SocketAddr,
    future: impl std::future::Future<Output = T>,
) -> Result<T, AdminError> {
    tokio::time::timeout(ADMIN_WAIT_MAX, future)
        .await
        .map_err(|_| AdminError::Timeout { addr })
}

fn unexpected(frame: &Frame) -> AdminError {
    match frame {
        Frame::Error { code, text } => AdminError::Refused {
            code: *code,
            text: text.clone(),
        },
        Frame::Refused(refusal) => AdminError::Refused {
            code: refusal.code,
            text: refusal.text.clone(),
        },
        other => AdminError::Protocol(format!("{} on an operator's connection", other.kind())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_holds_for_its_secret_and_challenge_only() {
        let secret = Secret::from_bytes([1; 32]);
        let nonce = ChallengeNonce([2; 32]);
        let mac = admin_proof(&secret, &nonce);
        assert!(verify_admin_proof(&secret, &nonce, &mac));
        assert!(!verify_admin_proof(&secret, &ChallengeNonce([3; 32]), &mac));
        assert!(!verify_admin_proof(
            &Secret::from_bytes([9; 32]),
            &nonce,
            &mac
        ));
        let mut flipped = mac;
        flipped[0] ^= 1;
        assert!(!verify_admin_proof(&secret, &nonce, &flipped));
        // The admin key is not the token key: a login token's MAC over the
        // same bytes is not an admin proof.
        let mut hasher = blake3::Hasher::new_keyed(secret.key());
        hasher.update(PROOF_CONTEXT);
        hasher.update(&PROTOCOL_VERSION.major.to_be_bytes());
        hasher.update(&nonce.0);
        assert!(!verify_admin_proof(
            &secret,
            &nonce,
            hasher.finalize().as_bytes()
        ));
    }
}
