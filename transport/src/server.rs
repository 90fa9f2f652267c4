//! The relay side of one connection: decoding and validating what a device
//! sends, with no IO.
//!
//! The relay owns the decisions (who may log in, what to store); this type
//! only guarantees that what it hands over is a well-formed, in-limit,
//! correctly ordered request. Every refusal is a [`ProtocolError`] whose
//! [`ProtocolError::frame`] is the `Error` frame to send before closing.

use crate::auth::{DevicePublicKey, ProofSignature};
use crate::codec::{FrameDecoder, FrameError};
use crate::frame::{
    AdminRequest, ErrorCode, Frame, Hello, PayloadId, ProtocolVersion, WireDelta, PROTOCOL_VERSION,
};
use crate::ids::{DeviceId, Platform};
use crate::limits::{
    DELTAS_PER_PAGE_MAX, DELTAS_PER_PUSH_MAX, DELTA_BYTES_MAX, DEVICE_NAME_BYTES_MAX,
    PAYLOAD_BYTES_MAX, PLATFORM_NAME_BYTES_MAX, RELAY_SEQ_MAX, TEXT_BYTES_MAX, TOKEN_BYTES_MAX,
};

/// A validated request from a device.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Request {
    /// A device logs in. The relay answers with a `Challenge`; the next
    /// request is the [`Request::Proof`].
    Hello(Hello),
    /// The device's answer to the challenge. The relay must answer with
    /// [`ServerSession::accept_login`] (then a `Welcome` or `Managing`) or
    /// a refusal and a close; until then no further request is returned.
    Proof {
        /// The key the device claims.
        public_key: DevicePublicKey,
        /// Its signature of the login proof.
        signature: ProofSignature,
    },
    /// An operator's tool connects. The relay answers with a `Challenge`;
    /// the next request is the [`Request::AdminProof`].
    AdminHello,
    /// The operator's answer to the challenge; accepted like a `Proof`.
    AdminProof {
        /// The MAC over the challenge.
        mac: [u8; 32],
    },
    /// An operator's request (only after an accepted `AdminProof`).
    Admin(AdminRequest),
    /// Store these deltas; each one's content id matches its bytes.
    Push(Vec<WireDelta>),
    /// Send the log after `after_seq`.
    Pull {
        /// The highest seq the device has.
        after_seq: u64,
        /// The page size wanted, clamped to 1..=[`DELTAS_PER_PAGE_MAX`].
        count_max: usize,
    },
    /// The device persisted everything up to `cursor`.
    Ack {
        /// The highest persisted seq.
        cursor: u64,
    },
    /// List the account's devices.
    ListDevices,
    /// Kick one device.
    Kick {
        /// The device to kick.
        device: DeviceId,
    },
    /// Kick every other device.
    KickAllOthers,
    /// Kick every device, this one included.
    KickAll,
    /// Log this device out.
    Logout,
    /// Hold a payload for another device.
    SendToDevice {
        /// The recipient.
        to: DeviceId,
        /// The sender's id for it.
        id: PayloadId,
        /// The payload, within [`PAYLOAD_BYTES_MAX`].
        bytes: Vec<u8>,
    },
    /// A delivered payload is handled.
    PayloadAck {
        /// Its id.
        id: PayloadId,
    },
    /// Answer with a `Pong` carrying `nonce`.
    Ping {
        /// The nonce to echo.
        nonce: u64,
    },
    /// The device answered a ping; it is alive.
    Pong {
        /// The echoed nonce.
        nonce: u64,
    },
    /// The device reports an error and is closing; the relay should log it
    /// and close too.
    PeerError {
        /// The device's code.
        code: ErrorCode,
        /// The device's explanation.
        text: String,
    },
}

/// Why the relay must refuse a connection's input and close it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?}: {text}")]
pub struct ProtocolError {
    /// The code to send.
    pub code: ErrorCode,
    /// The explanation to send.
    pub text: String,
}

impl ProtocolError {
    fn new(code: ErrorCode, text: impl Into<String>) -> Self {
        ProtocolError {
            code,
            text: text.into(),
        }
    }

