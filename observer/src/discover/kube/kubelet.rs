//! Fetching the node's pod list over plain HTTP: the kubelet's read-only port
//! (`http://<node>:10255/pods`) or an API server reached through a local proxy
//! (`kubectl proxy` beside the observer, filtered with `fieldSelector=spec.nodeName=<node>`).
//!
//! One GET per refresh, `Connection: close`, so a small HTTP/1.1 client is enough and the
//! observer needs no TLS stack; HTTPS endpoints are a known limitation (see README).

use std::{path::PathBuf, time::Duration};

use thiserror::Error;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

/// A pod list of a busy node is a few MiB; anything far larger is not a pod list.
const MAX_RESPONSE_BYTES: usize = 64 << 20;
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Error)]
pub enum FetchError {
    #[error("cannot connect to {endpoint}")]
    Connect {
        endpoint: String,
        source: std::io::Error,
    },
    #[error("reading the response failed")]
    Io(#[from] std::io::Error),
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("malformed HTTP response: {0}")]
    Malformed(&'static str),
    #[error("response larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
    #[error("cannot read the bearer token {path}")]
    Token {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl FetchError {
    /// The `reason` label of `gunicorn_observer_kube_errors_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Connect { .. } => "connect",
            Self::Io(_) | Self::Timeout(_) => "io",
            Self::Status(_) => "http_status",
            Self::Malformed(_) | Self::TooLarge => "malformed_response",
            Self::Token { .. } => "token_unreadable",
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("only http:// endpoints are supported (got {0:?}); see the README's limitations")]
    Scheme(String),
    #[error("no host in {0:?}")]
    NoHost(String),
    #[error("bad port in {0:?}")]
    Port(String),
}

/// Where the pod list is, and how to ask for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    host: String,
    port: u16,
    /// Path and query, e.g. `/pods` or `/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1`.
    target: String,
    token_file: Option<PathBuf>,
}

impl Endpoint {
    pub fn parse(url: &str, token_file: Option<PathBuf>) -> Result<Endpoint, UrlError> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| UrlError::Scheme(url.to_owned()))?;
        let (authority, target) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            // An IPv6 literal without a port, `[::1]`, has colons but ends with `]`.
            Some((host, port)) if !port.ends_with(']') => {
                let port = port.parse().map_err(|_| UrlError::Port(url.to_owned()))?;
                (host, port)
            }
            _ => (authority, 80),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(UrlError::NoHost(url.to_owned()));
        }
        Ok(Endpoint {
            host: host.to_owned(),
            port,
            target: target.to_owned(),
            token_file: token_file.filter(|path| !path.as_os_str().is_empty()),
        })
    }

    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// GETs the target and returns the body of a 200 answer.
    pub async fn fetch(&self) -> Result<Vec<u8>, FetchError> {
        tokio::time::timeout(TIMEOUT, self.fetch_unbounded())
            .await
            .map_err(|_| FetchError::Timeout(TIMEOUT))?
    }

    async fn fetch_unbounded(&self) -> Result<Vec<u8>, FetchError> {
        // Read the token on every fetch: projected ServiceAccount tokens rotate. A token is
        // a small file on a tmpfs, so a blocking read does not stall the runtime.
        let token = match &self.token_file {
            Some(path) => {
                Some(
                    std::fs::read_to_string(path).map_err(|source| FetchError::Token {
                        path: path.clone(),
                        source,
                    })?,
                )
            }
            None => None,
        };

        let mut stream = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|source| FetchError::Connect {
                endpoint: self.authority(),
                source,
            })?;
        let mut request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\n\
             User-Agent: gunicorn-observer\r\nConnection: close\r\n",
            self.target,
            self.authority()
        );
        if let Some(token) = token {
            request.push_str(&format!("Authorization: Bearer {}\r\n", token.trim()));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await?;

        let mut response = Vec::new();
        let mut chunk = [0u8; 64 * 1024];
        loop {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            if response.len() + n > MAX_RESPONSE_BYTES {
                return Err(FetchError::TooLarge);
            }
            response.extend_from_slice(&chunk[..n]);
        }
        body_of(&response)
    }
}

