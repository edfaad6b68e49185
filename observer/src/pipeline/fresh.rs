//! Scrapes that see every event the kernel queued before them.
//!
//! The kernel wakes the event loop only for a large batch or a process event, and the loop's
//! own drain timer is slow (a fast one was most of the observer's idle CPU). So a scrape asks
//! the loop to drain first and waits for it: what `/metrics` shows is never older than the
//! scrape, however slow the timer.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tracing::debug;

/// Scrapes waiting at once beyond this share the drain of those before them.
const QUEUED_SCRAPES: usize = 16;

/// How long a scrape waits for the drain before it answers with what is already counted.
/// The loop is busy this long only during a large rescan or a burst.
const DRAIN_WAIT: Duration = Duration::from_millis(250);

/// The exporter's end: asks for a drain and waits until it is done.
#[derive(Clone, Debug)]
pub struct DrainBeforeScrape {
    requests: mpsc::Sender<oneshot::Sender<()>>,
}

/// The event loop's end: one entry per waiting scrape.
pub struct ScrapeRequests {
    requests: mpsc::Receiver<oneshot::Sender<()>>,
}

/// A connected pair.
pub fn channel() -> (DrainBeforeScrape, ScrapeRequests) {
    let (requests, received) = mpsc::channel(QUEUED_SCRAPES);
    (
        DrainBeforeScrape { requests },
        ScrapeRequests { requests: received },
    )
}

impl DrainBeforeScrape {
    /// Returns once the event loop has drained the ring buffer, or after [`DRAIN_WAIT`].
    /// Returns false if the metrics may miss recent events (the loop was busy or gone).
    pub async fn wait(&self) -> bool {
        let (done, drained) = oneshot::channel();
        let asked = async {
            self.requests.send(done).await.ok()?;
            drained.await.ok()
        };
        match tokio::time::timeout(DRAIN_WAIT, asked).await {
            Ok(Some(())) => true,
            Ok(None) => false,
            Err(_) => {
                debug!(
                    wait_ms = DRAIN_WAIT.as_millis() as u64,
                    "scrape did not wait for a drain"
                );
                false
            }
        }
    }
}

impl ScrapeRequests {
    /// The next scrape waiting for a drain; pending forever once no exporter is left.
    pub async fn next(&mut self) -> oneshot::Sender<()> {
        match self.requests.recv().await {
            Some(done) => done,
            None => std::future::pending().await,
        }
    }

    /// Answers `first` and every other scrape that queued while the drain ran.
    pub fn answer(&mut self, first: oneshot::Sender<()>) {
        let _ = first.send(());
        while let Ok(done) = self.requests.try_recv() {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_scrape_waits_for_the_drain_and_shares_it() {
        let (scrape, mut loop_end) = channel();
        let (a, b) = (scrape.clone(), scrape.clone());
        let waiting = tokio::spawn(async move { tokio::join!(a.wait(), b.wait()) });

        let first = loop_end.next().await;
        // Let the second scrape queue behind the first before the "drain" finishes.
        tokio::time::sleep(Duration::from_millis(20)).await;
        loop_end.answer(first);
        assert_eq!(waiting.await.unwrap(), (true, true));
    }

    #[tokio::test]
    async fn a_scrape_gives_up_when_the_loop_is_gone() {
        let (scrape, loop_end) = channel();
        drop(loop_end);
        assert!(!scrape.wait().await);
    }
}
