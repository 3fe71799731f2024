//! Shared helpers of the delivery integration tests: start real peers
//! (Postfix smtp-sink, aiosmtpd scripts, dnsmasq) on free loopback ports,
//! and check delivered messages with Python (email package, dkimpy).
//!
//! Included by `tests/delivery_*.rs` with `#[path = "peers/harness.rs"] mod harness;`.
//! A missing peer makes the test print `SKIP …` and return, unless
//! `MAILSTEAD_REQUIRE_PEERS=1`, where it fails. `tests/peers/install.sh`
//! installs everything.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether missing peers are an error (CI).
pub fn require_peers() -> bool {
    std::env::var("MAILSTEAD_REQUIRE_PEERS").is_ok_and(|v| v == "1")
}

/// Reports a missing peer: panics under `MAILSTEAD_REQUIRE_PEERS=1`,
/// otherwise prints a skip line. Use as `let Some(x) = peer(...) else { return };`.
pub fn missing(test: &str, what: &str) {
    let msg = format!("SKIP {test}: {what} (install the test peers with tests/peers/install.sh)");
    if require_peers() {
        panic!("{msg} and MAILSTEAD_REQUIRE_PEERS=1");
    }
    // Straight to the process's stderr: the test harness captures eprintln!.
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// Unwraps a peer or reports it missing and returns from the test.
#[macro_export]
macro_rules! peer_or_skip {
    ($test:expr, $e:expr) => {
        match $e {
            Ok(v) => v,
            Err(why) => {
                harness::missing($test, &why);
                return;
            }
        }
    };
}

/// A child process killed on drop.
pub struct Proc {
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

/// A free TCP (and UDP) port on `ip`.
pub fn free_port(ip: &str) -> u16 {
    for _ in 0..50 {
        let Ok(l) = TcpListener::bind((ip, 0)) else {
            continue;
        };
        let Ok(addr) = l.local_addr() else { continue };
        if UdpSocket::bind((ip, addr.port())).is_ok() {
            return addr.port();
        }
    }
    panic!("no free port on {ip}");
}

fn wait_tcp(addr: SocketAddr, proc: &mut Proc, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if proc.exited() {
            return false;
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Path of `smtp-sink`: `$SMTP_SINK` or `target/peers/postfix/usr/sbin/smtp-sink`.
pub fn smtp_sink_bin() -> Option<PathBuf> {
    let p = match std::env::var_os("SMTP_SINK") {
        Some(p) => PathBuf::from(p),
        None => root().join("target/peers/postfix/usr/sbin/smtp-sink"),
    };
    p.is_file().then_some(p)
}

/// Path of `smtp-source` next to smtp-sink.
pub fn smtp_source_bin() -> Option<PathBuf> {
    let sink = smtp_sink_bin()?;
    let p = sink.parent()?.join("smtp-source");
    p.is_file().then_some(p)
}

/// `LD_LIBRARY_PATH` for the extracted Postfix programs.
pub fn postfix_lib_dir(bin: &Path) -> PathBuf {
    // DIR/usr/sbin/smtp-sink -> DIR/usr/lib/postfix
    bin.parent()
        .and_then(Path::parent)
        .map(|usr| usr.join("lib/postfix"))
        .unwrap_or_default()
}

/// A running smtp-sink.
pub struct SmtpSink {
    _proc: Proc,
    /// Listening address.
    pub addr: SocketAddr,
    /// Dump directory (with `dump`).
    pub dump: Option<tempfile::TempDir>,
}

impl SmtpSink {
    /// Process id of smtp-sink (for CPU accounting in benchmarks).
    pub fn pid(&self) -> u32 {
        self._proc.child.id()
    }

    /// Dumped message files, sorted.
    pub fn messages(&self) -> Vec<PathBuf> {
        let Some(d) = &self.dump else {
            return Vec::new();
        };
        list_files(d.path(), None)
    }
}

/// Lists regular files under `dir` (recursively), optionally by extension.
pub fn list_files(dir: &Path, ext: Option<&str>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if ext.is_none_or(|x| p.extension().is_some_and(|pe| pe == x)) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Starts smtp-sink on `ip` (random port, or `port`) with extra options.
pub fn smtp_sink_at(
    ip: &str,
    port: Option<u16>,
    args: &[&str],
    dump: bool,
) -> Result<SmtpSink, String> {
    let bin = smtp_sink_bin().ok_or("Postfix smtp-sink not found (set SMTP_SINK)")?;
    for _ in 0..10 {
        let port = port.unwrap_or_else(|| free_port(ip));
        let dir = if dump {
            let d = tempfile::tempdir().map_err(|e| e.to_string())?;
            Some(d)
        } else {
            None
        };
        let mut cmd = Command::new(&bin);
        cmd.env("LD_LIBRARY_PATH", postfix_lib_dir(&bin));
        if is_root() {
            cmd.args(["-u", "root"]);
        }
        if let Some(d) = &dir {
            cmd.arg("-d").arg(d.path().join("%Y%m%d%H%M%S."));
        }
        cmd.args(args)
            .arg(format!("{ip}:{port}"))
            .arg("256")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot run smtp-sink: {e}"))?;
        let mut proc = Proc { child };
        let addr: SocketAddr = format!("{ip}:{port}").parse().map_err(|_| "bad address")?;
        if wait_tcp(addr, &mut proc, Duration::from_secs(5)) {
            return Ok(SmtpSink {
                _proc: proc,
                addr,
                dump: dir,
            });
        }
    }
    Err("smtp-sink did not start".into())
}

/// smtp-sink on 127.0.0.1 with a random port.
pub fn smtp_sink(args: &[&str], dump: bool) -> Result<SmtpSink, String> {
    smtp_sink_at("127.0.0.1", None, args, dump)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Whether `python3` can import all `modules`.
pub fn python_has(modules: &[&str]) -> bool {
    let code = modules
        .iter()
        .map(|m| format!("import {m}"))
        .collect::<Vec<_>>()
        .join("; ");
    Command::new("python3")
        .args(["-c", &code])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A running `tests/peers/smtp_peer.py`.
pub struct PyPeer {
    _proc: Proc,
    /// Listening address.
    pub addr: SocketAddr,
    /// Dump directory.
    pub dump: tempfile::TempDir,
    /// Event log (JSON lines).
    pub log: PathBuf,
}

impl PyPeer {
    /// Events of the log, parsed.
    pub fn events(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Number of events of one kind.
    pub fn count(&self, event: &str) -> usize {
        self.events().iter().filter(|e| e["event"] == event).count()
    }

    /// Dumped messages (`.eml`), sorted by delivery order.
    pub fn messages(&self) -> Vec<PathBuf> {
        let mut v = list_files(self.dump.path(), Some("eml"));
        v.sort_by_key(|p| {
            p.file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.rsplit('-').next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
        });
        v
    }

    /// The envelope sidecar of a dumped message.
    pub fn envelope(&self, eml: &Path) -> serde_json::Value {
        let json = eml.with_extension("json");
        serde_json::from_str(&std::fs::read_to_string(json).unwrap_or_default())
            .unwrap_or(serde_json::Value::Null)
    }
}

/// Starts the aiosmtpd-based peer in `mode` with extra arguments.
pub fn py_peer(mode: &str, extra: &[&str]) -> Result<PyPeer, String> {
    py_peer_at("127.0.0.1", 0, mode, extra)
}

/// Starts the aiosmtpd-based peer on a chosen loopback address and port
/// (0: a free one), so that several peers can share the port a server
/// uses for every MX host (`MAILSTEAD_SMTP_PORT`).
pub fn py_peer_at(ip: &str, port: u16, mode: &str, extra: &[&str]) -> Result<PyPeer, String> {
    if !python_has(&["aiosmtpd"]) {
        return Err("python3 with aiosmtpd not found".into());
    }
    let dump = tempfile::tempdir().map_err(|e| e.to_string())?;
    let log = dump.path().join("events.jsonl");
    let mut cmd = Command::new("python3");
    cmd.arg(root().join("tests/peers/smtp_peer.py"))
        .args(["--mode", mode])
        .arg("--dump-dir")
        .arg(dump.path())
        .arg("--log")
        .arg(&log)
        .args(["--host", ip])
        .arg("--port")
        .arg(port.to_string())
        .args(extra);
    let (proc, port) = spawn_ready(cmd, "smtp_peer.py")?;
    let ip: IpAddr = ip.parse().map_err(|_| format!("bad address {ip}"))?;
    Ok(PyPeer {
        _proc: proc,
        addr: SocketAddr::new(ip, port),
        dump,
        log,
    })
}

/// Runs a peer script that prints `READY <port>` once it listens.
fn spawn_ready(mut cmd: Command, what: &str) -> Result<(Proc, u16), String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let proc = Proc { child };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(15))
        .map_err(|_| format!("{what} did not start"))?;
    let port: u16 = line
        .trim()
        .strip_prefix("READY ")
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("{what} said {line:?}"))?;
    Ok((proc, port))
}

/// A running `tests/peers/pop3_peer.py` serving the `.eml` files of `dir`.
pub struct Pop3Peer {
    _proc: Proc,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
}

impl Pop3Peer {
    /// The commands the peer received, in order.
    pub fn commands(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["command"].as_str().map(str::to_string))
            .collect()
    }
}

pub fn pop3_peer(user: &str, password: &str) -> Result<Pop3Peer, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let log = dir.path().join("commands.jsonl");
    let mut cmd = Command::new("python3");
    cmd.arg(root().join("tests/peers/pop3_peer.py"))
        .arg("--dir")
        .arg(dir.path())
        .args(["--user", user, "--password", password])
        .arg("--log")
        .arg(&log);
    let (proc, port) = spawn_ready(cmd, "pop3_peer.py")?;
    Ok(Pop3Peer {
        _proc: proc,
        port,
        dir,
        log,
    })
}

/// A running dnsmasq answering for test zones.
pub struct Dnsmasq {
    _proc: Proc,
    /// Its address (UDP and TCP).
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

/// Path of dnsmasq, if installed.
pub fn dnsmasq_bin() -> Option<PathBuf> {
    ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq", "/sbin/dnsmasq"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Starts dnsmasq on 127.0.0.1 (random port) with the given options
/// (`--local=/test/` to answer NXDOMAIN for unknown names under `test`,
/// `--mx-host=…`, `--host-record=…`, `--server=/x.test/…`). Without any
/// data or `--local` it answers REFUSED to everything.
pub fn dnsmasq(options: &[String]) -> Result<Dnsmasq, String> {
    let bin = dnsmasq_bin().ok_or("dnsmasq not found")?;
    for _ in 0..10 {
        let port = free_port("127.0.0.1");
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(&bin);
        cmd.args([
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--conf-file=/dev/null",
            "--cache-size=0",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--pid-file={}", dir.path().join("pid").display()))
        .arg(format!(
            "--log-facility={}",
            dir.path().join("log").display()
        ));
        if is_root() {
            cmd.arg("--user=root");
        }
        cmd.args(options)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot run dnsmasq: {e}"))?;
        let mut proc = Proc { child };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if wait_tcp(addr, &mut proc, Duration::from_secs(5)) {
            return Ok(Dnsmasq {
                _proc: proc,
                addr,
                _dir: dir,
            });
        }
    }
    Err("dnsmasq did not start".into())
}

/// A UDP port on 127.0.0.1 that swallows queries and never answers.
pub struct BlackHole {
    _sock: UdpSocket,
    /// Its address.
    pub addr: SocketAddr,
}

/// Binds a [`BlackHole`].
pub fn black_hole() -> BlackHole {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    let addr = sock.local_addr().expect("local addr");
    BlackHole { _sock: sock, addr }
}

/// Parses messages with Python's email package and verifies their DKIM
/// signatures with dkimpy (records: `(name, TXT value)`); writes CRLF copies
/// to `crlf_dir` when given. One JSON object per file.
pub fn check_messages(
    files: &[PathBuf],
    records: &[(String, String)],
    crlf_dir: Option<&Path>,
) -> Result<Vec<serde_json::Value>, String> {
    if !python_has(&["dkim", "nacl"]) {
        return Err("python3 with dkimpy and pynacl not found".into());
    }
    let mut cmd = Command::new("python3");
    cmd.arg(root().join("tests/peers/check_eml.py"));
    if let Some(d) = crlf_dir {
        cmd.arg("--crlf-dir").arg(d);
    }
    for (name, value) in records {
        cmd.arg("--record").arg(format!("{name}={value}"));
    }
    cmd.args(files);
    let out = cmd.output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "check_eml.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// Runs `../shared/tools/dkim_verify.py` (the project's reference check) on
/// CRLF files with a records file; `None` when `../shared` is absent.
pub fn shared_dkim_verify(
    files: &[PathBuf],
    records: &[(String, String)],
) -> Option<(bool, String)> {
    let tool = root().join("../shared/tools/dkim_verify.py");
    if !tool.is_file() {
        eprintln!(
            "note: ../shared/tools/dkim_verify.py absent; dkimpy check via check_eml.py only"
        );
        return None;
    }
    let dir = tempfile::tempdir().ok()?;
    let rec = dir.path().join("records.txt");
    let text: String = records.iter().map(|(n, v)| format!("{n} {v}\n")).collect();
    std::fs::write(&rec, text).ok()?;
    let out = Command::new("python3")
        .arg(tool)
        .arg("--records-file")
        .arg(&rec)
        .args(files)
        .output()
        .ok()?;
    Some((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    ))
}

/// A ~`size` byte HTML newsletter (multipart/alternative, quoted-printable),
/// with lines starting with dots to exercise dot-stuffing.
pub fn newsletter(from: &str, to: &str, subject: &str, id: usize, size: usize) -> Vec<u8> {
    let mut html = String::from("<!DOCTYPE html><html><body>\n<h1>Monthly news</h1>\n");
    let mut n = 0;
    while html.len() < size {
        n += 1;
        // Quoted-printable lines stay under 76 characters (soft breaks "=").
        html.push_str(&format!(
            "<p style=3D\"margin:0 0 12px 0;font-family:Arial\">Paragraph {n} =\n\
             for reader {id}: lorem ipsum dolor sit amet, consectetur.</p>\n"
        ));
        if n % 10 == 0 {
            html.push_str(".a line that starts with a dot\n");
        }
    }
    html.push_str("</body></html>\n");
    let text = format!("Monthly news for reader {id}\n.\n..two dots\nend\n");
    let boundary = format!("=_b{id}");
    format!(
        "From: News <{from}>\r\n\
         To: <{to}>\r\n\
         Subject: {subject}\r\n\
         Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n\
         Message-ID: <{id}.test@example.test>\r\n\
         MIME-Version: 1.0\r\n\
         List-Unsubscribe: <https://example.test/u/{id}>, <mailto:unsub+{id}@example.test>\r\n\
         List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\
         Feedback-ID: {id}:campaign:mailstead\r\n\
         Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\
         \r\n\
         --{boundary}\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: quoted-printable\r\n\
         \r\n\
         {text}\r\n\
         --{boundary}\r\n\
         Content-Type: text/html; charset=utf-8\r\n\
         Content-Transfer-Encoding: quoted-printable\r\n\
         \r\n\
         {html}\r\n\
         --{boundary}--\r\n"
    )
    .replace("\r\n", "\n")
    .replace('\n', "\r\n")
    .into_bytes()
}

/// IP of a socket address as a string.
pub fn ip_str(addr: &SocketAddr) -> String {
    match addr.ip() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => v6.to_string(),
    }
}
