//! A small HTTP/1.1 client: exactly what koordinator sends and reads.
//!
//! Three callers use it: the API client (GET over TLS, a streamed chunked
//! watch), the `http` probes and the `http` quit action (plain HTTP to a
//! container of the pod). Why not a general client (ureq, which the first
//! versions used): a watch needs one overall deadline that a trickling
//! server cannot stretch (a per-read timeout restarts on every byte) and TCP
//! keepalive to notice a silently dead peer; the buffers should be sized for
//! one small pod, not for downloads; and nothing may log request bytes. All
//! of that is a few hundred lines here, and the parsers are pure functions
//! that the fuzz targets drive directly.
//!
//! Every read and write of a connection is bounded by its [`Deadline`]; when
//! it passes, the call fails with `TimedOut` and the connection is dropped.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// A response head larger than this is refused.
pub const MAX_HEAD: usize = 64 << 10;
/// Header fields kept per response; the rest are read and dropped.
const MAX_HEADERS: usize = 64;

/// A TCP stream whose reads and writes all end by one deadline.
pub struct TimedStream {
    sock: TcpStream,
    deadline: Instant,
}

impl TimedStream {
    pub fn set_deadline(&mut self, deadline: Instant) {
        self.deadline = deadline;
    }

    fn left(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the request's deadline passed",
            ));
        }
        // A zero timeout means "none" to the kernel: keep at least 1 ms.
        Ok(left.max(Duration::from_millis(1)))
    }
}

fn timed_out(e: io::Error) -> io::Error {
    match e.kind() {
        // SO_RCVTIMEO/SO_SNDTIMEO expiry surfaces as EAGAIN.
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            io::Error::new(io::ErrorKind::TimedOut, "the request's deadline passed")
        }
        _ => e,
    }
}

impl Read for TimedStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.sock.set_read_timeout(Some(self.left()?))?;
        self.sock.read(buf).map_err(timed_out)
    }
}

impl Write for TimedStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sock.set_write_timeout(Some(self.left()?))?;
        self.sock.write(buf).map_err(timed_out)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A connection: plain TCP (probes, quit) or TLS (the API server).
pub enum Stream {
    Plain(TimedStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TimedStream>>),
}

impl Stream {
    pub fn set_deadline(&mut self, deadline: Instant) {
        match self {
            Stream::Plain(s) => s.set_deadline(deadline),
            Stream::Tls(s) => s.sock.set_deadline(deadline),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// Opens a TCP connection to `host:port` by `deadline`, trying each address.
/// Keepalive probes after 30 s of silence find a peer that vanished without
/// a reset (a dead node, a dropped NAT entry) within about a minute, so a
/// quiet watch needs no read timeout of its own.
pub fn connect(host: &str, port: u16, deadline: Instant) -> io::Result<TimedStream> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"));
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(sock) => {
                let _ = sock.set_nodelay(true);
                keepalive(&sock);
                return Ok(TimedStream { sock, deadline });
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn keepalive(sock: &TcpStream) {
    let fd = sock.as_raw_fd();
    let set = |level, name, value: libc::c_int| {
        // SAFETY: setsockopt reads one c_int from the pointer given.
        unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    };
    set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 30);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 10);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 3);
}

/// Writes one request with no body. `headers` are sent as given.
pub fn send(
    stream: &mut impl Write,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> io::Result<()> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (name, value) in headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.flush()
}

/// How the body of a response is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked,
    /// Until the server closes the connection.
    Close,
}

