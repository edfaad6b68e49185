//! `/proc/<pid>/stat`: CPU times, the thread count and the start time.
//!
//! The second field is the command name in parentheses, and the name may itself contain
//! spaces and `)` (a process can rename itself to anything up to 15 bytes, not even UTF-8),
//! so fields are counted from the last `)` in the line, never by splitting the whole line.

/// The fields of `stat` we use; times in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Field 14: time in user mode, all threads of the process.
    pub utime: u64,
    /// Field 15: time in kernel mode, all threads of the process.
    pub stime: u64,
    /// Field 20: threads in the process, the main one included.
    pub num_threads: u64,
    /// Field 22: when the process started, in ticks since boot.
    pub starttime: u64,
}

/// Field numbers as proc(5) gives them (1-based); field 3, the state, follows the `)`.
const FIRST_AFTER_COMM: usize = 3;
const UTIME: usize = 14;
const STIME: usize = 15;
const NUM_THREADS: usize = 20;
const STARTTIME: usize = 22;

/// Parses one `stat` line, or says which part is wrong.
pub fn parse(bytes: &[u8]) -> Result<Stat, &'static str> {
    let close = bytes
        .iter()
        .rposition(|&b| b == b')')
        .ok_or("no ')' closing the command name")?;

    // Everything after the command name is ASCII numbers and a state letter.
    let rest = std::str::from_utf8(&bytes[close + 1..]).map_err(|_| "fields are not ASCII")?;
    let mut fields = rest.split_ascii_whitespace();

    // `nth` consumes what it skips, so each offset is relative to the field read before.
    let utime = number(fields.nth(UTIME - FIRST_AFTER_COMM))?;
    let stime = number(fields.nth(STIME - UTIME - 1))?;
    let num_threads = number(fields.nth(NUM_THREADS - STIME - 1))?;
    let starttime = number(fields.nth(STARTTIME - NUM_THREADS - 1))?;
    Ok(Stat {
        utime,
        stime,
        num_threads,
        starttime,
    })
}

fn number(field: Option<&str>) -> Result<u64, &'static str> {
    field
        .ok_or("too few fields")?
        .parse()
        .map_err(|_| "a field is not a number")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shaped like the line of a busy `sh` loop, cut after field 40.
    const SH: &[u8] = b"21263 (sh) R 21261 21261 9696 0 -1 4194304 114 0 0 0 45 3 0 0 20 0 1 0 \
199334 2654208 376 18446744073709551615 94265716346880 0 0 0 0 6 65536 0 0 0 17 1 0 0 0\n";

    #[test]
    fn reads_times_and_start() {
        let stat = parse(SH).unwrap();
        assert_eq!(
            stat,
            Stat {
                utime: 45,
                stime: 3,
                num_threads: 1,
                starttime: 199334
            }
        );
    }

    #[test]
    fn command_with_spaces_and_parentheses() {
        let line = b"7 (gunicorn: ) (x) y) S 1 7 7 0 -1 0 0 0 0 0 120 30 0 0 20 0 5 0 5000 0 0\n";
        let stat = parse(line).unwrap();
        assert_eq!(
            stat,
            Stat {
                utime: 120,
                stime: 30,
                num_threads: 5,
                starttime: 5000
            }
        );
    }

    #[test]
    fn command_that_is_not_utf8() {
        let mut line = b"9 (\xff\xfe)".to_vec();
        line.extend_from_slice(b" S 1 9 9 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 77 0 0\n");
        assert_eq!(parse(&line).unwrap().starttime, 77);
    }

    #[test]
    fn truncated_line() {
        let line = b"7 (python) S 1 7 7 0 -1 0 0 0 0 0 120 30 0 0 20 0 2 0";
        assert_eq!(parse(line), Err("too few fields"));
    }

    #[test]
    fn no_closing_parenthesis() {
        assert_eq!(
            parse(b"7 (python S 1"),
            Err("no ')' closing the command name")
        );
    }

    #[test]
    fn time_field_not_a_number() {
        let line = b"7 (p) S 1 7 7 0 -1 0 0 0 0 0 12x 30 0 0 20 0 2 0 5000 0\n";
        assert_eq!(parse(line), Err("a field is not a number"));
        let line = b"7 (p) S 1 7 7 0 -1 0 0 0 0 0 12 30 0 0 20 0 two 0 5000 0\n";
        assert_eq!(parse(line), Err("a field is not a number"));
    }

    #[test]
    fn empty_file() {
        assert_eq!(parse(b""), Err("no ')' closing the command name"));
    }
}
