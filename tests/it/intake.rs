//! Webhook intake against the real service: what is accepted, what is refused,
//! and that nothing accepted is lost.

use std::time::Duration;

use recoco_sync::store::events;
use recoco_sync_tests::service::{source_block, TestService, FAST_QUEUE, SECRET, SOURCE};
use recoco_sync_tests::webhook::{envelope, headers, now_secs};
use serde_json::json;

const FIXTURE_BODY: &[u8] = include_bytes!("../fixtures/webhook-task-lescommuns.json");
const FIXTURE_SECRET: &str = "demo-webhook-secret-42";
const FIXTURE_TS: i64 = 1767261600;
const FIXTURE_SIGNATURE: &str = "a7021c4956b79921e808b38786c8120d341eec8bbd6cdc2959c977818be50cdf";

async fn event_count(svc: &TestService) -> i64 {
    recoco_sync::store::sql::query_scalar("SELECT COUNT(*) FROM events")
        .fetch_one(&svc.pool)
        .await
        .unwrap()
}

fn project(id: i64) -> Vec<u8> {
    envelope(
        "projects.Project",
        "update",
        json!({"id": id, "name": "Halle"}),
    )
}

#[tokio::test]
async fn signed_webhook_is_stored_before_the_answer() {
    let svc = TestService::start(&format!("{}{FAST_QUEUE}", source_block(None)), &[]).await;
    let body = project(1312);
    let answer = svc.send(body.clone()).await;
    assert_eq!(answer.status, 200, "{:?}", answer.json);
    let id = answer.json["id"].as_str().expect("event id");
    assert!(id.starts_with("evt_"));
    assert_eq!(answer.json["status"], "ignored", "no connection subscribes");
    assert!(answer.json["message"].as_str().unwrap().contains("stored"));
    // The answer came after the commit: the event is there, byte for byte.
    let event = svc.event(id).await.expect("stored");
    assert_eq!(event.body, body);
    assert_eq!(event.source, SOURCE);
    assert_eq!(event.topic.as_deref(), Some("projects.Project/update"));
    assert_eq!(event.object_type.as_deref(), Some("projects.Project"));
    assert_eq!(event.object_id.as_deref(), Some("1312"));
    assert_eq!(event.action.as_deref(), Some("update"));
    assert_eq!(
        event.webhook_uuid.as_deref(),
        Some("6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e")
    );
    assert_eq!(event.remote_addr.as_deref(), Some("127.0.0.1"));
    assert!(event
        .headers
        .get("django-webhook-request-timestamp")
        .is_some());
    assert!(
        event.headers.get("django-webhook-signature-v1").is_none(),
        "signatures are not stored"
    );
    svc.stop().await;
}

#[tokio::test]
async fn the_reference_example_passes_and_one_changed_byte_does_not() {
    // The reference was signed on 2026-01-01: widen the window to accept it.
    let config = format!(
        "[intake]\ntimestamp_tolerance = \"3650days\"\n[[sources]]\ncode = \"portal\"\nsecrets = [{FIXTURE_SECRET:?}]\n"
    );
    let svc = TestService::start(&config, &[]).await;
    let mut h = headers(FIXTURE_BODY, &[], FIXTURE_TS);
    h.retain(|(k, _)| k != "django-webhook-signature-v1");
    h.push((
        "Django-Webhook-Signature-v1".into(),
        FIXTURE_SIGNATURE.into(),
    ));
    let ok = svc.post_webhook("portal", FIXTURE_BODY.to_vec(), &h).await;
    assert_eq!(ok.status, 200, "{:?}", ok.json);
    let mut tampered = FIXTURE_BODY.to_vec();
    tampered[40] ^= 1;
    let refused = svc.post_webhook("portal", tampered, &h).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.json, json!({"detail": "Invalid signature"}));
    assert_eq!(event_count(&svc).await, 1);
    svc.stop().await;
}

