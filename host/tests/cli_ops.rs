//! The compiled `recoco-sync` binary run as an operator runs it (issue 12): a
//! working directory, a config file named by `RECOCO_SYNC_CONFIG`, the
//! environment, flags, `serve` stopped by SIGTERM, and each defect found by
//! trying it as a new user.

mod cli_support;

use cli_support::*;
use std::time::Duration;

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
    // The default worker count, every one running.
    assert_eq!(ready["checks"]["workers"]["ok"], true, "{body}");
    let started = ready["checks"]["workers"]["started"].as_u64().unwrap();
    assert!(started >= 1, "{body}");
    assert_eq!(
        ready["checks"]["workers"]["running"].as_u64(),
        Some(started)
    );
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

    // SENTRY_RELEASE overrides the release: a start that fails (the port is
    // taken) is reported with it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let (dsn2, envelopes2) = fake_sentry();
    let mut env2: Vec<(&str, &str)> = env
        .iter()
        .copied()
        .filter(|(k, _)| *k != "SENTRY_DSN")
        .collect();
    env2.push(("SENTRY_DSN", &dsn2));
    env2.push(("SENTRY_RELEASE", "ops-build-7"));
    let err = fails(cwd, &env2, &["serve", "--listen", &taken]);
    assert!(err.contains("cannot listen on"), "{err}");
    let sent = envelopes2.lock().unwrap().join("\n");
    assert!(sent.contains(r#""release":"ops-build-7""#), "{sent}");
    assert!(sent.contains("cannot listen on"), "{sent}");

    // CLI commands with SENTRY_DSN set work (no crypto-provider crash), and
    // read-only ones need no `${VAR}` secret.
    let no_secret: Vec<_> = env
        .iter()
        .copied()
        .filter(|(k, _)| *k != "HOOK_SECRET")
        .collect();
    let status = ok(cwd, &no_secret, &["status", "--json"]);
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
    let env = [
        ("HOOK_SECRET", "x-secret-value-0001"),
        ("RECOCO_SYNC_ADMIN_TOKEN", "12345678"),
    ];
    // The connection's config fails http-forward's schema (an ftp URL): the
    // check names the connection and the field, shows the non-secret value,
    // hides the secret.
    let err = fails(cwd, &env, &["config", "check", "good.toml"]);
    assert!(
        err.contains("\"crm\"") && err.contains("/url") && err.contains("ftp://crm.example/hook"),
        "{err}"
    );
    assert!(!err.contains("whsec_do-not-show-this-one"), "{err}");
    std::fs::write(
        cwd.join("good.toml"),
        CONFIG.replace("ftp://crm.example/hook", "https://crm.example/hook"),
    )
    .unwrap();
    let out = ok(cwd, &env, &["config", "check", "good.toml"]);
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
    assert_eq!(
        metrics.get(r#"recoco_jobs_dead_total{connection="crm"}"#),
        Some(&1.0)
    );
    assert!(metrics.keys().any(|k| k
        .starts_with(r#"recoco_attempt_duration_seconds_bucket{connection="crm",outcome="dead""#)));
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
        serde_json::from_str(&ok(cwd, &env, &["events", "show", event_id, "--json"])).unwrap();
    assert_eq!(shown["body"]["object"]["id"], 42);
    assert_eq!(shown["jobs"][0]["id"], job_id.as_str());
    let job: serde_json::Value =
        serde_json::from_str(&ok(cwd, &env, &["jobs", "show", &job_id, "-o", "json"])).unwrap();
    assert_eq!(job["state"], "dead");
    assert!(!job["attempts_log"].as_array().unwrap().is_empty(), "{job}");
    let status: serde_json::Value =
        serde_json::from_str(&ok(cwd, &env, &["status", "--json"])).unwrap();
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
        serde_json::from_str(&ok(cwd, &env, &["--json", "events", "replay", event_id])).unwrap();
    assert_eq!(replayed["jobs"].as_array().unwrap().len(), 1, "{replayed}");
    eventually("the replayed and retried attempts", || {
        (received.lock().unwrap().len() >= 4).then_some(())
    });
    let out = run(cwd, &env, &["jobs", "retry", "no-such-job"]);
    assert_eq!(out.status.code(), Some(3), "not found");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no job no-such-job"));
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

    let (_, err) = exits(cwd, &env, &["sources", "rotate-secret", "nowhere"], 3);
    assert!(err.contains("no source \"nowhere\""), "{err}");
    drop(served);
}
