//! Drivers that move a [`ClientSession`]'s bytes over a real connection.
//!
//! The session itself is sans-IO (see its drive contract); these are thin
//! shells around it. [`Connection`] runs it over a [`Link`]: any tokio byte
//! stream (a `TcpStream`, see [`tcp`], or an in-process `tokio::io::duplex`
//! pipe), where frames carry their length prefix, or a WebSocket
//! ([`ws::WebSocket`]), where one binary message carries one frame.
//! [`connect`] picks the link a [`RelayAddress`] names. The deterministic,
//! synchronous in-memory link for simulations is [`crate::mem`].

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::address::RelayAddress;
use crate::client::{ClientConfig, ClientSession, ConfigError, SessionEvent};
use crate::codec::{self, FrameDecoder, FrameError};
use crate::frame::Frame;

/// Bytes read from the stream per read call.
pub const READ_CHUNK_BYTES: usize = 16 * 1024;

/// Bytes of queued frames gathered into one write, at most (one frame
/// larger than this goes alone): fewer system calls for a burst of small
/// frames.
pub const WRITE_BATCH_BYTES: usize = 64 * 1024;

/// What a [`Connection`] carries frames over. Sealed: implemented for every
/// tokio byte stream (frames with their length prefix, as on TCP), for
/// [`ws::WebSocket`] (one binary message per frame) and for [`RelayLink`]
/// (either, as [`connect`] chose). Its methods are the driver's business.
pub trait Link: Unpin + sealed::Sealed {
    /// Whether one frame travels as one message (whole, without its
    /// prefix) rather than as bytes of a stream.
    #[doc(hidden)]
    fn frames_are_messages(&self) -> bool;
    /// Offers outgoing bytes. A byte stream takes any part of them; a
    /// message link is given exactly one encoded frame and takes all of it
    /// or nothing. Either way nothing it took is lost if the caller stops.
    #[doc(hidden)]
    fn poll_send(&mut self, cx: &mut Context<'_>, frames: &[u8]) -> Poll<io::Result<usize>>;
    /// Flushes what it took.
    #[doc(hidden)]
    fn poll_flush_link(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// The next input; a byte stream reads into `read_buffer`.
    #[doc(hidden)]
    fn poll_receive(&mut self, cx: &mut Context<'_>, read_buffer: &mut [u8]) -> Poll<Received>;
    /// Ends the connection from this side.
    #[doc(hidden)]
    fn poll_shutdown_link(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

/// What one [`Link::poll_receive`] got.
#[doc(hidden)]
#[derive(Debug)]
pub enum Received {
    /// This many bytes arrived at the front of the read buffer.
    Bytes(usize),
    /// One message: one frame body.
    Message(tokio_tungstenite::tungstenite::Bytes),
    /// The peer ended the connection.
    Ended,
    /// The link refused input before it became a frame (a text message, a
    /// message above the frame limit); the session says so and closes.
    Refused(FrameError),
    /// The link failed.
    Failed(io::Error),
}

mod sealed {
    /// Keeps [`super::Link`] to this crate's links.
    pub trait Sealed {}
}

impl<S: AsyncRead + AsyncWrite + Unpin> sealed::Sealed for S {}

impl<S: AsyncRead + AsyncWrite + Unpin> Link for S {
    fn frames_are_messages(&self) -> bool {
        false
    }

    fn poll_send(&mut self, cx: &mut Context<'_>, frames: &[u8]) -> Poll<io::Result<usize>> {
        match Pin::new(self).poll_write(cx, frames) {
            Poll::Ready(Ok(0)) => Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            other => other,
        }
    }

    fn poll_flush_link(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self).poll_flush(cx)
    }

    fn poll_receive(&mut self, cx: &mut Context<'_>, read_buffer: &mut [u8]) -> Poll<Received> {
        let mut buf = ReadBuf::new(read_buffer);
        Pin::new(self)
            .poll_read(cx, &mut buf)
            .map(|read| match read {
                Ok(()) if buf.filled().is_empty() => Received::Ended,
                Ok(()) => Received::Bytes(buf.filled().len()),
                Err(e) => Received::Failed(e),
            })
    }

    fn poll_shutdown_link(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self).poll_shutdown(cx)
    }
}

/// A [`ClientSession`] running over a [`Link`]: a tokio byte stream, a
/// WebSocket, or whichever [`connect`] chose.
///
/// # Drive contract
///
/// Call [`Connection::next_event`] in a loop; between calls, issue commands
/// through [`Connection::session`]. `next_event` returns events the session
/// already holds first; otherwise it writes queued frames, reads, and runs
/// the session's timers, all at once, until the session has an event. A
/// frame queued by a command goes out during the next `next_event` (or
/// [`Connection::flush`]), after every frame queued before it. The session's
/// clock is milliseconds since the connection was made, read from tokio's
/// clock, so tests with a paused clock stay deterministic.
///
/// # Cancel safety
///
/// [`Connection::next_event`] and [`Connection::flush`] are cancel-safe:
/// they can be a branch of `tokio::select!` beside the app's commands and
/// timers, or be wrapped in `tokio::time::timeout`. Dropping either future
/// at any await point loses nothing and duplicates nothing: input is handed
/// to the session before it is reported, and the part of the current
/// outgoing frames that the link has not taken stays in the `Connection`
/// (a byte stream is only ever written with `AsyncWrite::poll_write`, which
/// either takes bytes or takes none; a WebSocket takes one whole frame as
/// one message into its own buffer, or nothing), so the next call continues
/// exactly where the dropped one stopped. Frames are never interleaved.
#[derive(Debug)]
pub struct Connection<L> {
    link: L,
    session: ClientSession,
    origin: Instant,
    /// Where a byte stream reads into; empty for a message link.
    read_buffer: Vec<u8>,
    /// Frames taken from the session and not yet wholly written, in order
    /// (exactly one frame on a message link).
    outgoing: Vec<u8>,
    /// How much of `outgoing` the link has taken.
    outgoing_written: usize,
    /// Bytes were written since the link was last flushed.
    needs_flush: bool,
    /// The link has been shut down after the session closed.
    done: bool,
}

/// What one wait in [`Connection::next_event`] ended with.
enum Progress {
    /// Outgoing bytes moved.
    Out(Outgoing),
    /// Input arrived, or the link ended.
    In(Received),
    /// The session's timer is due.
    Timer,
}

/// How outgoing bytes moved.
enum Outgoing {
    /// The link took this many bytes of `outgoing`.
    Wrote(usize),
    /// The link flushed.
    Flushed,
}

impl<L: Link> Connection<L> {
    /// Wraps a connected link and a fresh session (whose clock started at
    /// 0 ms).
    pub fn new(link: L, session: ClientSession) -> Self {
        let read_buffer = if link.frames_are_messages() {
            Vec::new()
        } else {
            vec![0; READ_CHUNK_BYTES]
        };
        Connection {
            link,
            session,
            origin: Instant::now(),
            read_buffer,
            outgoing: Vec::new(),
            outgoing_written: 0,
            needs_flush: false,
            done: false,
        }
    }

    /// The session, to issue commands or read its state.
    pub fn session(&mut self) -> &mut ClientSession {
        &mut self.session
    }

    /// Milliseconds since the connection was made: the session's clock.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// An event the session already holds, without reading or writing: lets
    /// a caller take a run of events that arrived together (live deltas, to
    /// merge as one batch) before deciding what to do.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.session.poll_event()
    }

    /// Writes every queued frame and flushes the link. Cancel-safe (see
    /// the type's docs).
    pub async fn flush(&mut self) -> io::Result<()> {
        loop {
            self.take_transmits();
            if self.outgoing.is_empty() && !self.needs_flush {
                return Ok(());
            }
            let moved = std::future::poll_fn(|cx| self.poll_write_or_flush(cx)).await?;
            self.record(moved);
        }
    }

    /// The next event, writing queued frames, reading from the link and
    /// running timers as needed. Cancel-safe (see the type's docs).
    ///
    /// Returns `Ok(None)` once [`SessionEvent::Closed`] has been returned,
    /// the session's last frames are written and the link is shut down.
    /// An IO error closes the session too: the next call returns its
    /// `Closed` event.
    pub async fn next_event(&mut self) -> io::Result<Option<SessionEvent>> {
        loop {
            if let Some(event) = self.session.poll_event() {
                return Ok(Some(event));
            }
            self.take_transmits();
            if self.session.is_closed() && self.outgoing.is_empty() && !self.needs_flush {
                if !self.done {
                    // The peer may already be gone; nothing to do about it.
                    let _ = std::future::poll_fn(|cx| self.link.poll_shutdown_link(cx)).await;
                    self.done = true;
                }
                return Ok(None);
            }
            // A deadline too far to represent is no deadline.
            let deadline = self
                .session
                .poll_timeout()
                .and_then(|at_ms| self.origin.checked_add(Duration::from_millis(at_ms)));
            let timer = deadline.map(tokio::time::sleep_until);
            tokio::pin!(timer);
            let waited = std::future::poll_fn(|cx| {
                if let Poll::Ready(moved) = self.poll_write_or_flush(cx) {
                    return Poll::Ready(moved.map(Progress::Out));
                }
                // Once closed, the session wants nothing more from the
                // peer: only its last frames are still written.
                if !self.session.is_closed() {
                    if let Poll::Ready(received) = self.link.poll_receive(cx, &mut self.read_buffer)
                    {
                        return Poll::Ready(Ok(Progress::In(received)));
                    }
                }
                if let Some(timer) = timer.as_mut().as_pin_mut() {
                    if timer.poll(cx).is_ready() {
                        return Poll::Ready(Ok(Progress::Timer));
                    }
                }
                Poll::Pending
            })
            .await;
            let failed = match waited {
                Ok(Progress::In(Received::Ended)) => {
                    self.session.handle_transport_closed();
                    continue;
                }
                Ok(Progress::In(Received::Bytes(n))) => {
                    let now_ms = self.now_ms();
                    self.session.handle_bytes(&self.read_buffer[..n], now_ms);
                    continue;
                }
                Ok(Progress::In(Received::Message(body))) => {
                    let now_ms = self.now_ms();
                    self.session.handle_message(&body, now_ms);
                    continue;
                }
                Ok(Progress::In(Received::Refused(error))) => {
                    self.session.handle_refused_input(error);
                    continue;
                }
                Ok(Progress::Timer) => {
                    let now_ms = self.now_ms();
                    self.session.handle_timeout(now_ms);
                    continue;
                }
                Ok(Progress::Out(moved)) => {
                    self.record(moved);
                    continue;
                }
                Ok(Progress::In(Received::Failed(e))) | Err(e) => e,
            };
            self.session.handle_transport_closed();
            self.drop_outgoing();
            return Err(failed);
        }
    }

    /// Gives back the link and the session. Frames taken from the session
    /// and not yet written are dropped.
    pub fn into_parts(self) -> (L, ClientSession) {
        (self.link, self.session)
    }

    /// Moves the session's queued frames into `outgoing`: on a byte stream
    /// up to [`WRITE_BATCH_BYTES`] (a larger frame goes alone), on a
    /// message link one frame, once the previous one is taken.
    fn take_transmits(&mut self) {
        if self.outgoing_written == self.outgoing.len() {
            self.outgoing.clear();
            self.outgoing_written = 0;
        }
        if self.link.frames_are_messages() {
            if self.outgoing.is_empty() {
                if let Some(frame) = self.session.poll_transmit() {
                    self.outgoing = frame;
                }
            }
            return;
        }
        while self.outgoing.len() - self.outgoing_written < WRITE_BATCH_BYTES {
            let Some(frame) = self.session.poll_transmit() else {
                break;
            };
            if self.outgoing.is_empty() {
                self.outgoing = frame;
            } else {
                self.outgoing.extend_from_slice(&frame);
            }
        }
    }

    /// Offers the unwritten part of `outgoing` to the link, or flushes it
    /// once everything is written. `Pending` when there is nothing to do or
    /// the link is not ready.
    fn poll_write_or_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Outgoing>> {
        let unwritten = &self.outgoing[self.outgoing_written..];
        if !unwritten.is_empty() {
            return self.link.poll_send(cx, unwritten).map_ok(Outgoing::Wrote);
        }
        if self.needs_flush {
            return self.link.poll_flush_link(cx).map_ok(|()| Outgoing::Flushed);
        }
        Poll::Pending
    }

    /// Records a write or a flush.
    fn record(&mut self, moved: Outgoing) {
        match moved {
            Outgoing::Wrote(n) => {
                self.outgoing_written += n;
                self.needs_flush = true;
                assert!(
                    self.outgoing_written <= self.outgoing.len(),
                    "the link took more bytes than it was offered"
                );
            }
            Outgoing::Flushed => self.needs_flush = false,
        }
    }

    /// After the link failed: what was not written never will be.
    fn drop_outgoing(&mut self) {
        self.outgoing.clear();
        self.outgoing_written = 0;
        self.needs_flush = false;
    }
}

/// Why [`connect`] (or [`tcp::connect`], [`ws::connect`]) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The config cannot start a session.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The TCP connection failed.
    #[error("connecting: {0}")]
    Io(#[from] io::Error),
    /// The TCP connection was made but the WebSocket upgrade failed: the
    /// server is not a relay's WebSocket listener, refused the upgrade
    /// (`status`: a busy relay answers 503), or broke the handshake.
    #[error("the WebSocket handshake failed: {reason}")]
    Handshake {
        /// The HTTP status the server answered with, when it answered one.
        status: Option<u16>,
        /// What went wrong, in words.
        reason: String,
    },
}

/// A connection to a relay over the link its address names: TCP for
/// `host:port`, WebSocket for `ws://…` (see [`RelayAddress`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum RelayLink {
    /// The relay's TCP listener.
    Tcp(TcpStream),
    /// The relay's WebSocket listener (boxed: tungstenite's state is ten
    /// times a socket's).
    WebSocket(Box<ws::WebSocket<TcpStream>>),
}

impl sealed::Sealed for RelayLink {}

impl Link for RelayLink {
    fn frames_are_messages(&self) -> bool {
        match self {
            RelayLink::Tcp(link) => link.frames_are_messages(),
            RelayLink::WebSocket(link) => link.frames_are_messages(),
        }
    }

