//! The `route` label: a request target turned into a value of bounded cardinality.
//!
//! Raw paths carry ids (`/users/8812`, `/orders/5f0c…`), so one series per path would grow
//! without end. By default each path segment that looks like an id becomes a placeholder:
//! all digits `:id`, a UUID `:uuid`, a long run of hex digits `:hex`. The query string never
//! takes part. The aggregator then caps the distinct routes per app (see
//! `aggregate::routes`), so even a path space with ids this misses stays bounded.
//!
//! A [`Route`] is a fixed-size inline value, so building and comparing one on the event path
//! allocates nothing.

use std::fmt;
use std::hash::{Hash, Hasher};

/// Longest route kept, in bytes. A longer one (after templating) is not a route a dashboard
/// groups by, so it folds into [`Route::OTHER`] rather than being cut at an arbitrary byte.
pub const MAX_ROUTE_BYTES: usize = 96;

/// Shortest run of hex digits read as an id (`:hex`): 16 covers 64-bit ids, hashes and
/// tokens, and stays clear of words made of the letters a-f.
const MIN_HEX_ID: usize = 16;

/// How request targets become `route` label values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RouteMode {
    /// Id-like segments become placeholders (`/users/:id`).
    #[default]
    Template,
    /// The path as sent, without its query string.
    Raw,
    /// No `route` label at all.
    Off,
}

/// A route label value: ASCII, at most [`MAX_ROUTE_BYTES`] long, stored inline.
#[derive(Clone, Copy)]
pub struct Route {
    len: u8,
    bytes: [u8; MAX_ROUTE_BYTES],
}

impl Route {
    /// The label is off: rendered as no `route` label.
    pub const NONE: Route = Route::fixed(b"");
    /// The target was never seen whole (a head beyond the capture window, or a request line
    /// Gunicorn refused), so there is no path to name.
    pub const UNKNOWN: Route = Route::fixed(b"unknown");
    /// Routes past the per-app cap, and routes too long to keep. Real routes start with `/`
    /// (or are `*`), so neither special value can be a real one.
    pub const OTHER: Route = Route::fixed(b"other");

    const fn fixed(text: &[u8]) -> Route {
        let mut bytes = [0; MAX_ROUTE_BYTES];
        let mut i = 0;
        while i < text.len() {
            bytes[i] = text[i];
            i += 1;
        }
        Route {
            len: text.len() as u8,
            bytes,
        }
    }

    /// The value before the target is known: unknown, or nothing when the label is off.
    pub fn unseen(mode: RouteMode) -> Route {
        match mode {
            RouteMode::Off => Route::NONE,
            RouteMode::Template | RouteMode::Raw => Route::UNKNOWN,
        }
    }

    /// The route of a request target (origin-form `/p?q`, absolute-form `http://h/p`, or
    /// `*`). `target` was checked to be printable ASCII by the request-line parser.
    pub fn of_target(target: &[u8], mode: RouteMode) -> Route {
        if mode == RouteMode::Off {
            return Route::NONE;
        }
        let path = path_of(target);
        if path == b"*" {
            return Route::fixed(b"*");
        }
        if path.first() != Some(&b'/') {
            // Authority-form (CONNECT host:port) or something Gunicorn will refuse.
            return Route::UNKNOWN;
        }

        let mut route = Route::NONE;
        let fits = match mode {
            RouteMode::Raw => route.push(path),
            RouteMode::Template | RouteMode::Off => {
                // The path starts with '/', so the first piece is empty and every later one
                // is a segment preceded by its slash.
                path.split(|&b| b == b'/')
                    .skip(1)
                    .all(|segment| route.push(b"/") && route.push(placeholder(segment)))
            }
        };
        if fits { route } else { Route::OTHER }
    }

    fn push(&mut self, text: &[u8]) -> bool {
        let start = usize::from(self.len);
        let Some(slot) = self.bytes.get_mut(start..start + text.len()) else {
            return false;
        };
        slot.copy_from_slice(text);
        // In range: `start + text.len()` is at most MAX_ROUTE_BYTES, which fits a u8.
        self.len += text.len() as u8;
        true
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// The label value. Routes hold only ASCII, so the fallback never shows.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or("unknown")
    }

    /// Whether the route label is off for this request.
    pub fn is_none(&self) -> bool {
        self.len == 0
    }
}

impl PartialEq for Route {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Route {}

impl Hash for Route {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Route({:?})", self.as_str())
    }
}

