//! The device side of the protocol as a sans-IO state machine.

use std::collections::VecDeque;

use crate::auth::DeviceKey;
use crate::codec::{self, FrameDecoder, FrameError};
use crate::frame::{
    DeviceInfo, ErrorCode, Frame, Hello, LogDelta, OfflineReason, PayloadId, PushAckEntry, Refusal,
    Welcome, WireDelta, PROTOCOL_VERSION,
};
use crate::ids::{AccountId, DeviceId, Platform};
use crate::limits::{
    DELTAS_PER_PAGE_MAX, DELTAS_PER_PUSH_MAX, DELTA_BYTES_MAX, DEVICES_PER_ACCOUNT_MAX,
    DEVICE_NAME_BYTES_MAX, PAYLOAD_BYTES_MAX, PLATFORM_NAME_BYTES_MAX, RELAY_SEQ_MAX,
    TEXT_BYTES_MAX, TOKEN_BYTES_MAX,
};

/// Default for [`ClientConfig::ping_interval_ms`].
pub const PING_INTERVAL_MS_DEFAULT: u64 = 20_000;
/// Default for [`ClientConfig::ping_timeout_ms`].
pub const PING_TIMEOUT_MS_DEFAULT: u64 = 10_000;

/// Who the device is and how it keeps the connection alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The account to log into.
    pub account: AccountId,
    /// This device's id.
    pub device: DeviceId,
    /// This device's display name, at most [`DEVICE_NAME_BYTES_MAX`] bytes.
    pub device_name: String,
    /// This device's platform.
    pub platform: Platform,
    /// This device's signing key: the login proof is signed with it.
    pub key: DeviceKey,
    /// A login token from the app's auth service, at most
    /// [`TOKEN_BYTES_MAX`] bytes: to enroll (or enroll again), or to manage
    /// the account's devices from outside. `None` logs in with the device's
    /// enrollment alone.
    pub login_token: Option<String>,
    /// The highest seq this device has persisted, at most
    /// [`RELAY_SEQ_MAX`].
    pub resume_cursor: u64,
    /// Idle time after which the session pings the relay; 0 never pings.
    pub ping_interval_ms: u64,
    /// How long a ping, or the handshake, may go unanswered before the
    /// session gives up on the connection.
    pub ping_timeout_ms: u64,
}

impl ClientConfig {
    /// A config without a login token, with a zero resume cursor and the
    /// default ping timing.
    pub fn new(
        account: AccountId,
        device: DeviceId,
        device_name: impl Into<String>,
        platform: Platform,
        key: DeviceKey,
    ) -> Self {
        ClientConfig {
            account,
            device,
            device_name: device_name.into(),
            platform,
            key,
            login_token: None,
            resume_cursor: 0,
            ping_interval_ms: PING_INTERVAL_MS_DEFAULT,
            ping_timeout_ms: PING_TIMEOUT_MS_DEFAULT,
        }
    }

    /// The same config with `login_token`.
    pub fn with_login_token(mut self, login_token: impl Into<String>) -> Self {
        self.login_token = Some(login_token.into());
        self
    }
}

/// Why a [`ClientConfig`] cannot start a session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The device name is above [`DEVICE_NAME_BYTES_MAX`] bytes.
    #[error("device name of {bytes} bytes is above the limit of {DEVICE_NAME_BYTES_MAX}")]
    DeviceNameTooLong {
        /// The name's length.
        bytes: usize,
    },
    /// A custom platform name is above [`PLATFORM_NAME_BYTES_MAX`] bytes.
    #[error("platform name of {bytes} bytes is above the limit of {PLATFORM_NAME_BYTES_MAX}")]
    PlatformNameTooLong {
        /// The name's length.
        bytes: usize,
    },
    /// The login token is empty or above [`TOKEN_BYTES_MAX`] bytes.
    #[error("login token of {bytes} bytes is not within 1..={TOKEN_BYTES_MAX}")]
    TokenLength {
        /// The token's length.
        bytes: usize,
    },
    /// The resume cursor is above [`RELAY_SEQ_MAX`].
    #[error("resume cursor {cursor} is above the limit of {RELAY_SEQ_MAX}")]
    ResumeCursorTooLarge {
        /// The cursor given.
        cursor: u64,
    },
}