#[tokio::test]
async fn bad_signatures_and_timestamps_are_refused_and_nothing_is_stored() {
    let svc = TestService::start(&source_block(None), &[]).await;
    let body = project(1);
    let now = now_secs();
    type Case<'a> = (&'a str, Vec<(String, String)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "no signature",
            headers(&body, &[], now),
            "Missing Django-Webhook-Signature-v1",
        ),
        (
            "wrong secret",
            headers(&body, &["another-secret-value"], now),
            "Invalid signature",
        ),
        (
            "stale timestamp",
            headers(&body, &[SECRET], now - 3600),
            "Stale timestamp",
        ),
        (
            "future timestamp",
            headers(&body, &[SECRET], now + 3600),
            "Stale timestamp",
        ),
        (
            "no timestamp",
            headers(&body, &[SECRET], now)
                .into_iter()
                .filter(|(k, _)| k != "django-webhook-request-timestamp")
                .collect(),
            "Timestamp",
        ),
    ];
    for (case, h, expected) in cases {
        let answer = svc.post_webhook(SOURCE, body.clone(), &h).await;
        assert_eq!(answer.status, 401, "{case}: {:?}", answer.json);
        let detail = answer.json["detail"].as_str().unwrap();
        assert!(detail.contains(expected), "{case}: {detail}");
    }
    // A signature made for another body (a replayed capture with new bytes).
    let other = headers(&project(2), &[SECRET], now);
    assert_eq!(
        svc.post_webhook(SOURCE, body.clone(), &other).await.status,
        401
    );
    assert_eq!(event_count(&svc).await, 0);
    svc.stop().await;
}

#[tokio::test]
async fn any_signature_matching_any_secret_is_accepted() {
    let config = "[[sources]]\ncode = \"rotating\"\nsecrets = [\"new-secret-000001\", \"old-secret-000002\"]\n";
    let svc = TestService::start(config, &[]).await;
    let body = project(7);
    // Recoco still signs with the old secret and one we never had.
    let h = headers(
        &body,
        &["unknown-secret-9", "old-secret-000002"],
        now_secs(),
    );
    let answer = svc.post_webhook("rotating", body, &h).await;
    assert_eq!(answer.status, 200, "{:?}", answer.json);
    svc.stop().await;
}

#[tokio::test]
async fn unknown_code_is_404_and_nothing_is_stored() {
    let svc = TestService::start(&source_block(None), &[]).await;
    let body = project(1);
    let answer = svc
        .post_webhook("nope", body.clone(), &headers(&body, &[SECRET], now_secs()))
        .await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.json["detail"], "Unknown webhook code");
    assert_eq!(event_count(&svc).await, 0);
    svc.stop().await;
}

#[tokio::test]
async fn oversized_body_is_413_and_nothing_is_stored() {
    let svc = TestService::start(
        &format!("[intake]\nmax_body_bytes = 2048\n{}", source_block(None)),
        &[],
    )
    .await;
    let body = envelope(
        "projects.Project",
        "update",
        json!({"id": 1, "description": "x".repeat(4096)}),
    );
    let answer = svc
        .post_webhook(SOURCE, body.clone(), &headers(&body, &[SECRET], now_secs()))
        .await;
    assert_eq!(answer.status, 413, "{:?}", answer.json);
    assert!(answer.json["detail"].as_str().unwrap().contains("2048"));
    // Just under the limit is fine.
    let small = envelope(
        "projects.Project",
        "update",
        json!({"id": 1, "description": "x".repeat(1500)}),
    );
    assert!(small.len() < 2048);
    assert_eq!(svc.send(small).await.status, 200);
    assert_eq!(event_count(&svc).await, 1);
    svc.stop().await;
}

