//! The operator commands through a running service's admin API (`--url` /
//! `RECOCO_SYNC_URL` and `--key` / `RECOCO_SYNC_ADMIN_KEY`), run from a
//! directory without any database: tables with headers, `--json` / `-o json`,
//! RFC 3339 times, validated filters, attempts in `show`, exit codes, the
//! access log of each admin request, and `send --source`.

mod cli_support;

use cli_support::*;
use serde_json::Value;

#[test]
fn operator_commands_through_the_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let elsewhere = tempfile::tempdir().unwrap();
    let (target, _received) = fake_server(
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
    let config = [("RECOCO_SYNC_CONFIG", "rs.toml")];
    ok(cwd, &config, &["migrate", "--create"]);
    let key = ok(
        cwd,
        &config,
        &["keys", "create", "--name", "ops", "--scope", "admin"],
    )
    .trim()
    .to_string();
    // The CLI's own variables are not settings: `serve` starts with them set.
    let serve_env = [
        ("RECOCO_SYNC_CONFIG", "rs.toml"),
        ("RECOCO_SYNC_URL", "http://127.0.0.1:1"),
        ("RECOCO_SYNC_ADMIN_KEY", key.as_str()),
        ("RUST_LOG", "info,recoco_sync::access=debug"),
    ];
    let served = Served::start(
        cwd,
        &serve_env,
        &[
            "--set",
            "queue.max_attempts=1",
            "--set",
            "queue.poll_interval=100ms",
        ],
    );
    let base = format!("http://{}", served.addr);
    let api = [
        ("RECOCO_SYNC_URL", base.as_str()),
        ("RECOCO_SYNC_ADMIN_KEY", key.as_str()),
    ];
    let away = elsewhere.path();

    // `send` to the service's address and a source code.
    let body = r#"{"topic": "projects.Project/update", "object": {"id": 77}, "object_type": "projects.Project", "webhook_uuid": "0b8a2c3e-4a5b-4c6d-8e7f-901a2b3c4d77"}"#;
    std::fs::write(away.join("hook.json"), body).unwrap();
    let sent = ok(
        away,
        &api,
        &[
            "send",
            "--source",
            "portal",
            "--secret",
            "hook-secret-0001",
            "hook.json",
        ],
    );
    assert!(sent.starts_with("200") || sent.starts_with("202"), "{sent}");
    let (_, err) = exits(away, &api, &["send", "--secret", "x", "hook.json"], 2);
    assert!(err.contains("--source"), "{err}");

    // A table with headers, the dead job on its own line, id first.
    let job_id = eventually("a dead job", || {
        let list = ok(away, &api, &["jobs", "list", "--state", "dead"]);
        let mut lines = list.lines();
        let header = lines.next()?;
        assert!(
            header.starts_with("ID ") && header.contains("STATE") && header.contains("ATTEMPTS"),
            "{list}"
        );
        lines
            .find(|l| l.contains("crm"))
            .map(|l| l.split_whitespace().next().unwrap().to_string())
    });
    // JSON, by `-o json` and by `--json`; times in RFC 3339.
    for flags in [&["-o", "json"][..], &["--json"]] {
        let mut args = vec!["jobs", "list", "--connection", "crm"];
        args.extend_from_slice(flags);
        let list: Value = serde_json::from_str(&ok(away, &api, &args)).unwrap();
        let job = &list.as_array().unwrap()[0];
        assert_eq!(job["id"], job_id.as_str());
        for key in ["created_at", "updated_at", "run_at", "finished_at"] {
            assert!(
                is_rfc3339(job[key].as_str().unwrap_or_default()),
                "{key}: {job}"
            );
        }
    }
    let job: Value =
        serde_json::from_str(&ok(away, &api, &["jobs", "show", &job_id, "--json"])).unwrap();
    assert_eq!(job["state"], "dead");
    let attempt = &job["attempts_log"][0];
    assert_eq!(attempt["outcome"], "dead", "{job}");
    assert!(is_rfc3339(attempt["started_at"].as_str().unwrap()), "{job}");
    let shown = ok(away, &api, &["jobs", "show", &job_id]);
    assert!(
        shown.contains("state") && shown.contains("dead") && shown.contains("attempts:"),
        "{shown}"
    );
    assert!(
        shown.contains("OUTCOME") && shown.contains("http-forward@"),
        "{shown}"
    );

    // Events: table, detail with body and attempts, JSON.
    let events = ok(away, &api, &["events", "list", "--status", "failed"]);
    assert!(events.starts_with("ID "), "{events}");
    let event_id = events
        .lines()
        .find(|l| l.contains("projects.Project/update"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("{events}"))
        .to_string();
    let detail = ok(away, &api, &["events", "show", &event_id]);
    assert!(
        detail.contains("\"id\": 77") && detail.contains(&job_id),
        "{detail}"
    );
    assert!(
        detail.contains(&format!("attempts of job {job_id}")),
        "{detail}"
    );
    let detail: Value = serde_json::from_str(&ok(
        away,
        &api,
        &["-o", "json", "events", "show", &event_id],
    ))
    .unwrap();
    assert!(is_rfc3339(detail["received_at"].as_str().unwrap()));
    assert_eq!(detail["jobs"][0]["attempts_log"][0]["outcome"], "dead");

    // Filters are checked, listing the valid values (exit 2).
    let (_, err) = exits(away, &api, &["jobs", "list", "--state", "bogus"], 2);
    assert!(
        err.contains("invalid value 'bogus'") && err.contains("dead") && err.contains("coalesced"),
        "{err}"
    );
    let (_, err) = exits(away, &api, &["events", "list", "--status", "nope"], 2);
    assert!(err.contains("processed"), "{err}");
    exits(away, &api, &["jobs", "list", "--limit", "0"], 2);
    // Not found: exit 3.
    let (_, err) = exits(away, &api, &["jobs", "show", "job_nothing"], 3);
    assert!(err.contains("no job job_nothing"), "{err}");
    exits(away, &api, &["events", "show", "evt_nothing"], 3);
    exits(away, &api, &["task", "ghost", "sync-all"], 3);
    // Following a job that ended dead: exit 4, with its summary line.
    let (out, _) = exits(away, &api, &["jobs", "watch", &job_id], 4);
    assert!(out.contains(&format!("job {job_id} dead")), "{out}");
    // A task the plugin does not offer: refused by the service (exit 1).
    let (_, err) = exits(away, &api, &["task", "crm", "no-such-task"], 1);
    assert!(err.contains("no task"), "{err}");

    // Status and keys through the API.
    let status = ok(away, &api, &["status"]);
    assert!(
        status.contains("SOURCE") && status.contains("portal"),
        "{status}"
    );
    assert!(
        status.contains("CONNECTION") && status.contains("crm"),
        "{status}"
    );
    assert!(status.contains("jobs: dead 1"), "{status}");
    let status: Value = serde_json::from_str(&ok(away, &api, &["status", "--json"])).unwrap();
    assert_eq!(status["jobs"]["dead"], 1, "{status}");
    assert!(!status.to_string().contains("c2VjcmV0LXZhbHVl"));
    let keys = ok(away, &api, &["keys", "list"]);
    assert!(
        keys.lines()
            .any(|l| l.starts_with("ops ") && l.contains("admin")),
        "{keys}"
    );

    // Retry through the API; a job that is not failed is refused.
    assert!(ok(away, &api, &["jobs", "retry", &job_id]).contains("queued again"));
    let (_, err) = exits(away, &[("RECOCO_SYNC_URL", &base)], &["jobs", "list"], 1);
    assert!(err.contains("401"), "no key: {err}");
    let (_, err) = exits(
        away,
        &[],
        &["--url", &base, "--key", "rsk_wrong", "jobs", "list"],
        1,
    );
    assert!(err.contains("401") && !err.contains("rsk_wrong"), "{err}");
    let (_, err) = exits(away, &[], &["--url", "http://127.0.0.1:1", "status"], 1);
    assert!(err.contains("cannot reach the service"), "{err}");
    // Nothing was created where the commands ran.
    let created: Vec<_> = std::fs::read_dir(away)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(created, ["hook.json"]);

    // One access-log line per admin request, path without query, no key.
    let (status, log) = served.terminate();
    assert!(status.success(), "{log}");
    let access: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("recoco_sync::access"))
        .collect();
    assert!(
        access
            .iter()
            .any(|l| l.contains("path=/admin/api/jobs") && l.contains("status=200")),
        "{log}"
    );
    assert!(
        access
            .iter()
            .any(|l| l.contains(&format!("path=/admin/api/jobs/{job_id}"))
                && l.contains("method=GET")),
        "{log}"
    );
    assert!(access.iter().any(|l| l.contains("status=401")), "{log}");
    assert!(!log.contains(&key) && !log.contains("state=dead"), "{log}");
}

#[test]
fn a_bad_url_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_, err) = exits(
        dir.path(),
        &[],
        &["--url", "127.0.0.1:8000", "jobs", "list"],
        2,
    );
    assert!(
        err.contains("is not a URL") || err.contains("http://"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
