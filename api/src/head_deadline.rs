//! A deadline for every request head of a connection, not only its first.
//!
//! actix-http times the head of a connection's first request (`client_request_timeout`) and the
//! wait between requests (keep-alive), but once a kept-alive connection has sent the first byte of
//! its next request, nothing times the rest of that head: it could trickle in a byte a second for
//! as long as its client liked, holding a connection and its buffers. [`HeadDeadline`] wraps each
//! connection's socket and watches the bytes read: from the first byte of a head to the blank line
//! that ends it the client has the request timeout, as for a first head; past it the client gets
//! actix's own answer to a slow head, a 408 with an empty body, and the connection is closed.
//!
//! Only the head is timed here. A body has the same time to arrive (`json::BodyTimeout`), and the
//! answer as long as its handler takes (a `?wait` may take 30 s): after a head's blank line the
//! connection is the app's until an answer is written, and the next byte read starts the next
//! head's clock.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// What actix answers a head that is too slow: the same bytes for a later head as for a first.
const REQUEST_TIMEOUT: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// What actix writes to a request with `Expect: 100-continue` before reading its body.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Where the connection is, as its reads and writes show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between requests: actix's keep-alive timer (or, on a new connection, its head timer)
    /// covers the wait for a head's first byte.
    Idle,
    /// A head's first bytes came, its blank line has not. `text`: a byte other than a line end
    /// came (empty lines before a request line are skipped, not the end of a head);
    /// `line_start`: the last byte seen ended a line (`\n`, `\r` aside), so another `\n` ends
    /// the head.
    Head { text: bool, line_start: bool },
    /// The head is complete: the request is the app's until its answer is written.
    Request,
    /// The head ran out of time: the 408 is being written (`sent` bytes of it so far), then the
    /// connection reads as closed.
    Refusing { sent: usize },
    /// The head ran out of time while an earlier answer was still being written: a 408 there
    /// would corrupt it, so the connection only reads as closed.
    Closing,
}

/// A connection whose every request head must arrive within `timeout` of its first byte.
#[derive(Debug)]
pub struct HeadDeadline<T> {
    io: T,
    timeout: Duration,
    phase: Phase,
    deadline: Pin<Box<Sleep>>,
    /// Whether bytes were written since the current head began.
    wrote_during_head: bool,
    /// Whether the last write was refused or took only part of its bytes.
    write_unfinished: bool,
}

impl<T> HeadDeadline<T> {
    pub fn new(io: T, timeout: Duration) -> Self {
        Self {
            io,
            timeout,
            phase: Phase::Idle,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            wrote_during_head: false,
            write_unfinished: false,
        }
    }

    /// Follows the bytes just read through the heads they carry.
    fn read(&mut self, bytes: &[u8]) {
        let (mut text, mut line_start) = match self.phase {
            Phase::Idle => {
                self.deadline.as_mut().reset(Instant::now() + self.timeout);
                self.wrote_during_head = false;
                (false, false)
            }
            Phase::Head { text, line_start } => (text, line_start),
            // A request's body, or bytes after a refusal: not a head.
            Phase::Request | Phase::Refusing { .. } | Phase::Closing => return,
        };
        for &byte in bytes {
            match byte {
                b'\n' if text && line_start => {
                    self.phase = Phase::Request;
                    return;
                }
                b'\n' => line_start = true,
                b'\r' => {}
                _ => (text, line_start) = (true, false),
            }
        }
        self.phase = Phase::Head { text, line_start };
    }

    /// Follows `n` bytes written of `data`.
    fn wrote(&mut self, data: &[u8], n: usize) {
        match self.phase {
            // `100 Continue` alone: the body comes next, and belongs to the same request.
            Phase::Request if data.starts_with(CONTINUE) && n <= CONTINUE.len() => {}
            // An answer is going out: the request it answers is over, and the next byte read
            // begins the next head.
            Phase::Request => self.phase = Phase::Idle,
            Phase::Head { .. } => self.wrote_during_head = true,
            _ => {}
        }
        self.write_unfinished = n < data.len();
    }

