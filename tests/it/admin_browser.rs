//! The admin page in a real headless Chromium: sign in with a key, visit every
//! view while a connector's description, task descriptions, summary, error and
//! progress message (and a refused plugin's task name) carry
//! `x"><img src=x onerror=…>`; nothing may become an element or run.
//!
//! Needs Debian's `chromium` (or CHROMIUM=path), `node`, and
//! `npm ci` in tests/browser (playwright-core; never a browser download).
//! Skipped with a loud message when one is missing; failed when CI=true.

use std::path::{Path, PathBuf};
use std::time::Duration;

use recoco_sync::store::keys::{self, Scope};
use recoco_sync_tests::components;
use recoco_sync_tests::service::{source_block, TestService, FAST_QUEUE, SOURCE};

const MARK: &str = "<img src=x onerror=";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// The Chromium to drive, or why there is none.
fn requirements() -> Result<PathBuf, String> {
    let chromium =
        PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    if !chromium.exists() {
        return Err(format!(
            "{} is missing (apt-get install chromium)",
            chromium.display()
        ));
    }
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        return Err("node is missing".into());
    }
    if !browser_dir().join("node_modules/playwright-core").exists() {
        return Err("playwright-core is not installed (cd tests/browser && npm ci)".into());
    }
    Ok(chromium)
}

#[tokio::test]
async fn markup_from_a_connector_stays_inert_in_a_real_browser() {
    let chromium = match requirements() {
        Ok(path) => path,
        Err(why) => {
            eprintln!("\n!!!!!! SKIPPED: the admin page browser test cannot run: {why} !!!!!!\n");
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "CI=true: the browser test must run ({why})"
            );
            return;
        }
    };
    let xss = components::xss();
    let xss_name = components::xss_name();
    let config = format!(
        "{FAST_QUEUE}\n{}\n[[connections]]\nname = \"xss\"\nsource = {SOURCE:?}\nplugin = \"test-xss\"\n",
        source_block(None)
    );
    let svc =
        TestService::start(&config, &[("xss.wasm", &xss), ("xss-name.wasm", &xss_name)]).await;
    // The markup-named task was refused at load, with the name in the reason.
    let plugins = svc.admin(reqwest::Method::GET, "/plugins").await;
    let refused = plugins.json["refused"].as_array().unwrap();
    assert!(
        refused
            .iter()
            .any(|r| r["error"].as_str().unwrap().contains("kebab-case")),
        "{refused:?}"
    );
    // Jobs whose summary, error and progress carry the payload.
    for task in ["show", "fail"] {
        let answer = svc
            .admin(
                reqwest::Method::POST,
                &format!("/connections/xss/tasks/{task}"),
            )
            .await;
        assert_eq!(answer.status, 200, "{:?}", answer.json);
        let id = answer.json["job_id"].as_str().unwrap().to_string();
        let job = svc
            .job_in(
                &id,
                &["succeeded", "failed", "dead"],
                Duration::from_secs(30),
            )
            .await;
        let shown = job.last_error.or(job.summary).unwrap_or_default();
        assert!(shown.contains(MARK), "{task}: {shown}");
    }
    let key = keys::create(&svc.pool, "browser", Scope::Admin)
        .await
        .unwrap();
    let url = svc.url.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg("xss.mjs")
            .arg(&url)
            .arg(&key)
            .current_dir(browser_dir())
            .env("CHROMIUM", &chromium)
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "browser driver output is not JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    eprintln!("browser report: {report}");
    assert_eq!(report["errors"], serde_json::json!([]), "{report}");
    assert_eq!(report["who"], "browser (admin)");
    assert_eq!(report["signedInAfterReload"], true);
    assert_eq!(report["tabHash"], "#/plugins");
    for (view, min_text, min_titles) in [
        ("jobs", 2, 0),
        ("attention", 1, 0),
        ("connections", 0, 2),
        ("plugins", 2, 0),
        ("dashboard", 1, 0),
        ("alerts", 0, 0),
        ("events", 0, 0),
    ] {
        let v = &report["views"][view];
        assert_eq!(v["imgs"], 0, "{view}: markup became an element: {v}");
        assert_eq!(
            v["xss"],
            serde_json::Value::Null,
            "{view}: the payload ran: {v}"
        );
        assert_eq!(
            v["csp"],
            serde_json::json!([]),
            "{view}: something tried to run or load: {v}"
        );
        assert!(
            v["markAsText"].as_i64().unwrap() >= min_text,
            "{view}: the payload is not shown as text: {v}"
        );
        assert!(
            v["markInTitles"].as_i64().unwrap() >= min_titles,
            "{view}: task descriptions missing: {v}"
        );
    }
    // The session lives in an HttpOnly, SameSite=Strict cookie, nowhere else.
    assert_eq!(report["cookie"]["httpOnly"], true, "{report}");
    assert_eq!(report["cookie"]["sameSite"], "Strict");
    assert_eq!(report["documentCookie"], "");
    assert_eq!(report["localStorage"], 0);
    assert_eq!(report["afterSignOut"], 401);
    svc.stop().await;
}

