//! Test fixtures: scratch directories, and a fake proc filesystem with exactly the files
//! discovery reads.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let unique = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("gobs-{tag}-{}-{unique}", std::process::id());
        let path = std::env::temp_dir().join(name);
        fs::create_dir_all(&path).expect("create temp dir");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `text` at `rel`, creating parent directories.
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.0.join(rel);
        fs::create_dir_all(path.parent().expect("file has a parent")).expect("mkdir");
        fs::write(&path, text).expect("write file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Best effort: a leftover scratch directory must not fail a passing test.
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A fake `/proc`: one directory per pid holding `stat`, `cmdline`, `environ`, and the `cwd`
/// and `root` links when a test sets them.
pub struct FakeProc {
    dir: TempDir,
}

impl FakeProc {
    pub fn new() -> Self {
        let dir = TempDir::new("proc");
        // Entries that are not processes must be skipped.
        fs::create_dir(dir.path().join("sys")).expect("mkdir sys");
        fs::write(dir.path().join("uptime"), "1.0 1.0\n").expect("write uptime");
        Self { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Adds a process with an empty environment. The comm holds a space and parentheses,
    /// as a hostile one may.
    pub fn process(&self, pid: u32, ppid: u32, start_time: u64, argv: &[&str]) {
        let stat = format!(
            "{pid} (py (x) y) S {ppid} {pid} {pid} 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 \
             {start_time} 0 0 18446744073709551615\n"
        );
        self.file(pid, "stat", stat.as_bytes());

        let mut cmdline = Vec::new();
        for arg in argv {
            cmdline.extend_from_slice(arg.as_bytes());
            cmdline.push(0);
        }
        self.file(pid, "cmdline", &cmdline);
        self.file(pid, "environ", b"");
    }

    pub fn file(&self, pid: u32, name: &str, bytes: &[u8]) {
        let dir = self.pid_dir(pid);
        fs::create_dir_all(&dir).expect("mkdir pid");
        fs::write(dir.join(name), bytes).expect("write proc file");
    }

    pub fn environ(&self, pid: u32, vars: &[&str]) {
        let mut bytes = Vec::new();
        for var in vars {
            bytes.extend_from_slice(var.as_bytes());
            bytes.push(0);
        }
        self.file(pid, "environ", &bytes);
    }

    pub fn cwd(&self, pid: u32, target: &Path) {
        symlink(target, self.pid_dir(pid).join("cwd")).expect("symlink cwd");
    }

    pub fn fs_root(&self, pid: u32, target: &Path) {
        symlink(target, self.pid_dir(pid).join("root")).expect("symlink root");
    }

    pub fn pid_dir(&self, pid: u32) -> PathBuf {
        self.root().join(pid.to_string())
    }
}