/// A parsed response head.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub framing: Framing,
    /// The server will close the connection after this response.
    pub close: bool,
    /// `Retry-After` in seconds, when the server sent that form.
    pub retry_after: Option<u64>,
    /// Names in lower case; at most 64 are kept.
    pub headers: Vec<(String, String)>,
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// Parses a response head (status line and header fields, without the
/// blank line that ends it). Pure, so that the fuzz targets can drive it.
pub fn parse_head(bytes: &[u8]) -> io::Result<Head> {
    let text = std::str::from_utf8(bytes).map_err(|_| invalid("the response head is not text"))?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(invalid(format!(
            "not an HTTP/1.x response: {:?}",
            printable(status_line)
        )));
    }
    let code = parts.next().unwrap_or_default();
    let status = match code.parse::<u16>() {
        Ok(s) if code.len() == 3 && (100..=599).contains(&s) => s,
        _ => return Err(invalid(format!("bad status code {:?}", printable(code)))),
    };
    let mut head = Head {
        status,
        framing: Framing::Close,
        close: version == "HTTP/1.0",
        retry_after: None,
        headers: Vec::new(),
    };
    let mut length: Option<u64> = None;
    let mut chunked = false;
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("bad header line {:?}", printable(line))))?;
        if name.is_empty() || name.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(invalid(format!("bad header name {:?}", printable(name))));
        }
        let name = name.to_ascii_lowercase();
        let value = value.trim();
        match name.as_str() {
            "content-length" => {
                let n = value
                    .parse::<u64>()
                    .map_err(|_| invalid(format!("bad Content-Length {:?}", printable(value))))?;
                if length.is_some_and(|l| l != n) {
                    return Err(invalid("conflicting Content-Length headers"));
                }
                length = Some(n);
            }
            "transfer-encoding" => {
                let last = value.rsplit(',').next().unwrap_or_default().trim();
                if last.eq_ignore_ascii_case("chunked") {
                    chunked = true;
                } else {
                    return Err(invalid(format!(
                        "unsupported Transfer-Encoding {:?}",
                        printable(value)
                    )));
                }
            }
            "connection"
                if value
                    .split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("close")) =>
            {
                head.close = true
            }
            "retry-after" => head.retry_after = value.parse::<u64>().ok(),
            _ => {}
        }
        if head.headers.len() < MAX_HEADERS {
            head.headers.push((name, value.to_string()));
        }
    }
    head.framing = if chunked {
        Framing::Chunked
    } else if matches!(status, 100..=199 | 204 | 304) {
        Framing::Length(0)
    } else if let Some(n) = length {
        Framing::Length(n)
    } else {
        head.close = true;
        Framing::Close
    };
    Ok(head)
}

/// Text from a peer, safe to put in a log line: control characters escaped,
/// at most 200 characters.
pub fn printable(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(200)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().count() > 200 {
        out.push('…');
    }
    out
}

/// Reads a response head from `reader`, skipping interim 1xx responses.
pub fn read_head(reader: &mut impl BufRead) -> io::Result<Head> {
    for _ in 0..4 {
        let mut bytes = Vec::new();
        loop {
            let start = bytes.len();
            let n = reader
                .by_ref()
                .take((MAX_HEAD + 1 - start) as u64)
                .read_until(b'\n', &mut bytes)?;
            if n == 0 {
                return Err(if bytes.is_empty() {
                    io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection without answering",
                    )
                } else {
                    invalid("the response head was cut off")
                });
            }
            if bytes.len() > MAX_HEAD {
                return Err(invalid("the response head is larger than 64 KiB"));
            }
            let line = &bytes[start..];
            if line == b"\r\n" || line == b"\n" {
                bytes.truncate(start);
                break;
            }
        }
        let head = parse_head(&bytes)?;
        if !(100..=199).contains(&head.status) {
            return Ok(head);
        }
    }
    Err(invalid("too many interim responses"))
}

/// A response body, de-chunked. Reading it to the end leaves the
/// connection ready for the next request (see [`Body::into_reusable`]).
pub struct Body<R> {
    reader: R,
    framing: Framing,
    /// Bytes left in the current chunk or in a Content-Length body.
    left: u64,
    done: bool,
    close: bool,
}

impl<R: BufRead> Body<R> {
    pub fn new(reader: R, head: &Head) -> Body<R> {
        let (left, done) = match head.framing {
            Framing::Length(n) => (n, n == 0),
            Framing::Chunked | Framing::Close => (0, false),
        };
        Body {
            reader,
            framing: head.framing,
            left,
            done,
            close: head.close,
        }
    }

