//! Reads procfs files into one reused buffer.
//!
//! Sampling runs for every Gunicorn process on each interval, so the path and the contents
//! are written into buffers kept between calls instead of being allocated per file.

use std::{
    ffi::OsString,
    fmt::Write as _,
    fs::File,
    io::{self, Read},
    path::{Path, PathBuf},
};

use super::error::SampleError;

/// What reading one procfs file gave.
pub(super) enum Outcome<'a> {
    Read(&'a [u8]),
    /// ENOENT or ESRCH: the file (or the process behind it) does not exist.
    Missing,
}

#[derive(Debug, Default)]
pub(super) struct FileReader {
    path: OsString,
    buf: Vec<u8>,
}

impl FileReader {
    /// Reads `<proc_root>/<pid>/<file>`, or `<proc_root>/<file>` when `pid` is `None`.
    pub(super) fn read(
        &mut self,
        proc_root: &Path,
        pid: Option<u32>,
        file: &str,
    ) -> Result<Outcome<'_>, SampleError> {
        self.path.clear();
        self.path.push(proc_root.as_os_str());
        if let Some(pid) = pid {
            // Writing into an OsString cannot fail; the Result only exists for the trait.
            let _ = write!(self.path, "/{pid}");
        }
        self.path.push("/");
        self.path.push(file);

        self.buf.clear();
        let result = File::open(&self.path).and_then(|mut f| f.read_to_end(&mut self.buf));
        match result {
            Ok(_) => Ok(Outcome::Read(&self.buf)),
            Err(e) if is_missing(&e) => Ok(Outcome::Missing),
            Err(source) => Err(SampleError::Unreadable {
                path: PathBuf::from(&self.path),
                source,
            }),
        }
    }
}

/// procfs answers ENOENT once a pid's directory is gone and ESRCH when the task exits (or,
/// for `smaps_rollup`, has no address space left) between open and read.
pub(super) fn is_missing(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}
