//! Test PKI made with the openssl CLI, and curl as the TLS client: both are what an operator
//! would use, so the tests exercise the endpoint the way a real client does.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
};

/// A CA whose key stays next to its certificate, so it can sign leaves.
pub struct Ca {
    pub cert: PathBuf,
    key: PathBuf,
}

/// A certificate and its key, as PEM files.
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Which extended key usage a leaf gets.
#[derive(Clone, Copy)]
pub enum Usage {
    Server,
    Client,
}

fn openssl(args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .expect("running openssl (Debian's openssl package)");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Ca {
    /// A self-signed P-256 CA named `name`, written under `dir`.
    pub fn new(dir: &Path, name: &str) -> Ca {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ]);
        Ca { cert, key }
    }

    /// A leaf for `name` signed by this CA; a server leaf is valid for IP 127.0.0.1.
    pub fn issue(&self, dir: &Path, name: &str, usage: Usage) -> Leaf {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        let csr = dir.join(format!("{name}.csr"));
        let ext = dir.join(format!("{name}.ext"));
        let ext_text = match usage {
            Usage::Server => "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
            Usage::Client => "subjectAltName=DNS:prometheus\nextendedKeyUsage=clientAuth\n",
        };
        fs::write(&ext, format!("basicConstraints=CA:FALSE\n{ext_text}")).unwrap();
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            csr.to_str().unwrap(),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            csr.to_str().unwrap(),
            "-CA",
            self.cert.to_str().unwrap(),
            "-CAkey",
            self.key.to_str().unwrap(),
            "-set_serial",
            &format!("{}", std::process::id() as u64 * 1000 + name.len() as u64),
            "-days",
            "2",
            "-extfile",
            ext.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ]);
        Leaf { cert, key }
    }
}

/// What curl got: its exit code, the HTTP status (0 when none), headers and body.
#[derive(Debug)]
pub struct CurlResult {
    pub exit: Option<i32>,
    pub status: u16,
    pub headers: String,
    pub body: String,
    pub stderr: String,
}

/// `curl` for `https://<addr><path>` with `args` added (e.g. `--cacert`, `-u`), never
/// following redirects nor reading any config of the user's.
pub fn curl(addr: std::net::SocketAddr, path: &str, args: &[&str]) -> CurlResult {
    let output: Output = Command::new("curl")
        .args([
            "-q",
            "-sS",
            "--max-time",
            "10",
            "-D",
            "-",
            "-w",
            "\n%{http_code}",
        ])
        .args(args)
        .arg(format!("https://{addr}{path}"))
        .output()
        .expect("running curl");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let (rest, code) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    let (headers, body) = rest.split_once("\r\n\r\n").unwrap_or((rest, ""));
    CurlResult {
        exit: output.status.code(),
        status: code.trim().parse().unwrap_or(0),
        headers: headers.to_owned(),
        body: body.to_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
