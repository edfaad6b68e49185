//! Renders the accept queues of each instance's listeners at scrape time.
//!
//! A collector of its own so that a scrape can mark the depth peaks as shown: the
//! `_max` gauge is the highest depth sampled since the previous scrape. Known gap (README,
//! limitations): with two scrapers, each sees only the peaks since the other's scrape.

use std::sync::{Arc, Mutex};

use prometheus::{
    core::{Collector, Desc},
    proto::{MetricFamily, MetricType},
};

use super::gunicorn::{counter, descs, gauge, histogram, label};
use crate::aggregate::Stats;

pub const DEPTH: &str = "gunicorn_listen_queue_depth";
pub const DEPTH_MAX: &str = "gunicorn_listen_queue_depth_max";
pub const BACKLOG: &str = "gunicorn_listen_backlog";
pub const OVERFLOWS: &str = "gunicorn_listen_overflows_total";
pub const WAIT: &str = "gunicorn_listen_queue_wait_seconds";

const FAMILIES: [(&str, MetricType, &str); 5] = [
    (
        DEPTH,
        MetricType::GAUGE,
        "Connections waiting in the listener's accept queue at the last sample.",
    ),
    (
        DEPTH_MAX,
        MetricType::GAUGE,
        "Highest sampled accept-queue depth since the previous scrape.",
    ),
    (
        BACKLOG,
        MetricType::GAUGE,
        "The accept queue's limit: listen()'s backlog capped by net.core.somaxconn.",
    ),
    (
        OVERFLOWS,
        MetricType::COUNTER,
        "SYNs and handshake completions a TCP listener dropped, nearly all because its accept queue was full.",
    ),
    (
        WAIT,
        MetricType::HISTOGRAM,
        "Seconds a TCP connection waited between its completed handshake and a worker's accept.",
    ),
];

/// A prometheus collector over the listeners in the shared statistics.
pub struct QueueCollector {
    stats: Arc<Mutex<Stats>>,
    descs: Vec<Desc>,
}

impl QueueCollector {
    pub fn new(stats: Arc<Mutex<Stats>>) -> Self {
        Self {
            stats,
            descs: descs(&FAMILIES),
        }
    }
}

/// Every listener series, families in a fixed order and left out while empty.
pub fn render(stats: &Stats) -> Vec<MetricFamily> {
    let mut series: [Vec<_>; 5] = Default::default();
    let [depth, depth_max, backlog, overflows, wait] = &mut series;

    let mut apps: Vec<_> = stats.apps.iter().collect();
    apps.sort_by(|a, b| a.0.cmp(b.0));
    for (app, app_stats) in apps {
        for (name, listener) in &app_stats.listeners {
            let labels = vec![label("app", app), label("listener", name)];
            depth.push(gauge(labels.clone(), f64::from(listener.depth)));
            depth_max.push(gauge(labels.clone(), f64::from(listener.depth_max)));
            if let Some(limit) = listener.backlog {
                backlog.push(gauge(labels.clone(), f64::from(limit)));
            }
            if let Some(count) = listener.overflows {
                overflows.push(counter(labels.clone(), count));
            }
            if let Some(h) = &listener.wait {
                wait.push(histogram(labels, h));
            }
        }
    }

    FAMILIES
        .iter()
        .zip(series)
        .filter(|(_, metrics)| !metrics.is_empty())
        .map(|((name, kind, help), metrics)| {
            let mut family = MetricFamily::default();
            family.set_name((*name).into());
            family.set_help((*help).into());
            family.set_field_type(*kind);
            family.set_metric(metrics);
            family
        })
        .collect()
}

impl Collector for QueueCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut stats = self
            .stats
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let families = render(&stats);
        stats.peaks_shown();
        families
    }
}

#[cfg(test)]
mod tests {
    use prometheus::{Encoder as _, TextEncoder};

    use super::*;
    use crate::queue::{ListenAddr, Listener};

