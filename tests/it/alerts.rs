//! Alerts on repeated failure, end to end: a connection whose target answers
//! 500 opens one incident after `alerts.failure_threshold` failed runs, sends
//! one signed webhook notice and one Sentry event (checked on a fake Sentry on
//! 127.0.0.1 that parses the envelope), none for the failures after, and a
//! recovery notice of each when the target is back. A dead job and an open
//! circuit open incidents too; a webhook that does not answer within
//! `alerts.timeout` is recorded as not delivered.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use recoco_sync::intake::standard_webhooks;
use recoco_sync_tests::fakes::target::{Received, Target};
use recoco_sync_tests::service::{source_block, TestService, FAST_QUEUE, SOURCE};
use recoco_sync_tests::webhook::envelope;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);
const ALERT_SECRET: &str = "alert-signing-secret-0001";
/// The forward connection's own secret: must never reach a notice.
const FORWARD_SECRET: &str = "forward-secret-never-in-alerts";
/// Put in every event's payload: must never reach a notice.
const PAYLOAD_MARK: &str = "payload-marker-never-in-alerts";

/// A Sentry ingestion endpoint on 127.0.0.1 that keeps every event of every
/// envelope it is sent (`POST /api/{project}/envelope/`).
#[derive(Clone, Default)]
struct FakeSentry {
    events: Arc<Mutex<Vec<Value>>>,
    raw: Arc<Mutex<Vec<String>>>,
}

impl FakeSentry {
    async fn start() -> (Self, String) {
        let me = Self::default();
        let router = Router::new()
            .route("/api/{project}/envelope/", post(envelope_in))
            .with_state(me.clone());
        let base = recoco_sync_tests::fakes::serve(router).await;
        let dsn = base.replace("http://", "http://public@") + "/1";
        (me, dsn)
    }

    fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    async fn wait_for(&self, n: usize) -> Vec<Value> {
        recoco_sync_tests::wait_for(&format!("{n} Sentry event(s)"), WAIT, || async {
            let got = self.events();
            (got.len() >= n).then_some(got)
        })
        .await
    }
}

/// Parses an envelope: a header line, then items (a header line with `type`
/// and optional `length`, then the payload).
fn parse_envelope(body: &[u8]) -> Vec<(Value, Vec<u8>)> {
    let mut items = Vec::new();
    let mut rest = body;
    let line = |rest: &mut &[u8]| -> Option<Vec<u8>> {
        if rest.is_empty() {
            return None;
        }
        let end = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
        let out = rest[..end].to_vec();
        *rest = &rest[(end + 1).min(rest.len())..];
        Some(out)
    };
    let header = line(&mut rest).expect("envelope header");
    serde_json::from_slice::<Value>(&header).expect("envelope header is JSON");
    while let Some(item_header) = line(&mut rest) {
        if item_header.is_empty() {
            continue;
        }
        let h: Value = serde_json::from_slice(&item_header).expect("item header is JSON");
        let payload = match h["length"].as_u64() {
            Some(len) => {
                let len = len as usize;
                let p = rest[..len].to_vec();
                rest = &rest[len..];
                if rest.first() == Some(&b'\n') {
                    rest = &rest[1..];
                }
                p
            }
            None => line(&mut rest).unwrap_or_default(),
        };
        items.push((h, payload));
    }
    items
}

async fn envelope_in(
    State(me): State<FakeSentry>,
    headers: HeaderMap,
    body: Bytes,
) -> &'static str {
    let auth = headers
        .get("x-sentry-auth")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(auth.contains("sentry_key=public"), "auth: {auth}");
    me.raw
        .lock()
        .unwrap()
        .push(String::from_utf8_lossy(&body).into_owned());
    for (header, payload) in parse_envelope(&body) {
        if header["type"] == "event" {
            me.events
                .lock()
                .unwrap()
                .push(serde_json::from_slice(&payload).expect("event is JSON"));
        }
    }
    "{}"
}

/// `delivery`: the connection's `[connections.delivery]` lines.
fn config(target: &Target, hooks: &Target, dsn: &str, alerts: &str, delivery: &str) -> String {
    format!(
        "{FAST_QUEUE}\n[alerts]\nwebhook_url = \"{}/alerts\"\nwebhook_secret = {ALERT_SECRET:?}\nsentry_dsn = {dsn:?}\n{alerts}\n{}\
         [[connections]]\nname = \"crm\"\nsource = {SOURCE:?}\nplugin = \"http-forward\"\n\
         [connections.config]\nurl = \"{}/hooks/recoco\"\nsecret = {FORWARD_SECRET:?}\n\
         [connections.delivery]\n{delivery}\n",
        hooks.url,
        source_block(None),
        target.url
    )
}

fn body(n: i64) -> Vec<u8> {
    envelope(
        "projects.Project",
        "update",
        json!({"id": n, "name": PAYLOAD_MARK}),
    )
}

