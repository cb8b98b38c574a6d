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
    for (view, min_text, min_titles) in [
        ("jobs", 2, 0),
        ("connections", 0, 2),
        ("plugins", 2, 0),
        ("overview", 0, 0),
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
