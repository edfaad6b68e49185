//! A small blocking HTTP/1.1 client over loopback TCP or a unix socket, enough to drive
//! Gunicorn with exact, known requests.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd as _;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

/// No single read or write in a test should take longer than this.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Addr::Tcp(addr) => write!(f, "{addr}"),
            Addr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// In the order received; names as sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header with this name, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request on a fresh connection, which is then closed. With `keep_alive` the request
/// asks to keep the connection open and the client closes it after the response instead.
pub fn request(
    addr: &Addr,
    method: &str,
    path: &str,
    body: Option<&[u8]>,
    keep_alive: bool,
) -> io::Result<Response> {
    let mut conn = Conn::open(addr)?;
    let response = conn.send(method, path, body, keep_alive)?;
    conn.close();
    Ok(response)
}

/// `GET path` with `Connection: close`.
pub fn get(addr: &Addr, path: &str) -> io::Result<Response> {
    request(addr, "GET", path, None, false)
}

enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// One client connection; several requests may go over it with keep-alive.
pub struct Conn {
    stream: Stream,
    /// Bytes read past the end of the previous response.
    buf: Vec<u8>,
}

impl Conn {
    pub fn open(addr: &Addr) -> io::Result<Conn> {
        let stream = match addr {
            Addr::Tcp(addr) => {
                let stream = TcpStream::connect_timeout(addr, IO_TIMEOUT)?;
                stream.set_read_timeout(Some(IO_TIMEOUT))?;
                stream.set_write_timeout(Some(IO_TIMEOUT))?;
                Stream::Tcp(stream)
            }
            Addr::Unix(path) => {
                let stream = UnixStream::connect(path)?;
                stream.set_read_timeout(Some(IO_TIMEOUT))?;
                stream.set_write_timeout(Some(IO_TIMEOUT))?;
                Stream::Unix(stream)
            }
        };
        Ok(Conn {
            stream,
            buf: Vec::new(),
        })
    }

    /// Wraps a stream the caller set up (socket options, partial reads) to use `reset`.
    pub fn from_tcp(stream: TcpStream) -> Conn {
        Conn {
            stream: Stream::Tcp(stream),
            buf: Vec::new(),
        }
    }

    /// Writes one request and reads its response.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        keep_alive: bool,
    ) -> io::Result<Response> {
        self.write_raw(&encode_request(method, path, body, keep_alive))?;
        self.read_response(method)
    }

    /// Writes bytes as they are, for malformed or pipelined requests.
    pub fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Reads one response to a request made with `method` (HEAD responses have no body).
    pub fn read_response(&mut self, method: &str) -> io::Result<Response> {
        let head_end = loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                break end;
            }
            self.fill("response headers")?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        self.buf.drain(..head_end + 4);
        let (status, headers) = parse_head(&head)?;

        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        let no_body = method.eq_ignore_ascii_case("HEAD")
            || (100..200).contains(&status)
            || status == 204
            || status == 304;
        if no_body {
            return Ok(response);
        }
        let chunked = response
            .header("transfer-encoding")
            .is_some_and(|value| value.eq_ignore_ascii_case("chunked"));
        response.body = if chunked {
            self.read_chunked()?
        } else if let Some(length) = response.header("content-length") {
            let length = length
                .trim()
                .parse()
                .map_err(|_| invalid(format!("bad Content-Length {length:?}")))?;
            self.take(length)?
        } else {
            self.read_to_end()?
        };
        Ok(response)
    }

    /// Closes the connection with a FIN, whether or not a request was sent.
    pub fn close(self) {
        // The peer may already have closed its end; either way the socket is done.
        let _ = match &self.stream {
            Stream::Tcp(stream) => stream.shutdown(Shutdown::Both),
            Stream::Unix(stream) => stream.shutdown(Shutdown::Both),
        };
    }

    /// Closes the connection with a TCP RST (SO_LINGER 0), as a crashed client would.
    /// A unix socket has no reset, so it is simply dropped.
    pub fn reset(self) {
        if let Stream::Tcp(stream) = &self.stream {
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: the fd is open for the lifetime of `stream`, and the option value
            // points at a live `linger` of the size passed.
            let rc = unsafe {
                libc::setsockopt(
                    stream.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&raw const linger).cast(),
                    size_of::<libc::linger>() as libc::socklen_t,
                )
            };
            assert_eq!(rc, 0, "SO_LINGER: {}", io::Error::last_os_error());
        }
    }

    fn fill(&mut self, reading: &str) -> io::Result<()> {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("connection closed while reading {reading}"),
            ));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    fn take(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            self.fill("the response body")?;
        }
        Ok(self.buf.drain(..n).collect())
    }

    fn read_line(&mut self) -> io::Result<String> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 2);
                return Ok(line);
            }
            self.fill("a chunk header")?;
        }
    }

    fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line()?;
            let size = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| invalid(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                // Trailers, if any, end with an empty line.
                while !self.read_line()?.is_empty() {}
                return Ok(body);
            }
            body.extend(self.take(size)?);
            if !self.take(2)?.eq(b"\r\n") {
                return Err(invalid("chunk not followed by CRLF".to_owned()));
            }
        }
    }

    fn read_to_end(&mut self) -> io::Result<Vec<u8>> {
        let mut body = std::mem::take(&mut self.buf);
        self.stream.read_to_end(&mut body)?;
        Ok(body)
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => stream.read(buf),
            Stream::Unix(stream) => stream.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(stream) => stream.write(buf),
            Stream::Unix(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(stream) => stream.flush(),
            Stream::Unix(stream) => stream.flush(),
        }
    }
}

