//! Per-listener accept-queue statistics of an instance.

use std::{collections::BTreeMap, sync::Arc};

use super::{Histogram, Stats};
use crate::queue::{Listener, QUEUE_WAIT_BUCKETS};

/// One listening socket of an instance, keyed in [`super::AppStats::listeners`] by its
/// `listener` label.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerStats {
    /// Connections waiting in the accept queue at the last sample.
    pub depth: u32,
    /// The highest sampled depth since the last scrape rendered it (see [`Stats::peaks_shown`]).
    pub depth_max: u32,
    /// Unknown when the listener was read through `/proc/<pid>/net/tcp`.
    pub backlog: Option<u32>,
    /// The kernel's drop counter of the listener (TCP only).
    pub overflows: Option<u64>,
    /// Queue waits of accepted connections (TCP only: unix connections have no handshake to
    /// time them from).
    pub wait: Option<Histogram>,
}

impl ListenerStats {
    fn new(sample: &Listener, tcp: bool) -> Self {
        Self {
            depth: sample.depth,
            depth_max: sample.depth,
            backlog: sample.backlog,
            overflows: sample.drops,
            wait: tcp.then(|| Histogram::new(Arc::from(QUEUE_WAIT_BUCKETS))),
        }
    }
}

impl Stats {
    /// A sample of an instance's listeners: a listener no longer in it is gone with its
    /// series (it was closed); a new one starts.
    pub fn set_listeners(&mut self, app: &str, sampled: &[Listener]) {
        let Some(app) = self.apps.get_mut(app) else {
            return;
        };
        let mut next = BTreeMap::new();
        for sample in sampled {
            let label = sample.addr.label();
            let tcp = matches!(sample.addr, crate::queue::ListenAddr::Tcp(_));
            let stats = match app.listeners.remove(&label) {
                Some(mut known) => {
                    known.depth = sample.depth;
                    known.depth_max = known.depth_max.max(sample.depth);
                    known.backlog = sample.backlog;
                    known.overflows = sample.drops;
                    known
                }
                None => ListenerStats::new(sample, tcp),
            };
            next.insert(label, stats);
        }
        app.listeners = next;
    }

    /// A connection accepted through `listener` of `app` waited `seconds` in its queue.
    /// Returns false when that listener is unknown (not sampled yet, or already closed).
    pub fn observe_queue_wait(&mut self, app: &str, listener: &str, seconds: f64) -> bool {
        let wait = self
            .apps
            .get_mut(app)
            .and_then(|app| app.listeners.get_mut(listener))
            .and_then(|stats| stats.wait.as_mut());
        match wait {
            Some(wait) => {
                wait.observe(seconds);
                true
            }
            None => false,
        }
    }

    /// A scrape showed every listener's peak: the next peak starts from the current depth.
    pub fn peaks_shown(&mut self) {
        for app in self.apps.values_mut() {
            for listener in app.listeners.values_mut() {
                listener.depth_max = listener.depth;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::ListenAddr;

    fn sample(addr: ListenAddr, depth: u32, drops: Option<u64>) -> Listener {
        Listener {
            inode: 9,
            addr,
            depth,
            backlog: Some(4),
            drops,
        }
    }

    #[test]
    fn peaks_last_until_shown_and_closed_listeners_go() {
        let app: Arc<str> = Arc::from("web");
        let tcp = ListenAddr::Tcp("127.0.0.1:8000".parse().unwrap());
        let unix = ListenAddr::Unix("/run/web.sock".into());
        let mut stats = Stats::new(&[1.0]);
        stats.master_started(&app);

        stats.set_listeners(
            "web",
            &[
                sample(tcp.clone(), 5, Some(2)),
                sample(unix.clone(), 1, None),
            ],
        );
        stats.set_listeners(
            "web",
            &[sample(tcp.clone(), 1, Some(3)), sample(unix, 0, None)],
        );
        let web = &stats.apps["web"].listeners;
        let t = &web["127.0.0.1:8000"];
        assert_eq!(
            (t.depth, t.depth_max, t.backlog, t.overflows),
            (1, 5, Some(4), Some(3))
        );
        assert!(web["unix:/run/web.sock"].wait.is_none());

        stats.peaks_shown();
        assert_eq!(stats.apps["web"].listeners["127.0.0.1:8000"].depth_max, 1);

        assert!(stats.observe_queue_wait("web", "127.0.0.1:8000", 0.25));
        assert!(!stats.observe_queue_wait("web", "unix:/run/web.sock", 0.25));
        assert!(!stats.observe_queue_wait("web", "[::]:8000", 0.25));
        let wait = stats.apps["web"].listeners["127.0.0.1:8000"]
            .wait
            .as_ref()
            .unwrap();
        assert_eq!((wait.count(), wait.sum()), (1, 0.25));

        // The unix listener was closed.
        stats.set_listeners("web", &[sample(tcp, 0, Some(3))]);
        assert_eq!(
            stats.apps["web"].listeners.keys().collect::<Vec<_>>(),
            vec!["127.0.0.1:8000"]
        );
        // The histogram survives samples.
        assert_eq!(
            stats.apps["web"].listeners["127.0.0.1:8000"]
                .wait
                .as_ref()
                .unwrap()
                .count(),
            1
        );
    }
}