#[tokio::test]
async fn malformed_bodies_are_400_and_kept_as_invalid_events() {
    let svc = TestService::start(&source_block(None), &[]).await;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{not json".to_vec(), "not valid JSON"),
        (br#"["a list"]"#.to_vec(), "JSON object"),
        (br#"{"object": {"id": 1}, "object_type": "projects.Project", "webhook_uuid": "u"}"#.to_vec(), "missing field `topic`"),
        (br#"{"topic": "projects.Project/update", "object": 5, "object_type": "projects.Project", "webhook_uuid": "u"}"#.to_vec(), "`object` must be"),
    ];
    for (body, expected) in cases {
        let answer = svc.send(body.clone()).await;
        assert_eq!(answer.status, 400, "{:?}", answer.json);
        assert!(
            answer.json["detail"].as_str().unwrap().contains(expected),
            "{:?}",
            answer.json
        );
        assert_eq!(answer.json["status"], "invalid");
        let event = svc
            .event(answer.json["id"].as_str().unwrap())
            .await
            .expect("kept");
        assert_eq!(event.status, "invalid");
        assert_eq!(event.body, body, "raw request kept byte for byte");
        assert!(event.error.unwrap().contains(expected));
    }
    svc.stop().await;
}

#[tokio::test]
async fn disabled_source_events_are_skipped_then_replayed() {
    let target = recoco_sync_tests::fakes::target::Target::start().await;
    let config = format!(
        "{FAST_QUEUE}[[sources]]\ncode = {SOURCE:?}\nsecrets = [{SECRET:?}]\nenabled = false\n\
         [[connections]]\nname = \"fwd\"\nsource = {SOURCE:?}\nplugin = \"http-forward\"\n\
         [connections.config]\nurl = \"{}/hook\"\nsecret = \"forward-secret-1\"\n",
        target.url
    );
    let svc = TestService::start(&config, &[]).await;
    let answer = svc.send(project(99)).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json["status"], "skipped");
    let id = answer.json["id"].as_str().unwrap().to_string();
    assert!(svc.jobs_of_event(&id).await.is_empty());
    // Replaying while disabled is refused with a reason.
    let refused = svc
        .admin(reqwest::Method::POST, &format!("/events/{id}/replay"))
        .await;
    assert_eq!(refused.status, 400);
    assert!(refused.json["detail"]
        .as_str()
        .unwrap()
        .contains("disabled"));
    // Enable, replay: the event goes through.
    assert_eq!(
        svc.admin(reqwest::Method::POST, &format!("/sources/{SOURCE}/enable"))
            .await
            .status,
        200
    );
    let replayed = svc
        .admin(reqwest::Method::POST, &format!("/events/{id}/replay"))
        .await;
    assert_eq!(replayed.status, 200, "{:?}", replayed.json);
    assert_eq!(replayed.json["jobs"].as_array().unwrap().len(), 1);
    let event = svc.settled_event(&id, Duration::from_secs(20)).await;
    assert_eq!(event.status, "processed");
    assert_eq!(target.received().len(), 1);
    svc.stop().await;
}

#[tokio::test]
async fn accepted_events_survive_a_restart_and_are_processed_after_it() {
    let target = recoco_sync_tests::fakes::target::Target::start().await;
    let connection = format!(
        "[[connections]]\nname = \"fwd\"\nsource = {SOURCE:?}\nplugin = \"http-forward\"\n\
         [connections.config]\nurl = \"{}/hook\"\nsecret = \"forward-secret-1\"\n",
        target.url
    );
    // First run: intake only (no workers), as if the process died before working.
    let first = format!("{}[queue]\nworkers = 0\n{connection}", source_block(None));
    let svc = TestService::start(&first, &[]).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let answer = svc.send(project(n)).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.json["status"], "queued");
        ids.push(answer.json["id"].as_str().unwrap().to_string());
    }
    let dir = svc.stop().await;
    assert!(target.received().is_empty());
    let svc = TestService::start_in(
        dir,
        &format!("{}{FAST_QUEUE}{connection}", source_block(None)),
        &[],
    )
    .await;
    for id in &ids {
        assert_eq!(
            svc.settled_event(id, Duration::from_secs(20)).await.status,
            "processed"
        );
    }
    assert_eq!(target.received().len(), 5);
    svc.stop().await;
}

// ---- Issue 10: replays, secrets' life cycle, Standard Webhooks, limits ----

const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn sw_headers(id: &str, body: &[u8], secret: &str, ts: i64) -> Vec<(String, String)> {
    use recoco_sync::intake::standard_webhooks as sw;
    let key = sw::key_from_secret(secret).unwrap();
    vec![
        ("content-type".into(), "application/json".into()),
        (sw::ID_HEADER.into(), id.into()),
        (sw::TIMESTAMP_HEADER.into(), ts.to_string()),
        (
            sw::SIGNATURE_HEADER.into(),
            sw::sign(&key, id, &ts.to_string(), body),
        ),
    ]
}

async fn job_count(svc: &TestService) -> i64 {
    recoco_sync::store::sql::query_scalar("SELECT COUNT(*) FROM jobs")
        .fetch_one(&svc.pool)
        .await
        .unwrap()
}