    fn overdue(&self) -> bool {
        matches!(self.phase, Phase::Head { .. }) && self.deadline.deadline() <= Instant::now()
    }

    fn give_up(&mut self) {
        tracing::debug!("a request head did not arrive in time; closing the connection");
        // An answer may still be going out: a 408 in its middle would corrupt it.
        self.phase = if self.wrote_during_head || self.write_unfinished {
            Phase::Closing
        } else {
            Phase::Refusing { sent: 0 }
        };
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> HeadDeadline<T> {
    /// Writes the 408, then reads as closed, so that actix ends the connection.
    fn refuse(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Phase::Refusing { sent } = self.phase {
            if sent == REQUEST_TIMEOUT.len() {
                break;
            }
            match Pin::new(&mut self.io).poll_write(cx, &REQUEST_TIMEOUT[sent..]) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => break,
                Poll::Ready(Ok(n)) => self.phase = Phase::Refusing { sent: sent + n },
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for HeadDeadline<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if matches!(this.phase, Phase::Refusing { .. } | Phase::Closing) {
            return this.refuse(cx);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if this.overdue() {
                    // A client trickling its head faster than reads go Pending.
                    buf.set_filled(before);
                    this.give_up();
                    return this.refuse(cx);
                }
                this.read(&buf.filled()[before..]);
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                if matches!(this.phase, Phase::Head { .. })
                    && this.deadline.as_mut().poll(cx).is_ready()
                {
                    this.give_up();
                    return this.refuse(cx);
                }
                Poll::Pending
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for HeadDeadline<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write(cx, data);
        match &written {
            Poll::Ready(Ok(n)) if *n > 0 => this.wrote(data, *n),
            Poll::Pending => this.write_unfinished = true,
            _ => {}
        }
        written
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phases(chunks: &[&[u8]]) -> Vec<Phase> {
        let mut conn = HeadDeadline::new((), Duration::from_secs(5));
        chunks
            .iter()
            .map(|chunk| {
                conn.read(chunk);
                conn.phase
            })
            .collect()
    }

    #[tokio::test]
    async fn a_head_ends_at_its_blank_line_however_it_is_split_and_whatever_its_line_ends() {
        assert_eq!(
            phases(&[b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]),
            [Phase::Request]
        );
        assert_eq!(
            phases(&[b"GET / HTTP/1.1\r\nHost: x\r", b"\n", b"\r", b"\n"]),
            [
                Phase::Head {
                    text: true,
                    line_start: false
                },
                Phase::Head {
                    text: true,
                    line_start: true
                },
                Phase::Head {
                    text: true,
                    line_start: true
                },
                Phase::Request
            ]
        );
        assert_eq!(phases(&[b"GET / HTTP/1.1\nHost: x\n\n"]), [Phase::Request]);
        // A body's blank lines are the body's.
        assert_eq!(
            phases(&[b"POST / HTTP/1.1\r\n\r\n", b"a\r\n\r\nb"]),
            [Phase::Request, Phase::Request]
        );
        // Empty lines before the request line are skipped, not the end of a head.
        let trickled = phases(&[b"\r\n", b"\r\n", b"\n", b"GET / HTTP/1.1\r\n"]);
        assert!(
            trickled.iter().all(|p| matches!(p, Phase::Head { .. })),
            "{trickled:?}"
        );
    }

    #[tokio::test]
    async fn an_answer_ends_a_request_but_a_100_continue_does_not() {
        let mut conn = HeadDeadline::new((), Duration::from_secs(5));
        conn.read(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n");
        conn.wrote(CONTINUE, CONTINUE.len());
        assert_eq!(conn.phase, Phase::Request, "the body is the request's");
        conn.read(b"{\"a\": 1}");
        assert_eq!(conn.phase, Phase::Request, "a body is not a head");
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        conn.wrote(answer, answer.len());
        assert_eq!(conn.phase, Phase::Idle, "answered");
        conn.read(b"GET");
        assert!(
            matches!(conn.phase, Phase::Head { .. }),
            "the next head is timed"
        );
        conn.wrote(answer, 3);
        assert!(conn.wrote_during_head && conn.write_unfinished);
    }
}