/// The bytes of one request; `Content-Length` is sent only with a body.
pub fn encode_request(method: &str, path: &str, body: Option<&[u8]>, keep_alive: bool) -> Vec<u8> {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let mut out = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: observer-tests\r\n\
         Connection: {connection}\r\n"
    );
    if let Some(body) = body {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body.unwrap_or_default());
    out
}

fn parse_head(head: &str) -> io::Result<(u16, Vec<(String, String)>)> {
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
        return Err(invalid(format!("bad status line {status_line:?}")));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(invalid(format!("bad status line {status_line:?}")));
    }
    let status = code
        .parse()
        .map_err(|_| invalid(format!("bad status line {status_line:?}")))?;

    let mut headers = Vec::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(invalid(format!("bad header line {line:?}")));
        };
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    Ok((status, headers))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    /// Serves `reply` to one connection and returns the request bytes it read.
    fn one_shot_server(reply: &'static [u8]) -> (Addr, thread::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a test server");
        let addr = Addr::Tcp(listener.local_addr().expect("local address"));
        let server = thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accepting");
            let mut request = Vec::new();
            let mut chunk = [0u8; 4096];
            while find(&request, b"\r\n\r\n").is_none() {
                let n = stream.read(&mut chunk).expect("reading the request");
                request.extend_from_slice(&chunk[..n]);
            }
            stream.write_all(reply).expect("writing the reply");
            request
        });
        (addr, server)
    }

    #[test]
    fn encodes_a_post_with_its_length() {
        let bytes = encode_request("POST", "/echo", Some(b"abc"), false);
        assert_eq!(
            String::from_utf8(bytes).expect("ascii"),
            "POST /echo HTTP/1.1\r\nHost: localhost\r\nUser-Agent: observer-tests\r\n\
             Connection: close\r\nContent-Length: 3\r\n\r\nabc"
        );
    }

    #[test]
    fn reads_a_content_length_body() {
        let (addr, server) =
            one_shot_server(b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhello");
        let response = get(&addr, "/x").expect("request");
        assert_eq!(response.status, 201);
        assert_eq!(response.header("x-a"), Some("b"));
        assert_eq!(response.body, b"hello");
        let request = server.join().expect("server thread");
        assert!(request.starts_with(b"GET /x HTTP/1.1\r\n"));
    }

    #[test]
    fn decodes_a_chunked_body_with_a_trailer() {
        let (addr, server) = one_shot_server(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              3\r\nabc\r\na;x=y\r\n0123456789\r\n0\r\nT: 1\r\n\r\n",
        );
        let response = get(&addr, "/").expect("request");
        assert_eq!(response.text(), "abc0123456789");
        server.join().expect("server thread");
    }

    #[test]
    fn reads_to_eof_without_framing() {
        let (addr, server) = one_shot_server(b"HTTP/1.0 500 Oops\r\n\r\nbroken");
        let response = get(&addr, "/").expect("request");
        assert_eq!((response.status, response.text().as_str()), (500, "broken"));
        server.join().expect("server thread");
    }
}