/// Why a command was refused. Nothing was queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The session is closed; start a new one on a new connection.
    #[error("the session is closed")]
    Closed,
    /// More deltas than [`DELTAS_PER_PUSH_MAX`]; split the push.
    #[error("{count} deltas in one push, the limit is {DELTAS_PER_PUSH_MAX}")]
    TooManyDeltas {
        /// The number of deltas given.
        count: usize,
    },
    /// A delta above [`DELTA_BYTES_MAX`].
    #[error("delta of {bytes} bytes is above the limit of {DELTA_BYTES_MAX}")]
    DeltaTooLarge {
        /// The delta's length.
        bytes: usize,
    },
    /// A payload above [`PAYLOAD_BYTES_MAX`].
    #[error("payload of {bytes} bytes is above the limit of {PAYLOAD_BYTES_MAX}")]
    PayloadTooLarge {
        /// The payload's length.
        bytes: usize,
    },
    /// A log position above [`RELAY_SEQ_MAX`], which the relay would refuse.
    #[error("log position {seq} is above the limit of {RELAY_SEQ_MAX}")]
    SeqTooLarge {
        /// The position given.
        seq: u64,
    },
    /// The frame would be above the frame limit once encoded (a push of many
    /// large deltas); split it.
    #[error("the frame would be too large: {0}")]
    FrameTooLarge(codec::EncodeError),
    /// A management connection (see [`SessionEvent::Managing`]) may only
    /// list and kick devices.
    #[error("a management connection may only list and kick devices")]
    NotAllowed,
}

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// `Hello` (and then the `Proof`) is queued or sent; no answer yet.
    Handshaking,
    /// The relay accepted the login (as a device, or for management).
    Connected,
    /// The session is over; only queued output may still be taken.
    Closed,
}

/// Why a session closed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The relay sent a fatal error (a refused frame, a relay shutting
    /// down).
    RelayError {
        /// The relay's code.
        code: ErrorCode,
    },
    /// The relay refused the login ([`SessionEvent::Refused`] has the
    /// whole refusal).
    Refused {
        /// The relay's code.
        code: ErrorCode,
        /// Why the enrollment was revoked, for
        /// [`ErrorCode::CredentialsRevoked`].
        reason: Option<OfflineReason>,
    },
    /// This device was forced offline (kicked, displaced, logged out,
    /// revoked, banned, removed).
    Kicked(OfflineReason),
    /// The relay sent bytes or frames that break the protocol.
    ProtocolViolation {
        /// What was wrong.
        reason: String,
    },
    /// The handshake or a ping went unanswered for `ping_timeout_ms`.
    Timeout,
    /// The driver reported that the connection ended.
    TransportClosed,
    /// The app called [`ClientSession::close`].
    Local,
}

/// What the session tells the app. See [`ClientSession`] for when.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// The relay accepted the login; the device is online.
    Connected(Welcome),
    /// The relay accepted a login token with the "manage" purpose: the
    /// session may list and kick the account's devices, nothing else.
    Managing(Vec<DeviceInfo>),
    /// The relay refused the login; [`SessionEvent::Closed`] follows.
    Refused(Refusal),
    /// The relay stored a pushed batch; one entry per delta, in push order.
    PushAcked(Vec<PushAckEntry>),
    /// One page of the log, answering a pull.
    Deltas {
        /// The page, in seq order.
        deltas: Vec<LogDelta>,
        /// Whether to pull again after the page's last seq.
        more: bool,
    },
    /// A delta another device just pushed. Live deltas may repeat ones a
    /// pull also returns; deduplicate by seq.
    Live(LogDelta),
    /// The relay dropped live deltas for this connection: pull from the
    /// cursor to catch up.
    PullNeeded,
    /// The account's devices, answering `list_devices`.
    Devices(Vec<DeviceInfo>),
    /// A payload another device sent to this one. Acknowledge it with
    /// [`ClientSession::ack_payload`] once handled, or the relay delivers it
    /// again on the next connection.
    DevicePayload {
        /// The sender.
        from: DeviceId,
        /// The payload's id, unique per sender; use it to deduplicate.
        id: PayloadId,
        /// The payload.
        bytes: Vec<u8>,
    },
    /// The relay holds a payload this device sent and will deliver it.
    PayloadStored {
        /// The payload's id.
        id: PayloadId,
    },
    /// This device was forced offline; [`SessionEvent::Closed`] follows.
    Kicked(OfflineReason),
    /// The relay renewed the device's enrollment.
    CredentialsRenewed {
        /// The new expiry, in ms since the Unix epoch.
        expires_at_ms: u64,
    },
    /// A device of the account logged in or was kicked.
    DeviceListChanged,
    /// The answer to a ping.
    Pong {
        /// The ping's nonce.
        nonce: u64,
        /// Time from sending the ping to handling the pong.
        rtt_ms: u64,
    },
    /// The relay refused something. When the code is fatal
    /// ([`ErrorCode::is_fatal`]), [`SessionEvent::Closed`] follows.
    Error {
        /// The relay's code.
        code: ErrorCode,
        /// The relay's explanation.
        text: String,
    },
    /// The session is over. This is always the last event.
    Closed(CloseReason),
}