    /// The connection, when the body was read to its end and the server
    /// keeps the connection open.
    pub fn into_reusable(self) -> Option<R> {
        (self.done && !self.close && self.framing != Framing::Close).then_some(self.reader)
    }

    /// Reads the next chunk-size line; `Ok(0)` is the last chunk.
    fn chunk_size(&mut self) -> io::Result<u64> {
        let mut line = Vec::new();
        self.reader
            .by_ref()
            .take(1024)
            .read_until(b'\n', &mut line)?;
        if !line.ends_with(b"\n") {
            return Err(if line.is_empty() {
                io::Error::new(io::ErrorKind::UnexpectedEof, "the body ended early")
            } else {
                invalid("bad chunk size line")
            });
        }
        let text = std::str::from_utf8(&line).map_err(|_| invalid("bad chunk size line"))?;
        let digits = text.split(';').next().unwrap_or_default().trim();
        if digits.is_empty() || digits.len() > 15 {
            return Err(invalid(format!("bad chunk size {:?}", printable(digits))));
        }
        u64::from_str_radix(digits, 16)
            .map_err(|_| invalid(format!("bad chunk size {:?}", printable(digits))))
    }

    /// Reads the CRLF after a chunk's data, or the trailer after the last chunk.
    fn chunk_end(&mut self, last: bool) -> io::Result<()> {
        loop {
            let mut line = Vec::new();
            self.reader
                .by_ref()
                .take(8192)
                .read_until(b'\n', &mut line)?;
            if line == b"\r\n" || line == b"\n" {
                return Ok(());
            }
            // Trailer fields after the last chunk are read and ignored.
            if !last || !line.ends_with(b"\n") {
                return Err(invalid("bad chunk framing"));
            }
        }
    }
}

impl<R: BufRead> Read for Body<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.framing == Framing::Chunked && self.left == 0 {
            let size = self.chunk_size()?;
            if size == 0 {
                self.chunk_end(true)?;
                self.done = true;
                return Ok(0);
            }
            self.left = size;
        }
        let want = match self.framing {
            Framing::Close => buf.len(),
            _ => buf.len().min(self.left.min(usize::MAX as u64) as usize),
        };
        let n = self.reader.read(&mut buf[..want])?;
        if n == 0 {
            if self.framing == Framing::Close {
                self.done = true;
                return Ok(0);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the connection closed in the middle of the body",
            ));
        }
        if self.framing != Framing::Close {
            self.left -= n as u64;
            if self.left == 0 {
                match self.framing {
                    Framing::Chunked => self.chunk_end(false)?,
                    _ => self.done = true,
                }
            }
        }
        Ok(n)
    }
}