fn forward_connection(url: &str) -> String {
    format!(
        "[[connections]]\nname = \"fwd\"\nsource = {SOURCE:?}\nplugin = \"http-forward\"\n\
         [connections.config]\nurl = \"{url}/hook\"\nsecret = \"forward-secret-1\"\n"
    )
}

#[tokio::test]
async fn a_replayed_request_gets_the_first_event_and_queues_nothing_even_after_a_restart() {
    let target = recoco_sync_tests::fakes::target::Target::start().await;
    let config = format!(
        "{}{FAST_QUEUE}{}",
        source_block(None),
        forward_connection(&target.url)
    );
    let svc = TestService::start(&config, &[]).await;
    let body = project(4242);
    let signed = headers(&body, &[SECRET], now_secs());
    let first = svc.post_webhook(SOURCE, body.clone(), &signed).await;
    assert_eq!(first.status, 200, "{:?}", first.json);
    assert_eq!(first.json["status"], "queued");
    assert!(first.json.get("duplicate").is_none());
    let id = first.json["id"].as_str().unwrap().to_string();
    // The captured request, posted again at once: the first event, nothing new.
    let again = svc.post_webhook(SOURCE, body.clone(), &signed).await;
    assert_eq!(again.status, 200, "{:?}", again.json);
    assert_eq!(again.json["id"], id.as_str());
    assert_eq!(again.json["duplicate"], true);
    assert_eq!((event_count(&svc).await, job_count(&svc).await), (1, 1));
    // Once processed, a repeat reports the status as it stands.
    assert_eq!(
        svc.settled_event(&id, Duration::from_secs(20)).await.status,
        "processed"
    );
    let later = svc.post_webhook(SOURCE, body.clone(), &signed).await;
    assert_eq!(
        (later.json["id"].as_str(), later.json["status"].as_str()),
        (Some(id.as_str()), Some("processed"))
    );
    // Dedup state is on disk: a restarted service still knows the request.
    let dir = svc.stop().await;
    let svc = TestService::start_in(dir, &config, &[]).await;
    let after_restart = svc.post_webhook(SOURCE, body.clone(), &signed).await;
    assert_eq!(after_restart.status, 200);
    assert_eq!(after_restart.json["id"], id.as_str());
    assert_eq!(after_restart.json["duplicate"], true);
    assert_eq!((event_count(&svc).await, job_count(&svc).await), (1, 1));
    assert_eq!(target.received().len(), 1, "delivered once");
    svc.stop().await;
}