    /// The `Error` frame that tells the device.
    pub fn frame(&self) -> Frame {
        Frame::error(self.code, self.text.clone())
    }
}

impl From<FrameError> for ProtocolError {
    fn from(e: FrameError) -> Self {
        let code = match e {
            FrameError::TooLarge { .. } => ErrorCode::FrameTooLarge,
            FrameError::Malformed { .. } => ErrorCode::Malformed,
        };
        ProtocolError::new(code, e.to_string())
    }
}

/// What a logged-in connection may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// An online device: everything a device does.
    Device,
    /// A management connection (a login token with the "manage" purpose):
    /// listing and kicking devices only.
    Manager,
    /// An operator's tool: admin requests only.
    Admin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitingHello,
    AwaitingProof,
    AwaitingAdminProof,
    /// The proof is with the relay; later input waits.
    Authenticating,
    LoggedIn(Role),
    Closed,
}

/// The relay's view of one connection's input.
///
/// Drive it like this: [`ServerSession::handle_bytes`] with what the socket
/// read, then [`ServerSession::poll_request`] until it returns `None`,
/// handling each request in order. On `Some(Err(e))` send `e.frame()` and
/// close: the session is closed and returns `None` from then on. The
/// handshake is `Hello` (answer: a `Challenge`), then `Proof`; once the
/// relay accepts the proof, call [`ServerSession::accept_login`] with the
/// role it granted. The session holds later requests back until then, and
/// from then on returns only what that role may ask.
#[derive(Debug)]
pub struct ServerSession {
    decoder: FrameDecoder,
    phase: Phase,
}

impl Default for ServerSession {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerSession {
    /// A session waiting for `Hello`.
    pub fn new() -> Self {
        ServerSession {
            decoder: FrameDecoder::new(),
            phase: Phase::AwaitingHello,
        }
    }

    /// Appends bytes read from the connection.
    pub fn handle_bytes(&mut self, bytes: &[u8]) {
        if self.phase != Phase::Closed {
            self.decoder.feed(bytes);
        }
    }

    /// Appends one message from a message-based link (WebSocket): one
    /// frame body without its length prefix. A body above
    /// [`FRAME_BYTES_MAX`](crate::limits::FRAME_BYTES_MAX) or anything but
    /// exactly one frame comes out of [`ServerSession::poll_request`] as an
    /// error, after the requests fed before it. Use either this or
    /// [`ServerSession::handle_bytes`] on one session, never both.
    pub fn handle_message(&mut self, body: &[u8]) {
        if self.phase != Phase::Closed {
            self.decoder.feed_message(body);
        }
    }

    /// Whether the connection has logged in (as anything).
    pub fn is_logged_in(&self) -> bool {
        matches!(self.phase, Phase::LoggedIn(_))
    }

    /// The role the relay granted, once logged in.
    pub fn role(&self) -> Option<Role> {
        match self.phase {
            Phase::LoggedIn(role) => Some(role),
            _ => None,
        }
    }

    /// Whether the session refused input and is done.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Marks the proof just returned as accepted, with the role granted;
    /// later requests flow.
    pub fn accept_login(&mut self, role: Role) {
        debug_assert_eq!(
            self.phase,
            Phase::Authenticating,
            "accept_login without a proof"
        );
        if self.phase == Phase::Authenticating {
            self.phase = Phase::LoggedIn(role);
        }
    }

    /// The next whole, valid request, if any.
    pub fn poll_request(&mut self) -> Option<Result<Request, ProtocolError>> {
        match self.phase {
            Phase::Closed | Phase::Authenticating => return None,
            _ => {}
        }
        let result = match self.decoder.next_frame() {
            Ok(None) => return None,
            Ok(Some(frame)) => self.validate(frame),
            Err(e) => Err(e.into()),
        };
        if result.is_err() {
            self.phase = Phase::Closed;
        }
        Some(result)
    }

