//! A deliberately small HTTP/1.x server for /metrics, /healthz and /readyz.
//!
//! Scrapers send one short GET per connection, so each connection reads one bounded request
//! head, answers it with `Connection: close`, and ends. Nothing a client sends can make it
//! buffer more than [`MAX_HEAD`] bytes or hold a task longer than [`READ_TIMEOUT`].
//!
//! With `--web.config.file` the same exchange runs inside TLS, and /metrics may need basic
//! auth (see [`super::web`]). /healthz and /readyz never ask for credentials: kubelet probes
//! cannot send any, and they reveal only that the observer is up.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use prometheus::{Encoder, Registry, TextEncoder};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
};
use tracing::{debug, warn};

use super::web::{Verdict, Web, auth::authorization};
use crate::pipeline::DrainBeforeScrape;

const MAX_HEAD: usize = 8 * 1024;
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// What the endpoints need to answer.
#[derive(Clone)]
pub struct ServerState {
    pub registry: Registry,
    /// Set once every program is attached and the initial scan is done.
    pub ready: Arc<AtomicBool>,
    /// TLS, auth, headers and rate limit from `--web.config.file`; default: none.
    pub web: Arc<Web>,
    /// Drains the ring buffer before `/metrics` is encoded; `None` serves what is counted.
    pub drain: Option<DrainBeforeScrape>,
}

#[derive(Debug, PartialEq, Eq)]
struct Reply {
    status: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    /// Ask for basic-auth credentials (401).
    challenge: bool,
}

impl Reply {
    fn text(status: &'static str, body: &str) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.as_bytes().to_vec(),
            challenge: false,
        }
    }
}

/// Binds the listener; failing here is fatal and should be reported before anything loads.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves until `shutdown` flips to true.
pub async fn serve(listener: TcpListener, state: ServerState, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let state = state.clone();
                    tokio::spawn(async move {
                        if let Err(err) = accept(stream, &state).await {
                            debug!(%peer, error = %err, "metrics connection ended with an error");
                        }
                    });
                }
                // Usually EMFILE; back off instead of spinning on the error.
                Err(err) => {
                    warn!(error = %err, "accept on the metrics listener failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.changed() => return,
        }
    }
}

/// Runs the TLS handshake first when TLS is configured, within the same time limit.
async fn accept(stream: TcpStream, state: &ServerState) -> std::io::Result<()> {
    let Some(tls) = &state.web.tls else {
        return handle(stream, state).await;
    };
    let errors = &state.web.metrics.tls_errors;
    let (config, reload_failed) = tls.config();
    if reload_failed.is_some() {
        errors.with_label_values(&["reload"]).inc();
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    match tokio::time::timeout(READ_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => handle(stream, state).await,
        Ok(Err(err)) => {
            errors.with_label_values(&["handshake"]).inc();
            Err(err)
        }
        Err(_) => {
            errors.with_label_values(&["handshake_timeout"]).inc();
            Ok(())
        }
    }
}

async fn handle<S>(mut stream: S, state: &ServerState) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut head = Vec::with_capacity(512);
    let complete = tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream, &mut head)).await;
    let reply = match complete {
        Ok(Ok(true)) => guard(&head, state).await,
        Ok(Ok(false)) => Reply::text("431 Request Header Fields Too Large", "head too large\n"),
        Ok(Err(err)) => return Err(err),
        Err(_) => Reply::text("408 Request Timeout", "timed out\n"),
    };
    write_reply(&mut stream, &reply, &state.web.headers).await
}

/// The web config's rate limit and basic auth in front of [`route`], for all but the probes.
async fn guard(head: &[u8], state: &ServerState) -> Reply {
    let path = request_path(head);
    if path == b"/healthz" || path == b"/readyz" {
        return route(head, state);
    }
    let web = &state.web;
    if let Some(rate) = &web.rate
        && !rate.admit()
    {
        web.metrics.rate_limited.inc();
        return Reply::text("429 Too Many Requests", "rate limited\n");
    }
    if let Some(auth) = &web.auth {
        let verdict = auth.check(authorization(head)).await;
        web.metrics.auth.with_label_values(&[verdict.label()]).inc();
        match verdict {
            Verdict::Cached | Verdict::Verified => {}
            Verdict::Busy => return Reply::text("503 Service Unavailable", "auth busy\n"),
            Verdict::Missing | Verdict::Denied => {
                let mut reply = Reply::text("401 Unauthorized", "unauthorized\n");
                reply.challenge = true;
                return reply;
            }
        }
    }
    // Only an admitted scrape may make the event loop drain first.
    if let Some(drain) = state.drain.as_ref().filter(|_| asks_for_metrics(head)) {
        drain.wait().await;
    }
    route(head, state)
}

