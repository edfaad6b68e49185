//! `/proc/uptime` and a process's age.
//!
//! A process's start time is in clock ticks since boot, and `/proc/uptime` is seconds since
//! boot on the same clock (CLOCK_BOOTTIME), so their difference is the process's age
//! without involving wall-clock time, which NTP can step.

/// Seconds since boot: the first of the two numbers in `/proc/uptime`.
pub fn parse(bytes: &[u8]) -> Result<f64, &'static str> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not ASCII")?;
    let seconds = text
        .split_ascii_whitespace()
        .next()
        .ok_or("empty")?
        .parse::<f64>()
        .map_err(|_| "uptime is not a number")?;
    if !seconds.is_finite() || seconds < 0.0 {
        return Err("uptime is negative or not finite");
    }
    Ok(seconds)
}

/// Age in seconds of a process that started `starttime` ticks after boot.
///
/// `/proc/uptime` has a resolution of 10 ms and `starttime` of one tick, and both are
/// truncated, so a process started in the last tick can come out a few milliseconds
/// negative; that is clamped to zero.
pub fn age_seconds(boot_uptime: f64, starttime_ticks: u64, clk_tck: u64) -> f64 {
    (boot_uptime - starttime_ticks as f64 / clk_tck as f64).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_number_is_uptime() {
        assert_eq!(parse(b"1990.73 1205.42\n"), Ok(1990.73));
    }

    #[test]
    fn malformed() {
        assert_eq!(parse(b""), Err("empty"));
        assert_eq!(parse(b"abc 1.0\n"), Err("uptime is not a number"));
        assert_eq!(
            parse(b"-5.00 1.0\n"),
            Err("uptime is negative or not finite")
        );
        assert_eq!(parse(b"inf 1.0\n"), Err("uptime is negative or not finite"));
    }

    #[test]
    fn age_from_ticks() {
        assert_eq!(age_seconds(1000.5, 50_000, 100), 500.5);
    }

    #[test]
    fn just_started_is_not_negative() {
        assert_eq!(age_seconds(500.0, 50_001, 100), 0.0);
    }
}
