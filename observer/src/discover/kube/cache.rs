//! Keeps the node's pod list and names each instance's pod: a task that fetches the list
//! every `--kube-refresh-secs`, sooner when an instance's container is not in it yet, and
//! writes the names into [`Stats`], where the exporter adds them to the instance's labels.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::{
    kubelet::Endpoint,
    podlist::{Miss, PodIndex},
};
use crate::aggregate::Stats;

/// How often the task looks for instances that still lack names.
const TICK: Duration = Duration::from_secs(1);
/// How soon after a fetch an unnamed instance may cause another: a new pod is usually in
/// the kubelet's list before its container has run long enough to be found.
const MISS_RETRY: Duration = Duration::from_secs(2);

/// Label values of `gunicorn_observer_kube_errors_total`, all present from the start.
pub const KUBE_ERROR_REASONS: [&str; 8] = [
    "connect",
    "io",
    "http_status",
    "malformed_response",
    "token_unreadable",
    "parse",
    "pod_not_found",
    "container_not_found",
];

#[derive(Clone)]
pub struct KubeMetrics {
    errors: IntCounterVec,
    pods: IntGauge,
}

impl KubeMetrics {
    pub fn register(registry: &Registry) -> prometheus::Result<KubeMetrics> {
        let errors = IntCounterVec::new(
            Opts::new(
                "gunicorn_observer_kube_errors_total",
                "Failed pod-list fetches, and instances in a pod that the fetched list did \
                 not name, by reason.",
            ),
            &["reason"],
        )?;
        let pods = IntGauge::new(
            "gunicorn_observer_kube_pods",
            "Pods in the last pod list fetched for this node.",
        )?;
        for reason in KUBE_ERROR_REASONS {
            errors.with_label_values(&[reason]);
        }
        registry.register(Box::new(errors.clone()))?;
        registry.register(Box::new(pods.clone()))?;
        Ok(KubeMetrics { errors, pods })
    }

    fn count(&self, reason: &str) {
        self.errors.with_label_values(&[reason]).inc();
    }
}

pub struct Refresher {
    endpoint: Endpoint,
    stats: Arc<Mutex<Stats>>,
    metrics: KubeMetrics,
    refresh: Duration,
    index: PodIndex,
    fetched: Option<Instant>,
    /// The last failure logged at warn, so a kubelet that stays down logs once.
    last_failure: Option<&'static str>,
}

impl Refresher {
    pub fn new(
        endpoint: Endpoint,
        stats: Arc<Mutex<Stats>>,
        metrics: KubeMetrics,
        refresh: Duration,
    ) -> Refresher {
        Refresher {
            endpoint,
            stats,
            metrics,
            refresh,
            index: PodIndex::default(),
            fetched: None,
            last_failure: None,
        }
    }

    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            let unnamed = self.apply().len();
            let since = self.fetched.map(|at| at.elapsed());
            let due = since.is_none_or(|since| since >= self.refresh);
            let retry = unnamed > 0 && since.is_none_or(|since| since >= MISS_RETRY);
            if due || retry {
                self.refresh_now().await;
            }
        }
    }

    async fn refresh_now(&mut self) {
        self.fetched = Some(Instant::now());
        let fetched = self
            .endpoint
            .fetch()
            .await
            .map_err(|err| (err.reason(), err.to_string()))
            .and_then(|body| PodIndex::from_json(&body).map_err(|err| ("parse", err.to_string())));
        match fetched {
            Ok(index) => {
                if self.last_failure.take().is_some() || self.index.is_empty() {
                    info!(pods = index.len(), "fetched this node's pod list");
                }
                self.metrics.pods.set(index.len() as i64);
                self.index = index;
            }
            Err((reason, error)) => {
                self.metrics.count(reason);
                if self.last_failure.replace(reason) != Some(reason) {
                    warn!(reason, %error, "cannot fetch this node's pod list");
                } else {
                    debug!(reason, %error, "cannot fetch this node's pod list");
                }
                return;
            }
        }
        for miss in self.apply() {
            self.metrics.count(miss.as_str());
        }
    }

    /// Names every instance the index knows; returns why each other one in a pod is unnamed.
    fn apply(&self) -> Vec<Miss> {
        let mut stats = self
            .stats
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut misses = Vec::new();
        for app in stats.apps.values_mut() {
            let Some(container) = &app.container else {
                continue;
            };
            match self.index.lookup(container) {
                Ok(labels) => app.pod = Some(labels),
                // Names already found stay: a pod that just left the list still has its
                // processes until they exit, and their series keep their labels.
                Err(miss) if app.pod.is_none() => misses.push(miss),
                Err(_) => {}
            }
        }
        misses
    }
}