/// What a connected session may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Waiting for the relay's challenge.
    AwaitingChallenge,
    /// The proof is sent; waiting for the answer.
    Proved,
    /// Online as a device.
    Device,
    /// A management connection: list and kick only.
    Manager,
}

/// The device side of one connection to the relay, with no IO and no clock.
///
/// # Drive contract
///
/// The session never touches a socket or reads the time. Whoever owns the
/// connection (a driver such as [`crate::driver::Connection`], or the app)
/// moves bytes and time in and out:
///
/// 1. Create it with [`ClientSession::new`]; it queues `Hello` at once.
/// 2. Whenever bytes arrive, call [`ClientSession::handle_bytes`] with them
///    and the current time. When the connection ends, call
///    [`ClientSession::handle_transport_closed`].
/// 3. When the time given by [`ClientSession::poll_timeout`] has passed,
///    call [`ClientSession::handle_timeout`].
/// 4. Call commands ([`push`](Self::push), [`pull`](Self::pull),
///    [`ack`](Self::ack), …) whenever the app wants. They may be called
///    before `Connected`: their frames wait until the `Proof` is queued
///    (the relay's `Challenge` comes first), then follow it.
/// 5. After *any* of the calls above, drain until idle: call
///    [`ClientSession::poll_transmit`] until it returns `None`, writing each
///    buffer to the connection in order, and [`ClientSession::poll_event`]
///    until it returns `None`, handing each event to the app. Then wait for
///    the next input, the next timeout, or the next command.
/// 6. Once [`ClientSession::state`] is [`SessionState::Closed`], take the
///    remaining transmits (a final `Error` frame, when the session closed
///    the connection because of the relay's bytes), then close the
///    connection. `SessionEvent::Closed` is the last event.
///
/// Each buffer from `poll_transmit` is one whole frame, length prefix
/// included. An app carrying frames over a message-based channel sends
/// each as one message, without its prefix ([`codec::message_body`]), and
/// feeds what arrives to [`ClientSession::handle_message`] instead of
/// `handle_bytes` (the WebSocket driver does exactly that).
#[derive(Debug)]
pub struct ClientSession {
    config: ClientConfig,
    /// The `Hello` sent: the proof signs it.
    hello: Hello,
    state: SessionState,
    mode: Mode,
    decoder: FrameDecoder,
    transmit: VecDeque<Vec<u8>>,
    /// Frames of commands issued before the proof was queued: they may
    /// only follow it.
    held: Vec<Vec<u8>>,
    events: VecDeque<SessionEvent>,
    /// When the last frame arrived (or the session started), in ms.
    last_received_ms: u64,
    /// When the handshake must be finished by, in ms.
    handshake_deadline_ms: u64,
    /// The unanswered ping: its nonce and when it was sent, in ms.
    ping_in_flight: Option<(u64, u64)>,
    ping_nonce_next: u64,
}

