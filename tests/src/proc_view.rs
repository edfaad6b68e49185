//! A `--proc-root` that shows the observer only some processes: tests whose numbers are
//! global to the observer (ring-buffer drops, open connections, parse errors) would
//! otherwise count every other Gunicorn on a shared machine too.

use std::path::Path;

use crate::tempdir::TempDir;

/// A directory with `<pid>` links into `/proc` for the chosen processes, plus the host-wide
/// files the observer reads (`uptime`).
pub struct ProcView {
    dir: TempDir,
}

impl ProcView {
    pub fn of(pids: &[u32]) -> ProcView {
        let dir = TempDir::new("proc-view");
        let link = |name: &str| {
            let target = Path::new("/proc").join(name);
            std::os::unix::fs::symlink(&target, dir.path().join(name))
                .unwrap_or_else(|err| panic!("linking {}: {err}", target.display()));
        };
        link("uptime");
        for pid in pids {
            link(&pid.to_string());
        }
        ProcView { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}
