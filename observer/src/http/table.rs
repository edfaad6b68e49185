//! All followed connections, keyed by (process, fd), from accept to close.

use std::collections::HashMap;

use observer_ebpf::limits::MAX_CONNECTIONS;

use super::ConnId;
use super::conn::Conn;
use super::output::{AbortReason, Output, Problem};
use super::request::starts_request;
use super::route::RouteMode;

/// Default cap on followed connections: the kernel's `CONNS` map holds no more, so only
/// connections whose close was lost can push the table past it.
pub const DEFAULT_MAX_CONNS: usize = MAX_CONNECTIONS as usize;

/// Per-connection request reconstruction, fed with decoded socket events in arrival order.
///
/// Every method pushes what it can conclude into `sink`: completed or aborted requests, and
/// problems to count. The table holds at most `max_conns` connections; beyond that new ones
/// are refused and each refusal is counted as [`Problem::TableFull`].
#[derive(Debug)]
pub struct ConnTable {
    /// Its capacity is never given back: after a peak of open connections on the host the
    /// heap stays near that high-water mark (README, known limitations).
    conns: HashMap<ConnId, Conn>,
    max_conns: usize,
    /// Requests in flight per process, summed over its connections: kept up to date at every
    /// change so a worker's busy/idle state costs one lookup.
    in_flight: HashMap<u32, usize>,
    route_mode: RouteMode,
}

impl ConnTable {
    pub fn new(max_conns: usize) -> Self {
        Self {
            conns: HashMap::new(),
            max_conns,
            in_flight: HashMap::new(),
            route_mode: RouteMode::default(),
        }
    }

    /// How request targets become the `route` of each [`super::Completed`].
    pub fn with_route_mode(mut self, mode: RouteMode) -> Self {
        self.route_mode = mode;
        self
    }

    /// Requests of process `tgid` whose first byte was read and whose response has not
    /// ended, over all its connections. Non-zero means the worker is busy, whether it
    /// computes, waits on a database, or sleeps.
    pub fn in_flight(&self, tgid: u32) -> usize {
        self.in_flight.get(&tgid).copied().unwrap_or(0)
    }

    /// Moves `tgid`'s in-flight count from a connection's `before` queue length to `after`.
    fn account(&mut self, tgid: u32, before: usize, after: usize) {
        if before == after {
            return;
        }
        let count = self.in_flight.entry(tgid).or_default();
        *count = (*count + after).saturating_sub(before);
        if *count == 0 {
            self.in_flight.remove(&tgid);
        }
    }

    /// Runs `update` on a followed connection and keeps the in-flight count in step.
    fn update<R>(&mut self, id: ConnId, update: impl FnOnce(&mut Conn) -> R) -> Option<R> {
        let conn = self.conns.get_mut(&id)?;
        let before = conn.queue.len();
        let result = update(conn);
        let after = conn.queue.len();
        self.account(id.tgid, before, after);
        Some(result)
    }

    /// Takes a connection out; its requests leave the in-flight count with it.
    fn remove(&mut self, id: ConnId) -> Option<Conn> {
        let conn = self.conns.remove(&id)?;
        self.account(id.tgid, conn.queue.len(), 0);
        Some(conn)
    }

    /// Adds a connection, counting requests it already has in flight.
    fn insert(&mut self, id: ConnId, conn: Conn) {
        self.account(id.tgid, 0, conn.queue.len());
        self.conns.insert(id, conn);
    }

    /// A worker accepted a connection.
    pub fn on_accept(&mut self, id: ConnId, ts_ns: u64, sink: &mut impl FnMut(Output)) {
        // fd numbers are reused at once, so an entry still here lost its close event.
        if let Some(stale) = self.remove(id) {
            sink(Output::Problem(Problem::StaleConn));
            stale.close(ts_ns, sink);
        }
        if self.conns.len() >= self.max_conns {
            sink(Output::Problem(Problem::TableFull));
            return;
        }
        self.insert(id, Conn::accepted(id, self.route_mode));
    }