#[tokio::test]
async fn concurrent_copies_of_one_request_store_one_event() {
    let svc = TestService::start(&source_block(None), &[]).await;
    let body = project(77);
    let signed = headers(&body, &[SECRET], now_secs());
    let answers =
        futures::future::join_all((0..16).map(|_| svc.post_webhook(SOURCE, body.clone(), &signed)))
            .await;
    let ids: std::collections::HashSet<_> = answers
        .iter()
        .map(|a| {
            assert_eq!(a.status, 200, "{:?}", a.json);
            a.json["id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ids.len(), 1, "every copy names the same event");
    let duplicates = answers
        .iter()
        .filter(|a| a.json["duplicate"] == true)
        .count();
    assert_eq!(duplicates, 15);
    assert_eq!(event_count(&svc).await, 1);
    svc.stop().await;
}

#[tokio::test]
async fn a_new_delivery_of_the_same_body_is_new_but_a_malformed_body_is_kept_once() {
    let svc = TestService::start(&source_block(None), &[]).await;
    let now = now_secs();
    // Recoco's separate deliveries (a re-save) carry their own timestamp: stored.
    let body = project(5);
    let a = svc
        .post_webhook(SOURCE, body.clone(), &headers(&body, &[SECRET], now - 1))
        .await;
    let b = svc
        .post_webhook(SOURCE, body.clone(), &headers(&body, &[SECRET], now))
        .await;
    assert_ne!(a.json["id"], b.json["id"]);
    assert!(b.json.get("duplicate").is_none());
    // A malformed body is refused with 400 and kept; Recoco re-sends it a minute
    // later, re-signed: answered with the stored copy.
    let bad = b"{\"topic\": 1}".to_vec();
    let first = svc
        .post_webhook(SOURCE, bad.clone(), &headers(&bad, &[SECRET], now - 60))
        .await;
    assert_eq!(first.status, 400);
    let retry = svc
        .post_webhook(SOURCE, bad.clone(), &headers(&bad, &[SECRET], now))
        .await;
    assert_eq!(retry.status, 200, "{:?}", retry.json);
    assert_eq!(retry.json["duplicate"], true);
    assert_eq!(retry.json["id"], first.json["id"]);
    assert_eq!(retry.json["status"], "invalid");
    assert_eq!(event_count(&svc).await, 3);
    svc.stop().await;
}

#[tokio::test]
async fn standard_webhooks_source_checks_the_published_vector_and_dedups_on_webhook_id() {
    // The specification's vector was signed in 2021: widen the window for it.
    let config = format!(
        "[intake]\ntimestamp_tolerance = \"5000days\"\n\
         [[sources]]\ncode = \"sw\"\nscheme = \"standard-webhooks\"\nsecrets = [{SW_SECRET:?}]\n"
    );
    let svc = TestService::start(&config, &[]).await;
    let vector = [
        (
            "webhook-id".to_string(),
            "msg_p5jXN8AQM9LWM0D4loKWxJek".to_string(),
        ),
        ("webhook-timestamp".to_string(), "1614265330".to_string()),
        (
            "webhook-signature".to_string(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=".to_string(),
        ),
    ];
    let payload = br#"{"test": 2432232314}"#.to_vec();
    // Authentic, but not an event we can route (no `type`): kept as invalid.
    let answer = svc.post_webhook("sw", payload.clone(), &vector).await;
    assert_eq!(answer.status, 400, "{:?}", answer.json);
    assert!(answer.json["detail"].as_str().unwrap().contains("`type`"));
    let mut tampered = payload.clone();
    tampered[10] ^= 1;
    let refused = svc.post_webhook("sw", tampered, &vector).await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.json["detail"], "Invalid signature");
    // A Recoco-style signature means nothing to this source.
    let recoco = headers(&payload, &[SW_SECRET], now_secs());
    let refused = svc.post_webhook("sw", payload.clone(), &recoco).await;
    assert_eq!(refused.status, 401);
    assert!(refused.json["detail"]
        .as_str()
        .unwrap()
        .contains("webhook-id"));

    let body = br#"{"type": "invoice.paid", "timestamp": "2026-12-01T10:00:00Z", "data": {"id": "in_42"}}"#.to_vec();
    let now = now_secs();
    let first = svc
        .post_webhook(
            "sw",
            body.clone(),
            &sw_headers("msg_1", &body, SW_SECRET, now - 30),
        )
        .await;
    assert_eq!(first.status, 200, "{:?}", first.json);
    let event = svc.event(first.json["id"].as_str().unwrap()).await.unwrap();
    assert_eq!(
        (
            event.topic.as_deref(),
            event.object_type.as_deref(),
            event.action.as_deref(),
            event.object_id.as_deref()
        ),
        (
            Some("invoice.paid"),
            Some("invoice"),
            Some("paid"),
            Some("in_42")
        )
    );
    assert_eq!(event.webhook_uuid.as_deref(), Some("msg_1"));
    assert_eq!(event.headers["webhook-id"], "msg_1");
    assert!(event.headers.get("webhook-signature").is_none());
    // The sender's retry: same webhook-id, new timestamp and signature.
    let retry = svc
        .post_webhook(
            "sw",
            body.clone(),
            &sw_headers("msg_1", &body, SW_SECRET, now),
        )
        .await;
    assert_eq!(retry.json["duplicate"], true, "{:?}", retry.json);
    assert_eq!(retry.json["id"], first.json["id"]);
    let other = svc
        .post_webhook(
            "sw",
            body.clone(),
            &sw_headers("msg_2", &body, SW_SECRET, now),
        )
        .await;
    assert!(other.json.get("duplicate").is_none());
    assert_eq!(event_count(&svc).await, 3);
    svc.stop().await;
}

#[tokio::test]
async fn the_dedup_window_setting_bounds_how_long_a_request_is_remembered() {
    // Tolerance 1 s, window 3 s: a re-signed retry of one message id is a
    // duplicate 2 s later, a new event 5 s later.
    let config = format!(
        "[intake]\ntimestamp_tolerance = \"1s\"\ndedup_window = \"3s\"\n\
         [[sources]]\ncode = \"sw\"\nscheme = \"standard-webhooks\"\nsecrets = [{SW_SECRET:?}]\n"
    );
    let svc = TestService::start(&config, &[]).await;
    let body = br#"{"type": "ping"}"#.to_vec();
    let (svc_ref, body_ref) = (&svc, &body);
    let send = move || async move {
        svc_ref
            .post_webhook(
                "sw",
                body_ref.clone(),
                &sw_headers("msg_w", body_ref, SW_SECRET, now_secs()),
            )
            .await
    };
    let first = send().await;
    assert_eq!(first.status, 200, "{:?}", first.json);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(send().await.json["duplicate"], true);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let fresh = send().await;
    assert_eq!(fresh.status, 200);
    assert!(fresh.json.get("duplicate").is_none(), "{:?}", fresh.json);
    assert_ne!(fresh.json["id"], first.json["id"]);
    svc.stop().await;
}

#[tokio::test]
async fn an_http_forward_connection_feeds_a_standard_webhooks_source_of_another_instance() {
    // Downstream instance: a Standard Webhooks source with the forwarder's secret.
    let downstream = TestService::start(
        &format!("[[sources]]\ncode = \"upstream\"\nscheme = \"standard-webhooks\"\nsecrets = [{SW_SECRET:?}]\n"),
        &[],
    )
    .await;
    let upstream = TestService::start(
        &format!(
            "{}{FAST_QUEUE}[[connections]]\nname = \"chain\"\nsource = {SOURCE:?}\nplugin = \"http-forward\"\n\
             allowed_hosts = [\"127.0.0.1\"]\n[connections.config]\nurl = \"{}/api/webhook/upstream\"\nsecret = {SW_SECRET:?}\n",
            source_block(None),
            downstream.url
        ),
        &[],
    )
    .await;
    let answer = upstream.send(project(1312)).await;
    let id = answer.json["id"].as_str().unwrap().to_string();
    assert_eq!(
        upstream
            .settled_event(&id, Duration::from_secs(20))
            .await
            .status,
        "processed"
    );
    let received = events::list(&downstream.pool, &Default::default())
        .await
        .unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].topic.as_deref(),
        Some("projects.Project/update")
    );
    assert_eq!(received[0].object_type.as_deref(), Some("projects.Project"));
    assert_eq!(received[0].object_id.as_deref(), Some("1312"));
    assert_eq!(received[0].webhook_uuid.as_deref(), Some(id.as_str()));
    upstream.stop().await;
    downstream.stop().await;
}

#[tokio::test]
async fn expired_secrets_are_refused_and_a_rotation_survives_a_restart() {
    let config = "[[sources]]\ncode = \"rot\"\nsecrets = [\
        { value = \"expired-secret-0001\", expires_at = \"2020-01-01T00:00:00Z\" }, \
        { value = \"current-secret-0001\", expires_at = \"2999-01-01T00:00:00Z\" }]\n";
    let svc = TestService::start(config, &[]).await;
    let svc_ref = &svc;
    let post = move |secret: &'static str, n: i64| {
        let body = project(9 + n);
        let h = headers(&body, &[secret], now_secs());
        let svc = svc_ref;
        async move { svc.post_webhook("rot", body, &h).await.status }
    };
    assert_eq!(post("expired-secret-0001", 0).await, 401);
    assert_eq!(post("current-secret-0001", 0).await, 200);

    // Rotate with a 3 s grace: both validate, then only the new one.
    let sealer =
        recoco_sync::secrets::Sealer::load(None, &svc.dir.path().join("secret.key")).unwrap();
    let until = recoco_sync::ids::now_ms() + 3_000;
    let rotation = recoco_sync::store::sources::rotate_secret(
        &svc.pool,
        &sealer,
        "rot",
        "rotated-secret-0001",
        until,
    )
    .await
    .unwrap();
    assert_eq!(rotation.previous, 1, "the expired one was already out");
    let short =
        recoco_sync::store::sources::rotate_secret(&svc.pool, &sealer, "rot", "too-short", until)
            .await
            .unwrap_err();
    assert!(short.to_string().contains("at least 16 bytes"), "{short}");
    // The service sees the change within its catalog refresh (2 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while post("rotated-secret-0001", 1).await != 200 {
        assert!(std::time::Instant::now() < deadline, "rotation never seen");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        post("current-secret-0001", 2).await,
        200,
        "inside the grace"
    );
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    assert_eq!(post("current-secret-0001", 3).await, 401, "after the grace");
    // A restart applies the same file: the rotation stands.
    let dir = svc.stop().await;
    let svc = TestService::start_in(dir, config, &[]).await;
    let h = |s: &str, b: &[u8]| headers(b, &[s], now_secs());
    let b = project(20);
    assert_eq!(
        svc.post_webhook("rot", b.clone(), &h("rotated-secret-0001", &b))
            .await
            .status,
        200
    );
    let b = project(21);
    assert_eq!(
        svc.post_webhook("rot", b.clone(), &h("current-secret-0001", &b))
            .await
            .status,
        401
    );
    svc.stop().await;
}

