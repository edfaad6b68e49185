//! Response heads: the status line and the fields that decide where the body ends.
//!
//! The worker wrote these bytes, so header lines are read leniently: a malformed field is
//! skipped rather than failing the head. Only the status line must parse.

use super::head::{field, http1_minor, lines, list_items, parse_decimal};
use super::output::Method;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ResponseHead {
    pub status: u16,
    /// Framing the headers announce, before the request method and status are considered.
    pub framing: ResponseBody,
}

/// Where a response body ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ResponseBody {
    /// No body at all: HEAD, 1xx, 204, 304.
    Empty,
    Length(u64),
    Chunked,
    /// No usable length: the body runs until the worker closes (HTTP/1.0 style) or, as far
    /// as we can tell, until the client's next request.
    Delimited,
}

impl ResponseHead {
    /// Interim responses (100 Continue, 102, 103) precede the final one. 101 ends HTTP on
    /// the connection, so it is final and its "body" is whatever follows until close.
    pub(crate) fn is_interim(&self) -> bool {
        (100..200).contains(&self.status) && self.status != 101
    }

    /// RFC 9112 §6.3: the body of a response to HEAD, and of 1xx/204/304, is empty whatever
    /// the headers say; chunked wins over Content-Length.
    pub(crate) fn body_for(&self, method: Method) -> ResponseBody {
        let no_body = method == Method::Head
            || self.status == 204
            || self.status == 304
            || (self.is_interim());
        if no_body {
            ResponseBody::Empty
        } else if self.status == 101 {
            ResponseBody::Delimited
        } else {
            self.framing
        }
    }
}

/// `None` when the status line does not parse.
pub(crate) fn parse_response_head(head: &[u8]) -> Option<ResponseHead> {
    let mut lines = lines(head);
    let status = parse_status_line(lines.next()?)?;

    let mut length: Option<Option<u64>> = None;
    let mut chunked = false;
    let mut transfer_encoding = false;
    for (name, value) in lines.filter_map(field) {
        if name.eq_ignore_ascii_case(b"content-length") {
            let parsed = parse_decimal(value);
            // Conflicting or unparseable lengths leave the length unknown.
            length = match length {
                None => Some(parsed),
                Some(previous) if previous == parsed => Some(parsed),
                Some(_) => Some(None),
            };
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            for coding in list_items(value) {
                transfer_encoding = true;
                chunked = coding.eq_ignore_ascii_case(b"chunked");
            }
        }
    }

    let framing = match (transfer_encoding, chunked, length) {
        (true, true, _) => ResponseBody::Chunked,
        (true, false, _) => ResponseBody::Delimited,
        (false, _, Some(Some(n))) => ResponseBody::Length(n),
        (false, _, Some(None) | None) => ResponseBody::Delimited,
    };
    Some(ResponseHead { status, framing })
}

/// `HTTP/1.x SP 3DIGIT [SP reason]`.
pub(crate) fn parse_status_line(line: &[u8]) -> Option<u16> {
    let status = status_of(line)?;
    match line.get(12) {
        None | Some(b' ') => Some(status),
        Some(_) => None,
    }
}

/// The status code of a head that may be cut short after its first 12 bytes.
pub(crate) fn status_of(prefix: &[u8]) -> Option<u16> {
    http1_minor(prefix.get(..8)?)?;
    if prefix.get(8) != Some(&b' ') {
        return None;
    }
    let digits = prefix.get(9..12)?;
    if !digits.iter().all(u8::is_ascii_digit)
        || !matches!(prefix.get(12), None | Some(b' ' | b'\r' | b'\n'))
    {
        return None;
    }
    let status = digits
        .iter()
        .fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    (100..=999).contains(&status).then_some(status)
}

/// Whether a write could be the start of a status line ("HTTP/" or a prefix of it).
pub(crate) fn may_start_response(bytes: &[u8]) -> bool {
    let n = bytes.len().min(5);
    !bytes.is_empty() && bytes.get(..n) == b"HTTP/".get(..n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(bytes: &[u8]) -> ResponseHead {
        parse_response_head(bytes).expect("status line parses")
    }

    #[test]
    fn framing_from_headers() {
        let cl = head(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n");
        assert_eq!(
            cl,
            ResponseHead {
                status: 200,
                framing: ResponseBody::Length(12)
            }
        );

        let te = head(
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        );
        assert_eq!(te.framing, ResponseBody::Chunked);

        let none = head(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n");
        assert_eq!(none.framing, ResponseBody::Delimited);

        let conflict = head(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
        assert_eq!(conflict.framing, ResponseBody::Delimited);

        let same = head(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n");
        assert_eq!(same.framing, ResponseBody::Length(2));

        let lenient = head(b"HTTP/1.1 200 OK\r\nnot a header\r\nContent-Length: 7\r\n\r\n");
        assert_eq!(lenient.framing, ResponseBody::Length(7));
    }

    #[test]
    fn bodiless_responses() {
        let with_length = head(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n");
        assert_eq!(with_length.body_for(Method::Head), ResponseBody::Empty);
        assert_eq!(with_length.body_for(Method::Get), ResponseBody::Length(99));

        for status in [b"204", b"304", b"100", b"103"] {
            let mut bytes = b"HTTP/1.1 ".to_vec();
            bytes.extend_from_slice(status);
            bytes.extend_from_slice(b" X\r\nContent-Length: 5\r\n\r\n");
            assert_eq!(head(&bytes).body_for(Method::Get), ResponseBody::Empty);
        }

        let continue_ = head(b"HTTP/1.1 100 Continue\r\n\r\n");
        assert!(continue_.is_interim());
        let switching = head(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n");
        assert!(!switching.is_interim());
        assert_eq!(switching.body_for(Method::Get), ResponseBody::Delimited);
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK"), Some(200));
        assert_eq!(parse_status_line(b"HTTP/1.0 404"), Some(404));
        assert_eq!(
            parse_status_line(b"HTTP/1.1 431 Request Header Fields Too Large"),
            Some(431)
        );
        assert_eq!(parse_status_line(b"HTTP/1.1 2000 OK"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 20 OK"), None);
        assert_eq!(parse_status_line(b"HTTP/2 200 OK"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 099 Low"), None);
        assert_eq!(parse_status_line(b"ICY 200 OK"), None);
        assert_eq!(parse_response_head(b"<html>\r\n\r\n"), None);
    }

    #[test]
    fn status_of_truncated_heads() {
        assert_eq!(status_of(b"HTTP/1.1 503 Service Unav"), Some(503));
        assert_eq!(status_of(b"HTTP/1.1 503"), Some(503));
        assert_eq!(status_of(b"HTTP/1.1 50"), None);
        assert_eq!(status_of(b""), None);
    }

    #[test]
    fn response_starts() {
        assert!(may_start_response(b"HTTP/1.1 200 OK\r\n"));
        assert!(may_start_response(b"HT"));
        assert!(!may_start_response(b"<html>"));
        assert!(!may_start_response(b""));
    }
}
