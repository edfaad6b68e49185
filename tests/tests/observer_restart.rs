//! The observer going away and coming back while Gunicorn keeps serving: a SIGKILL must
//! leave no kernel programs behind, and the next observer must count exactly, including
//! on keep-alive connections that were opened before it started.

mod common;

use std::os::unix::process::ExitStatusExt as _;
use std::time::Duration;

use observer_tests::{Conn, Gunicorn, GunicornOpts, Observer, process};

use common::{by_method_status, expect, held_bpf_ids, settled, total};

/// `BPF_PROG_GET_FD_BY_ID` from the kernel's `enum bpf_cmd`.
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;

/// Whether a BPF program with this id is still loaded anywhere in the kernel.
fn program_exists(id: u32) -> bool {
    // `union bpf_attr` for this command: prog_id, next_id, open_flags.
    let attr: [u32; 3] = [id, 0, 0];
    // SAFETY: the attr buffer is live, and its size is what is passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_GET_FD_BY_ID,
            attr.as_ptr(),
            size_of_val(&attr),
        )
    };
    if fd >= 0 {
        // SAFETY: a fd this call just opened and nothing else uses.
        unsafe { libc::close(fd as libc::c_int) };
        return true;
    }
    let err = std::io::Error::last_os_error();
    assert_eq!(
        err.raw_os_error(),
        Some(libc::ENOENT),
        "BPF_PROG_GET_FD_BY_ID {id}: {err}"
    );
    false
}

#[test]
fn sigkill_leaves_no_programs_and_a_restarted_observer_counts_exactly() {
    let app = common::unique_app("restart-sigkill");
    let app = app.as_str();
    let gunicorn = Gunicorn::start(GunicornOpts::sync(2).arg(&format!("--name={app}")));

    let first = Observer::start(&[]);
    let programs = held_bpf_ids(first.pid(), "prog_id:");
    assert!(!programs.is_empty(), "the observer holds no BPF programs");
    for _ in 0..10 {
        assert_eq!(gunicorn.get("/").status, 200);
    }
    let seen = settled(&first, app, 10.0);
    assert_eq!(total(&seen, app), 10.0);

    process::signal(first.pid(), libc::SIGKILL).expect("SIGKILL");
    let status = first.stop();
    assert_eq!(status.signal(), Some(libc::SIGKILL));

    // Detaching dozens of tracepoints takes the kernel a few seconds under load.
    let left = process::wait_for(Duration::from_secs(30), || {
        let left: Vec<u32> = programs
            .iter()
            .copied()
            .filter(|id| program_exists(*id))
            .collect();
        left.is_empty().then_some(())
    });
    assert!(
        left.is_some(),
        "programs of the killed observer still loaded"
    );

    // Gunicorn serves on while nobody watches; none of this can be counted.
    for _ in 0..5 {
        assert_eq!(gunicorn.get("/").status, 200);
    }

    let second = Observer::start(&[]);
    for _ in 0..50 {
        assert_eq!(gunicorn.get("/").status, 200);
    }
    for _ in 0..5 {
        assert_eq!(gunicorn.get("/status/404").status, 404);
    }
    gunicorn.wait_for_access_entries(70, Duration::from_secs(10));
    let after = settled(&second, app, 55.0);
    assert_eq!(
        by_method_status(&after, app),
        expect(&[("GET", "200", 50.0), ("GET", "404", 5.0)])
    );
}

#[test]
fn keep_alive_connection_from_before_the_observer_is_counted_from_its_next_request() {
    let app = common::unique_app("restart-keepalive");
    let app = app.as_str();
    // A long keep-alive, as behind a proxy that pools its upstream connections.
    let gunicorn = Gunicorn::start(
        GunicornOpts::gthread(1, 2)
            .arg(&format!("--name={app}"))
            .arg("--keep-alive=60"),
    );
    let mut pooled = Conn::open(gunicorn.addr()).expect("connect");
    for _ in 0..3 {
        let response = pooled.send("GET", "/", None, true).expect("keep-alive GET");
        assert_eq!(response.status, 200);
    }

    // README, Known limitations: such connections "are followed from their next request
    // boundary".
    let observer = Observer::start(&[]);
    for _ in 0..5 {
        let response = pooled.send("GET", "/", None, true).expect("keep-alive GET");
        assert_eq!(response.status, 200);
    }
    for _ in 0..5 {
        assert_eq!(gunicorn.get("/status/404").status, 404);
    }
    pooled.close();

    gunicorn.wait_for_access_entries(13, Duration::from_secs(10));
    let after = settled(&observer, app, 10.0);
    assert_eq!(
        by_method_status(&after, app),
        expect(&[("GET", "200", 5.0), ("GET", "404", 5.0)]),
        "the 5 requests on the pooled connection after the observer started"
    );
}