impl ClientSession {
    /// Starts a session at time `now_ms` and queues its `Hello`.
    pub fn new(config: ClientConfig, now_ms: u64) -> Result<Self, ConfigError> {
        if config.device_name.len() > DEVICE_NAME_BYTES_MAX {
            return Err(ConfigError::DeviceNameTooLong {
                bytes: config.device_name.len(),
            });
        }
        if let Platform::Custom(name) = &config.platform {
            if name.len() > PLATFORM_NAME_BYTES_MAX {
                return Err(ConfigError::PlatformNameTooLong { bytes: name.len() });
            }
        }
        if let Some(token) = &config.login_token {
            if token.is_empty() || token.len() > TOKEN_BYTES_MAX {
                return Err(ConfigError::TokenLength { bytes: token.len() });
            }
        }
        if config.resume_cursor > RELAY_SEQ_MAX {
            return Err(ConfigError::ResumeCursorTooLarge {
                cursor: config.resume_cursor,
            });
        }
        let hello = Hello {
            version: PROTOCOL_VERSION,
            account: config.account.clone(),
            device: config.device,
            device_name: config.device_name.clone(),
            platform: config.platform.clone(),
            login_token: config.login_token.clone(),
            resume_cursor: config.resume_cursor,
        };
        let mut session = ClientSession {
            handshake_deadline_ms: now_ms.saturating_add(config.ping_timeout_ms),
            config,
            hello: hello.clone(),
            state: SessionState::Handshaking,
            mode: Mode::AwaitingChallenge,
            decoder: FrameDecoder::new(),
            transmit: VecDeque::new(),
            held: Vec::new(),
            events: VecDeque::new(),
            last_received_ms: now_ms,
            ping_in_flight: None,
            ping_nonce_next: 1,
        };
        // Every field was checked against its limit above, and the largest
        // account id is far below the frame limit.
        let bytes = codec::encode(&Frame::Hello(hello)).expect("a checked Hello fits in a frame");
        session.transmit.push_back(bytes);
        Ok(session)
    }

    /// The session's config.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Where the session is in its life.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// Whether the session is over.
    pub fn is_closed(&self) -> bool {
        self.state == SessionState::Closed
    }

    /// Feeds bytes received from the relay at time `now_ms`.
    pub fn handle_bytes(&mut self, bytes: &[u8], now_ms: u64) {
        if self.is_closed() {
            return;
        }
        self.decoder.feed(bytes);
        self.handle_decoded(now_ms);
    }

    /// Feeds one message received at time `now_ms` from a message-based
    /// link (WebSocket): one frame body, without a length prefix, as
    /// [`codec::message_body`] makes them. A body above
    /// [`FRAME_BYTES_MAX`](crate::limits::FRAME_BYTES_MAX) or anything but
    /// exactly one frame is refused like bad bytes. Use either this or
    /// [`ClientSession::handle_bytes`] on one session, never both.
    pub fn handle_message(&mut self, body: &[u8], now_ms: u64) {
        if self.is_closed() {
            return;
        }
        self.decoder.feed_message(body);
        self.handle_decoded(now_ms);
    }

    /// Tells the session that the link refused input before it could
    /// become a frame (a WebSocket text message, or a message the link
    /// stopped reading at the frame limit): the session sends the relay an
    /// `Error` frame with the matching code and closes
    /// ([`CloseReason::ProtocolViolation`]), as for bad bytes.
    pub fn handle_refused_input(&mut self, error: FrameError) {
        if !self.is_closed() {
            self.violation(frame_error_code(&error), error.to_string());
        }
    }

