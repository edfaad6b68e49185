//! `rate_limit`: a token bucket over requests to /metrics, refilled one token per `interval`
//! and holding at most `burst`. /healthz and /readyz are left out, so a scraper flood cannot
//! make the kubelet restart the observer.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use super::config::{RateLimitConfig, WebConfigError};

#[derive(Debug)]
pub struct RateLimit {
    interval: Duration,
    burst: f64,
    bucket: Mutex<(f64, Instant)>,
}

impl RateLimit {
    /// `None` when the interval is zero or unset, which the toolkit takes as "no limit".
    pub fn new(config: &RateLimitConfig) -> Result<Option<RateLimit>, WebConfigError> {
        let interval = match config.interval.as_deref() {
            None => Duration::ZERO,
            Some(text) => go_duration(text).ok_or_else(|| WebConfigError::BadValue {
                field: "rate_limit.interval",
                value: text.to_owned(),
                expected: "a duration such as 500ms, 1s or 1m30s",
            })?,
        };
        if interval.is_zero() {
            return Ok(None);
        }
        let burst = config.burst.unwrap_or(0);
        if burst == 0 {
            return Err(WebConfigError::Invalid {
                field: "rate_limit.burst".to_owned(),
                reason: "must be at least 1 when an interval is set, or nothing gets through",
            });
        }
        let burst = f64::from(burst);
        Ok(Some(RateLimit {
            interval,
            burst,
            bucket: Mutex::new((burst, Instant::now())),
        }))
    }

    /// Takes a token if one is there.
    pub fn admit(&self) -> bool {
        self.admit_at(Instant::now())
    }

    fn admit_at(&self, now: Instant) -> bool {
        let mut bucket = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = *bucket;
        let refill =
            now.saturating_duration_since(last).as_secs_f64() / self.interval.as_secs_f64();
        let tokens = (tokens + refill).min(self.burst);
        if tokens < 1.0 {
            *bucket = (tokens, now);
            return false;
        }
        *bucket = (tokens - 1.0, now);
        true
    }
}

/// Go's `time.ParseDuration` subset that configs use: numbers (decimals allowed) with a unit
/// each, run together, such as `1m30s` or `0.5s`.
fn go_duration(text: &str) -> Option<Duration> {
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0.0;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += number * seconds;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(go_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(go_duration("0"), Some(Duration::ZERO));
        assert_eq!(go_duration("5"), None);
        assert_eq!(go_duration("1d"), None);
    }

    #[test]
    fn bucket_admits_a_burst_then_one_per_interval() {
        let config = RateLimitConfig {
            interval: Some("1s".to_owned()),
            burst: Some(2),
        };
        let limit = RateLimit::new(&config).unwrap().unwrap();
        let start = Instant::now();
        assert!(limit.admit_at(start));
        assert!(limit.admit_at(start));
        assert!(!limit.admit_at(start));
        assert!(!limit.admit_at(start + Duration::from_millis(500)));
        assert!(limit.admit_at(start + Duration::from_millis(1000)));
        assert!(!limit.admit_at(start + Duration::from_millis(1000)));

        let off = RateLimitConfig {
            interval: Some("0s".to_owned()),
            burst: None,
        };
        assert!(RateLimit::new(&off).unwrap().is_none());
        let no_burst = RateLimitConfig {
            interval: Some("1s".to_owned()),
            burst: Some(0),
        };
        assert!(RateLimit::new(&no_burst).is_err());
    }
}
