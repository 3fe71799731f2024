//! Test fixture: runs the real `mailstead` binary on a temporary data dir and a free port, and
//! talks to it over real HTTPS, trusting the self-signed certificate the server generated.
#![allow(dead_code)]

use reqwest::blocking::{Client, Response};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_mailstead");
pub const ADMIN: &str = "admin@example.test";
pub const PASSWORD: &str = "correct horse battery";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs a CLI command against a data dir, with optional stdin.
pub fn cli(data: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .arg("--data-dir")
        .arg(data)
        .env_remove("MAILSTEAD_DATA_DIR");
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn mailstead");
    if let Some(s) = stdin {
        // the command may exit before reading (e.g. on a bad argument)
        let _ = child.stdin.take().unwrap().write_all(s.as_bytes());
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// A client that trusts the self-signed certificate the server generated in `data`.
pub fn trusting_client(data: &Path) -> Client {
    let pem = std::fs::read(data.join("tls/cert.pem")).unwrap();
    Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .tls_built_in_root_certs(false)
        .build()
        .unwrap()
}

/// Starts `mailstead serve` on `data` with extra environment and waits until the Docker
/// probe, `mailstead healthcheck`, passes.
pub fn serve_until_healthy(data: &Path, port: u16, env: &[(&str, &std::ffi::OsStr)]) -> Child {
    let listen = format!("127.0.0.1:{port}");
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", &listen, "--data-dir"])
        .arg(data)
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !data.join("tls/cert.pem").exists()
        || !Command::new(BIN)
            .args(["healthcheck", "--listen", &listen])
            .output()
            .unwrap()
            .status
            .success()
    {
        assert!(Instant::now() < deadline, "healthcheck never passed");
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

pub struct Server {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub child: Option<Child>,
    pub token: String,
    pub client: Client,
    env: Vec<(String, String)>,
}

impl Server {
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{}", self.port, path)
    }

    /// A fresh server with an admin user and an admin API token.
    pub fn start() -> Server {
        Self::start_with(&[])
    }

    pub fn start_with(env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let o = cli(
            &data,
            &["user", "create", "--email", ADMIN, "--role", "admin"],
            Some(PASSWORD),
        );
        assert!(o.status.success(), "user create failed: {}", stderr(&o));
        let o = cli(
            &data,
            &["token", "create", "--email", ADMIN, "--name", "tests"],
            None,
        );
        assert!(o.status.success(), "token create failed: {}", stderr(&o));
        let token = stdout(&o).lines().last().unwrap().trim().to_string();
        let mut s = Server {
            dir,
            port: free_port(),
            child: None,
            token,
            client: Client::new(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        s.spawn();
        s
    }

    /// Starts (or restarts) the server process and waits until /healthz answers 200.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{}", self.port),
            "--data-dir",
        ])
        .arg(self.data())
        .env_remove("MAILSTEAD_DATA_DIR")
        .env("MAILSTEAD_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("spawn server"));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("server exited early with {status}: {}", self.log());
            }
            let cert = self.data().join("tls/cert.pem");
            if let Ok(pem) = std::fs::read(&cert) {
                let root = reqwest::Certificate::from_pem(&pem).unwrap();
                let client = Client::builder()
                    .add_root_certificate(root)
                    .tls_built_in_root_certs(false)
                    .https_only(true)
                    .cookie_store(true)
                    .timeout(Duration::from_secs(60))
                    .build()
                    .unwrap();
                if let Ok(r) = client.get(self.url("/healthz")).send()
                    && r.status() == 200
                {
                    self.client = client;
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "server did not become healthy: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe_sigterm(c.id());
            let deadline = Instant::now() + Duration::from_secs(20);
            while c.try_wait().unwrap().is_none() {
                assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// A client of its own (no shared connection pool), trusting the server's certificate.
    pub fn new_client(&self) -> Client {
        trusting_client(&self.data())
    }

    pub fn get(&self, path: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .unwrap()
    }

    pub fn get_json(&self, path: &str) -> Value {
        let r = self.get(path);
        assert_eq!(r.status(), 200, "GET {path}");
        r.json().unwrap()
    }

    pub fn post(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .unwrap()
    }

    pub fn patch(&self, path: &str, body: &Value) -> Response {
        self.client
            .patch(self.url(path))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .unwrap()
    }

    pub fn delete(&self, path: &str) -> Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .unwrap()
    }

    /// Creates a user through the API and an API token for them; returns the token.
    pub fn user_with_token(&self, email: &str, role: &str) -> (u64, String) {
        let r = self.post(
            "/api/v1/users",
            &serde_json::json!({"email": email, "role": role, "password": PASSWORD}),
        );
        assert_eq!(r.status(), 201);
        let id = r.json::<Value>().unwrap()["id"].as_u64().unwrap();
        let r = self.post(
            "/api/v1/tokens",
            &serde_json::json!({"name": "t", "user_id": id}),
        );
        assert_eq!(r.status(), 201);
        (
            id,
            r.json::<Value>().unwrap()["token"]
                .as_str()
                .unwrap()
                .to_string(),
        )
    }

    /// Posts a CSV import and waits for it to finish; returns the job.
    pub fn import_csv(&self, csv: impl Into<Vec<u8>>, query: &str) -> Value {
        let r = self
            .client
            .post(self.url(&format!("/api/v1/imports{query}")))
            .bearer_auth(&self.token)
            .header("content-type", "text/csv")
            .body(csv.into())
            .send()
            .unwrap();
        assert_eq!(r.status(), 202, "{}", r.text().unwrap_or_default());
        let id = r.json::<Value>().unwrap()["id"].as_u64().unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let job = self.get_json(&format!("/api/v1/imports/{id}"));
            if job["status"] != "running" {
                return job;
            }
            assert!(Instant::now() < deadline, "import did not finish");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn unsafe_sigterm(pid: u32) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
}

/// The error object of an error response, checking the documented shape.
pub fn error_of(r: Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let v: Value = r.json().expect("error body is JSON");
    let e = v
        .get("error")
        .cloned()
        .unwrap_or_else(|| panic!("no error object in {v}"));
    assert!(
        e["code"].is_string() && e["message"].is_string(),
        "bad error shape: {v}"
    );
    (status, e)
}

/// Generates a DKIM key for `domain` (selector s1) and restarts the server so
/// that it signs with it. Returns the record name and TXT value.
pub fn with_dkim(s: &mut Server, domain: &str) -> (String, String) {
    let o = cli(
        &s.data(),
        &["dkim", "generate", "--domain", domain, "--selector", "s1"],
        None,
    );
    assert!(o.status.success(), "dkim generate: {}", stderr(&o));
    let out = stdout(&o);
    let line = out
        .lines()
        .find(|l| l.contains("._domainkey.") && l.contains(" TXT "))
        .unwrap_or_else(|| panic!("no TXT record in {out}"));
    let name = line
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches('.');
    // "v=DKIM1; ..." "...": the quoted strings concatenated
    let value: String = line
        .split_once(" TXT ")
        .unwrap()
        .1
        .split('"')
        .skip(1)
        .step_by(2)
        .collect();
    assert!(value.starts_with("v=DKIM1; k=rsa; p="), "{value}");
    s.stop();
    s.spawn();
    (name.to_string(), value)
}