    /// Hands every whole frame the decoder holds to the session.
    fn handle_decoded(&mut self, now_ms: u64) {
        loop {
            match self.decoder.next_frame() {
                Ok(Some(frame)) => {
                    self.handle_frame(frame, now_ms);
                    if self.is_closed() {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => return self.violation(frame_error_code(&e), e.to_string()),
            }
        }
    }

    /// Feeds one frame received at time `now_ms`, for an app whose channel
    /// already delivers decoded frames. It is validated like decoded bytes.
    pub fn handle_frame(&mut self, frame: Frame, now_ms: u64) {
        if self.is_closed() {
            return;
        }
        self.last_received_ms = now_ms;
        if let Err((code, reason)) = validate_from_relay(&frame) {
            return self.violation(code, reason);
        }
        if self.state == SessionState::Handshaking {
            let expected = match self.mode {
                Mode::AwaitingChallenge => matches!(frame, Frame::Challenge { .. }),
                _ => matches!(
                    frame,
                    Frame::Welcome(_) | Frame::Managing { .. } | Frame::Refused(_)
                ),
            };
            if !expected && !matches!(frame, Frame::Error { .. } | Frame::Ping { .. }) {
                return self.violation(
                    ErrorCode::UnexpectedFrame,
                    format!("{} during the handshake", frame.kind()),
                );
            }
        }
        match frame {
            Frame::Challenge { nonce } => {
                if self.mode != Mode::AwaitingChallenge {
                    return self.violation(ErrorCode::UnexpectedFrame, "second Challenge".into());
                }
                let signature = self.config.key.prove(&self.hello, &nonce);
                self.queue(&Frame::Proof {
                    public_key: self.config.key.public_key(),
                    signature,
                });
                self.mode = Mode::Proved;
                self.transmit.extend(self.held.drain(..));
            }
            Frame::Welcome(welcome) => {
                if self.state != SessionState::Handshaking {
                    return self.violation(ErrorCode::UnexpectedFrame, "second Welcome".into());
                }
                self.state = SessionState::Connected;
                self.mode = Mode::Device;
                self.events.push_back(SessionEvent::Connected(welcome));
            }
            Frame::Managing { devices } => {
                if self.state != SessionState::Handshaking {
                    return self
                        .violation(ErrorCode::UnexpectedFrame, "Managing after login".into());
                }
                self.state = SessionState::Connected;
                self.mode = Mode::Manager;
                self.events.push_back(SessionEvent::Managing(devices));
            }
            Frame::Refused(refusal) => {
                let reason = CloseReason::Refused {
                    code: refusal.code,
                    reason: refusal.reason.clone(),
                };
                self.events.push_back(SessionEvent::Refused(refusal));
                self.finish(reason, Pending::Drop);
            }
            Frame::Error { code, text } => {
                self.events.push_back(SessionEvent::Error { code, text });
                if code.is_fatal() {
                    self.finish(CloseReason::RelayError { code }, Pending::Drop);
                }
            }
            Frame::PushAck { entries } => self.events.push_back(SessionEvent::PushAcked(entries)),
            Frame::Deltas { deltas, more } => {
                self.events.push_back(SessionEvent::Deltas { deltas, more })
            }
            Frame::Live(delta) => self.events.push_back(SessionEvent::Live(delta)),
            Frame::PullNeeded => self.events.push_back(SessionEvent::PullNeeded),
            Frame::Devices { devices } => self.events.push_back(SessionEvent::Devices(devices)),
            Frame::Kicked { reason } => {
                self.events.push_back(SessionEvent::Kicked(reason.clone()));
                self.finish(CloseReason::Kicked(reason), Pending::Drop);
            }
            Frame::CredentialsRenewed { expires_at_ms } => self
                .events
                .push_back(SessionEvent::CredentialsRenewed { expires_at_ms }),
            Frame::PayloadStored { id } => {
                self.events.push_back(SessionEvent::PayloadStored { id })
            }
            Frame::DeliverPayload { from, id, bytes } => self
                .events
                .push_back(SessionEvent::DevicePayload { from, id, bytes }),
            Frame::DeviceListChanged => self.events.push_back(SessionEvent::DeviceListChanged),
            Frame::Ping { nonce } => self.queue(&Frame::Pong { nonce }),
            Frame::Pong { nonce } => {
                if let Some((expected, sent_ms)) = self.ping_in_flight {
                    if expected == nonce {
                        self.ping_in_flight = None;
                        let rtt_ms = now_ms.saturating_sub(sent_ms);
                        self.events.push_back(SessionEvent::Pong { nonce, rtt_ms });
                    }
                }
            }
            // validate_from_relay refused every client-only frame, and every
            // frame only an operator's connection gets.
            Frame::Hello(_)
            | Frame::Push { .. }
            | Frame::Pull { .. }
            | Frame::Ack { .. }
            | Frame::ListDevices
            | Frame::Kick { .. }
            | Frame::KickAllOthers
            | Frame::SendToDevice { .. }
            | Frame::PayloadAck { .. }
            | Frame::Proof { .. }
            | Frame::KickAll
            | Frame::Logout
            | Frame::AdminHello { .. }
            | Frame::AdminProof { .. }
            | Frame::AdminReady
            | Frame::Admin(_)
            | Frame::AdminReply(_) => unreachable!("validated"),
        }
    }

    /// Tells the session that the connection ended.
    pub fn handle_transport_closed(&mut self) {
        if !self.is_closed() {
            self.finish(CloseReason::TransportClosed, Pending::Drop);
        }
    }

    /// When [`ClientSession::handle_timeout`] should next be called, in ms;
    /// `None` when nothing is timed.
    pub fn poll_timeout(&self) -> Option<u64> {
        match self.state {
            SessionState::Closed => None,
            SessionState::Handshaking => Some(self.handshake_deadline_ms),
            SessionState::Connected => match self.ping_in_flight {
                Some((_, sent_ms)) => Some(sent_ms.saturating_add(self.config.ping_timeout_ms)),
                None if self.config.ping_interval_ms == 0 => None,
                None => Some(
                    self.last_received_ms
                        .saturating_add(self.config.ping_interval_ms),
                ),
            },
        }
    }

    /// Advances timers to `now_ms`: gives up on an unanswered handshake or
    /// ping, and pings after an idle interval.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        match self.state {
            SessionState::Closed => {}
            SessionState::Handshaking => {
                if now_ms >= self.handshake_deadline_ms {
                    self.finish(CloseReason::Timeout, Pending::Drop);
                }
            }
            SessionState::Connected => match self.ping_in_flight {
                Some((_, sent_ms)) => {
                    if now_ms >= sent_ms.saturating_add(self.config.ping_timeout_ms) {
                        self.finish(CloseReason::Timeout, Pending::Drop);
                    }
                }
                None => {
                    let interval = self.config.ping_interval_ms;
                    if interval > 0 && now_ms >= self.last_received_ms.saturating_add(interval) {
                        self.send_ping(now_ms);
                    }
                }
            },
        }
    }

