//! Request heads: the request line and the fields that decide how the body is framed.
//!
//! Validation follows what Gunicorn accepts closely enough to agree on framing. When a head
//! does not parse, Gunicorn answers 400 itself, so the connection falls back to framing by
//! direction changes and the 400 is still reported as that request's status.

use super::head::{field, first_line, http1_minor, is_tchar, lines, list_items, parse_decimal};
use super::output::Method;
use super::route::{Route, RouteMode};

/// What a complete, valid request head says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RequestHead {
    pub method: Method,
    /// `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub minor: u8,
    pub body: RequestBody,
    /// `Expect: 100-continue` on HTTP/1.1: the body follows an interim 100 response.
    pub expect_continue: bool,
    /// Whether the client asked to keep the connection open after this request.
    pub keep_alive: bool,
}

/// How the request body is framed. A request without Content-Length or Transfer-Encoding has
/// no body (RFC 9112 §6.3), so a request body is never delimited by close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RequestBody {
    Empty,
    Length(u64),
    Chunked,
}

/// A head that does not parse; `method` comes from its request line when that much is valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BadRequest {
    pub method: Method,
}

pub(crate) fn parse_request_head(head: &[u8]) -> Result<RequestHead, BadRequest> {
    let mut lines = lines(head);
    let bad = BadRequest {
        method: method_of(head),
    };
    let (method, minor) = lines.next().and_then(parse_request_line).ok_or(bad)?;

    let mut content_length = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    let mut expect_continue = false;
    let mut close = false;
    let mut keep_alive = false;
    for line in lines {
        // Obsolete line folding and lines without a colon are refused by Gunicorn.
        let (name, value) = field(line).ok_or(bad)?;
        if name.eq_ignore_ascii_case(b"content-length") {
            // Duplicates are refused even when equal, as Gunicorn does.
            if content_length.is_some() {
                return Err(bad);
            }
            content_length = Some(parse_decimal(value).ok_or(bad)?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            for coding in list_items(value) {
                // "chunked" must be the final coding and appear once.
                if chunked {
                    return Err(bad);
                }
                transfer_encoding = true;
                chunked = coding.eq_ignore_ascii_case(b"chunked");
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            expect_continue |= value.eq_ignore_ascii_case(b"100-continue");
        } else if name.eq_ignore_ascii_case(b"connection") {
            for option in list_items(value) {
                close |= option.eq_ignore_ascii_case(b"close");
                keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }

    let body = match (transfer_encoding, chunked, content_length) {
        (false, _, None) => RequestBody::Empty,
        (false, _, Some(n)) => RequestBody::Length(n),
        // A body that is neither chunked nor counted has no length; chunked with a length or
        // on HTTP/1.0 is ambiguous. Gunicorn refuses all three.
        (true, false, _) | (true, true, Some(_)) => return Err(bad),
        (true, true, None) if minor == 0 => return Err(bad),
        (true, true, None) => RequestBody::Chunked,
    };

    Ok(RequestHead {
        method,
        minor,
        body,
        // RFC 9110 §10.1.1: a 100-continue expectation in HTTP/1.0 is ignored.
        expect_continue: expect_continue && minor >= 1,
        keep_alive: if minor >= 1 {
            !close
        } else {
            keep_alive && !close
        },
    })
}

/// `method SP request-target SP HTTP/1.x`, with single spaces as Gunicorn requires.
pub(crate) fn parse_request_line(line: &[u8]) -> Option<(Method, u8)> {
    let (token, rest) = split_at_space(line)?;
    let last_space = rest.iter().rposition(|&b| b == b' ')?;
    let target = rest.get(..last_space)?;
    let version = rest.get(last_space + 1..)?;

    let valid_token = !token.is_empty() && token.iter().all(|&b| is_tchar(b));
    let valid_target = !target.is_empty() && target.iter().all(|&b| b.is_ascii_graphic());
    if !valid_token || !valid_target {
        return None;
    }
    Some((Method::from_token(token), http1_minor(version)?))
}

/// The route of a head that may be cut short: known once its request line is visible
/// whole and well formed, else [`Route::unseen`].
pub(crate) fn route_of(head: &[u8], mode: RouteMode) -> Route {
    let target = first_line(head).and_then(|line| {
        parse_request_line(line)?;
        let (_, rest) = split_at_space(line)?;
        rest.get(..rest.iter().rposition(|&b| b == b' ')?)
    });
    match target {
        Some(target) => Route::of_target(target, mode),
        None => Route::unseen(mode),
    }
}

/// The method of a head that may be cut short: the token before the first space, if that
/// space is visible.
pub(crate) fn method_of(prefix: &[u8]) -> Method {
    match split_at_space(prefix) {
        Some((token, _)) => Method::from_token(token),
        None => Method::Other,
    }
}

/// Whether `bytes` plausibly begin a request: used to pick up a connection mid-stream
/// (accepted before the observer started, or after framing was lost), where a false start
/// would misread body bytes as a request. Stricter than [`parse_request_head`]: the method
/// must look like Gunicorn's default method check (3-20 characters, no lowercase) and the
/// target must have one of the request-target forms.
pub(crate) fn starts_request(bytes: &[u8]) -> bool {
    let Some((token, rest)) = split_at_space(bytes) else {
        return false;
    };
    let method_ok = is_method(token);
    let target_ok = match rest.first() {
        Some(b'/' | b'*') => true,
        Some(b) if b.is_ascii_alphabetic() => {
            token == b"CONNECT" || rest.windows(3).take(32).any(|w| w == b"://")
        }
        _ => false,
    };
    if !method_ok || !target_ok {
        return false;
    }

    // With the whole line visible, it must parse; otherwise what is visible of it must be
    // printable (the line runs past the capture window or into the next read).
    match first_line(bytes) {
        Some(line) => parse_request_line(line).is_some(),
        None => rest
            .iter()
            .all(|&b| b == b' ' || b.is_ascii_graphic() || b == b'\r'),
    }
}

/// Longest method token Gunicorn's default method check accepts.
const MAX_METHOD_LEN: usize = 20;

/// A method as Gunicorn's default check accepts it: 3-20 characters, no lowercase.
fn is_method(token: &[u8]) -> bool {
    (3..=MAX_METHOD_LEN).contains(&token.len()) && token.iter().all(|&b| is_method_char(b))
}

fn is_method_char(b: u8) -> bool {
    is_tchar(b) && !b.is_ascii_lowercase() && b != b'#'
}

/// Whether `bytes` may be the beginning of a request line too short for [`starts_request`]
/// to judge: part of a method, or a method, its space and the start of an absolute-form
/// target, with no line end yet.
pub(crate) fn may_begin_request(bytes: &[u8]) -> bool {
    if bytes.is_empty() || bytes.contains(&b'\n') {
        return false;
    }
    match split_at_space(bytes) {
        None => bytes.len() <= MAX_METHOD_LEN && bytes.iter().all(|&b| is_method_char(b)),
        Some((token, rest)) => is_method(token) && rest.iter().all(u8::is_ascii_graphic),
    }
}

fn split_at_space(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let space = bytes.iter().take(64).position(|&b| b == b' ')?;
    Some((bytes.get(..space)?, bytes.get(space + 1..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(head: &[u8]) -> RequestHead {
        parse_request_head(head).expect("head parses")
    }

    #[test]
    fn simple_get() {
        let head = ok(b"GET /a?b=c HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(
            head,
            RequestHead {
                method: Method::Get,
                minor: 1,
                body: RequestBody::Empty,
                expect_continue: false,
                keep_alive: true,
            }
        );
    }

    #[test]
    fn body_framing_fields() {
        let post = ok(b"POST /u HTTP/1.1\r\ncontent-LENGTH:  42 \r\n\r\n");
        assert_eq!(post.body, RequestBody::Length(42));

        let chunked = ok(b"PUT /u HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n");
        assert_eq!(chunked.body, RequestBody::Chunked);
        assert_eq!(chunked.method, Method::Put);

        let expect = ok(b"POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\n");
        assert!(expect.expect_continue);
        let expect10 = ok(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
        assert!(!expect10.expect_continue);
    }

    #[test]
    fn connection_options_and_versions() {
        assert!(!ok(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!ok(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
        let old = ok(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
        assert!(old.keep_alive);
        assert_eq!(old.minor, 0);
    }

    #[test]
    fn bare_lf_heads_parse() {
        let head = ok(b"DELETE /x HTTP/1.1\nHost: y\nContent-Length: 3\n\n");
        assert_eq!(head.method, Method::Delete);
        assert_eq!(head.body, RequestBody::Length(3));
    }

    #[test]
    fn ambiguous_framing_is_refused_with_the_method_kept() {
        let refused: [&[u8]; 7] = [
            b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
        ];
        for head in refused {
            assert_eq!(
                parse_request_head(head),
                Err(BadRequest {
                    method: Method::Post
                }),
                "{}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[test]
    fn bad_request_lines() {
        let bad: [&[u8]; 7] = [
            b"GET /\r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/2.0\r\n\r\n",
            b"GET / x HTTP/1.1\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
            b"G(T / HTTP/1.1\r\n\r\n",
            b"\r\n\r\n",
        ];
        for head in bad {
            assert!(parse_request_head(head).is_err(), "{head:?}");
        }
        assert_eq!(
            parse_request_line(b"OPTIONS * HTTP/1.1"),
            Some((Method::Options, 1))
        );
        assert_eq!(
            parse_request_line(b"PROPFIND /d HTTP/1.1"),
            Some((Method::Other, 1))
        );
    }

    #[test]
    fn routes_of_whole_and_cut_heads() {
        let t = RouteMode::Template;
        assert_eq!(
            route_of(b"GET /u/12?x HTTP/1.1\r\nHost: a\r\n\r\n", t).as_str(),
            "/u/:id"
        );
        assert_eq!(route_of(b"GET /u/12?x HTTP/1.1\n\n", t).as_str(), "/u/:id");
        assert_eq!(route_of(b"GET /u/12 HTTP/1.1", t), Route::UNKNOWN);
        assert_eq!(route_of(b"GET  /u HTTP/1.1\r\n\r\n", t), Route::UNKNOWN);
        assert_eq!(
            route_of(b"GET /u/12 HTTP/1.1\r\n", RouteMode::Off),
            Route::NONE
        );
    }

    #[test]
    fn method_of_truncated_heads() {
        assert_eq!(method_of(b"PATCH /very/long/ur"), Method::Patch);
        assert_eq!(method_of(b"PATCH"), Method::Other);
        assert_eq!(method_of(b""), Method::Other);
    }

    #[test]
    fn request_starts_for_resync() {
        assert!(starts_request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(starts_request(b"GET /only/part/of/the/li"));
        assert!(starts_request(b"GET http://example.test/ HTTP/1.1\r\n"));
        assert!(starts_request(b"CONNECT example.test:443 HTTP/1.1\r\n"));
        assert!(starts_request(b"OPTIONS * HTTP/1.1\r\n"));

        assert!(!starts_request(b"lorem ipsum dolor sit amet"));
        assert!(!starts_request(b"LOREM IPSUM DOLOR"));
        assert!(!starts_request(b"GET / HTTP/3.0\r\n"));
        assert!(!starts_request(b"GET"));
        assert!(!starts_request(b"5\r\nhello\r\n"));
        assert!(!starts_request(b"GET /\x00bin"));
        assert!(!starts_request(b""));
    }
}