    fn poll_send(&mut self, cx: &mut Context<'_>, frames: &[u8]) -> Poll<io::Result<usize>> {
        match self {
            RelayLink::Tcp(link) => link.poll_send(cx, frames),
            RelayLink::WebSocket(link) => link.poll_send(cx, frames),
        }
    }

    fn poll_flush_link(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            RelayLink::Tcp(link) => link.poll_flush_link(cx),
            RelayLink::WebSocket(link) => link.poll_flush_link(cx),
        }
    }

    fn poll_receive(&mut self, cx: &mut Context<'_>, read_buffer: &mut [u8]) -> Poll<Received> {
        match self {
            RelayLink::Tcp(link) => link.poll_receive(cx, read_buffer),
            RelayLink::WebSocket(link) => link.poll_receive(cx, read_buffer),
        }
    }

    fn poll_shutdown_link(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            RelayLink::Tcp(link) => link.poll_shutdown_link(cx),
            RelayLink::WebSocket(link) => link.poll_shutdown_link(cx),
        }
    }
}

/// Connects to the relay at `address` over the link it names and starts a
/// session; `Hello` goes out on the first [`Connection::next_event`] or
/// [`Connection::flush`].
pub async fn connect(
    address: &RelayAddress,
    config: ClientConfig,
) -> Result<Connection<RelayLink>, ConnectError> {
    let session = ClientSession::new(config, 0)?;
    let link = match address {
        RelayAddress::WebSocket { .. } => RelayLink::WebSocket(Box::new(
            ws::handshake(address, tcp::open(address).await?).await?,
        )),
        _ => RelayLink::Tcp(tcp::open(address).await?),
    };
    Ok(Connection::new(link, session))
}

