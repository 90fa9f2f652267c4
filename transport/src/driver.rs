//! Drivers that move a [`ClientSession`]'s bytes over a real connection.
//!
//! The session itself is sans-IO (see its drive contract); these are thin
//! shells around it. [`Connection`] runs it over any tokio byte stream: a
//! `TcpStream` (see [`tcp`]) or an in-process `tokio::io::duplex` pipe. The
//! deterministic, synchronous in-memory link for simulations is
//! [`crate::mem`].

use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::client::{ClientSession, SessionEvent};
use crate::codec::{self, FrameDecoder, FrameError};
use crate::frame::Frame;

/// Bytes read from the stream per read call.
pub const READ_CHUNK_BYTES: usize = 16 * 1024;

/// A [`ClientSession`] running over a tokio byte stream.
///
/// Call [`Connection::next_event`] in a loop; between calls, issue commands
/// through [`Connection::session`]. Their frames are written at the start of
/// the next `next_event` (or by [`Connection::flush`]). The session's clock
/// is milliseconds since the connection was made, read from tokio's clock, so
/// tests with a paused clock stay deterministic.
#[derive(Debug)]
pub struct Connection<S> {
    stream: S,
    session: ClientSession,
    origin: Instant,
    read_buffer: Vec<u8>,
    done: bool,
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

    /// Writes every queued frame.
    pub async fn flush(&mut self) -> io::Result<()> {
        let mut wrote = false;
        while let Some(bytes) = self.session.poll_transmit() {
            self.stream.write_all(&bytes).await?;
            wrote = true;
        }
        if wrote {
            self.stream.flush().await?;
        }
        Ok(())
    }

    /// The next event, reading from the stream and running timers as needed.
    ///
    /// Returns `Ok(None)` once [`SessionEvent::Closed`] has been returned and the
    /// stream shut down. An IO error closes the session too: the next call
    /// returns its `Closed` event.
    pub async fn next_event(&mut self) -> io::Result<Option<SessionEvent>> {
        loop {
            if let Err(e) = self.flush().await {
                self.session.handle_transport_closed();
                return Err(e);
            }
            if let Some(event) = self.session.poll_event() {
                return Ok(Some(event));
            }
            if self.session.is_closed() {
                if !self.done {
                    self.done = true;
                    // The peer may already be gone; nothing to do about it.
                    let _ = self.stream.shutdown().await;
                }
                return Ok(None);
            }
            let wait_ms = self
                .session
                .poll_timeout()
                .map(|d| d.saturating_sub(self.now_ms()));
            let read = self.stream.read(&mut self.read_buffer);
            let outcome = match wait_ms {
                None => Some(read.await),
                Some(wait_ms) => {
                    // `read` is cancel-safe: a timeout loses no bytes.
                    tokio::time::timeout(Duration::from_millis(wait_ms), read)
                        .await
                        .ok()
                }
            };
            let now_ms = self.now_ms();
            match outcome {
                None => self.session.handle_timeout(now_ms),
                Some(Ok(0)) => self.session.handle_transport_closed(),
                Some(Ok(n)) => self.session.handle_bytes(&self.read_buffer[..n], now_ms),
                Some(Err(e)) => {
                    self.session.handle_transport_closed();
                    return Err(e);
                }
            }
        }
    }

    /// Gives back the stream and the session.
    pub fn into_parts(self) -> (S, ClientSession) {
        (self.stream, self.session)
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