/// The path of a request target: the scheme and authority of an absolute-form target, and
/// the query or fragment, removed.
fn path_of(target: &[u8]) -> &[u8] {
    let mut path = target;
    if let Some(scheme_end) = path.windows(3).position(|w| w == b"://") {
        let after = path.get(scheme_end + 3..).unwrap_or_default();
        path = match after.iter().position(|&b| b == b'/') {
            Some(slash) => after.get(slash..).unwrap_or(b"/"),
            None => b"/",
        };
    }
    let end = path
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(path.len());
    path.get(..end).unwrap_or(path)
}

/// A segment as it appears in a templated route.
fn placeholder(segment: &[u8]) -> &[u8] {
    if !segment.is_empty() && segment.iter().all(u8::is_ascii_digit) {
        b":id"
    } else if is_uuid(segment) {
        b":uuid"
    } else if segment.len() >= MIN_HEX_ID && segment.iter().all(u8::is_ascii_hexdigit) {
        b":hex"
    } else {
        segment
    }
}

/// `8-4-4-4-12` hex digits, either case.
fn is_uuid(segment: &[u8]) -> bool {
    segment.len() == 36
        && segment.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(target: &str) -> String {
        Route::of_target(target.as_bytes(), RouteMode::Template)
            .as_str()
            .to_owned()
    }

    #[test]
    fn id_like_segments_become_placeholders() {
        assert_eq!(template("/"), "/");
        assert_eq!(template("/users/8812"), "/users/:id");
        assert_eq!(template("/users/8812/orders/7"), "/users/:id/orders/:id");
        assert_eq!(
            template("/o/123e4567-E89B-12d3-a456-426614174000/items"),
            "/o/:uuid/items"
        );
        assert_eq!(template("/blob/5f0cdeadbeef0042"), "/blob/:hex");
        assert_eq!(template("/blob/5f0cdeadbeef004"), "/blob/5f0cdeadbeef004");
        assert_eq!(template("/v2/api"), "/v2/api");
        assert_eq!(template("/deadbeef"), "/deadbeef");
        // Not quite a UUID: a dash in the wrong place.
        assert_eq!(
            template("/o/123e4567e-89B-12d3-a456-426614174000"),
            "/o/123e4567e-89B-12d3-a456-426614174000"
        );
    }

    #[test]
    fn query_fragment_scheme_and_authority_are_dropped() {
        assert_eq!(template("/search?q=1&page=2"), "/search");
        assert_eq!(template("/a/1#frag"), "/a/:id");
        assert_eq!(template("/?x"), "/");
        assert_eq!(template("http://example.test/items/9?x=1"), "/items/:id");
        assert_eq!(template("http://example.test"), "/");
        assert_eq!(template("*"), "*");
        assert_eq!(template("example.test:443"), "unknown");
    }

    #[test]
    fn empty_segments_and_trailing_slashes_are_kept() {
        assert_eq!(template("/a//b/"), "/a//b/");
        assert_eq!(template("/a/12/"), "/a/:id/");
    }

    #[test]
    fn raw_keeps_ids_but_not_the_query() {
        let raw = |t: &str| Route::of_target(t.as_bytes(), RouteMode::Raw);
        assert_eq!(raw("/users/8812?x=1").as_str(), "/users/8812");
        assert_eq!(raw("/").as_str(), "/");
    }

    #[test]
    fn off_is_always_none() {
        let off = Route::of_target(b"/users/1", RouteMode::Off);
        assert!(off.is_none());
        assert_eq!(off, Route::NONE);
        assert_eq!(Route::unseen(RouteMode::Off), Route::NONE);
        assert_eq!(Route::unseen(RouteMode::Template), Route::UNKNOWN);
    }

    #[test]
    fn too_long_folds_into_other() {
        let exact = format!("/{}", "z".repeat(MAX_ROUTE_BYTES - 1));
        assert_eq!(template(&exact), exact);
        let long = format!("/{}", "z".repeat(MAX_ROUTE_BYTES));
        assert_eq!(template(&long), "other");
        let raw = Route::of_target(long.as_bytes(), RouteMode::Raw);
        assert_eq!(raw, Route::OTHER);
        // Templating can bring a long path under the limit.
        let ids = format!("/{}", "1".repeat(200));
        assert_eq!(template(&ids), "/:id");
    }

    #[test]
    fn equality_and_hash_ignore_unused_bytes() {
        use std::collections::HashSet;
        let mut long = Route::of_target(b"/abc/def", RouteMode::Raw);
        long.len = 4;
        let short = Route::of_target(b"/abc", RouteMode::Raw);
        assert_eq!(long, short);
        let set: HashSet<Route> = [long, short].into_iter().collect();
        assert_eq!(set.len(), 1);
    }
}