/// Why [`read_frame`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadFrameError {
    /// The stream failed.
    #[error("reading the stream: {0}")]
    Io(#[from] io::Error),
    /// The bytes are not a frame.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// Reads until `decoder` yields one whole frame; `Ok(None)` when the stream
/// ends cleanly between frames. Bytes after that frame stay in `decoder`.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    decoder: &mut FrameDecoder,
) -> Result<Option<Frame>, ReadFrameError> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(frame) = decoder.next_frame()? {
            return Ok(Some(frame));
        }
        let n = reader.read(&mut chunk).await?;
        if n == 0 {
            if decoder.buffered_bytes() == 0 {
                return Ok(None);
            }
            return Err(
                io::Error::new(io::ErrorKind::UnexpectedEof, "stream ended mid-frame").into(),
            );
        }
        decoder.feed(&chunk[..n]);
    }
}

/// Encodes and writes one frame.
pub async fn write_frame<W: AsyncWrite + Unpin>(writer: &mut W, frame: &Frame) -> io::Result<()> {
    let bytes = codec::encode(frame).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    writer.write_all(&bytes).await
}

/// The TCP driver.
pub mod tcp {
    use std::io;

    use tokio::net::{TcpStream, ToSocketAddrs};

    use super::Connection;
    use crate::address::RelayAddress;
    use crate::client::{ClientConfig, ClientSession};