    #[test]
    fn exposition_is_exact() {
        let stats = Arc::new(Mutex::new(Stats::new(&[1.0])));
        {
            let mut s = stats.lock().unwrap();
            s.master_started(&Arc::from("web"));
            let listener = |addr, depth, drops| Listener {
                inode: 1,
                addr,
                depth,
                backlog: Some(4),
                drops,
            };
            let tcp = ListenAddr::Tcp("127.0.0.1:8000".parse().unwrap());
            let unix = ListenAddr::Unix("/run/w.sock".into());
            s.set_listeners(
                "web",
                &[listener(tcp.clone(), 3, Some(2)), listener(unix, 1, None)],
            );
            s.set_listeners(
                "web",
                &[
                    listener(tcp, 1, Some(2)),
                    listener(ListenAddr::Unix("/run/w.sock".into()), 1, None),
                ],
            );
            s.observe_queue_wait("web", "127.0.0.1:8000", 0.002);
        }
        let collector = QueueCollector::new(Arc::clone(&stats));
        let encode = |families: Vec<MetricFamily>| {
            let mut out = Vec::new();
            TextEncoder::new().encode(&families, &mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        let first = encode(collector.collect());
        let wait_buckets: String = crate::queue::QUEUE_WAIT_BUCKETS
            .iter()
            .map(|bound| {
                let count = u32::from(*bound >= 0.002);
                format!(
                    "{WAIT}_bucket{{app=\"web\",listener=\"127.0.0.1:8000\",le=\"{bound}\"}} {count}\n"
                )
            })
            .collect();
        let expected = format!(
            "# HELP {DEPTH} {}\n# TYPE {DEPTH} gauge\n\
             {DEPTH}{{app=\"web\",listener=\"127.0.0.1:8000\"}} 1\n\
             {DEPTH}{{app=\"web\",listener=\"unix:/run/w.sock\"}} 1\n\
             # HELP {DEPTH_MAX} {}\n# TYPE {DEPTH_MAX} gauge\n\
             {DEPTH_MAX}{{app=\"web\",listener=\"127.0.0.1:8000\"}} 3\n\
             {DEPTH_MAX}{{app=\"web\",listener=\"unix:/run/w.sock\"}} 1\n\
             # HELP {BACKLOG} {}\n# TYPE {BACKLOG} gauge\n\
             {BACKLOG}{{app=\"web\",listener=\"127.0.0.1:8000\"}} 4\n\
             {BACKLOG}{{app=\"web\",listener=\"unix:/run/w.sock\"}} 4\n\
             # HELP {OVERFLOWS} {}\n# TYPE {OVERFLOWS} counter\n\
             {OVERFLOWS}{{app=\"web\",listener=\"127.0.0.1:8000\"}} 2\n\
             # HELP {WAIT} {}\n# TYPE {WAIT} histogram\n\
             {wait_buckets}\
             {WAIT}_bucket{{app=\"web\",listener=\"127.0.0.1:8000\",le=\"+Inf\"}} 1\n\
             {WAIT}_sum{{app=\"web\",listener=\"127.0.0.1:8000\"}} 0.002\n\
             {WAIT}_count{{app=\"web\",listener=\"127.0.0.1:8000\"}} 1\n",
            FAMILIES[0].2, FAMILIES[1].2, FAMILIES[2].2, FAMILIES[3].2, FAMILIES[4].2,
        );
        assert_eq!(first, expected);

        // The scrape showed the peak of 3; the next one starts from the depth, 1.
        let second = encode(collector.collect());
        assert!(second.contains(&format!(
            "{DEPTH_MAX}{{app=\"web\",listener=\"127.0.0.1:8000\"}} 1\n"
        )));

        // The instance is gone: so are its listeners.
        stats.lock().unwrap().remove_app("web");
        assert_eq!(encode(collector.collect()), "");
    }
}