    /// The next frame to write to the connection, prefix included.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    /// The next event for the app.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// Pushes deltas to the account's log. Answered by
    /// [`SessionEvent::PushAcked`].
    pub fn push(&mut self, deltas: Vec<WireDelta>) -> Result<(), CommandError> {
        self.check_device()?;
        if deltas.len() > DELTAS_PER_PUSH_MAX {
            return Err(CommandError::TooManyDeltas {
                count: deltas.len(),
            });
        }
        if let Some(big) = deltas.iter().find(|d| d.bytes().len() > DELTA_BYTES_MAX) {
            return Err(CommandError::DeltaTooLarge {
                bytes: big.bytes().len(),
            });
        }
        self.try_queue(&Frame::Push { deltas })
    }

    /// Asks for up to `count_max` deltas after `after_seq`. Answered by
    /// [`SessionEvent::Deltas`]; pull again after its last seq while `more`.
    pub fn pull(&mut self, after_seq: u64, count_max: u32) -> Result<(), CommandError> {
        self.check_device()?;
        check_seq(after_seq)?;
        self.try_queue(&Frame::Pull {
            after_seq,
            count_max,
        })
    }

    /// Tells the relay everything up to `cursor` is persisted on the device.
    pub fn ack(&mut self, cursor: u64) -> Result<(), CommandError> {
        self.check_device()?;
        check_seq(cursor)?;
        self.try_queue(&Frame::Ack { cursor })
    }

    /// Asks for the account's devices. Answered by [`SessionEvent::Devices`].
    pub fn list_devices(&mut self) -> Result<(), CommandError> {
        self.check_open()?;
        self.try_queue(&Frame::ListDevices)
    }

    /// Kicks another device of the account and revokes its enrollment.
    /// An unknown device is answered by a non-fatal [`SessionEvent::Error`]
    /// ([`ErrorCode::NotFound`]); success by [`SessionEvent::DeviceListChanged`].
    /// Allowed on a management connection too.
    pub fn kick(&mut self, device: DeviceId) -> Result<(), CommandError> {
        self.check_open()?;
        self.try_queue(&Frame::Kick { device })
    }

    /// Kicks every other device of the account. Allowed on a management
    /// connection too ("other" than the device id of its `Hello`).
    pub fn kick_all_others(&mut self) -> Result<(), CommandError> {
        self.check_open()?;
        self.try_queue(&Frame::KickAllOthers)
    }

    /// Kicks every device of the account, this one included (the reference
    /// SDK's `kickAllDevices`). This session then ends with
    /// [`SessionEvent::Kicked`]. Allowed on a management connection too.
    pub fn kick_all(&mut self) -> Result<(), CommandError> {
        self.check_open()?;
        self.try_queue(&Frame::KickAll)
    }

