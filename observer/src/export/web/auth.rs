//! HTTP basic auth against `basic_auth_users` (bcrypt hashes).
//!
//! bcrypt costs tens of milliseconds by design, so:
//! - a successful check is remembered as an HMAC of user and password under a key drawn at
//!   start, and the next scrape with the same credentials is one HMAC and a constant-time
//!   compare, not a bcrypt run;
//! - failed credentials are remembered the same way (up to [`FAILED_MEMORY`] of them), so a
//!   scraper with a stale password costs one bcrypt run, not one per scrape;
//! - at most [`BCRYPT_AT_ONCE`] bcrypt runs happen at a time, on the blocking pool; a request
//!   that waits longer than [`BCRYPT_WAIT`] for its turn is answered 503. A flood of fresh
//!   guesses therefore costs at most one core, never the node.
//!
//! An unknown user is checked against a real user's hash and then refused, so the answer
//! takes as long as for a known user with a wrong password and does not reveal who exists.

use std::{
    collections::{BTreeMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::Engine as _;
use ring::hmac;
use subtle::ConstantTimeEq as _;
use tokio::sync::Semaphore;

use super::config::WebConfigError;

pub const BCRYPT_AT_ONCE: usize = 1;
pub const BCRYPT_WAIT: Duration = Duration::from_secs(5);
pub const FAILED_MEMORY: usize = 1024;

/// What a request's credentials came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Matched a remembered success.
    Cached,
    /// Matched after a bcrypt run.
    Verified,
    /// No `Authorization: Basic` header, or one that does not decode.
    Missing,
    /// Wrong user or password.
    Denied,
    /// Too many bcrypt runs queued; try again.
    Busy,
}

impl Verdict {
    pub fn allowed(self) -> bool {
        matches!(self, Verdict::Cached | Verdict::Verified)
    }

    /// The `result` label of `gunicorn_observer_web_auth_total`.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Cached => "cached",
            Verdict::Verified => "verified",
            Verdict::Missing => "missing",
            Verdict::Denied => "denied",
            Verdict::Busy => "busy",
        }
    }
}

pub const VERDICT_LABELS: [&str; 5] = ["cached", "verified", "missing", "denied", "busy"];

#[derive(Debug)]
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    key: hmac::Key,
    /// Per user, the tag of the credentials that last passed bcrypt.
    passed: Mutex<BTreeMap<String, hmac::Tag>>,
    /// Tags of credentials that failed; cleared when full.
    failed: Mutex<HashSet<Vec<u8>>>,
    gate: Arc<Semaphore>,
}

impl BasicAuth {
    /// Checks every hash now, so a bad one stops the start instead of every scrape.
    pub fn new(users: &BTreeMap<String, String>) -> Result<BasicAuth, WebConfigError> {
        for (user, hash) in users {
            // A colon cannot be sent: basic auth splits user and password at the first one.
            if user.is_empty() || user.contains(':') {
                return Err(WebConfigError::Invalid {
                    field: format!("basic_auth_users.{user}"),
                    reason: "a user name must be non-empty and hold no colon",
                });
            }
            hash.parse::<bcrypt::HashParts>()
                .map_err(|source| WebConfigError::BadHash {
                    user: user.clone(),
                    source,
                })?;
        }
        let rng = ring::rand::SystemRandom::new();
        let key =
            hmac::Key::generate(hmac::HMAC_SHA256, &rng).map_err(|_| WebConfigError::Invalid {
                field: "basic_auth_users".to_owned(),
                reason: "no randomness for the credential cache key",
            })?;
        Ok(BasicAuth {
            users: users.clone(),
            key,
            passed: Mutex::default(),
            failed: Mutex::default(),
            gate: Arc::new(Semaphore::new(BCRYPT_AT_ONCE)),
        })
    }

    /// Judges the value of a request's `Authorization` header.
    pub async fn check(&self, authorization: Option<&[u8]>) -> Verdict {
        let Some((user, password)) = authorization.and_then(decode_basic) else {
            return Verdict::Missing;
        };
        let tag = self.tag(&user, &password);

        let remembered = lock(&self.passed).get(&user).cloned();
        if let Some(known) = remembered
            && bool::from(known.as_ref().ct_eq(tag.as_ref()))
        {
            return Verdict::Cached;
        }
        if lock(&self.failed).contains(tag.as_ref()) {
            return Verdict::Denied;
        }

        // An unknown user is checked against some real hash, so it takes as long.
        let (hash, known_user) = match self.users.get(&user) {
            Some(hash) => (hash.clone(), true),
            None => match self.users.values().next() {
                Some(hash) => (hash.clone(), false),
                None => return Verdict::Denied,
            },
        };
        let Ok(Ok(_permit)) =
            tokio::time::timeout(BCRYPT_WAIT, Arc::clone(&self.gate).acquire_owned()).await
        else {
            return Verdict::Busy;
        };
        let matched = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(false);

        if matched && known_user {
            lock(&self.passed).insert(user, tag);
            return Verdict::Verified;
        }
        let mut failed = lock(&self.failed);
        if failed.len() >= FAILED_MEMORY {
            failed.clear();
        }
        failed.insert(tag.as_ref().to_vec());
        Verdict::Denied
    }

