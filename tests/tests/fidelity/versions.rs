//! Scenario 13: the core scenarios on Gunicorn 21.2 and 23.0, each from its own venv
//! (`cargo xtask bootstrap` builds them from tests/apps/requirements-<version>.txt). 27.0
//! runs them in their own files. Where these versions behave differently on the wire, the
//! expectation says how.

use observer_tests::{GunicornOpts, older_venv};

use crate::connections::{head_then_get, pipelined};
use crate::keep_alive::keep_alive;
use crate::refused::refused_heads;
use crate::uploads::{chunked_upload, expect_100_continue};

fn gthread(version: &str) -> GunicornOpts {
    GunicornOpts::gthread(1, 4)
        .arg("--keep-alive=5")
        .venv(older_venv(version))
}

fn sync(version: &str) -> GunicornOpts {
    GunicornOpts::sync(1).venv(older_venv(version))
}

/// One test per scenario and version, named `<scenario>_<version>`.
macro_rules! on_versions {
    ($($name:ident: $version:literal;)*) => {
        mod keep_alive_on {
            use super::*;
            $(#[test] fn $name() { keep_alive(concat!("fid-ka-", $version), gthread($version)); })*
        }
        // These gthread workers read the pipelined requests into their buffer and answer
        // only the first: the rest wait for the socket to turn readable, which it never
        // does, until the client gives up.
        mod pipelining_on {
            use super::*;
            $(#[test] fn $name() { pipelined(concat!("fid-pl-", $version), gthread($version), 1); })*
        }
        // Before 26.1 Gunicorn sends the body after a HEAD answer.
        mod head_then_get_on {
            use super::*;
            $(#[test] fn $name() { head_then_get(concat!("fid-hg-", $version), gthread($version), true); })*
        }
        mod chunked_upload_on {
            use super::*;
            $(#[test] fn $name() { chunked_upload(concat!("fid-cu-", $version), gthread($version)); })*
        }
        // These versions answer 100 Continue to HTTP/1.0 too.
        mod expect_continue_on {
            use super::*;
            $(#[test] fn $name() { expect_100_continue(concat!("fid-ec-", $version), gthread($version), true); })*
        }
        // An oversized request line is a plain 400 here; bare LF is left out, as these
        // versions leave such a request waiting rather than answer it.
        mod refused_heads_on {
            use super::*;
            $(#[test] fn $name() { refused_heads(concat!("fid-rh-", $version), sync($version), 400, None); })*
        }
    };
}

on_versions! {
    gunicorn_21_2: "21.2";
    gunicorn_23_0: "23.0";
}