/// A whole exchange on a fresh plain-TCP connection: the probes and the quit
/// action. Returns the status; the body is not read.
pub fn plain_request(
    method: &str,
    host: &str,
    port: u16,
    path: &str,
    timeout: Duration,
) -> io::Result<u16> {
    let deadline = Instant::now() + timeout;
    let mut stream = connect(host, port, deadline)?;
    let host_header = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let agent = concat!("koordinator/", env!("CARGO_PKG_VERSION"));
    let mut headers = vec![("User-Agent", agent), ("Connection", "close")];
    if method != "GET" {
        headers.push(("Content-Length", "0"));
    }
    send(&mut stream, method, &host_header, path, &headers)?;
    let mut reader = BufReader::with_capacity(4096, stream);
    Ok(read_head(&mut reader)?.status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn head(text: &str) -> io::Result<Head> {
        parse_head(text.as_bytes())
    }

    #[test]
    fn heads_give_status_framing_and_retry_after() {
        let h =
            head("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked")
                .unwrap();
        assert_eq!(
            (h.status, h.framing, h.close),
            (200, Framing::Chunked, false)
        );
        let h =
            head("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 5\r\nContent-Length: 12").unwrap();
        assert_eq!(
            (h.status, h.framing, h.retry_after),
            (429, Framing::Length(12), Some(5))
        );
        let h = head(
            "HTTP/1.1 503 x\r\nRetry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\nConnection: close",
        )
        .unwrap();
        assert_eq!(
            (h.retry_after, h.close, h.framing),
            (None, true, Framing::Close)
        );
        let h = head("HTTP/1.0 204 No Content").unwrap();
        assert_eq!((h.framing, h.close), (Framing::Length(0), true));
    }

    #[test]
    fn bad_heads_are_errors() {
        for bad in [
            "",
            "HTTP/2 200 OK",
            "HTTP/1.1 20 OK",
            "HTTP/1.1 2000 OK",
            "HTTP/1.1 200 OK\r\nno colon here",
            "HTTP/1.1 200 OK\r\nContent-Length: -1",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip",
            "HTTP/1.1 200 OK\r\nbad name: x",
        ] {
            assert!(head(bad).is_err(), "{bad:?}");
        }
    }

    fn body(raw: &str, head_text: &str) -> (io::Result<Vec<u8>>, bool) {
        let h = head(head_text).unwrap();
        let mut b = Body::new(Cursor::new(raw.as_bytes().to_vec()), &h);
        let mut out = Vec::new();
        let r = b.read_to_end(&mut out).map(|_| out);
        let reusable = b.into_reusable().is_some();
        (r, reusable)
    }

    #[test]
    fn chunked_bodies_are_decoded_and_leave_the_connection_reusable() {
        let (r, reusable) = body(
            "5\r\nhello\r\n1;ext=1\r\n \r\n6\r\nworld\n\r\n0\r\nTrailer: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked",
        );
        assert_eq!(r.unwrap(), b"hello world\n");
        assert!(reusable);
    }

    #[test]
    fn broken_chunking_is_an_error() {
        for raw in [
            "5\r\nhel",
            "zz\r\nhello\r\n",
            "5\r\nhelloXX0\r\n\r\n",
            "fffffffffffffffff\r\n",
        ] {
            let (r, _) = body(raw, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked");
            assert!(r.is_err(), "{raw:?}");
        }
    }

    #[test]
    fn length_and_close_framing() {
        let (r, reusable) = body("abcdef", "HTTP/1.1 200 OK\r\nContent-Length: 3");
        assert_eq!(r.unwrap(), b"abc");
        assert!(reusable);
        let (r, _) = body("ab", "HTTP/1.1 200 OK\r\nContent-Length: 3");
        assert!(r.is_err());
        let (r, reusable) = body("all of it", "HTTP/1.1 200 OK");
        assert_eq!(r.unwrap(), b"all of it");
        assert!(!reusable);
    }

    #[test]
    fn read_head_skips_interim_responses_and_bounds_the_head() {
        let mut r = Cursor::new(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
                .to_vec(),
        );
        assert_eq!(read_head(&mut r).unwrap().status, 404);
        let mut big = b"HTTP/1.1 200 OK\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'x', MAX_HEAD + 10));
        assert!(read_head(&mut Cursor::new(big)).is_err());
        assert!(read_head(&mut Cursor::new(Vec::new())).is_err());
    }

    #[test]
    fn printable_escapes_and_bounds() {
        assert_eq!(printable("a\nb\u{1b}"), "a\\nb\\u{1b}");
        assert_eq!(printable(&"x".repeat(300)).chars().count(), 201);
    }

    #[test]
    fn a_deadline_ends_a_trickling_read() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            for _ in 0..40 {
                if s.write_all(b"x").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let started = Instant::now();
        let mut stream = connect("127.0.0.1", port, started + Duration::from_millis(300)).unwrap();
        let mut buf = [0u8; 16];
        let err = loop {
            match stream.read(&mut buf) {
                Ok(n) if n > 0 => continue,
                Ok(_) => panic!("the server closed first"),
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(290) && took < Duration::from_secs(1),
            "{took:?}"
        );
        drop(stream);
        server.join().unwrap();
    }
}
