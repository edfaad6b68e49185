//! Judging one guest run from the files it left on the share: the client's answers and the
//! observer's `/metrics`, compared with the request mix status by status.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use observer_tests::metrics::Metrics;

/// One kind of request the guest sends: path, the status the app answers it with, count.
pub type Request = (&'static str, u16, u32);

/// The guest sends the mix once before and once after it kills one worker with SIGKILL.
pub const ROUNDS: u32 = 2;
/// Gunicorn's `--workers` in the guest.
const WORKERS: usize = 2;
/// That kill, as the observer must classify it: the guest script is neither the worker
/// nor its master.
const RESTARTS: &[(&str, f64)] = &[("external_signal", 1.0)];

/// What the guest left behind, as text (a missing file is an empty string).
#[derive(Default)]
pub struct GuestFiles {
    /// `path status count` lines: what the client received.
    pub client: String,
    /// The observer's `/metrics` once the counts settled.
    pub metrics: String,
    /// The observer's exit code after SIGTERM.
    pub observer_exit: String,
    /// The guest script's traceback, when it failed.
    pub error: String,
}

/// `Ok(detail)` when every status was counted exactly, else what differed.
pub fn judge(mix: &[Request], files: &GuestFiles) -> Result<String, String> {
    if !files.error.trim().is_empty() {
        return Err(format!(
            "the guest script failed:\n{}",
            files.error.trim_end()
        ));
    }

    let mut expected: BTreeMap<String, f64> = BTreeMap::new();
    for (_, status, count) in mix {
        *expected.entry(status.to_string()).or_default() += f64::from(count * ROUNDS);
    }
    let answered = client_statuses(&files.client);
    if answered != expected {
        return Err(format!(
            "the app did not answer the mix as it should: sent {}, answered {}",
            show(&expected),
            show(&answered)
        ));
    }

    let metrics =
        Metrics::parse(&files.metrics).map_err(|err| format!("/metrics does not parse ({err})"))?;
    let counted = metrics.by_label("gunicorn_worker_requests_total", &[], "status");
    if counted != expected {
        return Err(format!(
            "gunicorn_worker_requests_total by status: expected {}, counted {}",
            show(&expected),
            show(&counted)
        ));
    }

    let expected_restarts: BTreeMap<String, f64> = RESTARTS
        .iter()
        .map(|(reason, count)| ((*reason).to_owned(), *count))
        .collect();
    let mut restarts = metrics.by_label("gunicorn_master_worker_restart_total", &[], "reason");
    restarts.retain(|_, count| *count != 0.0);
    if restarts != expected_restarts {
        return Err(format!(
            "gunicorn_master_worker_restart_total by reason: expected {}, counted {}",
            show(&expected_restarts),
            show(&restarts)
        ));
    }

    // A sync worker touches its heartbeat file before every accept (`utimensat`), so both
    // live workers must have one.
    let beating = metrics
        .series("gunicorn_worker_heartbeat_age_seconds")
        .count();
    if beating != WORKERS {
        return Err(format!(
            "gunicorn_worker_heartbeat_age_seconds has {beating} series, not one per worker \
             ({WORKERS})"
        ));
    }

    let observer_exit = files.observer_exit.trim();
    if observer_exit != "0" {
        return Err(format!(
            "the observer exited with {observer_exit:?} on SIGTERM, not 0"
        ));
    }

    let dropped = metrics.sum("gunicorn_observer_events_dropped_total", &[]);
    Ok(format!(
        "requests by status {} and restarts {} exact, heartbeats from {beating} workers, \
         {dropped} kernel events dropped",
        show(&counted),
        show(&restarts)
    ))
}

fn client_statuses(client: &str) -> BTreeMap<String, f64> {
    let mut statuses = BTreeMap::new();
    for line in client.lines() {
        let mut words = line.split_whitespace().skip(1);
        if let (Some(status), Some(Ok(count))) = (words.next(), words.next().map(str::parse::<f64>))
        {
            *statuses.entry(status.to_owned()).or_default() += count;
        }
    }
    statuses
}

/// `200=20 404=7`
fn show(by_status: &BTreeMap<String, f64>) -> String {
    let mut out = String::new();
    for (status, count) in by_status {
        let sep = if out.is_empty() { "" } else { " " };
        write!(out, "{sep}{status}={count}").expect("writing to a String");
    }
    if out.is_empty() {
        "nothing".into()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIX: &[Request] = &[("/", 200, 3), ("/nope", 404, 2), ("/status/404", 404, 1)];

    fn metrics(ok: u32, not_found: u32) -> String {
        format!(
            "# TYPE gunicorn_worker_requests_total counter\n\
             gunicorn_worker_requests_total{{app=\"m\",method=\"GET\",status=\"200\",worker_id=\"0\"}} {ok}\n\
             gunicorn_worker_requests_total{{app=\"m\",method=\"GET\",status=\"404\",worker_id=\"1\"}} {not_found}\n\
             # TYPE gunicorn_master_worker_restart_total counter\n\
             gunicorn_master_worker_restart_total{{app=\"m\",reason=\"crash\"}} 0\n\
             gunicorn_master_worker_restart_total{{app=\"m\",reason=\"external_signal\"}} 1\n\
             # TYPE gunicorn_worker_heartbeat_age_seconds gauge\n\
             gunicorn_worker_heartbeat_age_seconds{{app=\"m\",worker_id=\"0\"}} 0.25\n\
             gunicorn_worker_heartbeat_age_seconds{{app=\"m\",worker_id=\"1\"}} 1.5\n\
             # TYPE gunicorn_observer_events_dropped_total counter\n\
             gunicorn_observer_events_dropped_total{{reason=\"ringbuf_full\"}} 0\n"
        )
    }

    fn files(metrics: String) -> GuestFiles {
        GuestFiles {
            client: "/ 200 6\n/nope 404 4\n/status/404 404 2\n".into(),
            metrics,
            observer_exit: "0\n".into(),
            error: String::new(),
        }
    }

    #[test]
    fn exact_counts_pass_with_a_summary() {
        assert_eq!(
            judge(MIX, &files(metrics(6, 6))),
            Ok(
                "requests by status 200=6 404=6 and restarts external_signal=1 exact, \
                 heartbeats from 2 workers, 0 kernel events dropped"
                    .into()
            )
        );
    }

    #[test]
    fn a_missing_request_names_both_sides() {
        assert_eq!(
            judge(MIX, &files(metrics(6, 5))),
            Err(
                "gunicorn_worker_requests_total by status: expected 200=6 404=6, counted \
                 200=6 404=5"
                    .into()
            )
        );
    }

    #[test]
    fn a_worker_without_heartbeat_fails() {
        let silent = metrics(6, 6).replace(
            "gunicorn_worker_heartbeat_age_seconds{app=\"m\",worker_id=\"1\"} 1.5\n",
            "",
        );
        assert_eq!(
            judge(MIX, &files(silent)),
            Err(
                "gunicorn_worker_heartbeat_age_seconds has 1 series, not one per worker (2)".into()
            )
        );
    }

    #[test]
    fn a_restart_with_another_reason_fails() {
        let crash = metrics(6, 6)
            .replace("reason=\"crash\"} 0", "reason=\"crash\"} 1")
            .replace(
                "reason=\"external_signal\"} 1",
                "reason=\"external_signal\"} 0",
            );
        assert_eq!(
            judge(MIX, &files(crash)),
            Err(
                "gunicorn_master_worker_restart_total by reason: expected external_signal=1, \
                 counted crash=1"
                    .into()
            )
        );
    }

    #[test]
    fn wrong_answers_script_errors_and_bad_exits_fail() {
        let mut wrong = files(metrics(6, 6));
        wrong.client = "/ 200 6\n/nope 500 4\n/status/404 404 2\n".into();
        assert_eq!(
            judge(MIX, &wrong),
            Err(
                "the app did not answer the mix as it should: sent 200=6 404=6, answered \
                 200=6 404=2 500=4"
                    .into()
            )
        );

        let mut crashed = files(String::new());
        crashed.error =
            "Traceback ...\nRuntimeError: observer ready: the process exited with 1\n".into();
        assert!(judge(MIX, &crashed).unwrap_err().ends_with("exited with 1"));

        let mut unclean = files(metrics(6, 6));
        unclean.observer_exit = "-9\n".into();
        assert_eq!(
            judge(MIX, &unclean),
            Err("the observer exited with \"-9\" on SIGTERM, not 0".into())
        );
    }
}
