//! Collecting a message head (start line and header fields) from captured bytes, and the
//! line and field helpers the request and response parsers share.
//!
//! A head usually arrives whole in one syscall and is parsed straight from the captured
//! bytes; only a head split across syscalls is copied into the connection's buffer.

/// Most head bytes buffered per direction of a connection. Gunicorn's own limits allow
/// longer heads, but only the first `CAPTURE_LEN` bytes of each read are visible anyway, so a
/// longer head is treated as truncated and framed by direction changes instead.
pub(crate) const MAX_HEAD_BYTES: usize = 8 * 1024;

/// Head bytes seen so far in one direction of a connection. Empty, and holding no heap, unless
/// a head arrived split across syscalls and has not ended yet.
#[derive(Debug, Default)]
pub(crate) struct HeadBuf {
    buf: Vec<u8>,
}

/// Result of offering bytes to a [`HeadBuf`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Feed<'a> {
    /// The head ended: `head` is all of it, and the first `consumed` bytes offered were its
    /// tail. The caller parses `head` and then calls [`HeadBuf::clear`].
    Complete { head: &'a [u8], consumed: usize },
    /// Every byte offered belongs to a head that has not ended yet.
    Partial,
    /// The head outgrew [`MAX_HEAD_BYTES`]; here is what was kept of its beginning.
    Overflow(&'a [u8]),
}

impl HeadBuf {
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The bytes kept so far of a head that has not ended.
    pub(crate) fn contents(&self) -> &[u8] {
        &self.buf
    }

    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Forgets the head and frees its buffer. Split heads are rare, so keeping the buffer for
    /// the next one would leave up to `MAX_HEAD_BYTES` resident on every connection that
    /// ever had one (10,000 idle connections after a slow-client burst: up to 80 MB per
    /// direction).
    pub(crate) fn clear(&mut self) {
        self.buf = Vec::new();
    }

    pub(crate) fn feed<'a>(&'a mut self, bytes: &'a [u8]) -> Feed<'a> {
        let old = self.buf.len();

        // Fast path: the whole head is inside this one syscall's bytes, so nothing is copied.
        if old == 0 {
            match find_head_end(bytes, 0) {
                Some(end) if end <= MAX_HEAD_BYTES => {
                    let head = bytes.get(..end).unwrap_or(bytes);
                    return Feed::Complete {
                        head,
                        consumed: end,
                    };
                }
                Some(_) => return Feed::Overflow(bytes.get(..MAX_HEAD_BYTES).unwrap_or(bytes)),
                None => {}
            }
        }

        let room = MAX_HEAD_BYTES.saturating_sub(old);
        let taken = bytes.get(..room).unwrap_or(bytes);
        self.buf.extend_from_slice(taken);

        // The blank line may straddle the old and new bytes ("\n" + "\r\n" spans 3 bytes).
        // Bytes that started a fresh buffer were searched above already.
        let end = if old == 0 {
            None
        } else {
            find_head_end(&self.buf, old.saturating_sub(2))
        };
        match end {
            Some(end) => Feed::Complete {
                head: self.buf.get(..end).unwrap_or(&self.buf),
                consumed: end.saturating_sub(old),
            },
            None if self.buf.len() >= MAX_HEAD_BYTES => Feed::Overflow(&self.buf),
            None => Feed::Partial,
        }
    }
}

/// Index just past the blank line that ends a head, searching from `from`. A blank line is
/// "\n" or "\r\n" right after a line feed, so bare-LF heads are accepted too.
pub(crate) fn find_head_end(bytes: &[u8], from: usize) -> Option<usize> {
    let tail = bytes.get(from..)?;
    // memchr jumps between line feeds a word at a time; a byte loop here was a large share
    // of the replay bench.
    memchr::memchr_iter(b'\n', tail).find_map(|i| {
        let at = from + i + 1;
        match (bytes.get(at), bytes.get(at + 1)) {
            (Some(b'\n'), _) => Some(at + 1),
            (Some(b'\r'), Some(b'\n')) => Some(at + 2),
            _ => None,
        }
    })
}

/// The lines of a head, without their CRLF or LF terminators. The final blank line and
/// anything after it yield nothing.
pub(crate) fn lines(head: &[u8]) -> impl Iterator<Item = &[u8]> {
    head.split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .take_while(|line| !line.is_empty())
}

/// The first line of `bytes` if its terminator is visible.
pub(crate) fn first_line(bytes: &[u8]) -> Option<&[u8]> {
    let end = memchr::memchr(b'\n', bytes)?;
    let line = bytes.get(..end)?;
    Some(line.strip_suffix(b"\r").unwrap_or(line))
}

/// A header field line split into name and value (value trimmed of spaces and tabs).
/// `None` for a line that is not `token ":" value`.
pub(crate) fn field(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = memchr::memchr(b':', line)?;
    let name = line.get(..colon)?;
    let value = line.get(colon + 1..)?;
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return None;
    }
    Some((name, trim(value)))
}

/// RFC 9110 §5.6.2 token characters.
pub(crate) fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

/// [`is_tchar`] as a table: every header name byte is checked, and searching the list of
/// punctuation for each one showed up in profiles.
const TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < table.len() {
        let b = i as u8;
        table[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        i += 1;
    }
    table
};