    /// Logs this device out: the relay revokes its enrollment and the
    /// session ends with [`SessionEvent::Kicked`]
    /// ([`OfflineReason::LoggedOut`]). A new login token logs it in again.
    pub fn logout(&mut self) -> Result<(), CommandError> {
        self.check_device()?;
        self.try_queue(&Frame::Logout)
    }

    /// Sends a payload to another device of the account, delivered once it
    /// connects. `id` is the caller's (random: this crate takes no
    /// randomness of its own); reusing it makes a resend idempotent.
    /// Answered by [`SessionEvent::PayloadStored`].
    pub fn send_to_device(
        &mut self,
        to: DeviceId,
        id: PayloadId,
        bytes: Vec<u8>,
    ) -> Result<(), CommandError> {
        self.check_device()?;
        if bytes.len() > PAYLOAD_BYTES_MAX {
            return Err(CommandError::PayloadTooLarge { bytes: bytes.len() });
        }
        self.try_queue(&Frame::SendToDevice { to, id, bytes })
    }

    /// Tells the relay a delivered payload is handled, so it is not
    /// delivered again.
    pub fn ack_payload(&mut self, id: PayloadId) -> Result<(), CommandError> {
        self.check_device()?;
        self.try_queue(&Frame::PayloadAck { id })
    }

    /// Pings the relay now; returns the nonce its [`SessionEvent::Pong`] will carry.
    /// A ping already in flight is replaced.
    pub fn ping(&mut self, now_ms: u64) -> Result<u64, CommandError> {
        self.check_open()?;
        Ok(self.send_ping(now_ms))
    }

    /// Ends the session from this side. Frames already queued stay
    /// available to [`ClientSession::poll_transmit`], so a final `Ack` still
    /// goes out before the driver closes the connection.
    pub fn close(&mut self) {
        self.finish(CloseReason::Local, Pending::Keep);
    }

    fn finish(&mut self, reason: CloseReason, pending: Pending) {
        if self.is_closed() {
            return;
        }
        self.state = SessionState::Closed;
        if pending == Pending::Drop {
            self.transmit.clear();
        }
        // Frames that never got past the handshake go nowhere.
        self.held.clear();
        self.events.push_back(SessionEvent::Closed(reason));
    }

    fn send_ping(&mut self, now_ms: u64) -> u64 {
        let nonce = self.ping_nonce_next;
        self.ping_nonce_next = self.ping_nonce_next.wrapping_add(1);
        self.ping_in_flight = Some((nonce, now_ms));
        self.queue(&Frame::Ping { nonce });
        nonce
    }

    fn check_open(&self) -> Result<(), CommandError> {
        if self.is_closed() {
            return Err(CommandError::Closed);
        }
        Ok(())
    }

    /// A command only an online device may make.
    fn check_device(&self) -> Result<(), CommandError> {
        self.check_open()?;
        if self.mode == Mode::Manager {
            return Err(CommandError::NotAllowed);
        }
        Ok(())
    }

    fn try_queue(&mut self, frame: &Frame) -> Result<(), CommandError> {
        let bytes = codec::encode(frame).map_err(CommandError::FrameTooLarge)?;
        if self.mode == Mode::AwaitingChallenge {
            self.held.push(bytes);
        } else {
            self.transmit.push_back(bytes);
        }
        Ok(())
    }

    /// Queues a frame that is small by construction.
    fn queue(&mut self, frame: &Frame) {
        let bytes = codec::encode(frame).expect("a small control frame fits in a frame");
        self.transmit.push_back(bytes);
    }

    /// The relay broke the protocol: tell it why, then close.
    fn violation(&mut self, code: ErrorCode, reason: String) {
        self.transmit.clear();
        self.held.clear();
        self.queue(&Frame::error(code, reason.clone()));
        self.finish(CloseReason::ProtocolViolation { reason }, Pending::Keep);
    }
}

/// What happens to queued frames when a session closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    /// They can still be taken: the close is ours and orderly.
    Keep,
    /// They are dropped: the connection is gone or the relay is done with us.
    Drop,
}

/// A log position this session may send.
fn check_seq(seq: u64) -> Result<(), CommandError> {
    if seq > RELAY_SEQ_MAX {
        return Err(CommandError::SeqTooLarge { seq });
    }
    Ok(())
}

fn frame_error_code(e: &FrameError) -> ErrorCode {
    match e {
        FrameError::TooLarge { .. } => ErrorCode::FrameTooLarge,
        FrameError::Malformed { .. } => ErrorCode::Malformed,
    }
}

