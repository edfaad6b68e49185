//! `/proc/<pid>/fd`: how many file descriptors a process has open.
//!
//! The kernel has no counter for this; the directory lists one entry per open descriptor,
//! so counting entries is the only way. It costs one `getdents` pass over the fd table,
//! fine on the sampling interval and never done per request.

use std::{fs, io, path::Path};

use super::{error::SampleError, read::is_missing};

/// Counts the entries of `<proc_root>/<pid>/fd`. `Ok(None)` when the process is gone.
pub(super) fn count(proc_root: &Path, pid: u32) -> Result<Option<u64>, SampleError> {
    let dir = proc_root.join(pid.to_string()).join("fd");
    let unreadable = |source: io::Error| SampleError::Unreadable {
        path: dir.clone(),
        source,
    };
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if is_missing(&e) => return Ok(None),
        Err(e) => return Err(unreadable(e)),
    };
    let mut open = 0;
    for entry in entries {
        match entry {
            Ok(_) => open += 1,
            // The process exited while we listed its table.
            Err(e) if is_missing(&e) => return Ok(None),
            Err(e) => return Err(unreadable(e)),
        }
    }
    Ok(Some(open))
}
