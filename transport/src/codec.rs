//! The framing codec: a 4-byte big-endian length, then the postcard body.
//!
//! [`decode`] is pure: it looks at a byte buffer, takes one whole frame off
//! its front when there is one, and leaves partial input alone for the next
//! call. It never reads a body whose announced length is above
//! [`FRAME_BYTES_MAX`]: that is refused as soon as the prefix is seen, so a
//! peer cannot make us buffer more than one maximal frame.
//!
//! A message-based link (WebSocket) carries one frame per message, and the
//! message's own length takes the prefix's place: [`message_body`] is what
//! one encoded frame sends, [`FrameDecoder::feed_message`] what one received
//! message gives, so encoding, decoding and the size limit stay here, once,
//! for both kinds of link.

use crate::frame::Frame;
use crate::limits::{FRAME_BYTES_MAX, FRAME_PREFIX_BYTES};

/// Why bytes could not be taken as a frame. Every variant ends the
/// connection: after a framing error the stream's frame boundaries are lost.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix announces a body above [`FRAME_BYTES_MAX`].
    #[error("frame of {body_bytes} bytes is above the limit of {FRAME_BYTES_MAX}")]
    TooLarge {
        /// The announced body length.
        body_bytes: usize,
    },
    /// The body is not the postcard encoding of a [`Frame`], or has bytes
    /// left over after one.
    #[error("malformed frame body: {reason}")]
    Malformed {
        /// What postcard said, or "trailing bytes".
        reason: String,
    },
}

/// Why a frame could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The encoded body would be above [`FRAME_BYTES_MAX`]; the peer would
    /// refuse it, so it is not sent.
    #[error("encoded frame of {body_bytes} bytes is above the limit of {FRAME_BYTES_MAX}")]
    TooLarge {
        /// The encoded body length.
        body_bytes: usize,
    },
    /// Postcard could not serialize the frame.
    #[error("could not serialize frame: {reason}")]
    Serialize {
        /// What postcard said.
        reason: String,
    },
}

/// Encodes `frame` as prefix + body.
pub fn encode(frame: &Frame) -> Result<Vec<u8>, EncodeError> {
    let mut out = vec![0u8; FRAME_PREFIX_BYTES];
    out = postcard::to_extend(frame, out).map_err(|e| EncodeError::Serialize {
        reason: e.to_string(),
    })?;
    let body_bytes = out.len() - FRAME_PREFIX_BYTES;
    if body_bytes > FRAME_BYTES_MAX {
        return Err(EncodeError::TooLarge { body_bytes });
    }
    // FRAME_BYTES_MAX fits in a u32, so the cast cannot truncate.
    let prefix = u32::try_from(body_bytes)
        .expect("body below FRAME_BYTES_MAX")
        .to_be_bytes();
    out[..FRAME_PREFIX_BYTES].copy_from_slice(&prefix);
    Ok(out)
}

/// The body of one frame that [`encode`] produced (what a message-based link
/// sends as one message): the frame without its length prefix.
///
/// # Panics
///
/// When `encoded` is not exactly one frame as [`encode`] makes it (its
/// prefix must announce the rest): a programmer error, never input.
pub fn message_body(encoded: &[u8]) -> &[u8] {
    let prefix = encoded
        .first_chunk::<FRAME_PREFIX_BYTES>()
        .expect("an encoded frame starts with its prefix");
    let body = &encoded[FRAME_PREFIX_BYTES..];
    assert_eq!(
        u32::from_be_bytes(*prefix) as usize,
        body.len(),
        "an encoded frame is exactly one frame"
    );
    body
}

/// Takes one frame off the front of `buffer`.
///
/// Returns `Ok(None)` when the buffer holds less than a whole frame (the
/// bytes stay for the next call), `Ok(Some(frame))` after removing that
/// frame's bytes, and an error when the front of the buffer can never become
/// a frame. Only the framing and the postcard layout are checked here; the
/// limits inside a frame are the session validators' job.
pub fn decode(buffer: &mut Vec<u8>) -> Result<Option<Frame>, FrameError> {
    let Some(body_bytes) = peek_body_len(buffer)? else {
        return Ok(None);
    };
    let end = FRAME_PREFIX_BYTES + body_bytes;
    if buffer.len() < end {
        return Ok(None);
    }
    let frame = decode_body(&buffer[FRAME_PREFIX_BYTES..end])?;
    buffer.drain(..end);
    Ok(Some(frame))
}

