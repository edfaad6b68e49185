//! Finding the next request once framing was lost (a chunked upload whose chunk headers lay
//! beyond the captured bytes, a head the worker refused): the first read that begins with a
//! request line starts it. A client may send that line a few bytes a read, too few to tell
//! a request from leftover body bytes, so a short beginning is kept across reads until it
//! can be judged.

use super::conn::{Conn, Inbound};
use super::output::{Method, Output};
use super::request::{may_begin_request, method_of, starts_request};

/// Most bytes of an undecided request-line beginning kept across reads. [`starts_request`]
/// decides once the method, its space and the first byte of an origin-form target are in:
/// at most 22 bytes for any method Gunicorn accepts. An absolute-form target also needs its
/// `://`, which fits for schemes of up to 8 characters after the longest method; a longer
/// undecided beginning is given up, and a request sent that way is missed.
pub(crate) const MAX_LINE_PREFIX: usize = 32;

/// The beginning of what may be a request line, kept inline: connections in this state are
/// rare, and a few dozen bytes in the state itself cost less than a heap buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LinePrefix {
    bytes: [u8; MAX_LINE_PREFIX],
    len: u8,
    /// When the read carrying its first byte returned: the request's start if it is one.
    since_ns: u64,
}

impl LinePrefix {
    /// `None` when `bytes` do not fit.
    fn new(bytes: &[u8], since_ns: u64) -> Option<Self> {
        let mut prefix = Self {
            bytes: [0; MAX_LINE_PREFIX],
            len: u8::try_from(bytes.len()).ok()?,
            since_ns,
        };
        prefix.bytes.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(prefix)
    }

    fn bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }
}

impl Conn {
    /// A read while waiting for a request line, `prefix` being what the reads before it kept.
    /// `true` once a request starts: the caller goes on with this read's bytes, and any
    /// prefix has already been taken as the request's first bytes, at its own time.
    pub(super) fn resync(
        &mut self,
        prefix: Option<LinePrefix>,
        ts_ns: u64,
        visible: &[u8],
        remaining: u64,
        sink: &mut impl FnMut(Output),
    ) -> bool {
        // Only a read seen whole can be part of a kept beginning; a prefix fits in any
        // capture, so a longer read is never one.
        let whole = remaining == visible.len() as u64;
        let Some(prefix) = prefix else {
            if starts_request(visible) {
                self.inbound = Inbound::Idle;
                return true;
            }
            self.inbound = Inbound::Resync {
                prefix: keep(whole, visible, ts_ns),
            };
            return false;
        };

        let mut joined = Vec::with_capacity(prefix.bytes().len() + visible.len());
        joined.extend_from_slice(prefix.bytes());
        joined.extend_from_slice(visible);
        let alone = starts_request(visible);
        // Leftover body bytes that look like the start of a method ("…UPLOADED" then
        // "GET / …") would join into one unknown method: when this read alone begins a
        // request with a known method and the joined line has none, the read wins. A split
        // known method ("P" then "OST / …") still joins.
        let known = |bytes: &[u8]| method_of(bytes) != Method::Other;
        if starts_request(&joined) && !(alone && known(visible) && !known(&joined)) {
            self.inbound = Inbound::Idle;
            let kept = prefix.bytes();
            self.consume(prefix.since_ns, kept, kept.len() as u64, sink);
            return true;
        }
        if alone {
            // What was kept was not a request's beginning after all; this read is.
            self.inbound = Inbound::Idle;
            return true;
        }

        // Still undecided: keep the longer beginning if it can be one, else start over
        // from this read.
        self.inbound = Inbound::Resync {
            prefix: keep(whole, &joined, prefix.since_ns).or(keep(whole, visible, ts_ns)),
        };
        false
    }
}

/// `bytes` as a kept beginning, if they came from reads seen whole, may begin a request
/// line and fit.
fn keep(whole: bool, bytes: &[u8], since_ns: u64) -> Option<LinePrefix> {
    if whole && may_begin_request(bytes) {
        LinePrefix::new(bytes, since_ns)
    } else {
        None
    }
}