/// Checks a frame from the relay against the limits. A relay that breaks
/// them is buggy or hostile; the session closes rather than trust it.
fn validate_from_relay(frame: &Frame) -> Result<(), (ErrorCode, String)> {
    let bad = |code, text: String| Err((code, text));
    match frame {
        Frame::Hello(_)
        | Frame::Push { .. }
        | Frame::Pull { .. }
        | Frame::Ack { .. }
        | Frame::ListDevices
        | Frame::Kick { .. }
        | Frame::KickAllOthers
        | Frame::SendToDevice { .. }
        | Frame::PayloadAck { .. }
        | Frame::Proof { .. }
        | Frame::KickAll
        | Frame::Logout
        | Frame::AdminHello { .. }
        | Frame::AdminProof { .. }
        | Frame::Admin(_) => bad(
            ErrorCode::UnexpectedFrame,
            format!("{} is a client frame", frame.kind()),
        ),
        Frame::AdminReady | Frame::AdminReply(_) => bad(
            ErrorCode::UnexpectedFrame,
            format!("{} is for an operator's connection", frame.kind()),
        ),
        Frame::Deltas { deltas, .. } => {
            if deltas.len() > DELTAS_PER_PAGE_MAX {
                return bad(
                    ErrorCode::TooManyDeltas,
                    format!("page of {}", deltas.len()),
                );
            }
            let mut last_seq = 0;
            for delta in deltas {
                check_log_delta(delta)?;
                if delta.seq <= last_seq {
                    return bad(ErrorCode::Malformed, "page not in seq order".into());
                }
                last_seq = delta.seq;
            }
            Ok(())
        }
        Frame::Live(delta) => check_log_delta(delta),
        Frame::Welcome(welcome) if welcome.devices.len() > DEVICES_PER_ACCOUNT_MAX => bad(
            ErrorCode::Malformed,
            format!("{} devices", welcome.devices.len()),
        ),
        Frame::Welcome(welcome) if welcome.head_seq > RELAY_SEQ_MAX => bad(
            ErrorCode::Malformed,
            format!("head seq {} above {RELAY_SEQ_MAX}", welcome.head_seq),
        ),
        Frame::PushAck { entries } => {
            match entries
                .iter()
                .find(|e| !(1..=RELAY_SEQ_MAX).contains(&e.seq))
            {
                Some(e) => bad(
                    ErrorCode::Malformed,
                    format!("push ack with seq {} outside 1..={RELAY_SEQ_MAX}", e.seq),
                ),
                None => Ok(()),
            }
        }
        Frame::Devices { devices } | Frame::Managing { devices }
            if devices.len() > DEVICES_PER_ACCOUNT_MAX =>
        {
            bad(ErrorCode::Malformed, format!("{} devices", devices.len()))
        }
        Frame::Refused(refusal) if refusal.devices.len() > DEVICES_PER_ACCOUNT_MAX => bad(
            ErrorCode::Malformed,
            format!("{} devices", refusal.devices.len()),
        ),
        Frame::Refused(refusal) if refusal.text.len() > TEXT_BYTES_MAX => bad(
            ErrorCode::Malformed,
            format!("refusal text of {} bytes", refusal.text.len()),
        ),
        Frame::DeliverPayload { bytes, .. } if bytes.len() > PAYLOAD_BYTES_MAX => bad(
            ErrorCode::PayloadTooLarge,
            format!("payload of {} bytes", bytes.len()),
        ),
        _ => Ok(()),
    }
}

fn check_log_delta(delta: &LogDelta) -> Result<(), (ErrorCode, String)> {
    if delta.bytes.len() > DELTA_BYTES_MAX {
        return Err((
            ErrorCode::DeltaTooLarge,
            format!("delta of {} bytes", delta.bytes.len()),
        ));
    }
    if !(1..=RELAY_SEQ_MAX).contains(&delta.seq) {
        return Err((
            ErrorCode::Malformed,
            format!("delta with seq {} outside 1..={RELAY_SEQ_MAX}", delta.seq),
        ));
    }
    if crate::frame::ContentId::of(&delta.bytes) != delta.content_id {
        return Err((
            ErrorCode::ContentIdMismatch,
            format!("delta seq {}", delta.seq),
        ));
    }
    Ok(())
}