/// The console as an operator uses it, in a real headless Chromium (see
/// tests/browser/console.mjs): sign in with a key; create a connection with
/// the form; a webhook that fails opens an alert and leaves a dead job; the
/// connection is fixed and the job retried by a confirmed bulk action; the
/// event's detail shows it succeed with every attempt; a reload keeps the
/// view; a `sync-all`'s progress bar moves; an action's error stays on
/// screen; every view fits 400 px. Screenshots of the dashboard and the event
/// detail are saved under target/browser-artifacts (their paths printed).
#[tokio::test]
async fn an_operator_follows_a_failure_to_its_fix_and_watches_a_sync_in_the_console() {
    use std::sync::Arc;

    use axum::routing::post;
    use recoco_sync_tests::fakes::grist::{FakeGrist, API_KEY};
    use recoco_sync_tests::fakes::recoco::FakeRecoco;
    use recoco_sync_tests::fakes::target::Target;
    use serde_json::json;

    let chromium = match requirements() {
        Ok(path) => path,
        Err(why) => {
            eprintln!(
                "\n!!!!!! SKIPPED: the admin console browser test cannot run: {why} !!!!!!\n"
            );
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "CI=true: the browser test must run ({why})"
            );
            return;
        }
    };
    let started = std::time::Instant::now();
    let bad = Target::start().await;
    bad.set_default_status(500);
    let good = Target::start().await;
    let recoco = FakeRecoco::start().await;
    recoco.with(|s| s.questions = crate::grist::questions());
    for id in 1..=200 {
        recoco.add_project(crate::grist::project(id, id));
    }
    let grist = FakeGrist::start().await;
    let doc = grist.create_doc();
    let config = format!(
        "{}{FAST_QUEUE}\n[alerts]\nfailure_threshold = 2\n\
         [[connections]]\nname = \"crm\"\nsource = {SOURCE:?}\nplugin = \"http-forward\"\nallowed_hosts = [\"127.0.0.1\"]\n\
         [connections.config]\nurl = \"{}/hooks\"\nsecret = \"forward-secret-000000001\"\n\
         [connections.delivery]\nmax_attempts = 2\ncircuit_failures = 1000\n{}",
        source_block(Some(&recoco.api_url)),
        bad.url,
        crate::grist::connection(&grist.api_url, API_KEY, &doc, "")
    );
    let svc = TestService::start(&config, &[]).await;
    let setup = crate::grist::run_task(&svc, "setup", json!({})).await;
    assert_eq!(setup.state, "succeeded", "{setup:?}");
    // Each page of 100 projects takes a while: the bar has time to move.
    recoco.with(|s| s.latency = Duration::from_millis(40));

    // The test's control server: the driver asks it to send a webhook.
    let counter = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let (webhook_url, counter2) = (format!("{}/api/webhook/{SOURCE}", svc.url), counter.clone());
    let control = recoco_sync_tests::fakes::serve(axum::Router::new().route(
        "/send",
        post(move || {
            let (url, counter) = (webhook_url.clone(), counter2.clone());
            async move {
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let body = recoco_sync_tests::webhook::envelope(
                    "tasks.Task",
                    "update",
                    json!({"id": 4000 + n, "status": 1, "project": 1}),
                );
                let headers = recoco_sync_tests::webhook::headers(
                    &body,
                    &[recoco_sync_tests::service::SECRET],
                    recoco_sync_tests::webhook::now_secs(),
                );
                let mut request = reqwest::Client::new().post(url).body(body);
                for (k, v) in headers {
                    request = request.header(k, v);
                }
                let answer: serde_json::Value = request.send().await.unwrap().json().await.unwrap();
                axum::Json(json!({"event_id": answer["id"]}))
            }
        }),
    ))
    .await;
    let key = keys::create(&svc.pool, "operator", Scope::Admin)
        .await
        .unwrap();
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/browser-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let artifacts = artifacts.canonicalize().unwrap();
    let (url, bad_url, good_url) = (svc.url.clone(), bad.url.clone(), good.url.clone());
    let dir = artifacts.clone();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg("console.mjs")
            .arg(&url)
            .arg(&key)
            .arg(&control)
            .arg(&dir)
            .current_dir(browser_dir())
            .env("CHROMIUM", &chromium)
            .env("BAD_TARGET", &bad_url)
            .env("GOOD_TARGET", &good_url)
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let r: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "browser driver output is not JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    eprintln!("console report: {r}");
    assert_eq!(r["errors"], json!([]), "{r}");
    assert_eq!(r["csp"], json!([]), "nothing tried to run or load: {r}");
    // The form's request, on the managed API's shape (201 once it exists).
    let create = &r["createRequest"];
    assert_eq!(create["method"], "POST");
    assert_eq!(create["csrf"], true, "{r}");
    assert_eq!(create["body"]["name"], "crm-ui");
    assert_eq!(create["body"]["source"], SOURCE);
    assert_eq!(create["body"]["plugin"], "http-forward");
    assert_eq!(create["body"]["config"]["url"], format!("{}/ui", bad.url));
    assert_eq!(create["body"]["allowed_hosts"], json!(["127.0.0.1"]));
    assert_eq!(create["body"]["enabled"], true);
    assert_eq!(
        r["apiPresent"], true,
        "the form created the connection (201): {r}"
    );
    assert_eq!(
        r["editShowsSecret"], false,
        "the edit form never holds the secret: {r}"
    );
    let failing = "crm-ui";
    let alert_rows = r["alertRows"].as_array().unwrap();
    assert!(
        alert_rows.iter().any(|row| {
            let t = row.as_str().unwrap();
            t.contains(failing) && t.contains("open")
        }),
        "{r}"
    );
    assert!(
        r["alertBadge"]
            .as_str()
            .unwrap()
            .trim()
            .parse::<i64>()
            .unwrap()
            >= 1
    );
    let event_id = r["eventId"].as_str().unwrap();
    assert!(
        r["failedJobRows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|row| row.as_str().unwrap().contains(event_id)),
        "{r}"
    );
    assert!(
        r["filterError"].as_str().unwrap().contains("since"),
        "the field is named: {r}"
    );
    let confirm = r["confirmText"].as_str().unwrap();
    assert!(
        confirm.starts_with("Retry 1 failed/dead job(s)") && confirm.contains(failing),
        "{confirm}"
    );
    assert!(r["bulkNotice"]
        .as_str()
        .unwrap()
        .contains("1 job(s) queued again"));
    // Every attempt shown: two failures (the second made it dead), then the success.
    let attempts: Vec<&str> = r["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(attempts.iter().any(|a| a.contains("retry")), "{attempts:?}");
    assert!(attempts.iter().any(|a| a.contains("dead")), "{attempts:?}");
    assert!(
        attempts.iter().any(|a| a.contains("succeeded")),
        "{attempts:?}"
    );
    assert_eq!(r["eventDetailHasPayload"], true);
    assert_eq!(r["eventDetailHasHeaders"], true);
    assert_eq!(r["deepLinkKept"], true);
    // The progress bar moved through several values before the end.
    let progress = r["progress"].as_array().unwrap();
    let values: std::collections::BTreeSet<i64> = progress
        .iter()
        .filter(|p| p["state"] == "running")
        .map(|p| p["value"].as_f64().unwrap() as i64)
        .collect();
    assert!(
        values.len() >= 2,
        "the bar moved while running: {progress:?}"
    );
    assert_eq!(
        progress.last().unwrap()["state"],
        "succeeded",
        "{progress:?}"
    );
    assert!(
        r["progressText"].as_str().unwrap().contains("200 of 200"),
        "{r}"
    );
    assert!(r["dashboard"]["bars"].as_i64().unwrap() >= 1, "{r}");
    assert!(
        r["actionError"].as_str().unwrap().contains("disabled"),
        "{r}"
    );
    assert_eq!(r["actionError"], r["actionErrorAfterRefresh"], "{r}");
    let plugins = r["pluginsView"].as_str().unwrap_or_default();
    assert!(
        plugins.contains("Replicas") && plugins.contains("(this one)") && plugins.contains(" on 1"),
        "the plugins view shows the replicas and what they serve: {plugins}"
    );
    assert_eq!(r["bulkStatusWithoutCsrf"], 403);
    for (view, v) in r["narrow"].as_object().unwrap() {
        assert!(
            v["overflow"].as_i64().unwrap() <= 0,
            "{view} overflows 400 px: {v}"
        );
        assert_eq!(v["tabsVisible"], true, "{view}: {v}");
        assert!(v["text"].as_i64().unwrap() > 0, "{view}: {v}");
    }
    for name in ["dashboard", "event", "narrow"] {
        let path = r["screenshots"][name].as_str().unwrap();
        assert!(
            std::fs::metadata(path)
                .map(|m| m.len() > 1000)
                .unwrap_or(false),
            "screenshot {path}"
        );
        println!("screenshot ({name}): {path}");
    }
    // What the browser did, the database agrees with.
    let job = &svc.jobs_of_event(event_id).await;
    let mine = job.iter().find(|j| j.connection == failing).unwrap();
    assert_eq!(mine.state, "succeeded", "{mine:?}");
    assert!(
        !good.received().is_empty(),
        "the edited connection reached the good target"
    );
    eprintln!("console browser test took {:?}", started.elapsed());
    svc.stop().await;
}