#[tokio::test]
async fn oversized_headers_get_431_and_stored_headers_are_capped() {
    let svc = TestService::start(
        &format!("[intake]\nmax_header_bytes = 4096\n{}", source_block(None)),
        &[],
    )
    .await;
    let body = project(1);
    let mut h = headers(&body, &[SECRET], now_secs());
    h.push(("x-filler".into(), "f".repeat(5000)));
    let answer = svc.post_webhook(SOURCE, body.clone(), &h).await;
    assert_eq!(answer.status, 431, "{:?}", answer.json);
    assert!(answer.json["detail"].as_str().unwrap().contains("4096"));
    assert_eq!(event_count(&svc).await, 0);
    // Under the limit, a long kept header is stored cut.
    let mut h = headers(&body, &[SECRET], now_secs());
    h.push(("x-request-id".into(), "r".repeat(3000)));
    let answer = svc.post_webhook(SOURCE, body.clone(), &h).await;
    assert_eq!(answer.status, 200, "{:?}", answer.json);
    let event = svc
        .event(answer.json["id"].as_str().unwrap())
        .await
        .unwrap();
    let kept = event.headers["x-request-id"].as_str().unwrap();
    assert!(
        kept.len() <= 512 && kept.ends_with("[cut]"),
        "{} bytes",
        kept.len()
    );
    svc.stop().await;
}