    /// Validates one frame for the current phase, and moves the phase on.
    pub fn validate(&mut self, frame: Frame) -> Result<Request, ProtocolError> {
        if let Frame::Error { code, text } = frame {
            // A peer may report an error and close at any point.
            return Ok(Request::PeerError {
                code,
                text: crate::frame::truncate_text(text),
            });
        }
        match self.phase {
            Phase::AwaitingHello => match frame {
                Frame::Hello(hello) => {
                    validate_hello(&hello)?;
                    self.phase = Phase::AwaitingProof;
                    Ok(Request::Hello(hello))
                }
                Frame::AdminHello { version } => {
                    check_version(version)?;
                    self.phase = Phase::AwaitingAdminProof;
                    Ok(Request::AdminHello)
                }
                other => Err(ProtocolError::new(
                    ErrorCode::FrameBeforeHello,
                    format!("{} before Hello", other.kind()),
                )),
            },
            Phase::AwaitingProof => match frame {
                Frame::Proof {
                    public_key,
                    signature,
                } => {
                    self.phase = Phase::Authenticating;
                    Ok(Request::Proof {
                        public_key,
                        signature,
                    })
                }
                other => Err(ProtocolError::new(
                    ErrorCode::FrameBeforeHello,
                    format!("{} before the Proof", other.kind()),
                )),
            },
            Phase::AwaitingAdminProof => match frame {
                Frame::AdminProof { mac } => {
                    self.phase = Phase::Authenticating;
                    Ok(Request::AdminProof { mac })
                }
                other => Err(ProtocolError::new(
                    ErrorCode::FrameBeforeHello,
                    format!("{} before the AdminProof", other.kind()),
                )),
            },
            Phase::LoggedIn(role) => {
                let request = validate_logged_in(frame)?;
                check_role(role, &request)?;
                Ok(request)
            }
            Phase::Authenticating | Phase::Closed => Err(ProtocolError::new(
                ErrorCode::UnexpectedFrame,
                format!("{} while the login is being decided", frame.kind()),
            )),
        }
    }
}

/// Refuses what the connection's role may not ask.
fn check_role(role: Role, request: &Request) -> Result<(), ProtocolError> {
    let allowed = match request {
        Request::Ping { .. } | Request::Pong { .. } | Request::PeerError { .. } => true,
        Request::ListDevices | Request::Kick { .. } | Request::KickAllOthers | Request::KickAll => {
            matches!(role, Role::Device | Role::Manager)
        }
        Request::Admin(_) => role == Role::Admin,
        _ => role == Role::Device,
    };
    if allowed {
        return Ok(());
    }
    Err(ProtocolError::new(
        ErrorCode::NotAllowed,
        format!("a {role:?} connection may not send that"),
    ))
}

fn check_version(version: ProtocolVersion) -> Result<(), ProtocolError> {
    if version.major != PROTOCOL_VERSION.major {
        return Err(ProtocolError::new(
            ErrorCode::UnsupportedVersion,
            format!(
                "the relay speaks protocol {}.{}, the client {}.{}",
                PROTOCOL_VERSION.major, PROTOCOL_VERSION.minor, version.major, version.minor
            ),
        ));
    }
    Ok(())
}

fn validate_hello(hello: &Hello) -> Result<(), ProtocolError> {
    check_version(hello.version)?;
    if hello.device_name.len() > DEVICE_NAME_BYTES_MAX {
        return Err(ProtocolError::new(
            ErrorCode::Malformed,
            format!(
                "device name of {} bytes, limit {DEVICE_NAME_BYTES_MAX}",
                hello.device_name.len()
            ),
        ));
    }
    if let Platform::Custom(name) = &hello.platform {
        if name.len() > PLATFORM_NAME_BYTES_MAX {
            return Err(ProtocolError::new(
                ErrorCode::Malformed,
                format!(
                    "platform name of {} bytes, limit {PLATFORM_NAME_BYTES_MAX}",
                    name.len()
                ),
            ));
        }
    }
    check_seq("resume cursor", hello.resume_cursor)?;
    if let Some(token) = &hello.login_token {
        if token.len() > TOKEN_BYTES_MAX {
            return Err(ProtocolError::new(
                ErrorCode::Unauthorized,
                format!(
                    "login token of {} bytes, limit {TOKEN_BYTES_MAX}",
                    token.len()
                ),
            ));
        }
    }
    Ok(())
}

/// A log position a device sent: at most [`RELAY_SEQ_MAX`], which the
/// relay's store can keep.
fn check_seq(what: &str, seq: u64) -> Result<(), ProtocolError> {
    if seq > RELAY_SEQ_MAX {
        return Err(ProtocolError::new(
            ErrorCode::Malformed,
            format!("{what} {seq} is above {RELAY_SEQ_MAX}"),
        ));
    }
    Ok(())
}

fn validate_logged_in(frame: Frame) -> Result<Request, ProtocolError> {
    Ok(match frame {
        Frame::Hello(_) => {
            return Err(ProtocolError::new(
                ErrorCode::DuplicateHello,
                "already logged in",
            ))
        }
        Frame::Push { deltas } => {
            if deltas.len() > DELTAS_PER_PUSH_MAX {
                return Err(ProtocolError::new(
                    ErrorCode::TooManyDeltas,
                    format!("{} deltas, limit {DELTAS_PER_PUSH_MAX}", deltas.len()),
                ));
            }
            for (i, delta) in deltas.iter().enumerate() {
                if delta.bytes().len() > DELTA_BYTES_MAX {
                    return Err(ProtocolError::new(
                        ErrorCode::DeltaTooLarge,
                        format!(
                            "delta {i} has {} bytes, limit {DELTA_BYTES_MAX}",
                            delta.bytes().len()
                        ),
                    ));
                }
                if !delta.is_consistent() {
                    return Err(ProtocolError::new(
                        ErrorCode::ContentIdMismatch,
                        format!("delta {i}: content id is not the blake3 hash of its bytes"),
                    ));
                }
            }
            Request::Push(deltas)
        }
        Frame::Pull {
            after_seq,
            count_max,
        } => {
            check_seq("pull after seq", after_seq)?;
            Request::Pull {
                after_seq,
                count_max: (count_max as usize).clamp(1, DELTAS_PER_PAGE_MAX),
            }
        }
        Frame::Ack { cursor } => {
            check_seq("ack cursor", cursor)?;
            Request::Ack { cursor }
        }
        Frame::ListDevices => Request::ListDevices,
        Frame::Kick { device } => Request::Kick { device },
        Frame::KickAllOthers => Request::KickAllOthers,
        Frame::KickAll => Request::KickAll,
        Frame::Logout => Request::Logout,
        Frame::Admin(request) => Request::Admin(request),
        Frame::SendToDevice { to, id, bytes } => {
            if bytes.len() > PAYLOAD_BYTES_MAX {
                return Err(ProtocolError::new(
                    ErrorCode::PayloadTooLarge,
                    format!(
                        "payload of {} bytes, limit {PAYLOAD_BYTES_MAX}",
                        bytes.len()
                    ),
                ));
            }
            Request::SendToDevice { to, id, bytes }
        }
        Frame::PayloadAck { id } => Request::PayloadAck { id },
        Frame::Ping { nonce } => Request::Ping { nonce },
        Frame::Pong { nonce } => Request::Pong { nonce },
        Frame::Error { code, mut text } => {
            if text.len() > TEXT_BYTES_MAX {
                text = crate::frame::truncate_text(text);
            }
            Request::PeerError { code, text }
        }
        other @ (Frame::AdminHello { .. } | Frame::Proof { .. } | Frame::AdminProof { .. }) => {
            return Err(ProtocolError::new(
                ErrorCode::DuplicateHello,
                format!("{} after the login", other.kind()),
            ))
        }
        other @ (Frame::Welcome(_)
        | Frame::Challenge { .. }
        | Frame::Refused(_)
        | Frame::Managing { .. }
        | Frame::CredentialsRenewed { .. }
        | Frame::AdminReady
        | Frame::AdminReply(_)
        | Frame::PushAck { .. }
        | Frame::Deltas { .. }
        | Frame::Live(_)
        | Frame::PullNeeded
        | Frame::Devices { .. }
        | Frame::Kicked { .. }
        | Frame::PayloadStored { .. }
        | Frame::DeliverPayload { .. }
        | Frame::DeviceListChanged) => {
            return Err(ProtocolError::new(
                ErrorCode::UnexpectedFrame,
                format!("{} is a relay frame", other.kind()),
            ))
        }
    })
}
