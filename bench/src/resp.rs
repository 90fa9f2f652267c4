//! A tiny RESP2 client for B6's Redis baseline: commands out as arrays of
//! bulk strings, replies parsed from a buffer by a pure [`parse`].
//!
//! Written here rather than taken from a crate because B6 needs three
//! commands (PING, XADD, XREAD) on plain tokio sockets, and a client with
//! its own connection manager and runtime glue would measure itself.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The largest bulk string accepted in a reply.
pub const BULK_BYTES_MAX: usize = 1 << 20;
/// The most elements accepted in one reply array.
pub const ARRAY_LEN_MAX: usize = 1 << 16;
/// How deep reply arrays may nest.
pub const DEPTH_MAX: usize = 8;
/// Bytes read from the socket per read call.
const READ_CHUNK_BYTES: usize = 8 * 1024;

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `+OK`.
    Simple(String),
    /// `-ERR …`.
    Error(String),
    /// `:42`.
    Int(i64),
    /// `$3\r\nabc`, or `$-1` (`None`).
    Bulk(Option<Vec<u8>>),
    /// `*2 …`, or `*-1` (`None`).
    Array(Option<Vec<Value>>),
}

/// Why a reply could not be read.
#[derive(Debug)]
pub enum RespError {
    /// The socket failed or closed.
    Io(std::io::Error),
    /// The bytes are not RESP2, or break a limit above.
    Malformed(&'static str),
}

impl std::fmt::Display for RespError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RespError::Io(e) => write!(f, "redis connection: {e}"),
            RespError::Malformed(why) => write!(f, "malformed reply: {why}"),
        }
    }
}

impl std::error::Error for RespError {}

impl From<std::io::Error> for RespError {
    fn from(e: std::io::Error) -> Self {
        RespError::Io(e)
    }
}

/// Parses one reply at the start of `buf`: `Ok(None)` when more bytes are
/// needed, else the reply and how many bytes it took.
pub fn parse(buf: &[u8]) -> Result<Option<(Value, usize)>, RespError> {
    parse_at(buf, 0, 0)
}

fn parse_at(buf: &[u8], at: usize, depth: usize) -> Result<Option<(Value, usize)>, RespError> {
    if depth > DEPTH_MAX {
        return Err(RespError::Malformed("arrays nested too deep"));
    }
    let Some(end) = buf[at..].windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let Some(&kind) = buf.get(at) else {
        return Ok(None);
    };
    let line = std::str::from_utf8(&buf[at + 1..at + end])
        .map_err(|_| RespError::Malformed("a reply line is not UTF-8"))?;
    let next = at + end + 2;
    let number = || {
        line.parse::<i64>()
            .map_err(|_| RespError::Malformed("a length or integer is not a number"))
    };
    match kind {
        b'+' => Ok(Some((Value::Simple(line.to_owned()), next))),
        b'-' => Ok(Some((Value::Error(line.to_owned()), next))),
        b':' => Ok(Some((Value::Int(number()?), next))),
        b'$' => {
            let len = number()?;
            if len < 0 {
                return Ok(Some((Value::Bulk(None), next)));
            }
            let len = len as usize;
            if len > BULK_BYTES_MAX {
                return Err(RespError::Malformed("bulk string above BULK_BYTES_MAX"));
            }
            if buf.len() < next + len + 2 {
                return Ok(None);
            }
            if &buf[next + len..next + len + 2] != b"\r\n" {
                return Err(RespError::Malformed("bulk string without its CRLF"));
            }
            let bytes = buf[next..next + len].to_vec();
            Ok(Some((Value::Bulk(Some(bytes)), next + len + 2)))
        }
        b'*' => {
            let len = number()?;
            if len < 0 {
                return Ok(Some((Value::Array(None), next)));
            }
            let len = len as usize;
            if len > ARRAY_LEN_MAX {
                return Err(RespError::Malformed("array above ARRAY_LEN_MAX"));
            }
            let mut items = Vec::with_capacity(len);
            let mut at = next;
            for _ in 0..len {
                match parse_at(buf, at, depth + 1)? {
                    Some((item, after)) => {
                        items.push(item);
                        at = after;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((Value::Array(Some(items)), at)))
        }
        _ => Err(RespError::Malformed("unknown reply type")),
    }
}

/// Encodes a command as an array of bulk strings.
pub fn encode(args: &[&[u8]], out: &mut Vec<u8>) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// One connection to a Redis server: a command, then its reply.
pub struct RespConn {
    stream: TcpStream,
    buffer: Vec<u8>,
    out: Vec<u8>,
}

impl RespConn {
    pub async fn connect(addr: std::net::SocketAddr) -> Result<RespConn, RespError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(RespConn {
            stream,
            buffer: Vec::new(),
            out: Vec::new(),
        })
    }

    /// Sends one command and reads its reply.
    pub async fn call(&mut self, args: &[&[u8]]) -> Result<Value, RespError> {
        self.out.clear();
        encode(args, &mut self.out);
        self.stream.write_all(&self.out).await?;
        self.read_reply().await
    }

    async fn read_reply(&mut self) -> Result<Value, RespError> {
        let mut chunk = [0u8; READ_CHUNK_BYTES];
        loop {
            if let Some((value, used)) = parse(&self.buffer)? {
                self.buffer.drain(..used);
                return Ok(value);
            }
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_reply_type_and_waits_for_partial_ones() {
        let cases: &[(&[u8], Value)] = &[
            (b"+PONG\r\n", Value::Simple("PONG".into())),
            (b"-ERR no\r\n", Value::Error("ERR no".into())),
            (b":-7\r\n", Value::Int(-7)),
            (b"$-1\r\n", Value::Bulk(None)),
            (b"*-1\r\n", Value::Array(None)),
            (b"$3\r\na\rb\r\n", Value::Bulk(Some(b"a\rb".to_vec()))),
            (
                b"*2\r\n$1\r\nk\r\n*1\r\n:1\r\n",
                Value::Array(Some(vec![
                    Value::Bulk(Some(b"k".to_vec())),
                    Value::Array(Some(vec![Value::Int(1)])),
                ])),
            ),
        ];
        for (bytes, want) in cases {
            let (got, used) = parse(bytes).unwrap().unwrap();
            assert_eq!((&got, used), (want, bytes.len()));
            for cut in 0..bytes.len() {
                assert!(
                    parse(&bytes[..cut]).unwrap().is_none(),
                    "{bytes:?} at {cut}"
                );
            }
        }
    }

    #[test]
    fn refuses_malformed_replies_and_limits() {
        let too_long = format!("${}\r\n", BULK_BYTES_MAX + 1);
        let too_many = format!("*{}\r\n", ARRAY_LEN_MAX + 1);
        let too_deep = "*1\r\n".repeat(DEPTH_MAX + 2);
        for bytes in [
            b"?x\r\n".as_slice(),
            b":x\r\n",
            b"$1\r\nab\r\n",
            too_long.as_bytes(),
            too_many.as_bytes(),
            too_deep.as_bytes(),
        ] {
            assert!(parse(bytes).is_err(), "{bytes:?}");
        }
        // Just at the limits is fine.
        let at_depth = format!("{}:1\r\n", "*1\r\n".repeat(DEPTH_MAX));
        assert!(parse(at_depth.as_bytes()).unwrap().is_some());
    }

    #[test]
    fn encodes_commands_as_bulk_arrays() {
        let mut out = Vec::new();
        encode(&[b"XADD", b"k", b"*"], &mut out);
        assert_eq!(out, b"*3\r\n$4\r\nXADD\r\n$1\r\nk\r\n$1\r\n*\r\n");
    }
}
