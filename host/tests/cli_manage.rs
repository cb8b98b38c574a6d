//! `sources`, `connections` and `config apply` run as a user runs them: on
//! the database (no service) and through a running service's admin API, whose
//! changes take effect at once; a change made on the database reaches the
//! running service too. Exit codes: 3 not found, 6 conflict.

mod cli_support;

use cli_support::*;
use serde_json::Value;

const WHSEC: &str = "whsec_c2VjcmV0LXZhbHVlLW9mLTMyLWJ5dGVzLTEyMzQ=";

fn write_file_config(cwd: &std::path::Path, target: &str) {
    std::fs::write(
        cwd.join("rs.toml"),
        format!(
            "[[sources]]\ncode = \"portal\"\nsecrets = [\"hook-secret-0001\"]\n\
             [[connections]]\nname = \"crm\"\nsource = \"portal\"\nplugin = \"http-forward\"\n\
             [connections.config]\nurl = \"http://{target}/file\"\nsecret = \"{WHSEC}\"\n"
        ),
    )
    .unwrap();
}

#[test]
fn managed_configuration_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let (target, received) = fake_server_with_paths(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
    );
    write_file_config(cwd, &target);
    let env = [("RECOCO_SYNC_CONFIG", "rs.toml")];
    ok(cwd, &env, &["migrate", "--create"]);

    // On the database: a source (its generated secret printed once), a
    // connection from flags, one from a TOML file with delivery settings.
    let secret = ok(
        cwd,
        &env,
        &[
            "sources",
            "create",
            "portal-2",
            "--api-url",
            "https://p2.example/api",
        ],
    );
    let secret = secret.trim().to_string();
    assert_eq!(secret.len(), 64, "{secret}");
    let sources = ok(cwd, &env, &["sources", "list"]);
    let header = sources.lines().next().unwrap();
    assert!(
        header.starts_with("CODE") && header.contains("OWNER"),
        "{sources}"
    );
    assert!(
        sources
            .lines()
            .any(|l| l.starts_with("portal-2") && l.contains("database")),
        "{sources}"
    );
    assert!(
        sources
            .lines()
            .any(|l| l.starts_with("portal ") && l.contains("file")),
        "{sources}"
    );
    assert!(!sources.contains(&secret));
    let config = format!(r#"{{"url": "http://{target}/cli", "secret": "{WHSEC}"}}"#);
    ok(
        cwd,
        &env,
        &[
            "connections",
            "create",
            "fwd",
            "--source",
            "portal-2",
            "--plugin",
            "http-forward",
            "--plugin-config",
            &config,
        ],
    );
    std::fs::write(
        cwd.join("conn.toml"),
        format!("source = \"portal-2\"\nplugin = \"http-forward\"\nfilter = \"object_type == 'projects.Project'\"\n[config]\nurl = \"http://{target}/toml\"\nsecret = \"{WHSEC}\"\n[delivery]\nmax_attempts = 2\n"),
    )
    .unwrap();
    ok(
        cwd,
        &env,
        &["connections", "create", "fwd-toml", "--from", "conn.toml"],
    );
    let shown: Value = serde_json::from_str(&ok(
        cwd,
        &env,
        &["connections", "show", "fwd-toml", "-o", "json"],
    ))
    .unwrap();
    assert_eq!(shown["delivery"]["max_attempts"], 2, "{shown}");
    assert_eq!(shown["owner"], "database");
    assert!(
        !shown.to_string().contains(WHSEC),
        "secrets are never shown"
    );
    // The file's entries are read-only (exit 6), unknown ones exit 3, bad
    // input names its field.
    let (_, err) = exits(
        cwd,
        &env,
        &["connections", "edit", "crm", "--filter", "true"],
        6,
    );
    assert!(err.contains("configuration file"), "{err}");
    exits(cwd, &env, &["connections", "delete", "ghost"], 3);
    exits(
        cwd,
        &env,
        &[
            "connections",
            "create",
            "fwd",
            "--source",
            "portal-2",
            "--plugin",
            "http-forward",
        ],
        6,
    );
    let (_, err) = exits(
        cwd,
        &env,
        &["connections", "edit", "fwd", "--filter", "((("],
        1,
    );
    assert!(err.contains("filter:"), "{err}");
    exits(cwd, &env, &["connections", "edit", "fwd"], 2);
    // Pausing is allowed on the file's entries, on the database too.
    assert!(ok(cwd, &env, &["connections", "disable", "crm"]).contains("connection crm disabled"));
    assert!(ok(cwd, &env, &["sources", "disable", "portal"]).contains("source portal disabled"));
    let listed: Value =
        serde_json::from_str(&ok(cwd, &env, &["connections", "list", "--json"])).unwrap();
    let crm = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "crm")
        .unwrap();
    assert_eq!(crm["enabled"], false, "{crm}");
    ok(cwd, &env, &["connections", "enable", "crm"]);
    ok(cwd, &env, &["sources", "enable", "portal"]);

    // `config apply`: dry run, apply, prune; a conflict exits 6 and applies nothing.
    std::fs::write(
        cwd.join("managed.toml"),
        format!(
            "[[sources]]\ncode = \"portal-3\"\nsecrets = [\"${{PORTAL3_SECRET}}\"]\n\
             [[connections]]\nname = \"applied\"\nsource = \"portal-3\"\nplugin = \"http-forward\"\n\
             [connections.config]\nurl = \"http://{target}/applied\"\nsecret = \"{WHSEC}\"\n"
        ),
    )
    .unwrap();
    let apply_env = [
        ("RECOCO_SYNC_CONFIG", "rs.toml"),
        ("PORTAL3_SECRET", "portal-three-secret-01"),
    ];
    let plan = ok(
        cwd,
        &apply_env,
        &["config", "apply", "managed.toml", "--dry-run"],
    );
    assert!(
        plan.contains("create") && plan.contains("applied") && plan.contains("dry run"),
        "{plan}"
    );
    exits(cwd, &env, &["connections", "show", "applied"], 3);
    // `${VAR}` of the applied file must be set, and the error says which.
    let (_, err) = exits(cwd, &env, &["config", "apply", "managed.toml"], 1);
    assert!(err.contains("PORTAL3_SECRET"), "{err}");
    let report: Value = serde_json::from_str(&ok(
        cwd,
        &apply_env,
        &["config", "apply", "managed.toml", "--prune", "--json"],
    ))
    .unwrap();
    assert_eq!(report["applied"], true, "{report}");
    let actions: Vec<(String, String)> = report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().into(),
                c["action"].as_str().unwrap().into(),
            )
        })
        .collect();
    // fwd and fwd-toml and portal-2 are database-owned and not in the file: pruned.
    assert_eq!(
        actions,
        [
            ("applied", "create"),
            ("fwd", "delete"),
            ("fwd-toml", "delete"),
            ("portal-2", "delete"),
            ("portal-3", "create")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let conns = ok(cwd, &env, &["connections", "list"]);
    assert!(
        conns.contains("applied") && !conns.contains("fwd"),
        "{conns}"
    );
    std::fs::write(
        cwd.join("clash.toml"),
        format!(
            "[[connections]]\nname = \"crm\"\nsource = \"portal\"\nplugin = \"http-forward\"\n\
             [connections.config]\nurl = \"http://{target}/elsewhere\"\nsecret = \"{WHSEC}\"\n"
        ),
    )
    .unwrap();
    let (out, err) = exits(cwd, &env, &["config", "apply", "clash.toml"], 6);
    assert!(
        out.contains("conflict") && out.contains("nothing applied"),
        "{out}"
    );
    assert!(err.contains("conflict"), "{err}");

    // Through a running service: a source and a connection created from
    // another directory deliver at once; a pause and a delete take effect.
    let key = ok(
        cwd,
        &env,
        &["keys", "create", "--name", "ops", "--scope", "admin"],
    )
    .trim()
    .to_string();
    let served = Served::start(cwd, &env, &["--set", "queue.poll_interval=100ms"]);
    let base = format!("http://{}", served.addr);
    let elsewhere = tempfile::tempdir().unwrap();
    let away = elsewhere.path();
    let api = [
        ("RECOCO_SYNC_URL", base.as_str()),
        ("RECOCO_SYNC_ADMIN_KEY", key.as_str()),
    ];
    // The secret from RECOCO_NEW_SOURCE_SECRET: nothing is printed on stdout.
    let with_secret = [
        api[0],
        api[1],
        ("RECOCO_NEW_SOURCE_SECRET", "live-portal-secret-1"),
    ];
    assert_eq!(ok(away, &with_secret, &["sources", "create", "live"]), "");
    let with_password = [
        api[0],
        api[1],
        ("RECOCO_SOURCE_API_PASSWORD", "api-password-123"),
    ];
    ok(
        away,
        &with_password,
        &[
            "sources",
            "edit",
            "live",
            "--api-username",
            "sync@example.org",
        ],
    );
    let live: Value =
        serde_json::from_str(&ok(away, &api, &["sources", "show", "live", "--json"])).unwrap();
    assert_eq!(live["has_api_password"], true, "{live}");
    assert_eq!(live["api_username"], "sync@example.org");
    assert!(
        !live.to_string().contains("api-password-123")
            && !live.to_string().contains("live-portal-secret-1")
    );
    ok(
        away,
        &api,
        &[
            "connections",
            "create",
            "live-fwd",
            "--source",
            "live",
            "--plugin",
            "http-forward",
            "--plugin-config",
            &format!(r#"{{"url": "http://{target}/live", "secret": "{WHSEC}"}}"#),
        ],
    );
    let listed = ok(away, &api, &["connections", "list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("live-fwd") && l.contains("database") && l.contains("ok")),
        "{listed}"
    );
    std::fs::write(away.join("hook.json"), r#"{"topic": "projects.Project/update", "object": {"id": 5}, "object_type": "projects.Project", "webhook_uuid": "0b8a2c3e-4a5b-4c6d-8e7f-901a2b3c4d05"}"#).unwrap();
    let sent = ok(
        away,
        &api,
        &[
            "send",
            "--source",
            "live",
            "--secret",
            "live-portal-secret-1",
            "hook.json",
        ],
    );
    assert!(sent.starts_with("200"), "{sent}");
    eventually("the new connection's delivery", || {
        received
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.starts_with("POST /live "))
            .then_some(())
    });
    // Edited through the API: the next delivery goes to the new URL.
    let mut shown: Value = serde_json::from_str(&ok(
        away,
        &api,
        &["connections", "show", "live-fwd", "--json"],
    ))
    .unwrap();
    shown["config"]["url"] = Value::String(format!("http://{target}/live-edited"));
    ok(
        away,
        &api,
        &[
            "connections",
            "edit",
            "live-fwd",
            "--plugin-config",
            &shown["config"].to_string(),
        ],
    );
    std::fs::write(away.join("hook2.json"), r#"{"topic": "projects.Project/update", "object": {"id": 6}, "object_type": "projects.Project", "webhook_uuid": "0b8a2c3e-4a5b-4c6d-8e7f-901a2b3c4d06"}"#).unwrap();
    ok(
        away,
        &api,
        &[
            "send",
            "--source",
            "live",
            "--secret",
            "live-portal-secret-1",
            "hook2.json",
        ],
    );
    eventually("the edited connection's delivery", || {
        received
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.starts_with("POST /live-edited "))
            .then_some(())
    });
    // A change on the database (no --url) reaches the running service: the
    // connection created there delivers too.
    ok(
        cwd,
        &env,
        &[
            "connections",
            "create",
            "db-made",
            "--source",
            "live",
            "--plugin",
            "http-forward",
            "--plugin-config",
            &format!(r#"{{"url": "http://{target}/db-made", "secret": "{WHSEC}"}}"#),
        ],
    );
    std::thread::sleep(std::time::Duration::from_secs(3));
    std::fs::write(away.join("hook3.json"), r#"{"topic": "projects.Project/update", "object": {"id": 7}, "object_type": "projects.Project", "webhook_uuid": "0b8a2c3e-4a5b-4c6d-8e7f-901a2b3c4d07"}"#).unwrap();
    ok(
        away,
        &api,
        &[
            "send",
            "--source",
            "live",
            "--secret",
            "live-portal-secret-1",
            "hook3.json",
        ],
    );
    eventually("the database-made connection's delivery", || {
        received
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.starts_with("POST /db-made "))
            .then_some(())
    });
    // A connection's secret field set from RECOCO_SECRET_VALUE: later deliveries are signed with it
    // (checked end to end in tests/it/managed.rs); a field that is not secret is refused.
    let other = "whsec_QWxhZGRpbjpvcGVuIHNlc2FtZSBvcGVuIHNlc2FtZQ==";
    let with_value = [api[0], api[1], ("RECOCO_SECRET_VALUE", other)];
    assert!(ok(
        away,
        &with_value,
        &["connections", "set-secret", "live-fwd", "/secret"]
    )
    .contains("/secret set"));
    let (_, err) = exits(
        away,
        &with_value,
        &["connections", "set-secret", "live-fwd", "/url"],
        1,
    );
    assert!(err.contains("not a secret"), "{err}");
    // A rotation through the API; a read-only key may not change anything.
    let rotated = ok(
        away,
        &api,
        &["sources", "rotate-secret", "live", "--grace", "0s"],
    );
    assert_eq!(rotated.trim().len(), 64, "{rotated}");
    let reader = ok(
        cwd,
        &env,
        &["keys", "create", "--name", "ro", "--scope", "read"],
    )
    .trim()
    .to_string();
    let ro = [
        ("RECOCO_SYNC_URL", base.as_str()),
        ("RECOCO_SYNC_ADMIN_KEY", reader.as_str()),
    ];
    ok(away, &ro, &["sources", "show", "live"]);
    let (_, err) = exits(away, &ro, &["connections", "delete", "live-fwd"], 1);
    assert!(err.contains("403"), "{err}");
    let deleted = ok(away, &api, &["connections", "delete", "live-fwd"]);
    assert!(deleted.contains("deleted"), "{deleted}");
    exits(away, &api, &["connections", "show", "live-fwd"], 3);
    let (_, err) = exits(
        away,
        &api,
        &["connections", "edit", "crm", "--plugin", "x"],
        6,
    );
    assert!(err.contains("configuration file"), "{err}");
    // Plugins through the API: the listing, a manifest with its schema.
    let plugins = ok(away, &api, &["plugins", "list"]);
    assert!(
        plugins.starts_with("NAME")
            && plugins
                .lines()
                .any(|l| l.starts_with("http-forward ") && l.contains("shipped")),
        "{plugins}"
    );
    let shown: Value = serde_json::from_str(&ok(
        away,
        &api,
        &["plugins", "show", "http-forward", "-o", "json"],
    ))
    .unwrap();
    assert_eq!(
        shown["config_schema"]["properties"]["secret"]["writeOnly"], true,
        "{shown}"
    );
    exits(away, &api, &["plugins", "show", "ghost"], 3);
    let (status, _) = served.terminate();
    assert!(status.success());
}

#[test]
fn plugins_check_loads_a_file_as_the_loader_does() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let component =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("components/http-forward.wasm");
    let report: Value = serde_json::from_str(&ok(
        cwd,
        &[],
        &["plugins", "check", component.to_str().unwrap(), "--json"],
    ))
    .unwrap();
    assert_eq!(report["name"], "http-forward");
    assert_eq!(
        report["size_bytes"],
        std::fs::metadata(&component).unwrap().len()
    );
    assert_eq!(report["subscriptions"], serde_json::json!(["*"]));
    assert!(
        report["config_schema"]["properties"]["url"].is_object(),
        "{report}"
    );
    // `plugin` is the same command.
    let text = ok(cwd, &[], &["plugin", "check", component.to_str().unwrap()]);
    assert!(
        text.contains("is a valid connector") && text.contains("config schema"),
        "{text}"
    );
    // Refused files: not wasm, a truncated component; the reason is the loader's.
    std::fs::write(cwd.join("junk.wasm"), b"not wasm at all").unwrap();
    let (_, err) = exits(cwd, &[], &["plugins", "check", "junk.wasm"], 1);
    assert!(
        err.contains("would be refused") && err.contains("not a WebAssembly file"),
        "{err}"
    );
    let bytes = std::fs::read(&component).unwrap();
    std::fs::write(cwd.join("cut.wasm"), &bytes[..bytes.len() / 2]).unwrap();
    let (_, err) = exits(cwd, &[], &["plugins", "check", "cut.wasm"], 1);
    assert!(err.contains("would be refused"), "{err}");
    // Checking created nothing here.
    let left: Vec<_> = std::fs::read_dir(cwd)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
}