pub(crate) fn trim(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

/// The items of a comma-separated field value, trimmed, empty ones skipped.
pub(crate) fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim)
        .filter(|item| !item.is_empty())
}

/// A decimal Content-Length; `None` for anything but 1-19 ASCII digits.
pub(crate) fn parse_decimal(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// `HTTP/1.x` → `x`. Only HTTP/1 is spoken on these sockets.
pub(crate) fn http1_minor(version: &[u8]) -> Option<u8> {
    match version {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor] if minor.is_ascii_digit() => {
            Some(minor - b'0')
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tchar_table_matches_the_rfc_list() {
        let listed = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        for b in 0..=u8::MAX {
            assert_eq!(is_tchar(b), listed(b), "byte {b}");
        }
    }

    #[test]
    fn head_end_accepts_crlf_and_bare_lf() {
        assert_eq!(
            find_head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nBODY", 0),
            Some(24)
        );
        assert_eq!(find_head_end(b"GET / HTTP/1.1\nA: b\n\nBODY", 0), Some(21));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nA: b\n\r\n", 0), Some(23));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nA: b\r\n", 0), None);
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r", 0), None);
        assert_eq!(find_head_end(b"", 0), None);
        assert_eq!(find_head_end(b"ab", 7), None);
    }

    #[test]
    fn whole_head_in_one_feed_is_not_copied() {
        let mut buf = HeadBuf::default();
        let bytes = b"GET / HTTP/1.1\r\n\r\nGET /2";
        match buf.feed(bytes) {
            Feed::Complete { head, consumed } => {
                assert_eq!(head, b"GET / HTTP/1.1\r\n\r\n");
                assert_eq!(consumed, 18);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn head_split_inside_its_terminator() {
        let mut buf = HeadBuf::default();
        assert_eq!(buf.feed(b"GET / HTTP/1.1\r\nHost: a\r"), Feed::Partial);
        assert_eq!(buf.feed(b"\n"), Feed::Partial);
        assert_eq!(buf.contents(), b"GET / HTTP/1.1\r\nHost: a\r\n");
        match buf.feed(b"\r\nnext") {
            Feed::Complete { head, consumed } => {
                assert_eq!(head, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
                assert_eq!(consumed, 2);
            }
            other => panic!("unexpected {other:?}"),
        }
        buf.clear();
        assert!(buf.is_empty());
    }

    #[test]
    fn head_over_the_limit_overflows() {
        let mut buf = HeadBuf::default();
        let line = [b'a'; 1000];
        for _ in 0..8 {
            assert_eq!(buf.feed(&line), Feed::Partial);
        }
        match buf.feed(&line) {
            Feed::Overflow(kept) => assert_eq!(kept.len(), MAX_HEAD_BYTES),
            other => panic!("unexpected {other:?}"),
        }

        let mut big = vec![b'x'; MAX_HEAD_BYTES + 10];
        big.extend_from_slice(b"\r\n\r\n");
        let mut fresh = HeadBuf::default();
        assert!(matches!(fresh.feed(&big), Feed::Overflow(kept) if kept.len() == MAX_HEAD_BYTES));
    }

    #[test]
    fn lines_and_fields() {
        let head = b"GET / HTTP/1.1\r\nHost: a\nX-Y:  spaced \t\r\n\r\nbody";
        let all: Vec<_> = lines(head).collect();
        assert_eq!(
            all,
            [&b"GET / HTTP/1.1"[..], b"Host: a", b"X-Y:  spaced \t"]
        );
        assert_eq!(
            field(b"X-Y:  spaced \t"),
            Some((&b"X-Y"[..], &b"spaced"[..]))
        );
        assert_eq!(field(b"Bad Name: v"), None);
        assert_eq!(field(b": v"), None);
        assert_eq!(field(b"novalue"), None);
        assert_eq!(field(b"Empty:"), Some((&b"Empty"[..], &b""[..])));
        assert_eq!(
            first_line(b"HTTP/1.1 200 OK\r\nA: b"),
            Some(&b"HTTP/1.1 200 OK"[..])
        );
        assert_eq!(first_line(b"HTTP/1.1 200 OK"), None);
    }

    #[test]
    fn numbers_lists_versions() {
        assert_eq!(parse_decimal(b"0"), Some(0));
        assert_eq!(parse_decimal(b"1234567"), Some(1_234_567));
        assert_eq!(
            parse_decimal(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        assert_eq!(parse_decimal(b"99999999999999999999"), None);
        assert_eq!(parse_decimal(b"+5"), None);
        assert_eq!(parse_decimal(b"5 5"), None);
        assert_eq!(parse_decimal(b""), None);

        let items: Vec<_> = list_items(b" gzip, ,chunked ").collect();
        assert_eq!(items, [&b"gzip"[..], b"chunked"]);

        assert_eq!(http1_minor(b"HTTP/1.1"), Some(1));
        assert_eq!(http1_minor(b"HTTP/1.0"), Some(0));
        assert_eq!(http1_minor(b"HTTP/2.0"), None);
        assert_eq!(http1_minor(b"HTTP/1.1 "), None);
        assert_eq!(http1_minor(b"http/1.1"), None);
    }
}
