//! Pod labels against a stub kubelet: real Gunicorns run in cgroups shaped like the
//! kubelet's (systemd driver, containerd), a stub on loopback serves the node's pod list,
//! and every series of an instance in a pod carries that pod's names; an instance outside
//! any pod carries none.

mod common;

use std::time::Duration;

use observer_tests::{
    Gunicorn, GunicornOpts, Metrics, Observer,
    kube::{FakePod, PodCgroups, StubKubelet},
};

const REQUESTS: &str = "gunicorn_worker_requests_total";
const WORKERS: &str = "gunicorn_workers";
const KUBE_PODS: &str = "gunicorn_observer_kube_pods";
const WAIT: Duration = Duration::from_secs(20);

/// `{app: (namespace, pod, container)}` as the requests series of this test's apps show
/// them, with `-` for an absent label; panics if one app's series disagree.
fn labels_by_app(metrics: &Metrics) -> Vec<(String, [String; 3], f64)> {
    let mut out: Vec<(String, [String; 3], f64)> = Vec::new();
    for sample in metrics.series(REQUESTS) {
        let app = sample.label("app").unwrap_or_default();
        if !app.starts_with("podlabels-") || !app.ends_with(&format!("-{}", std::process::id())) {
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
    let [early_app, late_app, plain_app] =
        ["podlabels-early", "podlabels-late", "podlabels-plain"].map(common::unique_app);
    let cgroups = PodCgroups::new();
    let early_pod = cgroups.pod(1, "shop", "shop-5c7d9-x2x8k");
    let late_pod = cgroups.pod(2, "billing", "billing-0");
    let kubelet = StubKubelet::start(&[&early_pod, &late_pod]);

    // One master found by the observer's first /proc scan, one by its exec event, and one
    // outside any pod.
    let early = start(&cgroups, Some(&early_pod), &early_app);
    let observer = Observer::start(&[
        "--kube-pods-url",
        &kubelet.url(),
        "--kube-refresh-secs",
        "1",
    ]);
    let late = start(&cgroups, Some(&late_pod), &late_app);
    let plain = start(&cgroups, None, &plain_app);

    for (gunicorn, count) in [(&early, 5), (&late, 3), (&plain, 2)] {
        for _ in 0..count {
            assert_eq!(gunicorn.get("/").status, 200);
        }
    }

    let dash = || "-".to_owned();
    let expected = vec![
        (
            early_app.clone(),
            [
                "shop".to_owned(),
                "shop-5c7d9-x2x8k".to_owned(),
                "web".to_owned(),
            ],
            5.0,
        ),
        (
            late_app.clone(),
            [
                "billing".to_owned(),
                "billing-0".to_owned(),
                "web".to_owned(),
            ],
            3.0,
        ),
        (plain_app.clone(), [dash(), dash(), dash()], 2.0),
    ];
    let metrics = observer.wait_for_metrics(WAIT, "pod labels on every instance", |m| {
        labels_by_app(m) == expected
    });

    // Not only the request series: the instance's gauges carry the same labels.
    let workers: Vec<(Option<&str>, Option<&str>, f64)> = metrics
        .series(WORKERS)
        .filter(|s| s.label("app") == Some(late_app.as_str()))
        .map(|s| (s.label("namespace"), s.label("pod"), s.value))
        .collect();
    assert_eq!(workers, [(Some("billing"), Some("billing-0"), 2.0)]);
    assert_eq!(metrics.get(KUBE_PODS, &[]), Some(2.0));

    let requests = kubelet.requests();
    assert!(!requests.is_empty());
    assert!(
        requests.iter().all(|line| line == "GET /pods HTTP/1.1"),
        "{requests:?}"
    );

    drop((early, late, plain));
    observer.stop();
}