    pub use super::ConnectError;

    /// Connects to a relay and starts a session; `Hello` goes out on the
    /// first [`Connection::next_event`] or [`Connection::flush`].
    pub async fn connect(
        addr: impl ToSocketAddrs,
        config: ClientConfig,
    ) -> Result<Connection<TcpStream>, ConnectError> {
        let session = ClientSession::new(config, 0)?;
        let stream = TcpStream::connect(addr).await?;
        // Frames are small and latency matters more than packet count.
        stream.set_nodelay(true)?;
        Ok(Connection::new(stream, session))
    }

    /// The TCP connection to `address`'s host and port.
    pub(crate) async fn open(address: &RelayAddress) -> io::Result<TcpStream> {
        let stream = TcpStream::connect((address.host(), address.port())).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

/// The WebSocket driver: one binary message carries one frame body (the
/// frame without its length prefix; the message's length takes its
/// place), so the codec's encoding and its size limit hold on both kinds
/// of link.
///
/// Incoming messages and their fragments are capped at
/// [`FRAME_BYTES_MAX`](crate::limits::FRAME_BYTES_MAX) by tungstenite
/// ([`config`]): a larger one is refused as soon as its header announces
/// it (or its fragments pass the cap), before it is buffered, and the
/// session closes with [`ErrorCode::FrameTooLarge`](crate::ErrorCode);
/// a text message closes it with `Malformed`. WebSocket's own ping and pong
/// are answered by tungstenite and are not Tandem's: the session keeps its
/// own `Ping` frames. No TLS (`wss://`): see [`crate::address`].
pub mod ws {
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use futures_util::{Sink, Stream};
    use tokio::io::{AsyncRead, AsyncWrite};
    use tokio::net::TcpStream;
    use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError, ProtocolError};
    use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
    use tokio_tungstenite::tungstenite::{Bytes, Message};
    use tokio_tungstenite::WebSocketStream;

    use super::{sealed, ConnectError, Connection, Link, Received, READ_CHUNK_BYTES};
    use crate::address::RelayAddress;
    use crate::client::{ClientConfig, ClientSession};
    use crate::codec::{self, FrameError};
    use crate::limits::FRAME_BYTES_MAX;

    /// Bytes tungstenite gathers before it writes to the socket, the TCP
    /// driver's batch size (it always writes everything on a flush).
    pub const WRITE_BUFFER_BYTES: usize = super::WRITE_BATCH_BYTES;

    /// The WebSocket limits both ends use: messages and frames up to
    /// [`FRAME_BYTES_MAX`], refused above it before they are buffered; a
    /// read buffer the size of the TCP driver's.
    pub fn config() -> WebSocketConfig {
        WebSocketConfig::default()
            .max_message_size(Some(FRAME_BYTES_MAX))
            .max_frame_size(Some(FRAME_BYTES_MAX))
            .read_buffer_size(READ_CHUNK_BYTES)
            .write_buffer_size(WRITE_BUFFER_BYTES)
    }

    /// A WebSocket whose binary messages are frames: a [`Link`] for
    /// [`Connection`].
    #[derive(Debug)]
    pub struct WebSocket<S> {
        stream: WebSocketStream<S>,
    }

    impl<S> WebSocket<S> {
        /// Wraps a WebSocket whose handshake is done (made with [`config`],
        /// or limits as strict).
        pub fn new(stream: WebSocketStream<S>) -> Self {
            WebSocket { stream }
        }

        /// The WebSocket back.
        pub fn into_inner(self) -> WebSocketStream<S> {
            self.stream
        }
    }

    impl<S> sealed::Sealed for WebSocket<S> {}

    impl<S: AsyncRead + AsyncWrite + Unpin> Link for WebSocket<S> {
        fn frames_are_messages(&self) -> bool {
            true
        }

        fn poll_send(&mut self, cx: &mut Context<'_>, frame: &[u8]) -> Poll<io::Result<usize>> {
            let mut stream = Pin::new(&mut self.stream);
            if let Err(e) = std::task::ready!(stream.as_mut().poll_ready(cx)) {
                return Poll::Ready(Err(io_error(e)));
            }
            // Taken whole into tungstenite's buffer, or not at all.
            match stream.start_send(message(frame)) {
                Ok(()) => Poll::Ready(Ok(frame.len())),
                Err(e) => Poll::Ready(Err(io_error(e))),
            }
        }

        fn poll_flush_link(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.stream).poll_flush(cx).map_err(io_error)
        }

        fn poll_receive(&mut self, cx: &mut Context<'_>, _: &mut [u8]) -> Poll<Received> {
            loop {
                let next = std::task::ready!(Pin::new(&mut self.stream).poll_next(cx));
                return Poll::Ready(match incoming(next) {
                    Incoming::Frame(body) => Received::Message(body),
                    Incoming::Refused(error) => Received::Refused(error),
                    Incoming::Ended => Received::Ended,
                    Incoming::Failed(error) => Received::Failed(error),
                    Incoming::Ignored => continue,
                });
            }
        }

        fn poll_shutdown_link(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.stream).poll_close(cx).map_err(io_error)
        }
    }

    /// What one item read from a WebSocket means for a Tandem session
    /// (either end's).
    #[derive(Debug)]
    #[non_exhaustive]
    pub enum Incoming {
        /// A binary message: one frame body, for `handle_message`.
        Frame(Bytes),
        /// Input that can never be a frame: a text message (`Malformed`),
        /// or a message above the frame limit that tungstenite stopped
        /// reading (`TooLarge`). The session refuses it and closes.
        Refused(FrameError),
        /// WebSocket's own ping or pong: tungstenite answers; nothing for
        /// the session.
        Ignored,
        /// The peer closed the WebSocket, or the stream ended.
        Ended,
        /// The connection failed, or broke the WebSocket protocol.
        Failed(io::Error),
    }

    /// Classifies what `Stream::poll_next` (or `StreamExt::next`) of a
    /// WebSocket made with [`config`] returned.
    pub fn incoming(item: Option<Result<Message, WsError>>) -> Incoming {
        match item {
            None => Incoming::Ended,
            Some(Ok(Message::Binary(body))) => Incoming::Frame(body),
            Some(Ok(Message::Text(_))) => Incoming::Refused(FrameError::Malformed {
                reason: "a text message: frames travel in binary messages".into(),
            }),
            Some(Ok(Message::Close(_))) => Incoming::Ended,
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Incoming::Ignored,
            Some(Err(WsError::Capacity(CapacityError::MessageTooLong { size, .. }))) => {
                Incoming::Refused(FrameError::TooLarge { body_bytes: size })
            }
            Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => Incoming::Ended,
            // The peer (or the network) dropped the TCP connection without
            // WebSocket's close handshake: for Tandem the link ended, as a
            // TCP end of stream does.
            Some(Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake))) => {
                Incoming::Ended
            }
            Some(Err(other)) => Incoming::Failed(io_error(other)),
        }
    }

    /// One frame as the binary message that carries it.
    ///
    /// # Panics
    ///
    /// When `encoded` is not one frame as [`codec::encode`] makes it.
    pub fn message(encoded: &[u8]) -> Message {
        Message::Binary(Bytes::copy_from_slice(codec::message_body(encoded)))
    }

    /// The relay's side of the upgrade: answers a client's WebSocket
    /// handshake on `stream` with the limits of [`config`]. Any request
    /// path is served.
    pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
        stream: S,
    ) -> Result<WebSocketStream<S>, WsError> {
        tokio_tungstenite::accept_async_with_config(stream, Some(config())).await
    }

    /// A WebSocket error as the IO error the driver reports.
    pub(crate) fn io_error(error: WsError) -> io::Error {
        match error {
            WsError::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }

    /// Connects to a relay's WebSocket listener at `address`
    /// (`ws://host:port/path`) and starts a session; `Hello` goes out on
    /// the first [`Connection::next_event`] or [`Connection::flush`].
    pub async fn connect(
        address: &RelayAddress,
        config: ClientConfig,
    ) -> Result<Connection<WebSocket<TcpStream>>, ConnectError> {
        let session = ClientSession::new(config, 0)?;
        let stream = super::tcp::open(address).await?;
        Ok(Connection::new(handshake(address, stream).await?, session))
    }

    /// The device's side of the upgrade over a connected `stream`, asking
    /// for `address`'s host and path, with the limits of [`config`].
    pub async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
        address: &RelayAddress,
        stream: S,
    ) -> Result<WebSocket<S>, ConnectError> {
        let RelayAddress::WebSocket { .. } = address else {
            return Err(ConnectError::Handshake {
                status: None,
                reason: format!("{address} is not a ws:// address"),
            });
        };
        let url = address.to_string();
        match tokio_tungstenite::client_async_with_config(url.as_str(), stream, Some(config()))
            .await
        {
            Ok((stream, _response)) => Ok(WebSocket::new(stream)),
            Err(WsError::Io(e)) => Err(ConnectError::Io(e)),
            Err(WsError::Http(response)) => Err(ConnectError::Handshake {
                status: Some(response.status().as_u16()),
                reason: format!(
                    "the server answered {}{}",
                    response.status(),
                    response
                        .body()
                        .as_deref()
                        .map(|body| format!(": {}", String::from_utf8_lossy(body).trim()))
                        .unwrap_or_default()
                ),
            }),
            Err(other) => Err(ConnectError::Handshake {
                status: None,
                reason: other.to_string(),
            }),
        }
    }
}
