//! Kubernetes without Kubernetes: cgroups shaped like the kubelet's for a Gunicorn to run
//! in, and a stub kubelet on loopback serving the node's pod list.

use std::{
    fs,
    io::{BufRead as _, BufReader, Write as _},
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use crate::{Gunicorn, GunicornOpts};

/// One fake pod: its cgroup, and the names the stub kubelet gives it.
pub struct FakePod {
    pub uid: String,
    pub container_id: String,
    pub namespace: &'static str,
    pub name: &'static str,
    pub container: &'static str,
    /// The container's cgroup directory.
    pub cgroup: PathBuf,
}

/// Where cgroup v2 is mounted: `/sys/fs/cgroup` on a pure v2 host, `/sys/fs/cgroup/unified`
/// on a hybrid one.
fn cgroup2_root() -> PathBuf {
    let mounts = fs::read_to_string("/proc/self/mountinfo").expect("reading mountinfo");
    mounts
        .lines()
        .find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let fstype = right.split_whitespace().next()?;
            let mount_point = left.split_whitespace().nth(4)?;
            (fstype == "cgroup2").then(|| PathBuf::from(mount_point))
        })
        .expect("cgroup v2 is mounted")
}

/// The cgroup v2 directory this process is in.
fn own_cgroup(root: &Path) -> PathBuf {
    let text = fs::read_to_string("/proc/self/cgroup").expect("reading /proc/self/cgroup");
    let path = text
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .expect("a cgroup v2 line");
    root.join(path.trim_start_matches('/'))
}

/// A tree of pod cgroups under a test-private top directory, removed at drop.
pub struct PodCgroups {
    top: PathBuf,
    home: PathBuf,
}

impl Default for PodCgroups {
    fn default() -> Self {
        Self::new()
    }
}

impl PodCgroups {
    pub fn new() -> PodCgroups {
        let root = cgroup2_root();
        let home = own_cgroup(&root);
        let top = root.join(format!("observer-test-{}", std::process::id()));
        fs::create_dir_all(&top).unwrap_or_else(|err| panic!("creating {}: {err}", top.display()));
        PodCgroups { top, home }
    }

    /// A pod of the burstable QoS class with one containerd container, as the systemd
    /// cgroup driver names them.
    pub fn pod(&self, n: u32, namespace: &'static str, name: &'static str) -> FakePod {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let uid = format!("{seed:08x}-{:04x}-4000-8000-{:012x}", n, std::process::id());
        let container_id = format!("{seed:08x}{n:08x}{:048x}", std::process::id());
        let cgroup = self
            .top
            .join("kubepods.slice/kubepods-burstable.slice")
            .join(format!(
                "kubepods-burstable-pod{}.slice",
                uid.replace('-', "_")
            ))
            .join(format!("cri-containerd-{container_id}.scope"));
        fs::create_dir_all(&cgroup)
            .unwrap_or_else(|err| panic!("creating {}: {err}", cgroup.display()));
        FakePod {
            uid,
            container_id,
            namespace,
            name,
            container: "web",
            cgroup,
        }
    }

    /// Starts Gunicorn with its master born inside `pod`'s cgroup: this process joins the
    /// cgroup for the fork and leaves it right after.
    pub fn start_in(&self, pod: &FakePod, opts: GunicornOpts) -> Gunicorn {
        move_self(&pod.cgroup);
        let started = std::panic::catch_unwind(|| Gunicorn::start(opts));
        move_self(&self.home);
        started.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

fn move_self(cgroup: &Path) {
    let procs = cgroup.join("cgroup.procs");
    fs::write(&procs, std::process::id().to_string())
        .unwrap_or_else(|err| panic!("joining {}: {err}", procs.display()));
}

impl Drop for PodCgroups {
    fn drop(&mut self) {
        // Deepest first; a cgroup whose last process is still being reaped is busy for a
        // moment, hence the retries.
        let mut dirs = Vec::new();
        collect_dirs(&self.top, &mut dirs);
        dirs.sort_by_key(|dir| std::cmp::Reverse(dir.components().count()));
        for dir in dirs {
            let removed = (0..50).any(|_| {
                fs::remove_dir(&dir).is_ok() || {
                    thread::sleep(Duration::from_millis(100));
                    false
                }
            });
            if !removed {
                eprintln!("warning: could not remove {}", dir.display());
            }
        }
    }
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&entry.path(), out);
            }
        }
    }
    out.push(dir.to_owned());
}

/// A kubelet's `/pods` on loopback: answers every request with the pod list, chunked as
/// the kubelet does, and keeps each request line.
pub struct StubKubelet {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StubKubelet {
    pub fn start(pods: &[&FakePod]) -> StubKubelet {
        let items: Vec<String> = pods
            .iter()
            .map(|pod| {
                format!(
                    r#"{{"metadata":{{"name":"{}","namespace":"{}","uid":"{}"}},
                       "spec":{{"nodeName":"node-1"}},
                       "status":{{"phase":"Running","containerStatuses":[
                         {{"name":"{}","containerID":"containerd://{}","ready":true}}]}}}}"#,
                    pod.name, pod.namespace, pod.uid, pod.container, pod.container_id
                )
            })
            .collect();
        let body = format!(
            r#"{{"kind":"PodList","apiVersion":"v1","metadata":{{}},"items":[{}]}}"#,
            items.join(",")
        );

        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the stub kubelet");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (requests, stop) = (Arc::clone(&requests), Arc::clone(&stop));
            thread::spawn(move || serve(listener, &body, &requests, &stop))
        };
        StubKubelet {
            addr,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/pods", self.addr)
    }

    /// The request line of every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(listener: TcpListener, body: &str, requests: &Mutex<Vec<String>>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let Ok((stream, _)) = listener.accept() else {
            thread::sleep(Duration::from_millis(20));
            continue;
        };
        stream.set_nonblocking(false).unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            continue;
        }
        requests.lock().unwrap().push(line.trim_end().to_owned());
        // Read the rest of the head so the client never sees a reset.
        loop {
            let mut header = String::new();
            match reader.read_line(&mut header) {
                Ok(0) | Err(_) => break,
                Ok(_) if header == "\r\n" => break,
                Ok(_) => {}
            }
        }
        let (first, second) = body.split_at(body.len() / 2);
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
             Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{first}\r\n{:x}\r\n{second}\r\n0\r\n\r\n",
            first.len(),
            second.len()
        );
        let _ = reader.get_mut().write_all(response.as_bytes());
    }
}

impl Drop for StubKubelet {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
