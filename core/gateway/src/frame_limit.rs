//! The WebSocket size limit enforced on the raw byte stream, before tungstenite buffers a
//! payload: the reader parses each client frame header as it passes and fails the read as soon
//! as a frame (or a fragmented message so far) announces more bytes than the limit in force.
//!
//! The limit starts at [`perch_protocol::PRE_HANDSHAKE_MAX_FRAME`] and the connection raises it
//! once `connect` succeeds. tokio-tungstenite cannot change its own `max_message_size` after
//! the upgrade, hence this layer underneath it.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The limit in force, shared between the connection (which raises it) and the reader.
pub type SharedLimit = Arc<AtomicUsize>;

/// The error a read fails with when a frame is over the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a message of at least {size} bytes exceeds the limit of {limit} bytes")]
pub struct TooLarge {
    /// Bytes announced so far for the message.
    pub size: u64,
    /// The limit in force.
    pub limit: usize,
}

impl TooLarge {
    /// Finds this error inside an I/O error, if that is what it is.
    pub fn from_io(e: &io::Error) -> Option<TooLarge> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<TooLarge>())
            .copied()
    }
}

/// Where the parser is in the client's byte stream.
#[derive(Debug, Clone, Copy)]
enum State {
    /// Reading a frame header; `have` bytes of it are in `buf`.
    Header { buf: [u8; 14], have: usize },
    /// Skipping over `left` payload bytes.
    Payload { left: u64 },
}

/// Tracks client frame headers and checks their lengths against a limit.
#[derive(Debug)]
pub struct FrameParser {
    state: State,
    /// Data bytes announced for the message being assembled (fragments add up).
    message: u64,
}

impl Default for FrameParser {
    fn default() -> Self {
        Self {
            state: State::Header {
                buf: [0; 14],
                have: 0,
            },
            message: 0,
        }
    }
}

impl FrameParser {
    /// Feeds bytes read from the client; fails at the first header over `limit`.
    pub fn feed(&mut self, mut bytes: &[u8], limit: usize) -> Result<(), TooLarge> {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Payload { left } => {
                    let n = (*left).min(bytes.len() as u64);
                    *left -= n;
                    bytes = &bytes[n as usize..];
                    if *left == 0 {
                        self.state = State::Header {
                            buf: [0; 14],
                            have: 0,
                        };
                    }
                }
                State::Header { buf, have } => {
                    buf[*have] = bytes[0];
                    *have += 1;
                    bytes = &bytes[1..];
                    let Some(len) = header_done(&buf[..*have]) else {
                        continue;
                    };
                    let (fin, opcode) = (buf[0] & 0x80 != 0, buf[0] & 0x0f);
                    // Data frames (continuation, text, binary) add to the message; control
                    // frames are at most 125 bytes and tungstenite checks them.
                    if opcode < 8 {
                        let size = self.message.saturating_add(len);
                        if size > limit as u64 {
                            return Err(TooLarge { size, limit });
                        }
                        self.message = if fin { 0 } else { size };
                    } else if len > 125 {
                        return Err(TooLarge { size: len, limit });
                    }
                    self.state = if len == 0 {
                        State::Header {
                            buf: [0; 14],
                            have: 0,
                        }
                    } else {
                        State::Payload { left: len }
                    };
                }
            }
        }
        Ok(())
    }
}

/// The payload length once `h` holds a whole header, `None` while more header bytes are due.
fn header_done(h: &[u8]) -> Option<u64> {
    if h.len() < 2 {
        return None;
    }
    let masked = h[1] & 0x80 != 0;
    let short = h[1] & 0x7f;
    let ext = match short {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let need = 2 + ext + if masked { 4 } else { 0 };
    if h.len() < need {
        return None;
    }
    Some(match short {
        126 => u64::from(u16::from_be_bytes([h[2], h[3]])),
        127 => u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]),
        n => u64::from(n),
    })
}

/// A socket whose reads fail with [`TooLarge`] when the client announces an oversized frame.
pub struct FrameLimited<S> {
    inner: S,
    parser: FrameParser,
    limit: SharedLimit,
}

impl<S> FrameLimited<S> {
    /// Wraps `inner`, checking against `limit` (which the owner may raise at any time).
    pub fn new(inner: S, limit: SharedLimit) -> Self {
        Self {
            inner,
            parser: FrameParser::default(),
            limit,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FrameLimited<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let limit = this.limit.load(Ordering::Relaxed);
                match this.parser.feed(&buf.filled()[before..], limit) {
                    Ok(()) => Poll::Ready(Ok(())),
                    Err(e) => Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e))),
                }
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FrameLimited<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame header announcing `len` bytes (the payload is not needed).
    fn header(fin: bool, opcode: u8, len: u64) -> Vec<u8> {
        let mut h = vec![(if fin { 0x80 } else { 0 }) | opcode];
        if len < 126 {
            h.push(0x80 | len as u8);
        } else if len <= u16::MAX as u64 {
            h.push(0x80 | 126);
            h.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            h.push(0x80 | 127);
            h.extend_from_slice(&len.to_be_bytes());
        }
        h.extend_from_slice(&[1, 2, 3, 4]);
        h
    }

    #[test]
    fn frames_under_the_limit_pass_byte_by_byte() {
        let mut p = FrameParser::default();
        let mut stream = header(true, 1, 300);
        stream.extend(vec![b'x'; 300]);
        stream.extend(header(true, 9, 0));
        stream.extend(header(true, 2, 5));
        stream.extend(vec![0; 5]);
        for b in &stream {
            p.feed(std::slice::from_ref(b), 1000).unwrap();
        }
        assert!(matches!(p.state, State::Header { have: 0, .. }));
    }

    #[test]
    fn an_oversized_header_fails_before_its_payload() {
        let mut p = FrameParser::default();
        let err = p.feed(&header(true, 1, 100 * 1024), 64 * 1024).unwrap_err();
        assert_eq!(err.size, 100 * 1024);
        let mut p = FrameParser::default();
        assert!(p.feed(&header(true, 2, u64::MAX), 64 * 1024).is_err());
    }

    #[test]
    fn fragments_add_up_and_reset_after_fin() {
        let mut p = FrameParser::default();
        let mut s = header(false, 1, 600);
        s.extend(vec![0; 600]);
        p.feed(&s, 1000).unwrap();
        // A ping between fragments does not reset the count.
        p.feed(&header(true, 9, 0), 1000).unwrap();
        let err = p.feed(&header(false, 0, 500), 1000).unwrap_err();
        assert_eq!(err.size, 1100);

        let mut p = FrameParser::default();
        let mut s = header(true, 1, 600);
        s.extend(vec![0; 600]);
        s.extend(header(true, 1, 600));
        p.feed(&s, 1000).unwrap();
    }

    #[test]
    fn the_limit_can_be_raised_mid_stream() {
        let mut p = FrameParser::default();
        assert!(p.feed(&header(true, 1, 2000), 1000).is_err());
        let mut p = FrameParser::default();
        p.feed(&header(true, 1, 10), 1000).unwrap();
        p.feed(&[0; 10], 1000).unwrap();
        p.feed(&header(true, 1, 2000), 5000).unwrap();
    }

    #[test]
    fn too_large_survives_the_io_error() {
        let e = io::Error::new(io::ErrorKind::InvalidData, TooLarge { size: 9, limit: 1 });
        assert_eq!(TooLarge::from_io(&e).unwrap().limit, 1);
        assert!(TooLarge::from_io(&io::Error::other("x")).is_none());
    }
}