#[tokio::test]
async fn a_source_over_its_rate_gets_429_with_retry_after_and_others_do_not() {
    let config = format!(
        "[intake]\nrate_limit_per_second = 1.0\nrate_limit_burst = 2\n\
         [[sources]]\ncode = {SOURCE:?}\nsecrets = [{SECRET:?}]\nrate_limit_per_second = 0.2\nrate_limit_burst = 3\n\
         [[sources]]\ncode = \"quiet\"\nsecrets = [{SECRET:?}]\n"
    );
    let svc = TestService::start(&config, &[]).await;
    // Unsigned requests do not spend the source's budget.
    for n in 0..10 {
        let body = project(100 + n);
        let h = headers(&body, &["forged-secret-00001"], now_secs());
        assert_eq!(svc.post_webhook(SOURCE, body, &h).await.status, 401);
    }
    for n in 0..3 {
        assert_eq!(svc.send(project(n)).await.status, 200, "burst {n}");
    }
    let body = project(3);
    let mut request = svc
        .client
        .post(format!("{}/api/webhook/{SOURCE}", svc.url))
        .body(body.clone());
    for (k, v) in headers(&body, &[SECRET], now_secs()) {
        request = request.header(k, v);
    }
    let refused = request.send().await.unwrap();
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=5).contains(&retry_after), "{retry_after}");
    let detail: serde_json::Value = refused.json().await.unwrap();
    assert!(
        detail["detail"]
            .as_str()
            .unwrap()
            .contains("0.2 per second"),
        "{detail}"
    );
    assert_eq!(event_count(&svc).await, 3, "the refused one is not stored");
    // The other source has its own budget, from `[intake]` (burst 2).
    let svc_ref = &svc;
    let quiet = move |n: i64| {
        let body = project(200 + n);
        let h = headers(&body, &[SECRET], now_secs());
        let svc = svc_ref;
        async move { svc.post_webhook("quiet", body, &h).await.status }
    };
    assert_eq!(
        (quiet(0).await, quiet(1).await, quiet(2).await),
        (200, 200, 429)
    );
    svc.stop().await;
}