/// Reads the length prefix at the front of `buffer`, if it is all there, and
/// refuses one above the limit.
pub fn peek_body_len(buffer: &[u8]) -> Result<Option<usize>, FrameError> {
    let Some(prefix) = buffer.first_chunk::<FRAME_PREFIX_BYTES>() else {
        return Ok(None);
    };
    let body_bytes = u32::from_be_bytes(*prefix) as usize;
    if body_bytes > FRAME_BYTES_MAX {
        return Err(FrameError::TooLarge { body_bytes });
    }
    Ok(Some(body_bytes))
}

/// Decodes one frame body (without its prefix). Trailing bytes are an error:
/// a body is exactly one frame.
pub fn decode_body(body: &[u8]) -> Result<Frame, FrameError> {
    let (frame, rest) =
        postcard::take_from_bytes::<Frame>(body).map_err(|e| FrameError::Malformed {
            reason: e.to_string(),
        })?;
    if !rest.is_empty() {
        return Err(FrameError::Malformed {
            reason: format!("{} trailing bytes", rest.len()),
        });
    }
    Ok(frame)
}

/// A receive buffer that hands out whole frames as bytes arrive.
///
/// The same as calling [`decode`] in a loop, but it consumes from an offset
/// and compacts once per [`FrameDecoder::feed`], so a burst of many small
/// frames costs linear time, not quadratic. It never holds more than one
/// partial frame plus whatever was fed since the last drain.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buffer: Vec<u8>,
    start: usize,
    failed: bool,
    /// A message above the limit arrived: once the frames before it are
    /// taken, the decoder fails with this.
    refused: Option<FrameError>,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.failed || self.refused.is_some() {
            return;
        }
        if self.start > 0 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// Appends one message of a message-based link: one whole frame body,
    /// whose length is the message's. A body above [`FRAME_BYTES_MAX`] is
    /// not kept: the frames fed before it are still returned, then
    /// [`FrameError::TooLarge`]. Do not mix with [`FrameDecoder::feed`] on
    /// one decoder: a message must not complete a partial frame.
    pub fn feed_message(&mut self, body: &[u8]) {
        if self.failed || self.refused.is_some() {
            return;
        }
        if body.len() > FRAME_BYTES_MAX {
            self.refused = Some(FrameError::TooLarge {
                body_bytes: body.len(),
            });
            return;
        }
        let prefix = u32::try_from(body.len())
            .expect("a body within FRAME_BYTES_MAX fits in a u32")
            .to_be_bytes();
        self.feed(&prefix);
        self.buffer.extend_from_slice(body);
    }

    /// The next whole frame, `Ok(None)` when more bytes are needed. After an
    /// error the decoder stays failed and returns the same error class again:
    /// the stream has lost its frame boundaries.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.failed {
            return Err(FrameError::Malformed {
                reason: "stream already failed".into(),
            });
        }
        let rest = &self.buffer[self.start..];
        let result = (|| {
            let Some(body_bytes) = peek_body_len(rest)? else {
                return Ok(None);
            };
            let end = FRAME_PREFIX_BYTES + body_bytes;
            if rest.len() < end {
                return Ok(None);
            }
            let frame = decode_body(&rest[FRAME_PREFIX_BYTES..end])?;
            Ok(Some((frame, end)))
        })();
        match result {
            Ok(Some((frame, end))) => {
                self.start += end;
                Ok(Some(frame))
            }
            Ok(None) => match self.refused.take() {
                None => Ok(None),
                Some(e) => {
                    self.failed = true;
                    self.buffer = Vec::new();
                    self.start = 0;
                    Err(e)
                }
            },
            Err(e) => {
                self.failed = true;
                self.buffer = Vec::new();
                self.start = 0;
                Err(e)
            }
        }
    }

    /// Bytes received but not yet taken as frames.
    pub fn buffered_bytes(&self) -> usize {
        self.buffer.len() - self.start
    }
}
