//! Resident memory: `/proc/<pid>/statm` for RSS, `/proc/<pid>/smaps_rollup` for PSS and USS.
//!
//! RSS counts shared pages in full, so forked Gunicorn workers sharing the master's
//! copy-on-write pages each look as big as the master. PSS splits every shared page between
//! its sharers, and USS (private clean + private dirty) is what killing that one worker
//! would give back. `statm` is a cheap counter read; `smaps_rollup` walks the page tables, so
//! it is the costly file here and is read once per sample, never per request.

/// Resident set size in bytes from `statm` (its second field, in pages).
pub fn parse_statm_rss(bytes: &[u8], page_size: u64) -> Result<u64, &'static str> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not ASCII")?;
    let resident = text
        .split_ascii_whitespace()
        .nth(1)
        .ok_or("fewer than two fields")?
        .parse::<u64>()
        .map_err(|_| "resident pages is not a number")?;
    resident
        .checked_mul(page_size)
        .ok_or("resident pages overflow bytes")
}

/// Proportional and unique set sizes in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rollup {
    pub pss_bytes: u64,
    pub uss_bytes: u64,
}

/// Parses `smaps_rollup`: one `[rollup]` header line, then `Name:   <n> kB` lines.
pub fn parse_smaps_rollup(bytes: &[u8]) -> Result<Rollup, &'static str> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not ASCII")?;

    let mut pss = None;
    let mut private_clean = None;
    let mut private_dirty = None;
    for line in text.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let slot = match name {
            "Pss" => &mut pss,
            "Private_Clean" => &mut private_clean,
            "Private_Dirty" => &mut private_dirty,
            _ => continue,
        };
        *slot = Some(kib_to_bytes(value)?);
    }

    let pss_bytes = pss.ok_or("no Pss line")?;
    let private_clean = private_clean.ok_or("no Private_Clean line")?;
    let private_dirty = private_dirty.ok_or("no Private_Dirty line")?;
    Ok(Rollup {
        pss_bytes,
        uss_bytes: private_clean + private_dirty,
    })
}

/// `"      263 kB"` to bytes.
fn kib_to_bytes(value: &str) -> Result<u64, &'static str> {
    let mut parts = value.split_ascii_whitespace();
    let number = parts.next().ok_or("a size line has no value")?;
    if parts.next() != Some("kB") || parts.next().is_some() {
        return Err("a size line is not in kB");
    }
    number
        .parse::<u64>()
        .map_err(|_| "a size is not a number")?
        .checked_mul(1024)
        .ok_or("a size overflows bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like the rollup of a small shell, most lines kept.
    const ROLLUP: &[u8] =
        b"558f06415000-7fff10d56000 ---p 00000000 00:00 0                          [rollup]
Rss:                1600 kB
Pss:                 263 kB
Pss_Dirty:           112 kB
Pss_Anon:            112 kB
Pss_File:            151 kB
Pss_Shmem:             0 kB
Shared_Clean:       1448 kB
Shared_Dirty:          0 kB
Private_Clean:        40 kB
Private_Dirty:       112 kB
Referenced:         1600 kB
Anonymous:           112 kB
Swap:                  0 kB
SwapPss:               0 kB
Locked:                0 kB
";

    #[test]
    fn statm_resident_pages_times_page_size() {
        assert_eq!(
            parse_statm_rss(b"648 419 392 19 0 91 0\n", 4096),
            Ok(419 * 4096)
        );
    }

    #[test]
    fn statm_of_a_zombie_is_zero() {
        assert_eq!(parse_statm_rss(b"0 0 0 0 0 0 0\n", 4096), Ok(0));
    }

    #[test]
    fn statm_malformed() {
        assert_eq!(
            parse_statm_rss(b"648\n", 4096),
            Err("fewer than two fields")
        );
        assert_eq!(
            parse_statm_rss(b"648 -1 0\n", 4096),
            Err("resident pages is not a number")
        );
        assert_eq!(
            parse_statm_rss(b"1 18446744073709551615 0\n", 4096),
            Err("resident pages overflow bytes")
        );
    }

    #[test]
    fn rollup_pss_and_uss() {
        assert_eq!(
            parse_smaps_rollup(ROLLUP),
            Ok(Rollup {
                pss_bytes: 263 * 1024,
                uss_bytes: (40 + 112) * 1024,
            })
        );
    }

    #[test]
    fn rollup_without_private_dirty() {
        let text = b"0-1 ---p 0 00:00 0 [rollup]\nPss: 5 kB\nPrivate_Clean: 1 kB\n";
        assert_eq!(parse_smaps_rollup(text), Err("no Private_Dirty line"));
    }

    #[test]
    fn rollup_in_another_unit() {
        let text = b"Pss: 5 MB\nPrivate_Clean: 1 kB\nPrivate_Dirty: 1 kB\n";
        assert_eq!(parse_smaps_rollup(text), Err("a size line is not in kB"));
    }

    #[test]
    fn rollup_size_not_a_number() {
        let text = b"Pss: five kB\nPrivate_Clean: 1 kB\nPrivate_Dirty: 1 kB\n";
        assert_eq!(parse_smaps_rollup(text), Err("a size is not a number"));
    }
}