    fn tag(&self, user: &str, password: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        // The length prefix keeps ("ab", "c") and ("a", "bc") apart.
        ctx.update(&(user.len() as u64).to_le_bytes());
        ctx.update(user.as_bytes());
        ctx.update(password);
        ctx.sign()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// `Basic dXNlcjpwYXNz` → ("user", b"pass"). The scheme name is case-insensitive.
fn decode_basic(value: &[u8]) -> Option<(String, Vec<u8>)> {
    let value = value.trim_ascii();
    let (scheme, rest) = value.split_at(value.iter().position(|b| *b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim_ascii())
        .ok()?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, decoded[colon + 1..].to_vec()))
}

/// The value of the `Authorization` header in a request head, if any.
pub fn authorization(head: &[u8]) -> Option<&[u8]> {
    head.split(|b| *b == b'\n').skip(1).find_map(|line| {
        let colon = line.iter().position(|b| *b == b':')?;
        let (name, value) = line.split_at(colon);
        name.eq_ignore_ascii_case(b"authorization")
            .then(|| value[1..].trim_ascii())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> Vec<u8> {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {encoded}").into_bytes()
    }

    fn auth() -> BasicAuth {
        // Cost 4, the lowest bcrypt allows, keeps the test fast.
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        BasicAuth::new(&BTreeMap::from([("prom".to_owned(), hash)])).unwrap()
    }

    #[tokio::test]
    async fn remembers_successes_and_failures() {
        let auth = auth();
        assert_eq!(auth.check(None).await, Verdict::Missing);
        assert_eq!(auth.check(Some(b"Bearer x")).await, Verdict::Missing);
        assert_eq!(auth.check(Some(b"Basic !!!")).await, Verdict::Missing);

        let good = basic("prom", "s3cret");
        assert_eq!(auth.check(Some(&good)).await, Verdict::Verified);
        assert_eq!(auth.check(Some(&good)).await, Verdict::Cached);
        assert_eq!(auth.check(Some(&good)).await, Verdict::Cached);

        let wrong = basic("prom", "s3cret!");
        assert_eq!(auth.check(Some(&wrong)).await, Verdict::Denied);
        assert_eq!(lock(&auth.failed).len(), 1);
        assert_eq!(auth.check(Some(&wrong)).await, Verdict::Denied);
        assert_eq!(lock(&auth.failed).len(), 1);
        // A failure does not evict the remembered success.
        assert_eq!(auth.check(Some(&good)).await, Verdict::Cached);

        // The right password under an unknown name is still refused.
        let stranger = basic("someone", "s3cret");
        assert_eq!(auth.check(Some(&stranger)).await, Verdict::Denied);
        // Lower-case scheme names are valid.
        let lower = [b"basic".as_slice(), &good[5..]].concat();
        assert_eq!(auth.check(Some(&lower)).await, Verdict::Cached);
    }

    #[test]
    fn bad_hashes_and_names_are_refused_at_start() {
        let err =
            BasicAuth::new(&BTreeMap::from([("a".to_owned(), "plain".to_owned())])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("basic_auth_users: the password of \"a\"")
        );
        let hash = bcrypt::hash("x", 4).unwrap();
        let err = BasicAuth::new(&BTreeMap::from([("a:b".to_owned(), hash)])).unwrap_err();
        assert!(
            err.to_string().starts_with("basic_auth_users.a:b:"),
            "{err}"
        );
    }

    #[test]
    fn finds_the_authorization_header() {
        let head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nauthorization:  Basic abc \r\n\r\n";
        assert_eq!(authorization(head), Some(b"Basic abc".as_slice()));
        assert_eq!(authorization(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), None);
        // The request line is never a header, whatever it holds.
        assert_eq!(
            authorization(b"GET /Authorization:x HTTP/1.1\r\n\r\n"),
            None
        );
    }
}