fn request_path(head: &[u8]) -> &[u8] {
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let target = line.split(|b| *b == b' ').nth(1).unwrap_or_default();
    target.split(|b| *b == b'?').next().unwrap_or_default()
}

/// Reads until the blank line ending the head. Returns false if the head is too large.
async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    head: &mut Vec<u8>,
) -> std::io::Result<bool> {
    let mut chunk = [0u8; 1024];
    loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(true);
        }
        if head.len() >= MAX_HEAD {
            return Ok(false);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&chunk[..n]);
    }
}

/// Whether the request line targets `/metrics` (query included), as [`route`] reads it.
fn asks_for_metrics(head: &[u8]) -> bool {
    let mut parts = head.split(|b| *b == b' ');
    let _method = parts.next();
    let target = parts.next().unwrap_or_default();
    target.split(|b| *b == b'?').next() == Some(b"/metrics")
}

fn route(head: &[u8], state: &ServerState) -> Reply {
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let mut parts = line.split(|b| *b == b' ');
    let (method, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let path = target.split(|b| *b == b'?').next().unwrap_or_default();

    if method != b"GET" && method != b"HEAD" {
        return Reply::text("405 Method Not Allowed", "only GET\n");
    }
    match path {
        b"/metrics" => metrics(&state.registry),
        b"/healthz" => Reply::text("200 OK", "ok\n"),
        b"/readyz" if state.ready.load(Ordering::Acquire) => Reply::text("200 OK", "ready\n"),
        b"/readyz" => Reply::text("503 Service Unavailable", "programs not attached yet\n"),
        _ => Reply::text("404 Not Found", "try /metrics\n"),
    }
}

fn metrics(registry: &Registry) -> Reply {
    let encoder = TextEncoder::new();
    let mut body = Vec::with_capacity(16 * 1024);
    match encoder.encode(&registry.gather(), &mut body) {
        Ok(()) => Reply {
            status: "200 OK",
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body,
            challenge: false,
        },
        Err(err) => {
            warn!(error = %err, "encoding metrics failed");
            Reply::text("500 Internal Server Error", "encoding failed\n")
        }
    }
}

async fn write_reply<S: AsyncWrite + Unpin>(
    stream: &mut S,
    reply: &Reply,
    extra: &[(&'static str, String)],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reply.status,
        reply.content_type,
        reply.body.len()
    );
    if reply.challenge {
        head.push_str("WWW-Authenticate: Basic realm=\"gunicorn-observer\", charset=\"UTF-8\"\r\n");
    }
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&reply.body).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(ready: bool) -> ServerState {
        let registry = Registry::new();
        let counter = prometheus::IntCounter::new("demo_total", "demo").unwrap();
        counter.inc_by(3);
        registry.register(Box::new(counter)).unwrap();
        ServerState {
            registry,
            ready: Arc::new(AtomicBool::new(ready)),
            web: Arc::default(),
            drain: None,
        }
    }

    #[test]
    fn routes() {
        let s = state(false);
        let reply = route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &s);
        assert_eq!(reply.status, "200 OK");
        let body = String::from_utf8(reply.body).unwrap();
        assert!(body.contains("\ndemo_total 3\n"), "{body}");

        assert_eq!(route(b"GET /healthz HTTP/1.1\r\n\r\n", &s).status, "200 OK");
        assert_eq!(
            route(b"GET /readyz HTTP/1.1\r\n\r\n", &s).status,
            "503 Service Unavailable"
        );
        assert_eq!(
            route(b"GET /readyz HTTP/1.1\r\n\r\n", &state(true)).status,
            "200 OK"
        );
        assert_eq!(
            route(b"GET /nope HTTP/1.1\r\n\r\n", &s).status,
            "404 Not Found"
        );
        assert_eq!(
            route(b"POST /metrics HTTP/1.1\r\n\r\n", &s).status,
            "405 Method Not Allowed"
        );
        assert_eq!(route(b"\r\n\r\n", &s).status, "405 Method Not Allowed");

        assert!(asks_for_metrics(b"GET /metrics HTTP/1.1\r\n\r\n"));
        assert!(asks_for_metrics(b"GET /metrics?x=1 HTTP/1.1\r\n\r\n"));
        assert!(!asks_for_metrics(b"GET /metricsx HTTP/1.1\r\n\r\n"));
        assert!(!asks_for_metrics(b"GET /healthz HTTP/1.1\r\n\r\n"));
    }

    #[tokio::test]
    async fn serves_over_tcp_and_refuses_huge_heads() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = watch::channel(false);
        let server = tokio::spawn(serve(listener, state(true), stopped));

        let mut client = TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET /healthz HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nok\n"), "{answer}");

        let mut client = TcpStream::connect(addr).await.unwrap();
        client.write_all(&[b'a'; MAX_HEAD + 10]).await.unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");

        stop.send(true).unwrap();
        server.await.unwrap();
    }
}
