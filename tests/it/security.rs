//! Every sandbox attack of `test-malicious` at once, one connection per attack,
//! while a benign `http-forward` connection keeps receiving events. For each:
//! contained with a clear recorded error (or a harmless outcome), `/healthz`
//! answering, the benign events delivered in time, no credential at the wrong
//! recorder, no secret in what is stored or logged, disk growth bounded.
//! SECURITY.md's table is this test's observations.

use std::path::Path;
use std::time::{Duration, Instant};

use recoco_sync::queue::jobs::JobView;
use recoco_sync_tests::fakes::target::Target;
use recoco_sync_tests::service::{source_block, TestService, FAST_QUEUE, SOURCE};
use recoco_sync_tests::webhook::python_dumps;
use recoco_sync_tests::{components, logs};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);
/// How long a benign event may take to reach its target while the attacks run.
const BENIGN_IN_TIME: Duration = Duration::from_secs(20);
const SECRET: &str = "malicious-secret-0123456789";

/// An envelope with its own `webhook_uuid` (so no two are duplicates).
fn envelope(object_type: &str, object: serde_json::Value) -> Vec<u8> {
    let value = json!({
        "topic": format!("{object_type}/update"),
        "object": object,
        "object_type": object_type,
        "webhook_uuid": uuid::Uuid::new_v4().to_string(),
    });
    python_dumps(&value).into_bytes()
}