/// Checks a notice's Standard Webhooks signature with the configured secret.
fn verified(r: &Received) -> Value {
    let key = standard_webhooks::key_from_secret(ALERT_SECRET).unwrap();
    standard_webhooks::verify(
        &[key],
        r.header("webhook-id"),
        r.header("webhook-timestamp"),
        r.header("webhook-signature"),
        &r.body,
        chrono::Utc::now().timestamp(),
        Duration::from_secs(300),
    )
    .unwrap_or_else(|e| panic!("notice signature: {e}"));
    let text = String::from_utf8_lossy(&r.body);
    assert!(!text.contains(PAYLOAD_MARK), "payload in a notice: {text}");
    assert!(!text.contains(FORWARD_SECRET), "secret in a notice: {text}");
    r.json()
}

fn alerts_of(svc_json: &Value) -> Vec<Value> {
    svc_json["alerts"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn repeated_failures_open_one_incident_with_one_notice_and_a_recovery() {
    let target = Target::start().await;
    target.set_default_status(500);
    let hooks = Target::start().await;
    let (sentry, dsn) = FakeSentry::start().await;
    // Many attempts, so the job keeps failing without going dead.
    let svc = TestService::start(
        &config(
            &target,
            &hooks,
            &dsn,
            "failure_threshold = 3",
            "max_attempts = 20\ncircuit_failures = 1000",
        ),
        &[],
    )
    .await;
    let answer = svc.send(body(1)).await;
    assert_eq!(answer.status, 200, "{:?}", answer.json);
    let event_id = answer.json["id"].as_str().unwrap().to_string();
    // Runs 1 and 2 fail: no incident yet.
    target.wait_for(2, WAIT).await;
    let listed = svc.admin(reqwest::Method::GET, "/alerts").await;
    assert_eq!(listed.status, 200);
    assert_eq!(
        alerts_of(&listed.json)
            .iter()
            .filter(|a| a["state"] == "open")
            .count(),
        0,
        "{:?}",
        listed.json
    );
    // The third failed run opens it: one webhook notice, one Sentry event.
    let notices = hooks.wait_for(1, WAIT).await;
    let opened = verified(&notices[0]);
    assert_eq!(opened["type"], "incident.opened", "{opened}");
    assert_eq!(opened["data"]["connection"], "crm");
    assert_eq!(opened["data"]["reason"], "failures");
    assert_eq!(opened["data"]["event_id"], event_id.as_str());
    assert!(
        opened["data"]["failures"].as_i64().unwrap() >= 3,
        "{opened}"
    );
    assert!(
        opened["data"]["last_error"]
            .as_str()
            .unwrap()
            .contains("500"),
        "{opened}"
    );
    let id = notices[0].header("webhook-id").unwrap().to_string();
    assert!(
        id.starts_with("incident_") && id.ends_with("_opened"),
        "{id}"
    );
    let events = sentry.wait_for(1).await;
    let e = &events[0];
    // The SDK leaves out `level` when it is `error`, Sentry's default.
    assert!(e["level"].is_null() || e["level"] == "error", "{e}");
    assert_eq!(e["tags"]["connection"], "crm");
    assert_eq!(e["tags"]["plugin"], "http-forward");
    assert_eq!(
        e["tags"]["plugin_version"],
        env!("CARGO_PKG_VERSION"),
        "the shipped plugin's version: {e}"
    );
    assert_eq!(e["extra"]["event_id"], event_id.as_str());
    assert!(e["extra"]["attempt"].as_i64().unwrap() >= 1, "{e}");
    assert_eq!(e["environment"], "production");
    assert_eq!(
        e["release"],
        format!("recoco-sync@{}", env!("CARGO_PKG_VERSION")),
        "{e}"
    );
    assert!(
        e["message"].as_str().unwrap().contains("consecutive"),
        "{e}"
    );
    for raw in sentry.raw.lock().unwrap().iter() {
        assert!(!raw.contains(PAYLOAD_MARK), "payload sent to Sentry: {raw}");
        assert!(
            !raw.contains(FORWARD_SECRET),
            "secret sent to Sentry: {raw}"
        );
    }
    // More failures of the same connection, another event too: still one incident.
    let more = svc.send(body(2)).await;
    assert_eq!(more.status, 200);
    let before = target.received().len();
    target.wait_for(before + 4, WAIT).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(hooks.received().len(), 1, "one notice per incident");
    assert_eq!(sentry.events().len(), 1, "one Sentry event per incident");
    let listed = svc.admin(reqwest::Method::GET, "/alerts?state=open").await;
    let open = alerts_of(&listed.json);
    assert_eq!(open.len(), 1, "{:?}", listed.json);
    assert_eq!(listed.json["open"], 1);
    assert!(open[0]["opened_notified_at"].is_string(), "{:?}", open[0]);
    assert_eq!(open[0]["notify_error"], Value::Null);
    // The target is back: the next run succeeds and resolves the incident.
    target.set_default_status(200);
    let notices = hooks.wait_for(2, WAIT).await;
    let resolved = verified(&notices[1]);
    assert_eq!(resolved["type"], "incident.resolved", "{resolved}");
    assert_eq!(resolved["data"]["state"], "resolved");
    assert_eq!(resolved["data"]["id"], opened["data"]["id"]);
    let events = sentry.wait_for(2).await;
    assert_eq!(events[1]["level"], "info");
    assert!(events[1]["message"].as_str().unwrap().contains("recovered"));
    let listed = svc.admin(reqwest::Method::GET, "/alerts").await;
    let all = alerts_of(&listed.json);
    assert_eq!(all.len(), 1, "{:?}", listed.json);
    assert_eq!(all[0]["state"], "resolved");
    // The notice is recorded just after it is sent.
    recoco_sync_tests::wait_for("the recovery notice recorded", WAIT, || async {
        let listed = svc.admin(reqwest::Method::GET, "/alerts").await;
        alerts_of(&listed.json)[0]["resolved_notified_at"]
            .is_string()
            .then_some(())
    })
    .await;
    assert_eq!(listed.json["open"], 0);
    // Bad filters are refused with the field named.
    let bad = svc
        .admin(reqwest::Method::GET, "/alerts?state=closed")
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json["field"], "state");
    svc.stop().await;
}

#[tokio::test]
async fn a_dead_job_and_an_open_circuit_open_incidents() {
    // failure_threshold = 0: failures alone open nothing.
    let target = Target::start().await;
    target.set_default_status(500);
    let hooks = Target::start().await;
    let (sentry, dsn) = FakeSentry::start().await;
    let svc = TestService::start(
        &config(
            &target,
            &hooks,
            &dsn,
            "failure_threshold = 0",
            "max_attempts = 2\ncircuit_failures = 1000",
        ),
        &[],
    )
    .await;
    let answer = svc.send(body(3)).await;
    let event_id = answer.json["id"].as_str().unwrap().to_string();
    let job = svc.settled_event(&event_id, WAIT).await;
    assert_eq!(job.status, "failed");
    let notices = hooks.wait_for(1, WAIT).await;
    let opened = verified(&notices[0]);
    assert_eq!(opened["data"]["reason"], "dead", "{opened}");
    assert_eq!(opened["data"]["attempt"], 2);
    let e = &sentry.wait_for(1).await[0];
    assert_eq!(e["extra"]["attempt"], 2, "{e}");
    assert_eq!(e["tags"]["alert.reason"], "dead");
    svc.stop().await;

    // The circuit opens after 2 failures (threshold 0 again): reason circuit_open.
    let hooks = Target::start().await;
    let svc = TestService::start(
        &config(
            &target,
            &hooks,
            "",
            "failure_threshold = 0",
            "max_attempts = 20\ncircuit_failures = 2\ncircuit_cool_down = \"30s\"",
        )
        .replace("sentry_dsn = \"\"\n", ""),
        &[],
    )
    .await;
    svc.send(body(4)).await;
    let notices = hooks.wait_for(1, WAIT).await;
    let opened = verified(&notices[0]);
    assert_eq!(opened["data"]["reason"], "circuit_open", "{opened}");
    assert!(
        opened["data"]["summary"]
            .as_str()
            .unwrap()
            .contains("circuit open"),
        "{opened}"
    );
    svc.stop().await;
}

#[tokio::test]
async fn a_webhook_slower_than_the_timeout_is_recorded_as_not_delivered() {
    let target = Target::start().await;
    target.set_default_status(500);
    let hooks = Target::start().await;
    hooks.set_delay(Duration::from_secs(3));
    let svc = TestService::start(
        &config(
            &target,
            &hooks,
            "",
            "failure_threshold = 1\ntimeout = \"200ms\"",
            "max_attempts = 20\ncircuit_failures = 1000",
        )
        .replace("sentry_dsn = \"\"\n", ""),
        &[],
    )
    .await;
    svc.send(body(5)).await;
    // Three tries (after 0 s, 1 s, 4 s), each cut at 200 ms.
    let alert = recoco_sync_tests::wait_for("the notice error", WAIT, || async {
        let listed = svc.admin(reqwest::Method::GET, "/alerts").await;
        alerts_of(&listed.json)
            .into_iter()
            .find(|a| a["notify_error"].is_string())
    })
    .await;
    let error = alert["notify_error"].as_str().unwrap();
    assert!(error.contains("timed out after 200ms"), "{error}");
    assert!(!error.contains(&hooks.url), "no URL in the error: {error}");
    assert_eq!(alert["opened_notified_at"], Value::Null);
    assert_eq!(hooks.received().len(), 3, "three tries");
    svc.stop().await;
}
