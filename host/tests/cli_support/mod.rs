//! Running the compiled `recoco-sync` as an operator does, for the `cli*`
//! tests: a clean environment, `serve` as a child with its log lines, small
//! HTTP servers on 127.0.0.1 (a fake Sentry, webhook targets), Prometheus text.
#![allow(dead_code)]

use std::io::{BufRead as _, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// The binary with a clean environment: no setting, log filter or Sentry DSN
/// of the machine running the tests leaks in.
pub fn bin(cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_recoco-sync"));
    for (key, _) in std::env::vars() {
        if key.starts_with("RECOCO_") || key.starts_with("SENTRY_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd.current_dir(cwd);
    cmd
}

pub fn run(cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = bin(cwd);
    cmd.args(args).envs(env.iter().copied());
    cmd.output().expect("the binary runs")
}

pub fn ok(cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> String {
    let out = run(cwd, env, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn fails(cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> String {
    let out = run(cwd, env, args);
    assert!(!out.status.success(), "{args:?} should fail");
    assert_eq!(out.status.code(), Some(1), "{args:?}: a plain error exit");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A running `serve`, its standard-error lines collected.
pub struct Served {
    pub child: Child,
    pub addr: String,
    pub lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Served {
    pub fn start(cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> Self {
        let mut cmd = bin(cwd);
        cmd.arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("serve starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut served = Self {
            child,
            addr: String::new(),
            lines,
            seen: Vec::new(),
        };
        let line = served.wait_for_line("recoco-sync listening", Duration::from_secs(180));
        let at = line.find("127.0.0.1:").expect("the address is logged");
        served.addr = line[at..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
            .collect();
        served
    }

    pub fn wait_for_line(&mut self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
            return line.clone();
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no log line with {needle:?}; got:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// SIGTERM, then the exit status and every log line.
    pub fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(line);
        }
        (status, self.seen.join("\n"))
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` on `addr`: status and body.
pub fn get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A Sentry ingestion endpoint on 127.0.0.1 that keeps every request body.
pub fn fake_sentry() -> (String, Arc<Mutex<Vec<String>>>) {
    let (addr, bodies) = fake_server(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    );
    (format!("http://public@{addr}/1"), bodies)
}

/// An HTTP server on 127.0.0.1 that keeps every request body and gives each
/// the same `answer` (written in one piece).
pub fn fake_server(answer: &'static [u8]) -> (String, Arc<Mutex<Vec<String>>>) {
    serve_fake(answer, Keep::Body)
}

/// Like [`fake_server`], keeping each request as its request line
/// (`POST /path HTTP/1.1`), a newline, then its body.
pub fn fake_server_with_paths(answer: &'static [u8]) -> (String, Arc<Mutex<Vec<String>>>) {
    serve_fake(answer, Keep::PathAndBody)
}

/// Like [`fake_server`], keeping each request whole: its head (request line
/// and header lines, `\r\n`-separated), a blank line, its body.
pub fn fake_server_whole(answer: &'static [u8]) -> (String, Arc<Mutex<Vec<String>>>) {
    serve_fake(answer, Keep::Whole)
}

#[derive(Clone, Copy, PartialEq)]
enum Keep {
    Body,
    PathAndBody,
    Whole,
}

fn serve_fake(answer: &'static [u8], keep: Keep) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let _ = stream.set_nodelay(true);
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            let mut request_line = String::new();
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line);
                if request_line.is_empty() {
                    request_line = line.trim_end().to_string();
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok() {
                let body = String::from_utf8_lossy(&body).into_owned();
                kept.lock().unwrap().push(match keep {
                    Keep::Body => body,
                    Keep::PathAndBody => format!("{request_line}\n{body}"),
                    Keep::Whole => format!("{head}\r\n{body}"),
                });
            }
            let _ = stream.write_all(answer);
        }
    });
    (addr.to_string(), bodies)
}

/// `GET /metrics`, checked line by line as Prometheus text: `# HELP`/`# TYPE`
/// comments, else `name{labels} value`. Returns the samples by series.
pub fn prometheus(addr: &str) -> std::collections::HashMap<String, f64> {
    let (status, body) = get(addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    let mut samples = std::collections::HashMap::new();
    for line in body.lines().filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix("# ") {
            assert!(
                comment.starts_with("HELP ") || comment.starts_with("TYPE "),
                "{line}"
            );
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let name_end = series.find('{').unwrap_or(series.len());
        assert!(
            series[..name_end]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "{line}");
        }
        let value: f64 = value.parse().unwrap_or_else(|e| panic!("{e}: {line}"));
        samples.insert(series.to_string(), value);
    }
    samples
}

/// Polls `f` every 100 ms for up to 60 s.
pub fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs and checks the exit code; (stdout, stderr).
pub fn exits(cwd: &Path, env: &[(&str, &str)], args: &[&str], code: i32) -> (String, String) {
    let out = run(cwd, env, args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}:\nstdout: {stdout}\nstderr: {stderr}"
    );
    (stdout, stderr)
}

/// Whether `text` is an RFC 3339 UTC time as the CLI prints them.
pub fn is_rfc3339(text: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(text).is_ok() && text.ends_with('Z')
}