fn attack_connection(attack: &str, allowed: &[String], config: &str, limits: &str) -> String {
    format!(
        "[[connections]]\nname = \"mal-{attack}\"\nsource = {SOURCE:?}\nplugin = \"test-malicious\"\n\
         allowed_hosts = {allowed:?}\n[connections.config]\nattack = {attack:?}\nsecret = {SECRET:?}\n{config}{limits}"
    )
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| {
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                dir_size(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

fn host_of(url: &str) -> String {
    url.trim_start_matches("http://").to_string()
}

#[tokio::test]
async fn every_sandbox_attack_is_contained_while_a_benign_connection_runs() {
    let portal = Target::start().await; // the right recorder of the credentials
    let wrong = Target::start().await; // where the redirect sends them
    let flood = Target::start().await;
    let benign = Target::start().await;
    portal.script_with_headers(302, &[("location", &format!("{}/stolen", wrong.url))]);
    let port = host_of(&benign.url).rsplit(':').next().unwrap().to_string();

    let ip_grant = vec!["127.0.0.1".to_string()];
    let any = vec!["*".to_string()];
    let none: Vec<String> = vec![];
    let mut config = format!(
        "{}{FAST_QUEUE}[runtime]\ndeadline = \"2s\"\nevent_timeout = \"20s\"\nmemory_limit = 33554432\nmax_log_lines = 500\n",
        source_block(None)
    );
    let attacks: Vec<(&str, Vec<String>, String, &str)> = vec![
        (
            "leak-on-redirect",
            vec![host_of(&portal.url), host_of(&wrong.url)],
            format!("url = \"{}/start\"\n", portal.url),
            "",
        ),
        ("call-the-host", ip_grant.clone(), String::new(), ""),
        (
            "private-name",
            vec![format!("localhost:{port}")],
            format!("private_url = \"http://localhost:{port}/private\"\n"),
            "",
        ),
        ("cloud-metadata", any.clone(), String::new(), ""),
        ("host-call-loop", none.clone(), String::new(), ""),
        ("cpu-loop", none.clone(), String::new(), ""),
        ("eat-memory", none.clone(), String::new(), ""),
        ("deep-recursion", none.clone(), String::new(), ""),
        ("huge-summary", none.clone(), String::new(), ""),
        ("huge-error", none.clone(), String::new(), ""),
        ("log-flood", none.clone(), String::new(), ""),
        ("stdout-flood", none.clone(), String::new(), ""),
        (
            "state-flood",
            none.clone(),
            String::new(),
            "[connections.limits]\nmax_state_keys = 50\n",
        ),
        (
            "schedule-flood",
            none.clone(),
            String::new(),
            "[connections.limits]\nmax_pending_tasks = 50\n",
        ),
        (
            "request-flood",
            vec![host_of(&flood.url)],
            format!("url = \"{}/flood\"\n", flood.url),
            "[connections.limits]\nmax_requests = 25\n",
        ),
        (
            "escape-wasi",
            none.clone(),
            format!("url = \"{}/escape\"\n", benign.url),
            "",
        ),
        ("leak-secret", none.clone(), String::new(), ""),
        ("leak-secret-error", none.clone(), String::new(), ""),
    ];
    for (attack, allowed, extra, limits) in &attacks {
        config.push_str(&attack_connection(attack, allowed, extra, limits));
    }
    config.push_str(&format!(
        "[[connections]]\nname = \"benign\"\nsource = {SOURCE:?}\nplugin = \"http-forward\"\n\
         [connections.config]\nurl = \"{}/benign\"\nsecret = \"forward-secret-1\"\nevents = [\"tags.Tag\"]\n",
        benign.url
    ));
    let svc = TestService::start(&config, &[("malicious.wasm", &components::malicious())]).await;
    let disk_before = dir_size(svc.dir.path());

    // One event launches every attack (and is ignored by the benign connection).
    let answer = svc
        .send(envelope(
            "projects.Project",
            json!({"id": 1, "admin_url": format!("{}/admin/api/connections", svc.url)}),
        ))
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.json);
    let attack_event = answer.json["id"].as_str().unwrap().to_string();

    // Meanwhile benign events keep coming, and each arrives in time.
    for n in 0..6u64 {
        let sent = Instant::now();
        let answer = svc.send(envelope("tags.Tag", json!({"id": 100 + n}))).await;
        assert_eq!(answer.status, 200);
        benign.wait_for(n as usize + 1, BENIGN_IN_TIME).await;
        assert!(sent.elapsed() < BENIGN_IN_TIME);
        let health = svc
            .client
            .get(format!("{}/healthz", svc.url))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200, "healthz answers during the attacks");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    svc.settled_event(&attack_event, WAIT).await;
    let jobs = svc.jobs_of_event(&attack_event).await;
    let job = |attack: &str| -> JobView {
        let name = format!("mal-{attack}");
        jobs.iter()
            .find(|j| j.connection == name)
            .unwrap_or_else(|| panic!("no job for {name}"))
            .clone()
    };
    let failed_with = |attack: &str, needles: &[&str]| {
        let j = job(attack);
        assert_eq!(j.state, "failed", "{attack}: {j:?}");
        let error = j.last_error.clone().unwrap_or_default();
        for needle in needles {
            assert!(
                error.contains(needle),
                "{attack}: {error:?} lacks {needle:?}"
            );
        }
        assert!(
            error.len() <= 17 * 1024,
            "{attack}: error of {} bytes",
            error.len()
        );
        println!("{attack}: failed: {}", &error[..error.len().min(300)]);
    };
    let mut contained = 0;

    // Credentials never follow a redirect to another origin.
    let j = job("leak-on-redirect");
    assert_eq!(j.state, "succeeded", "{j:?}");
    let at_portal = portal.received();
    assert!(at_portal[0]
        .header("authorization")
        .is_some_and(|v| v.contains(SECRET)));
    let stolen = wrong.received();
    assert_eq!(stolen.len(), 1, "the redirect was followed");
    assert_eq!(stolen[0].header("x-harmless"), Some("1"));
    for request in &stolen {
        for (name, value) in &request.headers {
            assert!(
                !value.contains(SECRET),
                "credential {name} reached the wrong recorder"
            );
        }
    }
    println!("leak-on-redirect: followed, credentials dropped");
    contained += 1;

    failed_with(
        "call-the-host",
        &["refused by the host", "address of this service"],
    );
    contained += 1;
    failed_with("private-name", &["resolves only to private addresses"]);
    assert!(benign.received().iter().all(|r| r.path != "/private"));
    contained += 1;
    failed_with("cloud-metadata", &["not allowed", "169.254.169.254"]);
    contained += 1;
    failed_with("host-call-loop", &["CPU deadline of 2s"]);
    contained += 1;
    failed_with("cpu-loop", &["CPU deadline of 2s"]);
    contained += 1;
    // Wall time to reach 2 s of CPU (more on a loaded machine: CPU is measured).
    for attack in ["host-call-loop", "cpu-loop"] {
        let attempt = &svc.attempts(&job(attack).id).await[0];
        println!(
            "{attack}: stopped after {} ms of wall time",
            attempt.duration_ms
        );
    }
    failed_with("eat-memory", &["memory limit of 32 MiB"]);
    contained += 1;
    failed_with("deep-recursion", &["stack overflow"]);
    contained += 1;

    // A 20 MB summary or error is stored cut, with a marker.
    let j = job("huge-summary");
    assert_eq!(j.state, "succeeded", "{j:?}");
    let summary = j.summary.clone().unwrap();
    assert!(
        summary.len() <= 17 * 1024,
        "summary of {} bytes",
        summary.len()
    );
    assert!(
        summary.contains("[cut: "),
        "{}",
        &summary[summary.len() - 60..]
    );
    println!("huge-summary: stored {} bytes", summary.len());
    contained += 1;
    failed_with("huge-error", &["[cut: "]);
    contained += 1;

    // Floods of log lines are cut at the quota, then one line says how many.
    for (attack, marker) in [
        ("log-flood", "flood line "),
        ("stdout-flood", "stdout flood line "),
    ] {
        let j = job(attack);
        let name = format!("mal-{attack}");
        let lines: Vec<String> = logs::containing(marker)
            .into_iter()
            .filter(|l| l.contains(&name))
            .collect();
        // At most the quota per run (a run stopped by its deadline runs once more).
        let runs = svc.attempts(&j.id).await.len();
        assert!(
            lines.len() <= 500 * runs,
            "{attack}: {} lines logged in {runs} run(s)",
            lines.len()
        );
        let dropped = logs::containing("lines dropped");
        assert!(
            dropped.iter().any(|l| l.contains(&name)),
            "{attack}: no \"lines dropped\" line"
        );
        println!(
            "{attack}: {} ({} lines logged) {}",
            j.state,
            lines.len(),
            j.last_error.as_deref().unwrap_or_default()
        );
        contained += 1;
    }

    // State and scheduled tasks stop at the connection's quota.
    failed_with("state-flood", &["state quota exceeded", "50 entries"]);
    let stored: i64 = recoco_sync::store::sql::query_scalar(
        "SELECT count(*) FROM connection_state s JOIN connections c ON c.id = s.connection_id WHERE c.name = 'mal-state-flood'",
    )
    .fetch_one(&svc.pool)
    .await
    .unwrap();
    assert_eq!(stored, 50);
    contained += 1;
    failed_with(
        "schedule-flood",
        &["task quota exceeded", "50 scheduled tasks"],
    );
    let pending: i64 = recoco_sync::store::sql::query_scalar(
        "SELECT count(*) FROM jobs j JOIN connections c ON c.id = j.connection_id WHERE c.name = 'mal-schedule-flood' AND j.kind = 'task'",
    )
    .fetch_one(&svc.pool)
    .await
    .unwrap();
    assert_eq!(pending, 50);
    contained += 1;
    failed_with(
        "request-flood",
        &["quota exceeded", "25 requests per invocation"],
    );
    assert_eq!(flood.received().len(), 25);
    contained += 1;

    // No file, no environment, no socket, no name resolution.
    let j = job("escape-wasi");
    assert_eq!(j.state, "succeeded", "{j:?}");
    assert!(benign.received().iter().all(|r| r.path != "/escape"));
    println!("escape-wasi: {}", j.summary.clone().unwrap());
    contained += 1;

    // The decrypted secret is redacted in the summary, the error and every log line.
    let j = job("leak-secret");
    assert_eq!(j.state, "succeeded");
    assert_eq!(
        j.summary.as_deref(),
        Some("summary: the secret is [redacted]")
    );
    failed_with("leak-secret-error", &["error: the secret is [redacted]"]);
    let leaked = logs::containing("the secret is [redacted]");
    for channel in ["stdout: ", "stderr: ", "mal-leak-secret"] {
        assert!(
            leaked.iter().any(|l| l.contains(channel)),
            "no redacted line from {channel}"
        );
    }
    assert!(
        logs::containing(SECRET).is_empty(),
        "the secret reached the log"
    );
    let stored_anywhere: i64 = recoco_sync::store::sql::query_scalar(
        "SELECT count(*) FROM jobs WHERE coalesce(summary, '') || coalesce(last_error, '') LIKE '%' || ? || '%'",
    )
    .bind(SECRET)
    .fetch_one(&svc.pool)
    .await
    .unwrap();
    assert_eq!(stored_anywhere, 0);
    for target in [&flood, &benign, &wrong] {
        assert!(target
            .received()
            .iter()
            .all(|r| !String::from_utf8_lossy(&r.body).contains(SECRET)));
    }
    contained += 2;

    // Bounded disk: the floods stored kilobytes, not gigabytes.
    let growth = dir_size(svc.dir.path()).saturating_sub(disk_before);
    assert!(
        growth < 32 << 20,
        "the data directory grew by {growth} bytes"
    );
    println!("disk growth: {} KiB", growth / 1024);

    assert_eq!(contained, attacks.len());
    println!("attacks contained: {contained}/{}", attacks.len());
    let health = svc
        .client
        .get(format!("{}/healthz", svc.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    svc.stop().await;
}

/// The host-held Recoco JWT never follows a redirect off the API's origin: a
/// portal answering `302` to another host gets a clear refusal, and the other
/// host receives nothing.
#[tokio::test]
async fn the_source_api_never_follows_a_redirect_off_its_origin() {
    use axum::routing::{get, post};
    let wrong = Target::start().await;
    let elsewhere = format!("{}/api/projects/1312/", wrong.url);
    let portal = recoco_sync_tests::fakes::serve(
        axum::Router::new()
            .route(
                "/api/token/",
                post(|| async { axum::Json(json!({"access": "jwt-access-0123456789", "refresh": "jwt-refresh-0123456789"})) }),
            )
            .route(
                "/api/projects/1312/",
                get(move || {
                    let to = elsewhere.clone();
                    async move { (axum::http::StatusCode::FOUND, [("location", to)]) }
                }),
            ),
    )
    .await;
    let target = Target::start().await;
    let config = format!(
        "{}{FAST_QUEUE}[[connections]]\nname = \"echo\"\nsource = {SOURCE:?}\nplugin = \"test-echo\"\n\
         [connections.config]\nurl = \"{}/echo\"\nsource_path = \"/projects/1312/\"\n",
        source_block(Some(&format!("{portal}/api"))),
        target.url
    );
    let svc = TestService::start(&config, &[("echo.wasm", &components::echo())]).await;
    let answer = svc
        .send(envelope("projects.Project", json!({"id": 1312})))
        .await;
    let event_id = answer.json["id"].as_str().unwrap().to_string();
    svc.settled_event(&event_id, WAIT).await;
    let job = svc.jobs_of_event(&event_id).await.remove(0);
    let summary: serde_json::Value = serde_json::from_str(job.summary.as_deref().unwrap()).unwrap();
    let error = summary["source_api"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("refused by the host") && error.contains("another origin"),
        "{summary}"
    );
    assert_eq!(summary["source_api"]["retryable"], false);
    assert!(!error.contains("jwt-access"), "{error}");
    assert!(wrong.received().is_empty(), "the JWT left the API's origin");
    svc.stop().await;
}

/// Behind a reverse proxy the service is reachable at an address it cannot
/// recognise; its `Via` pseudonym still is: every route answers `508` to a
/// request its own connectors sent.
#[tokio::test]
async fn the_service_answers_508_to_its_own_connectors_behind_a_proxy() {
    use std::sync::{Arc, Mutex};
    let upstream: Arc<Mutex<String>> = Arc::default();
    let proxy = {
        let upstream = upstream.clone();
        recoco_sync_tests::fakes::serve(axum::Router::new().fallback(
            move |method: axum::http::Method,
                  uri: axum::http::Uri,
                  headers: axum::http::HeaderMap,
                  body: axum::body::Bytes| {
                let base = upstream.lock().unwrap().clone();
                async move {
                    let mut request = reqwest::Client::new()
                        .request(method, format!("{base}{uri}"))
                        .body(body.to_vec());
                    for (name, value) in &headers {
                        if name != "host" {
                            request = request.header(name.as_str(), value.as_bytes());
                        }
                    }
                    let response = request.send().await.unwrap();
                    let status =
                        axum::http::StatusCode::from_u16(response.status().as_u16()).unwrap();
                    (status, response.text().await.unwrap())
                }
            },
        ))
        .await
    };
    let config = format!(
        "{}{FAST_QUEUE}[[connections]]\nname = \"mal\"\nsource = {SOURCE:?}\nplugin = \"test-malicious\"\n\
         allowed_hosts = [{:?}]\n[connections.config]\nattack = \"call-the-host\"\nadmin_url = \"{proxy}/admin/api/connections\"\n",
        source_block(None),
        host_of(&proxy)
    );
    let svc = TestService::start(&config, &[("malicious.wasm", &components::malicious())]).await;
    *upstream.lock().unwrap() = svc.url.clone();
    // The proxy itself works: an operator's request through it is answered.
    let through = svc
        .client
        .get(format!("{proxy}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(through.status(), 200);

    let answer = svc
        .send(envelope("projects.Project", json!({"id": 1})))
        .await;
    let event_id = answer.json["id"].as_str().unwrap().to_string();
    svc.settled_event(&event_id, WAIT).await;
    let job = svc.jobs_of_event(&event_id).await.remove(0);
    let summary = job.summary.unwrap_or_default();
    assert!(
        summary.starts_with("the host answered HTTP 508")
            && summary.contains("a connector may not call the service it runs in"),
        "{summary}"
    );
    assert!(
        !summary.contains("\"mal\""),
        "the admin API answered: {summary}"
    );
    svc.stop().await;
}
