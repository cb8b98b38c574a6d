//! The compiled `recoco-sync` binary run as an operator runs it (issue 12): a
//! working directory, a config file named by `RECOCO_SYNC_CONFIG`, the
//! environment, flags, `serve` stopped by SIGTERM, and each defect found by
//! trying it as a new user.

use std::io::{BufRead as _, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// The binary with a clean environment: no setting, log filter or Sentry DSN
/// of the machine running the tests leaks in.
fn bin(cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_recoco-sync"));
    for (key, _) in std::env::vars() {
        if key.starts_with("RECOCO_") || key.starts_with("SENTRY_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd.current_dir(cwd);
    cmd
}

fn run(cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = bin(cwd);
    cmd.args(args).envs(env.iter().copied());
    cmd.output().expect("the binary runs")
}

fn ok(cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> String {
    let out = run(cwd, env, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> String {
    let out = run(cwd, env, args);
    assert!(!out.status.success(), "{args:?} should fail");
    assert_eq!(out.status.code(), Some(1), "{args:?}: a plain error exit");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A running `serve`, its standard-error lines collected.
struct Served {
    child: Child,
    addr: String,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Served {
    fn start(cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> Self {
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

    fn wait_for_line(&mut self, needle: &str, within: Duration) -> String {
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
    fn terminate(mut self) -> (std::process::ExitStatus, String) {
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
fn get(addr: &str, path: &str) -> (u16, String) {
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
fn fake_sentry() -> (String, Arc<Mutex<Vec<String>>>) {
    let (addr, bodies) = fake_server(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
    );
    (format!("http://public@{addr}/1"), bodies)
}

/// An HTTP server on 127.0.0.1 that keeps every request body and gives each
/// the same `answer` (written in one piece).
fn fake_server(answer: &'static [u8]) -> (String, Arc<Mutex<Vec<String>>>) {
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
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok() {
                kept.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&body).into_owned());
            }
            let _ = stream.write_all(answer);
        }
    });
    (addr.to_string(), bodies)
}

const CONFIG: &str = r#"
[[sources]]
code = "portal"
secrets = ["${HOOK_SECRET}"]

[[connections]]
name = "crm"
source = "portal"
plugin = "http-forward"
[connections.config]
url = "ftp://crm.example/hook"
secret = "whsec_do-not-show-this-one"
"#;

#[test]
fn serve_as_a_user_with_sentry_health_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    std::fs::write(cwd.join("rs.toml"), CONFIG).unwrap();
    let (dsn, envelopes) = fake_sentry();
    let env = [
        // Documented for --config.
        ("RECOCO_SYNC_CONFIG", "rs.toml"),
        // Not a setting (the tests' own variable): must not stop the service.
        ("RECOCO_SYNC_GRIST_SCRIPT", "/nowhere/start-grist.sh"),
        // A string setting whose value looks like a number.
        ("RECOCO_SYNC_ADMIN_TOKEN", "12345678"),
        ("HOOK_SECRET", "hook-secret-value-0001"),
        ("SENTRY_DSN", dsn.as_str()),
        ("SENTRY_ENVIRONMENT", "cli-test"),
    ];
    // The default database and key in ./data are created by `serve` (the service).
    let mut served = Served::start(cwd, &env, &[]);
    assert!(cwd.join("data/recoco-sync.db").exists());
    assert!(cwd.join("data/secret.key").exists());
    // The connection cannot run: not healthy, with the non-secret value shown.
    let (status, body) = get(&served.addr, "/healthz");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("\"crm\"") && body.contains("ftp://crm.example/hook"),
        "{body}"
    );
    assert!(!body.contains("do-not-show-this-one"), "{body}");
    let (status, body) = get(&served.addr, "/readyz");
    assert_eq!(status, 503, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["checks"]["database"]["ok"], true, "{body}");
    assert_eq!(ready["checks"]["intake_writer"]["ok"], true, "{body}");
    assert_eq!(ready["checks"]["connections"]["ok"], false, "{body}");
    assert_eq!(get(&served.addr, "/livez").0, 200);
    served.wait_for_line("does not match the schema", Duration::from_secs(5));
    let (status, log) = served.terminate();
    assert!(status.success(), "exit {status:?}:\n{log}");
    assert!(log.contains("shutting down"), "{log}");
    assert!(!log.contains('\u{1b}'), "ANSI codes in a piped log:\n{log}");
    assert!(!log.contains("hook-secret-value-0001") && !log.contains("12345678"));
    // The schema error reached Sentry, with environment and release.
    let sent = envelopes.lock().unwrap().join("\n");
    assert!(sent.contains("does not match the schema"), "{sent}");
    assert!(sent.contains(r#""environment":"cli-test""#), "{sent}");
    assert!(
        sent.contains(&format!(
            r#""release":"recoco-sync@{}""#,
            env!("CARGO_PKG_VERSION")
        )),
        "{sent}"
    );
    assert!(!sent.contains("do-not-show-this-one"));

    // CLI commands with SENTRY_DSN set work (no crypto-provider crash), and
    // read-only ones need no `${VAR}` secret.
    let no_secret: Vec<_> = env
        .iter()
        .copied()
        .filter(|(k, _)| *k != "HOOK_SECRET")
        .collect();
    let status = ok(cwd, &no_secret, &["status"]);
    assert!(
        status.contains("\"portal\"") && status.contains("\"crm\""),
        "{status}"
    );
    ok(cwd, &no_secret, &["events", "list"]);
    ok(cwd, &no_secret, &["jobs", "list"]);
    ok(cwd, &no_secret, &["keys", "list"]);
    // Applying the declarations does need it, and says which and where.
    let err = fails(cwd, &no_secret, &["migrate"]);
    assert!(
        err.contains("HOOK_SECRET") && err.contains("rs.toml") && err.contains("sources[0]"),
        "{err}"
    );
}

#[test]
fn set_reaches_serve_and_unknown_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let err = fails(cwd, &[], &["serve", "--set", "queue.bogus=1"]);
    assert!(
        err.contains("--set queue.bogus") && err.contains("bogus"),
        "{err}"
    );
    let err = fails(cwd, &[], &["serve", "--set", "log.level=verbose"]);
    assert!(
        err.contains("log.level") && err.contains("not a level"),
        "{err}"
    );
    let err = fails(cwd, &[("RECOCO_SYNC_QUEUE__WORKRS", "2")], &["serve"]);
    assert!(
        err.contains("RECOCO_SYNC_QUEUE__WORKRS") && err.contains("workrs"),
        "{err}"
    );
    // Nothing was created by the refused starts.
    assert!(!cwd.join("data").exists());
    // --set applied to serve: JSON logs.
    let served = Served::start(
        cwd,
        &[],
        &["--set", "log.format=json", "--set", "queue.workers=0"],
    );
    let (status, log) = served.terminate();
    assert!(status.success(), "{log}");
    for line in log.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(value["level"].is_string(), "{line}");
    }
}

#[test]
fn a_command_in_the_wrong_directory_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    for args in [
        &["status"][..],
        &["events", "list"],
        &["jobs", "list"],
        &["keys", "list"],
        &["keys", "create", "--name", "x"],
        &["migrate"],
    ] {
        let err = fails(cwd, &[], args);
        assert!(
            err.contains("no database at data/recoco-sync.db") && err.contains("migrate --create"),
            "{args:?}: {err}"
        );
        assert!(!cwd.join("data").exists(), "{args:?} created data/");
    }
    let out = ok(cwd, &[], &["migrate", "--create"]);
    assert!(out.contains("up to date"), "{out}");
    assert!(cwd.join("data/recoco-sync.db").exists() && cwd.join("data/secret.key").exists());
    ok(cwd, &[], &["status"]);
    // A database without its key file is refused, naming the missing file.
    std::fs::remove_file(cwd.join("data/secret.key")).unwrap();
    let err = fails(cwd, &[], &["status"]);
    assert!(
        err.contains("no secret key file at data/secret.key"),
        "{err}"
    );
    assert!(!cwd.join("data/secret.key").exists());
}

#[test]
fn config_check_names_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    std::fs::write(cwd.join("bad.toml"), "[queue]\nworkers = \"four\"\n").unwrap();
    let err = fails(cwd, &[], &["config", "check", "bad.toml"]);
    assert!(
        err.contains("bad.toml") && err.contains("queue.workers") && err.contains("four"),
        "{err}"
    );
    std::fs::write(cwd.join("level.toml"), "[log]\nlevel = \"verbose\"\n").unwrap();
    let err = fails(cwd, &[], &["config", "check", "level.toml"]);
    assert!(
        err.contains("level.toml") && err.contains("not a level"),
        "{err}"
    );
    std::fs::write(cwd.join("good.toml"), CONFIG).unwrap();
    let err = fails(cwd, &[], &["config", "check", "good.toml"]);
    assert!(err.contains("HOOK_SECRET"), "{err}");
    let out = ok(
        cwd,
        &[
            ("HOOK_SECRET", "x-secret-value-0001"),
            ("RECOCO_SYNC_ADMIN_TOKEN", "12345678"),
        ],
        &["config", "check", "good.toml"],
    );
    assert!(
        out.contains("good.toml is valid") && out.contains("1 connection"),
        "{out}"
    );
    assert!(!cwd.join("data").exists(), "config check created files");
}

#[test]
fn task_reports_a_stored_manifest_that_does_not_parse() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    std::fs::write(
        cwd.join("rs.toml"),
        "[[sources]]\ncode = \"portal\"\nsecrets = [\"hook-secret-0001\"]\n[[connections]]\nname = \"c1\"\nsource = \"portal\"\nplugin = \"ghost\"\n",
    )
    .unwrap();
    let env = [("RECOCO_SYNC_CONFIG", "rs.toml")];
    ok(cwd, &env, &["migrate", "--create"]);
    let db = rusqlite::Connection::open(cwd.join("data/recoco-sync.db")).unwrap();
    db.execute(
        "INSERT INTO plugins (name, version, hash, manifest, updated_at) VALUES ('ghost', '1', 'h', '{\"name\": 5}', 0)",
        [],
    )
    .unwrap();
    drop(db);
    let err = fails(cwd, &env, &["task", "c1", "sync-all"]);
    assert!(
        err.contains("manifest of plugin ghost does not parse"),
        "{err}"
    );
    let jobs = ok(cwd, &env, &["jobs", "list"]);
    assert!(jobs.trim().is_empty(), "a job was queued: {jobs}");
}

/// `GET /metrics`, checked line by line as Prometheus text: `# HELP`/`# TYPE`
/// comments, else `name{labels} value`. Returns the samples by series.
fn prometheus(addr: &str) -> std::collections::HashMap<String, f64> {
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
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn every_operator_command_against_a_running_service() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let (target, received) = fake_server(
        b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\nConnection: close\r\n\r\noops",
    );
    std::fs::write(
        cwd.join("rs.toml"),
        format!(
            "[[sources]]\ncode = \"portal\"\nsecrets = [\"hook-secret-0001\"]\n\
             [[connections]]\nname = \"crm\"\nsource = \"portal\"\nplugin = \"http-forward\"\n\
             [connections.config]\nurl = \"http://{target}/hook\"\nsecret = \"whsec_c2VjcmV0LXZhbHVl\"\n"
        ),
    )
    .unwrap();
    let env = [("RECOCO_SYNC_CONFIG", "rs.toml")];
    let served = Served::start(
        cwd,
        &env,
        &[
            "--set",
            "queue.max_attempts=1",
            "--set",
            "queue.poll_interval=100ms",
        ],
    );
    let url = format!("http://{}/api/webhook/portal", served.addr);
    let body = r#"{"topic": "projects.Project/update", "object": {"id": 42}, "object_type": "projects.Project", "webhook_uuid": "6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e"}"#;
    std::fs::write(cwd.join("hook.json"), body).unwrap();
    // `send` signs like Recoco; a wrong secret is refused.
    let sent = ok(
        cwd,
        &env,
        &[
            "send",
            "--url",
            &url,
            "--secret",
            "hook-secret-0001",
            "hook.json",
        ],
    );
    assert!(sent.starts_with("200") || sent.starts_with("202"), "{sent}");
    let err = fails(
        cwd,
        &env,
        &[
            "send",
            "--url",
            &url,
            "--secret",
            "wrong-secret-01",
            "hook.json",
        ],
    );
    assert!(err.contains("refused"), "{err}");
    // The target answers 500 and one attempt is allowed: the job ends dead.
    let job_line = eventually("a dead job", || {
        let list = ok(cwd, &env, &["jobs", "list", "--state", "dead"]);
        list.lines().find(|l| l.contains("crm")).map(str::to_string)
    });
    let job_id = job_line.split_whitespace().next().unwrap().to_string();
    assert_eq!(received.lock().unwrap().len(), 1);
    // Metrics: valid Prometheus text whose counters moved with the events.
    let metrics = prometheus(&served.addr);
    assert_eq!(
        metrics.get(r#"recoco_webhooks_received_total{source="portal",status="200"}"#),
        Some(&1.0),
        "{metrics:?}"
    );
    assert_eq!(
        metrics.get(r#"recoco_webhooks_received_total{source="portal",status="401"}"#),
        Some(&1.0)
    );
    assert_eq!(
        metrics.get(r#"recoco_attempts_total{connection="crm",outcome="dead"}"#),
        Some(&1.0)
    );
    assert_eq!(
        metrics.get(r#"recoco_outbound_requests_total{host="127.0.0.1",status="500"}"#),
        Some(&1.0)
    );
    assert_eq!(
        metrics.get(r#"recoco_jobs{connection="crm",state="dead"}"#),
        Some(&1.0)
    );
    assert!(metrics.contains_key("recoco_queue_depth"));
    assert!(metrics.contains_key("recoco_queue_oldest_due_age_seconds"));
    assert!(metrics
        .keys()
        .any(|k| k.starts_with("recoco_intake_duration_seconds_bucket")));
    assert!(metrics
        .keys()
        .any(|k| k.starts_with("recoco_plugin_invocation_seconds_count")));
    let events = ok(cwd, &env, &["events", "list"]);
    let event_line = events
        .lines()
        .find(|l| l.contains("projects.Project/update"))
        .unwrap_or_else(|| panic!("{events}"));
    let event_id = event_line.split_whitespace().next().unwrap();
    let shown: serde_json::Value =
        serde_json::from_str(&ok(cwd, &env, &["events", "show", event_id])).unwrap();
    assert_eq!(shown["body"]["object"]["id"], 42);
    assert_eq!(shown["jobs"][0]["id"], job_id.as_str());
    let job: serde_json::Value =
        serde_json::from_str(&ok(cwd, &env, &["jobs", "show", &job_id])).unwrap();
    assert_eq!(job["state"], "dead");
    assert!(!job["attempts_log"].as_array().unwrap().is_empty(), "{job}");
    let status: serde_json::Value = serde_json::from_str(&ok(cwd, &env, &["status"])).unwrap();
    assert_eq!(status["jobs"]["dead"], 1, "{status}");
    assert!(
        !status.to_string().contains("c2VjcmV0LXZhbHVl"),
        "a secret in status"
    );
    // Retry one, then all of a connection; replay the event (new jobs).
    assert!(ok(cwd, &env, &["jobs", "retry", &job_id]).contains("queued again"));
    eventually("the retried attempt", || {
        (received.lock().unwrap().len() >= 2).then_some(())
    });
    eventually("the retried job to be dead again", || {
        let list = ok(cwd, &env, &["jobs", "list", "--state", "dead"]);
        list.contains(&job_id).then_some(())
    });
    let out = ok(cwd, &env, &["jobs", "retry-failed", "--connection", "crm"]);
    assert!(out.contains("1 job(s) queued again"), "{out}");
    let replayed: serde_json::Value =
        serde_json::from_str(&ok(cwd, &env, &["events", "replay", event_id])).unwrap();
    assert_eq!(replayed["jobs"].as_array().unwrap().len(), 1, "{replayed}");
    eventually("the replayed and retried attempts", || {
        (received.lock().unwrap().len() >= 4).then_some(())
    });
    let err = fails(cwd, &env, &["jobs", "retry", "no-such-job"]);
    assert!(err.contains("not failed or dead"), "{err}");
    // A task the plugin does not offer is refused, listing what it offers.
    let err = fails(cwd, &env, &["task", "crm", "no-such-task"]);
    assert!(err.contains("no task \"no-such-task\""), "{err}");
    let (status, log) = served.terminate();
    assert!(status.success(), "{log}");
}

#[test]
fn sources_rotate_secret_adds_a_secret_and_retires_the_old_one_after_its_grace() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    std::fs::write(
        cwd.join("rs.toml"),
        "[[sources]]\ncode = \"portal\"\nsecrets = [\"hook-secret-0001\"]\n",
    )
    .unwrap();
    let env = [("RECOCO_SYNC_CONFIG", "rs.toml")];
    let served = Served::start(cwd, &env, &[]);
    let url = format!("http://{}/api/webhook/portal", served.addr);
    std::fs::write(
        cwd.join("hook.json"),
        r#"{"topic": "projects.Project/update", "object": {"id": 7}, "object_type": "projects.Project", "webhook_uuid": "6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e"}"#,
    )
    .unwrap();
    let send = |secret: &str| {
        run(
            cwd,
            &env,
            &["send", "--url", &url, "--secret", secret, "hook.json"],
        )
    };

    // A generated secret, printed once on stdout; the old one retires at once.
    let generated = ok(
        cwd,
        &env,
        &["sources", "rotate-secret", "portal", "--grace", "0s"],
    );
    let generated = generated.trim().to_string();
    assert!(generated.len() >= 32, "{generated:?}");
    eventually("the new secret accepted", || {
        send(&generated).status.success().then_some(())
    });
    eventually("the old secret refused", || {
        (!send("hook-secret-0001").status.success()).then_some(())
    });

    // A secret given by the environment, with a grace: both keep working.
    let given = "given-secret-of-24-bytes";
    let out = run(
        cwd,
        &[
            ("RECOCO_SYNC_CONFIG", "rs.toml"),
            ("RECOCO_NEW_SOURCE_SECRET", given),
        ],
        &["sources", "rotate-secret", "portal", "--grace", "1h"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(given),
        "a given secret is not printed"
    );
    eventually("the given secret accepted", || {
        send(given).status.success().then_some(())
    });
    assert!(
        send(&generated).status.success(),
        "still valid during its grace"
    );

    let err = fails(cwd, &env, &["sources", "rotate-secret", "nowhere"]);
    assert!(err.contains("no source \"nowhere\""), "{err}");
    drop(served);
}
