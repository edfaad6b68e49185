//! Pod labels against a stub kubelet: real Gunicorns run in cgroups shaped like the
//! kubelet's (systemd driver, containerd), a stub on loopback serves the node's pod list,
//! and every series of an instance in a pod carries that pod's names; an instance outside
//! any pod carries none.

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

use observer_tests::{Gunicorn, GunicornOpts, Metrics, Observer};

const REQUESTS: &str = "gunicorn_worker_requests_total";
const WORKERS: &str = "gunicorn_workers";
const KUBE_PODS: &str = "gunicorn_observer_kube_pods";
const WAIT: Duration = Duration::from_secs(20);

/// One fake pod: its cgroup, and the names the stub kubelet gives it.
struct FakePod {
    uid: String,
    container_id: String,
    namespace: &'static str,
    name: &'static str,
    container: &'static str,
    /// The container's cgroup directory.
    cgroup: PathBuf,
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
struct PodCgroups {
    top: PathBuf,
    home: PathBuf,
}

impl PodCgroups {
    fn new() -> PodCgroups {
        let root = cgroup2_root();
        let home = own_cgroup(&root);
        let top = root.join(format!("observer-test-{}", std::process::id()));
        fs::create_dir_all(&top).unwrap_or_else(|err| panic!("creating {}: {err}", top.display()));
        PodCgroups { top, home }
    }

    /// A pod of the burstable QoS class with one containerd container, as the systemd
    /// cgroup driver names them.
    fn pod(&self, n: u32, namespace: &'static str, name: &'static str) -> FakePod {
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
    fn start_in(&self, pod: &FakePod, opts: GunicornOpts) -> Gunicorn {
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
struct StubKubelet {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StubKubelet {
    fn start(pods: &[&FakePod]) -> StubKubelet {
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

    fn url(&self) -> String {
        format!("http://{}/pods", self.addr)
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

/// `{app: (namespace, pod, container)}` as the requests series of this test's apps show
/// them, with `-` for an absent label; panics if one app's series disagree.
fn labels_by_app(metrics: &Metrics) -> Vec<(String, [String; 3], f64)> {
    let mut out: Vec<(String, [String; 3], f64)> = Vec::new();
    for sample in metrics.series(REQUESTS) {
        let app = sample.label("app").unwrap_or_default();
        if !app.starts_with("podlabels-") {
            continue;
        }
        let names = ["namespace", "pod", "container"]
            .map(|name| sample.label(name).unwrap_or("-").to_owned());
        match out.iter_mut().find(|(a, _, _)| a == app) {
            Some((_, seen, count)) => {
                assert_eq!(*seen, names, "series of {app} disagree on pod labels");
                *count += sample.value;
            }
            None => out.push((app.to_owned(), names, sample.value)),
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn start(cgroups: &PodCgroups, pod: Option<&FakePod>, name: &str) -> Gunicorn {
    let opts = GunicornOpts::sync(2).arg(&format!("--name={name}"));
    match pod {
        Some(pod) => cgroups.start_in(pod, opts),
        None => Gunicorn::start(opts),
    }
}

#[test]
fn instances_in_pods_carry_the_kubelets_names_and_others_none() {
    let cgroups = PodCgroups::new();
    let early_pod = cgroups.pod(1, "shop", "shop-5c7d9-x2x8k");
    let late_pod = cgroups.pod(2, "billing", "billing-0");
    let kubelet = StubKubelet::start(&[&early_pod, &late_pod]);

    // One master found by the observer's first /proc scan, one by its exec event, and one
    // outside any pod.
    let early = start(&cgroups, Some(&early_pod), "podlabels-early");
    let observer = Observer::start(&[
        "--kube-pods-url",
        &kubelet.url(),
        "--kube-refresh-secs",
        "1",
    ]);
    let late = start(&cgroups, Some(&late_pod), "podlabels-late");
    let plain = start(&cgroups, None, "podlabels-plain");

    for (gunicorn, count) in [(&early, 5), (&late, 3), (&plain, 2)] {
        for _ in 0..count {
            assert_eq!(gunicorn.get("/").status, 200);
        }
    }

    let dash = || "-".to_owned();
    let expected = vec![
        (
            "podlabels-early".to_owned(),
            [
                "shop".to_owned(),
                "shop-5c7d9-x2x8k".to_owned(),
                "web".to_owned(),
            ],
            5.0,
        ),
        (
            "podlabels-late".to_owned(),
            [
                "billing".to_owned(),
                "billing-0".to_owned(),
                "web".to_owned(),
            ],
            3.0,
        ),
        ("podlabels-plain".to_owned(), [dash(), dash(), dash()], 2.0),
    ];
    let metrics = observer.wait_for_metrics(WAIT, "pod labels on every instance", |m| {
        labels_by_app(m) == expected
    });

    // Not only the request series: the instance's gauges carry the same labels.
    let workers: Vec<(Option<&str>, Option<&str>, f64)> = metrics
        .series(WORKERS)
        .filter(|s| s.label("app") == Some("podlabels-late"))
        .map(|s| (s.label("namespace"), s.label("pod"), s.value))
        .collect();
    assert_eq!(workers, [(Some("billing"), Some("billing-0"), 2.0)]);
    assert_eq!(metrics.get(KUBE_PODS, &[]), Some(2.0));

    let requests = kubelet.requests.lock().unwrap().clone();
    assert!(!requests.is_empty());
    assert!(
        requests.iter().all(|line| line == "GET /pods HTTP/1.1"),
        "{requests:?}"
    );

    drop((early, late, plain));
    observer.stop();
}
