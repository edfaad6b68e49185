//! Listen queues: sampling each instance's listeners, keeping the kernel's port filter in
//! step with them, and attributing each measured queue wait to its listener.

use tracing::{debug, warn};

use super::{KernelMaps, Pipeline};
use crate::{export::observer::QUEUE_ERROR_REASONS, queue};

impl<K: KernelMaps> Pipeline<K> {
    /// Samples the accept queues of every instance's listeners, on the sample interval.
    pub(super) fn sample_queues(&mut self) {
        let masters = self.registry.masters();
        let instances: Vec<(u32, Vec<u32>)> = masters
            .iter()
            .map(|&master| {
                let workers = self.registry.workers_of(master);
                (master, workers.into_iter().map(|(pid, _)| pid).collect())
            })
            .collect();
        let sample = queue::sample_listeners(&self.proc_root, &instances);
        for reason in &sample.errors {
            self.count_queue_error(reason);
        }

        self.listeners.retain(&masters);
        for (master, listeners) in &sample.by_master {
            self.listeners.set(*master, listeners);
        }
        self.sync_listen_ports();

        let mut stats = self.lock_stats();
        for (master, listeners) in &sample.by_master {
            if let Some(app) = self.registry.app(*master) {
                stats.set_listeners(&app, listeners);
            }
        }
    }

    /// A worker of `master` was forked. Its instance's listeners are sampled at once if
    /// they are not known yet, so the kernel stamps handshakes on their ports before the
    /// worker's first accept rather than a sample interval later.
    pub(super) fn first_worker_forked(&mut self, master: u32) {
        if !self.listeners.knows(master) {
            self.sample_queues();
        }
    }

    /// Makes the kernel's `LISTEN_PORTS` the TCP ports of the instances now known.
    ///
    /// The set changes only when an instance starts, stops or rebinds, so this is a few map
    /// updates at most. Ports are not namespaced: a port shared with a listener in another
    /// network namespace stamps that one's handshakes too, which no accept of a tracked
    /// worker ever claims, so they only pass through the LRU map.
    fn sync_listen_ports(&mut self) {
        let wanted = self.listeners.ports();
        let gone: Vec<u16> = self.watched_ports.difference(&wanted).copied().collect();
        for port in gone {
            match self.probes.unwatch_listen_port(port) {
                Ok(()) => {
                    self.watched_ports.remove(&port);
                }
                Err(err) => {
                    warn!(port, error = %err, "cannot remove a listen port from the kernel map");
                    self.count_queue_error("port_map_failed");
                }
            }
        }
        let new: Vec<u16> = wanted.difference(&self.watched_ports).copied().collect();
        for port in new {
            match self.probes.watch_listen_port(port) {
                Ok(()) => {
                    self.watched_ports.insert(port);
                }
                Err(err) => {
                    // Counted; at debug level because a full map fails on every sample.
                    debug!(port, error = %err, "cannot add a listen port to the kernel map");
                    self.count_queue_error("port_map_failed");
                }
            }
        }
    }

    /// Worker `tgid` accepted a TCP connection at `ts_ns` whose handshake completed at
    /// `handshake_ns` on `local_port`.
    pub(super) fn queue_wait(
        &mut self,
        tgid: u32,
        local_port: u16,
        family: u16,
        handshake_ns: Option<u64>,
        ts_ns: u64,
    ) {
        let Some(handshake_ns) = handshake_ns else {
            // The handshake completed before its port was in the kernel's map (the
            // instance is new, or the connection predates the observer), or its entry was
            // evicted from the LRU map.
            self.count_queue_error("no_handshake");
            return;
        };
        let worker = self.registry.worker(tgid);
        let label = worker
            .as_ref()
            .and_then(|worker| self.listeners.label(worker.master, local_port, family));
        let (Some(worker), Some(label)) = (worker.as_ref(), label) else {
            debug!(
                tgid,
                local_port, family, "queue wait on an unknown listener"
            );
            self.count_queue_error("no_listener");
            return;
        };
        let seconds = ts_ns.saturating_sub(handshake_ns) as f64 / 1e9;
        let label = label.to_owned();
        if !self
            .lock_stats()
            .observe_queue_wait(&worker.app, &label, seconds)
        {
            self.count_queue_error("no_listener");
        }
    }

    /// Counts by a handle kept per reason: like events, this can happen for every
    /// accepted connection, and a label look-up hashes strings under a lock.
    fn count_queue_error(&mut self, reason: &'static str) {
        let Some(index) = QUEUE_ERROR_REASONS
            .iter()
            .position(|known| *known == reason)
        else {
            debug_assert!(false, "unknown queue error reason {reason}");
            return;
        };
        let queue_errors = &self.metrics.queue_errors;
        self.queue_error_counters[index]
            .get_or_insert_with(|| queue_errors.with_label_values(&[reason]))
            .inc();
    }
}