/// The body of a complete `Connection: close` response, de-chunked.
fn body_of(response: &[u8]) -> Result<Vec<u8>, FetchError> {
    let head_end = find(response, b"\r\n\r\n").ok_or(FetchError::Malformed("no end of head"))?;
    let head = std::str::from_utf8(&response[..head_end])
        .map_err(|_| FetchError::Malformed("head is not text"))?;
    let body = &response[head_end + 4..];

    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|line| line.strip_prefix("HTTP/1."))
        .and_then(|rest| rest.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or(FetchError::Malformed("bad status line"))?;
    if status != 200 {
        return Err(FetchError::Status(status));
    }

    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse::<usize>()
                    .map_err(|_| FetchError::Malformed("bad Content-Length"))?,
            );
        }
    }

    if chunked {
        return dechunk(body);
    }
    match length {
        Some(length) if body.len() < length => Err(FetchError::Malformed("body cut short")),
        Some(length) => Ok(body[..length].to_vec()),
        None => Ok(body.to_vec()),
    }
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, FetchError> {
    let mut out = Vec::with_capacity(body.len());
    loop {
        let line_end = find(body, b"\r\n").ok_or(FetchError::Malformed("chunk size"))?;
        let size_text = std::str::from_utf8(&body[..line_end])
            .map_err(|_| FetchError::Malformed("chunk size"))?;
        // Chunk extensions (`;name=value`) carry nothing we need.
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| FetchError::Malformed("chunk size"))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if body.len() < size + 2 {
            return Err(FetchError::Malformed("chunk cut short"));
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[test]
    fn urls_of_the_kubelet_and_of_a_local_proxy() {
        let kubelet = Endpoint::parse("http://10.0.0.7:10255/pods", None).unwrap();
        assert_eq!(
            (kubelet.host.as_str(), kubelet.port, kubelet.target.as_str()),
            ("10.0.0.7", 10255, "/pods")
        );
        let proxy = Endpoint::parse(
            "http://127.0.0.1:8001/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1",
            Some(PathBuf::new()),
        )
        .unwrap();
        assert_eq!(
            proxy.target,
            "/api/v1/pods?fieldSelector=spec.nodeName%3Dnode-1"
        );
        assert_eq!(proxy.token_file, None, "an empty token path means none");
        let v6 = Endpoint::parse("http://[::1]/pods", None).unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 80));
        assert_eq!(v6.authority(), "[::1]:80");
    }

    #[test]
    fn bad_urls() {
        let https = "https://127.0.0.1:10250/pods";
        assert_eq!(
            Endpoint::parse(https, None),
            Err(UrlError::Scheme(https.to_owned()))
        );
        assert!(matches!(
            Endpoint::parse("http://:10255/pods", None),
            Err(UrlError::NoHost(_))
        ));
        assert!(matches!(
            Endpoint::parse("http://node:kubelet/pods", None),
            Err(UrlError::Port(_))
        ));
    }

    #[test]
    fn bodies_by_length_and_by_chunks() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n{}{}";
        assert_eq!(body_of(plain).unwrap(), b"{}{}");

        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                        3\r\n{\"a\r\n5;ext=1\r\n\":[]}\r\n0\r\n\r\n";
        assert_eq!(body_of(chunked).unwrap(), b"{\"a\":[]}");

        let until_close = b"HTTP/1.0 200 OK\r\n\r\n[1]";
        assert_eq!(body_of(until_close).unwrap(), b"[1]");
    }

    /// One request to a loopback server that answers chunked, as the API server does; the
    /// request's head is handed back for the test to check.
    async fn serve_once(listener: tokio::net::TcpListener) -> String {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        let response = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                        7\r\n{\"items\r\n5\r\n\":[]}\r\n0\r\n\r\n";
        stream.write_all(response.as_bytes()).await.unwrap();
        String::from_utf8(head).unwrap()
    }

    #[tokio::test]
    async fn fetch_sends_the_token_and_returns_the_body() {
        let dir = std::env::temp_dir().join(format!("kube-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = dir.join("token");
        std::fs::write(&token, "s3cr3t\n").unwrap();

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve_once(listener));
        let url = format!("http://{addr}/api/v1/pods?fieldSelector=spec.nodeName%3Dn1");
        let endpoint = Endpoint::parse(&url, Some(token)).unwrap();
        let body = endpoint.fetch().await.unwrap();
        let head = server.await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();

        assert_eq!(body, br#"{"items":[]}"#);
        let lines: Vec<&str> = head.split("\r\n").collect();
        assert_eq!(
            lines[0],
            "GET /api/v1/pods?fieldSelector=spec.nodeName%3Dn1 HTTP/1.1"
        );
        assert!(lines.contains(&format!("Host: {addr}").as_str()), "{head}");
        assert!(lines.contains(&"Authorization: Bearer s3cr3t"), "{head}");
    }

    #[tokio::test]
    async fn nobody_listening_is_a_connect_error() {
        // Bind and drop, so the port was free a moment ago and nothing listens on it now.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let endpoint = Endpoint::parse(&format!("http://127.0.0.1:{port}/pods"), None).unwrap();
        let err = endpoint.fetch().await.unwrap_err();
        assert_eq!(err.reason(), "connect");
    }

    #[test]
    fn refusals_and_broken_answers() {
        let denied = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n";
        assert!(matches!(body_of(denied), Err(FetchError::Status(401))));
        let short = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}";
        assert_eq!(body_of(short).unwrap_err().reason(), "malformed_response");
        let cut = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nff\r\n{}";
        assert_eq!(body_of(cut).unwrap_err().reason(), "malformed_response");
        assert_eq!(
            body_of(b"SSH-2.0-OpenSSH\r\n").unwrap_err().reason(),
            "malformed_response"
        );
    }
}
