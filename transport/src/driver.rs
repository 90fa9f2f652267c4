//! Drivers that move a [`ClientSession`]'s bytes over a real connection.
//!
//! The session itself is sans-IO (see its drive contract); these are thin
//! shells around it. [`Connection`] runs it over any tokio byte stream: a
//! `TcpStream` (see [`tcp`]) or an in-process `tokio::io::duplex` pipe. The
//! deterministic, synchronous in-memory link for simulations is
//! [`crate::mem`].

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;

use crate::client::{ClientSession, SessionEvent};
use crate::codec::{self, FrameDecoder, FrameError};
use crate::frame::Frame;

/// Bytes read from the stream per read call.
pub const READ_CHUNK_BYTES: usize = 16 * 1024;

/// Bytes of queued frames gathered into one write, at most (one frame
/// larger than this goes alone): fewer system calls for a burst of small
/// frames.
pub const WRITE_BATCH_BYTES: usize = 64 * 1024;

/// A [`ClientSession`] running over a tokio byte stream.
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
/// at any await point loses nothing and duplicates nothing: bytes read are
/// handed to the session before the read is reported, and the part of the
/// current outgoing frames that the stream has not taken stays in the
/// `Connection` (it only ever writes with `AsyncWrite::poll_write`, which
/// either takes bytes or takes none), so the next call continues exactly
/// where the dropped one stopped. Frames are never interleaved.
#[derive(Debug)]
pub struct Connection<S> {
    stream: S,
    session: ClientSession,
    origin: Instant,
    read_buffer: Vec<u8>,
    /// Frames taken from the session and not yet wholly written, in order.
    outgoing: Vec<u8>,
    /// How much of `outgoing` the stream has taken.
    outgoing_written: usize,
    /// Bytes were written since the stream was last flushed.
    needs_flush: bool,
    /// The stream has been shut down after the session closed.
    done: bool,
}

/// What one wait in [`Connection::next_event`] ended with.
enum Progress {
    /// Outgoing bytes moved.
    Out(Outgoing),
    /// This many bytes arrived in `read_buffer`; 0 means the stream ended.
    Read(usize),
    /// The session's timer is due.
    Timer,
}

/// How outgoing bytes moved.
enum Outgoing {
    /// The stream took this many bytes of `outgoing`.
    Wrote(usize),
    /// The stream flushed.
    Flushed,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Wraps a connected stream and a fresh session (whose clock started at
    /// 0 ms).
    pub fn new(stream: S, session: ClientSession) -> Self {
        Connection {
            stream,
            session,
            origin: Instant::now(),
            read_buffer: vec![0; READ_CHUNK_BYTES],
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

    /// Writes every queued frame and flushes the stream. Cancel-safe (see
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

    /// The next event, writing queued frames, reading from the stream and
    /// running timers as needed. Cancel-safe (see the type's docs).
    ///
    /// Returns `Ok(None)` once [`SessionEvent::Closed`] has been returned,
    /// the session's last frames are written and the stream is shut down.
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
                    let _ = self.stream.shutdown().await;
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
                    let mut buf = ReadBuf::new(&mut self.read_buffer);
                    if let Poll::Ready(result) = Pin::new(&mut self.stream).poll_read(cx, &mut buf)
                    {
                        return Poll::Ready(result.map(|()| Progress::Read(buf.filled().len())));
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
            match waited {
                Ok(Progress::Read(0)) => self.session.handle_transport_closed(),
                Ok(Progress::Read(n)) => {
                    let now_ms = self.now_ms();
                    self.session.handle_bytes(&self.read_buffer[..n], now_ms);
                }
                Ok(Progress::Timer) => {
                    let now_ms = self.now_ms();
                    self.session.handle_timeout(now_ms);
                }
                Ok(Progress::Out(moved)) => self.record(moved),
                Err(e) => {
                    self.session.handle_transport_closed();
                    self.drop_outgoing();
                    return Err(e);
                }
            }
        }
    }

    /// Gives back the stream and the session. Frames taken from the session
    /// and not yet written are dropped.
    pub fn into_parts(self) -> (S, ClientSession) {
        (self.stream, self.session)
    }

    /// Moves the session's queued frames into `outgoing`, up to
    /// [`WRITE_BATCH_BYTES`] (a larger frame goes alone).
    fn take_transmits(&mut self) {
        if self.outgoing_written == self.outgoing.len() {
            self.outgoing.clear();
            self.outgoing_written = 0;
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

    /// Offers the unwritten part of `outgoing` to the stream, or flushes it
    /// once everything is written. `Pending` when there is nothing to do or
    /// the stream is not ready.
    fn poll_write_or_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Outgoing>> {
        let unwritten = &self.outgoing[self.outgoing_written..];
        if !unwritten.is_empty() {
            return match Pin::new(&mut self.stream).poll_write(cx, unwritten) {
                Poll::Ready(Ok(0)) => Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => Poll::Ready(Ok(Outgoing::Wrote(n))),
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            };
        }
        if self.needs_flush {
            return Pin::new(&mut self.stream)
                .poll_flush(cx)
                .map_ok(|()| Outgoing::Flushed);
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
                    "the stream took more bytes than it was offered"
                );
            }
            Outgoing::Flushed => self.needs_flush = false,
        }
    }

    /// After the stream failed: what was not written never will be.
    fn drop_outgoing(&mut self) {
        self.outgoing.clear();
        self.outgoing_written = 0;
        self.needs_flush = false;
    }
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
    use crate::client::{ClientConfig, ClientSession, ConfigError};

    /// Why [`connect`] failed.
    #[derive(Debug, thiserror::Error)]
    #[non_exhaustive]
    pub enum ConnectError {
        /// The config cannot start a session.
        #[error(transparent)]
        Config(#[from] ConfigError),
        /// The TCP connection failed.
        #[error("connecting: {0}")]
        Io(#[from] io::Error),
    }

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
}