    /// A read on an accepted socket returned `ret` (bytes, 0 for EOF, or -errno); `captured`
    /// holds the first bytes read.
    pub fn on_read(
        &mut self,
        id: ConnId,
        ts_ns: u64,
        ret: i64,
        captured: &[u8],
        sink: &mut impl FnMut(Output),
    ) {
        if self
            .update(id, |conn| conn.read(ts_ns, ret, captured, sink))
            .is_some()
        {
            return;
        }
        if ret <= 0 {
            return;
        }
        if self.conns.len() >= self.max_conns {
            // Only a request we could have followed is worth a count; other bytes of an
            // unknown connection would be ignored anyway.
            if starts_request(captured) {
                sink(Output::Problem(Problem::TableFull));
            }
            return;
        }
        let mut conn = Conn::unknown(id, self.route_mode);
        conn.read(ts_ns, ret, captured, sink);
        self.insert(id, conn);
    }

    /// A write (write, writev, send*, sendfile) on an accepted socket returned `ret`;
    /// `captured` holds the first bytes written (none for sendfile).
    pub fn on_write(
        &mut self,
        id: ConnId,
        ts_ns: u64,
        ret: i64,
        captured: &[u8],
        sink: &mut impl FnMut(Output),
    ) {
        if self
            .update(id, |conn| conn.write(ts_ns, ret, captured, sink))
            .is_some()
        {
            return;
        }
        // Remember the connection so its data is counted once and a later request on it can
        // be picked up; a full table just lets these bytes go.
        if ret <= 0 || self.conns.len() >= self.max_conns {
            return;
        }
        let mut conn = Conn::unknown(id, self.route_mode);
        conn.write(ts_ns, ret, captured, sink);
        self.insert(id, conn);
    }

    /// close(2) on the socket: whatever is still open ends here and the state is dropped.
    pub fn on_close(&mut self, id: ConnId, ts_ns: u64, sink: &mut impl FnMut(Output)) {
        if let Some(conn) = self.remove(id) {
            conn.close(ts_ns, sink);
        }
    }

    /// shutdown(2) on the socket. Gunicorn shuts a connection down once it has finished
    /// writing and then drains and closes it, so no request after this is followed.
    pub fn on_shutdown(&mut self, id: ConnId, ts_ns: u64, sink: &mut impl FnMut(Output)) {
        self.update(id, |conn| conn.shutdown(ts_ns, sink));
    }

    /// Kernel events of the connection were lost. Requests in flight on it end as
    /// [`AbortReason::Unknown`] and its state goes: the next read or write finds no
    /// connection and follows it again from a request boundary, as one whose accept was not
    /// seen. Returns how many requests were cut short.
    pub fn on_lost(&mut self, id: ConnId, ts_ns: u64, sink: &mut impl FnMut(Output)) -> usize {
        let Some(mut conn) = self.remove(id) else {
            return 0;
        };
        let in_flight = conn.queue.len();
        conn.abort_all(AbortReason::Unknown, ts_ns, sink);
        in_flight
    }

    /// Process `tgid` exited: its connections are gone; requests in flight died with it.
    /// Returns the fds dropped, so the caller can clear them from the kernel's map too (a
    /// process that dies never closes its sockets one by one).
    pub fn on_process_exit(
        &mut self,
        tgid: u32,
        ts_ns: u64,
        sink: &mut impl FnMut(Output),
    ) -> Vec<i32> {
        // Exits are rare next to data events; a scan of the table is fine. Sorted by fd so
        // the output does not depend on hash order.
        let mut ids: Vec<ConnId> = self
            .conns
            .keys()
            .filter(|id| id.tgid == tgid)
            .copied()
            .collect();
        ids.sort_unstable_by_key(|id| id.fd);
        for id in &ids {
            if let Some(conn) = self.remove(*id) {
                conn.worker_died(ts_ns, sink);
            }
        }
        ids.into_iter().map(|id| id.fd).collect()
    }

    /// Connections currently followed.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }
}

impl Default for ConnTable {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_CONNS)
    }
}
