//! Managed configuration through the admin API: sources and connections
//! created, edited, paused and deleted at run time take effect without a
//! restart; entries of the file are read-only there; secrets are write-only;
//! `config apply` plans, prunes and stops at conflicts; a restart keeps what
//! the database owns and an operator's pause.

use std::time::Duration;

use recoco_sync_tests::fakes::target::Target;
use recoco_sync_tests::service::{source_block, TestService, FAST_QUEUE, SOURCE};
use recoco_sync_tests::webhook::{envelope, headers, now_secs};
use reqwest::Method;
use serde_json::{json, Value};

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const OTHER_WHSEC: &str = "whsec_QWxhZGRpbjpvcGVuIHNlc2FtZSBvcGVuIHNlc2FtZQ==";
const WAIT: Duration = Duration::from_secs(20);
const PORTAL_SECRET: &str = "managed-portal-secret-0001";

/// The file declares one source and one forwarding connection.
fn file_config(target: &Target) -> String {
    format!(
        "{}{FAST_QUEUE}[[connections]]\nname = \"from-file\"\nsource = {SOURCE:?}\nplugin = \"http-forward\"\n\
         [connections.config]\nurl = \"{}/file\"\nsecret = {WHSEC:?}\n",
        source_block(None),
        target.url
    )
}

async fn post(svc: &TestService, path: &str, body: Value) -> recoco_sync_tests::service::Answer {
    svc.admin_json(Method::POST, path, &body).await
}

async fn patch(svc: &TestService, path: &str, body: Value) -> recoco_sync_tests::service::Answer {
    svc.admin_json(Method::PATCH, path, &body).await
}

/// Sends `body` to the source `code` signed with `secret`.
async fn send_to(svc: &TestService, code: &str, secret: &str, body: Vec<u8>) -> Value {
    let h = headers(&body, &[secret], now_secs());
    let answer = svc.post_webhook(code, body, &h).await;
    assert_eq!(answer.status, 200, "{:?}", answer.json);
    answer.json
}

fn detail(a: &recoco_sync_tests::service::Answer) -> String {
    a.json["detail"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn sources_and_connections_are_managed_at_run_time_without_restart() {
    let target = Target::start().await;
    let svc = TestService::start(&file_config(&target), &[]).await;

    // A new source, with a secret of our own, and a new connection on it.
    let created = post(
        &svc,
        "/sources",
        json!({"code": "portal-2", "secrets": [PORTAL_SECRET]}),
    )
    .await;
    assert_eq!(created.status, 201, "{:?}", created.json);
    assert_eq!(created.json["webhook_path"], "/api/webhook/portal-2");
    assert!(created.json["generated_secret"].is_null());
    let conn = json!({
        "name": "crm-2",
        "source": "portal-2",
        "plugin": "http-forward",
        "config": {"url": format!("{}/managed", target.url), "secret": WHSEC},
        "filter": "object_type == 'projects.Project'",
        "delivery": {"max_attempts": 2},
    });
    let created = post(&svc, "/connections", conn.clone()).await;
    assert_eq!(created.status, 201, "{:?}", created.json);
    assert_eq!(created.json["owner"], "database");
    // Secrets are write-only: the answer redacts them, and no answer carries them.
    assert_eq!(created.json["config"]["secret"], "[redacted]");
    assert!(!created.json.to_string().contains(WHSEC));
    assert_eq!(created.json["delivery"], json!({"max_attempts": 2}));
    // Creating it twice is a conflict.
    assert_eq!(post(&svc, "/connections", conn).await.status, 409);

    // It works at once: a webhook to the new source reaches the new target.
    send_to(
        &svc,
        "portal-2",
        PORTAL_SECRET,
        envelope("projects.Project", "update", json!({"id": 7})),
    )
    .await;
    let got = target.wait_for(1, WAIT).await;
    assert_eq!(got[0].path, "/managed");
    // Its filter holds: a tagged item makes no job for it.
    let tagged = send_to(
        &svc,
        "portal-2",
        PORTAL_SECRET,
        envelope("taggit.TaggedItem", "create", json!({"id": 7})),
    )
    .await;
    let event = svc
        .settled_event(tagged["id"].as_str().unwrap(), WAIT)
        .await;
    assert_eq!(event.status.as_str(), "ignored", "{event:?}");

    // A config that fails the plugin's schema is refused, naming the field;
    // the stored one keeps working.
    let bad = patch(
        &svc,
        "/connections/crm-2",
        json!({"config": {"url": "ftp://x", "secret": "[redacted]"}}),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(
        detail(&bad).contains("config") && detail(&bad).contains("/url"),
        "{}",
        detail(&bad)
    );
    assert!(!detail(&bad).contains(WHSEC));
    // Sending the config back as shown keeps the secret: deliveries are still
    // signed with it (the target's path changes, the signature key does not).
    let shown = svc.admin(Method::GET, "/connections/crm-2").await.json;
    let mut config = shown["config"].clone();
    config["url"] = json!(format!("{}/edited", target.url));
    let edited = patch(&svc, "/connections/crm-2", json!({"config": config})).await;
    assert_eq!(edited.status, 200, "{:?}", edited.json);
    send_to(
        &svc,
        "portal-2",
        PORTAL_SECRET,
        envelope("projects.Project", "update", json!({"id": 8})),
    )
    .await;
    let got = target.wait_for(2, WAIT).await;
    assert_eq!(got[1].path, "/edited");
    assert!(verify(&got[1], WHSEC), "signed with the kept secret");
    // Rotating the connection's secret field: later requests are signed with the new one.
    let set = post(
        &svc,
        "/connections/crm-2/secret",
        json!({"field": "/secret", "value": OTHER_WHSEC}),
    )
    .await;
    assert_eq!(set.status, 200, "{:?}", set.json);
    let not_secret = post(
        &svc,
        "/connections/crm-2/secret",
        json!({"field": "/url", "value": "x"}),
    )
    .await;
    assert_eq!(not_secret.status, 400, "{:?}", not_secret.json);
    send_to(
        &svc,
        "portal-2",
        PORTAL_SECRET,
        envelope("projects.Project", "update", json!({"id": 9})),
    )
    .await;
    let got = target.wait_for(3, WAIT).await;
    assert!(verify(&got[2], OTHER_WHSEC) && !verify(&got[2], WHSEC));

    // The file's entries are read-only here (409 naming the file), but they
    // can be paused.
    let refused = patch(&svc, "/connections/from-file", json!({"filter": "true"})).await;
    assert_eq!(refused.status, 409);
    assert!(
        detail(&refused).contains("configuration file"),
        "{}",
        detail(&refused)
    );
    assert_eq!(
        svc.admin(Method::DELETE, "/connections/from-file")
            .await
            .status,
        409
    );
    assert_eq!(
        svc.admin(Method::DELETE, &format!("/sources/{SOURCE}"))
            .await
            .status,
        409
    );
    let paused = patch(&svc, "/connections/from-file", json!({"enabled": false})).await;
    assert_eq!(paused.status, 200, "{:?}", paused.json);
    assert_eq!(paused.json["enabled"], false);

    // Pause the managed connection: its new jobs wait; then delete it: they
    // are cancelled, the event stays, the name is free again.
    assert_eq!(
        patch(&svc, "/connections/crm-2", json!({"enabled": false}))
            .await
            .status,
        200
    );
    let held = send_to(
        &svc,
        "portal-2",
        PORTAL_SECRET,
        envelope("projects.Project", "update", json!({"id": 10})),
    )
    .await;
    let held_id = held["id"].as_str().unwrap().to_string();
    let job = svc.jobs_of_event(&held_id).await.remove(0);
    let job = svc.job_in(&job.id, &["paused"], WAIT).await;
    // The source is still used: it cannot go first.
    let in_use = svc.admin(Method::DELETE, "/sources/portal-2").await;
    assert_eq!(in_use.status, 409);
    assert!(detail(&in_use).contains("crm-2"));
    let deleted = svc.admin(Method::DELETE, "/connections/crm-2").await;
    assert_eq!(deleted.status, 200, "{:?}", deleted.json);
    assert_eq!(deleted.json["cancelled_jobs"], json!([job.id.clone()]));
    let job = svc.job_in(&job.id, &["cancelled"], WAIT).await;
    assert_eq!(
        job.last_error.as_deref(),
        Some("its connection was deleted")
    );
    // Kept, and shown as ignored: nothing delivered it (not "processed").
    let kept = svc.event(&held_id).await.expect("the event is kept");
    assert_eq!(kept.status, "ignored");
    assert_eq!(
        svc.admin(Method::GET, "/connections/crm-2").await.status,
        404
    );
    let names: Vec<Value> = svc.admin(Method::GET, "/connections").await.json["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("from-file")]);
    // Deleting the source now works; its webhooks are then unknown (404).
    assert_eq!(
        svc.admin(Method::DELETE, "/sources/portal-2").await.status,
        200
    );
    let body = envelope("projects.Project", "update", json!({"id": 11}));
    let h = headers(&body, &[PORTAL_SECRET], now_secs());
    assert_eq!(svc.post_webhook("portal-2", body, &h).await.status, 404);
    // The name is free again.
    let again = post(&svc, "/sources", json!({"code": "portal-2"})).await;
    assert_eq!(again.status, 201, "{:?}", again.json);
    let generated = again.json["generated_secret"].as_str().unwrap().to_string();
    assert_eq!(generated.len(), 64);
    let shown = svc.admin(Method::GET, "/sources/portal-2").await.json;
    assert!(!shown.to_string().contains(&generated), "never shown again");
    assert_eq!(shown["secrets"].as_array().unwrap().len(), 1);

    // Bad input names its field.
    let bad = post(&svc, "/sources", json!({"code": "bad code!"})).await;
    assert_eq!(bad.status, 400);
    assert!(detail(&bad).starts_with("code:"), "{}", detail(&bad));
    let bad = post(
        &svc,
        "/connections",
        json!({"name": "x", "source": "nope", "plugin": "http-forward"}),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(detail(&bad).starts_with("source:"), "{}", detail(&bad));
    let bad = post(
        &svc,
        "/connections",
        json!({"name": "x", "source": SOURCE, "plugin": "http-forward", "colour": 1}),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(detail(&bad).contains("colour"), "{}", detail(&bad));
    svc.stop().await;
}

/// Verifies a Standard Webhooks signature with `secret`.
fn verify(r: &recoco_sync_tests::fakes::target::Received, secret: &str) -> bool {
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    let (Some(id), Some(ts), Some(sigs)) = (
        r.header("webhook-id"),
        r.header("webhook-timestamp"),
        r.header("webhook-signature"),
    ) else {
        return false;
    };
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&r.body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    sigs.split(' ').any(|s| s == expected)
}

#[tokio::test]
async fn a_restart_keeps_database_entries_and_pauses_and_the_file_wins_its_own() {
    let target = Target::start().await;
    let config = file_config(&target);
    let svc = TestService::start(&config, &[]).await;
    let created = post(
        &svc,
        "/connections",
        json!({"name": "runtime", "source": SOURCE, "plugin": "http-forward",
               "config": {"url": format!("{}/rt", target.url), "secret": WHSEC},
               "schedule": [{"task": "noop", "every": "1h"}]}),
    )
    .await;
    assert_eq!(created.status, 201, "{:?}", created.json);
    assert_eq!(
        patch(&svc, "/connections/from-file", json!({"enabled": false}))
            .await
            .status,
        200
    );
    let dir = svc.stop().await;

    // Same file: the database's connection stays as it was, the pause stays.
    let svc = TestService::start_in(dir, &config, &[]).await;
    let list = svc.admin(Method::GET, "/connections").await.json["connections"].clone();
    let by_name = |n: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == n)
            .cloned()
            .unwrap()
    };
    assert_eq!(by_name("runtime")["enabled"], true);
    assert_eq!(
        by_name("from-file")["enabled"],
        false,
        "the operator's pause survives a restart"
    );
    let shown = svc.admin(Method::GET, "/connections/runtime").await.json;
    assert_eq!(shown["owner"], "database");
    assert_eq!(
        shown["schedule"],
        json!([{"task": "noop", "every": "1h", "cron": null, "payload": null}])
    );
    let dir = svc.stop().await;

    // The file changes its mind about `enabled` (false, then true): the file
    // wins. A file without the connection marks only its own entry removed.
    let disabled = config.replace(
        "plugin = \"http-forward\"\n",
        "plugin = \"http-forward\"\nenabled = false\n",
    );
    let svc = TestService::start_in(dir, &disabled, &[]).await;
    let dir = svc.stop().await;
    let svc = TestService::start_in(dir, &config, &[]).await;
    let shown = svc.admin(Method::GET, "/connections/from-file").await.json;
    assert_eq!(
        shown["enabled"], true,
        "the file's own change of enabled wins"
    );
    let dir = svc.stop().await;
    let svc = TestService::start_in(dir, &format!("{}{FAST_QUEUE}", source_block(None)), &[]).await;
    let from_file = svc.admin(Method::GET, "/connections/from-file").await.json;
    assert_eq!(from_file["removed"], true);
    let runtime = svc.admin(Method::GET, "/connections/runtime").await.json;
    assert_eq!(
        runtime["removed"], false,
        "the database's entry is not the file's to remove"
    );
    // The file's source cannot be taken over by an empty change.
    assert_eq!(
        patch(&svc, &format!("/sources/{SOURCE}"), json!({}))
            .await
            .status,
        200
    );
    let source = svc
        .admin(Method::GET, &format!("/sources/{SOURCE}"))
        .await
        .json;
    assert_eq!(source["owner"], "file", "{source}");
    // A removed file entry can be taken over by the database.
    let taken = post(
        &svc,
        "/connections",
        json!({"name": "from-file", "source": SOURCE, "plugin": "http-forward",
               "config": {"url": format!("{}/taken", target.url), "secret": WHSEC}}),
    )
    .await;
    assert_eq!(taken.status, 201, "{:?}", taken.json);
    assert_eq!(taken.json["owner"], "database");
    assert_eq!(taken.json["removed"], false);
    svc.stop().await;
}

#[tokio::test]
async fn config_apply_plans_applies_prunes_and_stops_at_conflicts() {
    let target = Target::start().await;
    let svc = TestService::start(&file_config(&target), &[]).await;
    let conn = |name: &str, path: &str| {
        json!({"name": name, "source": "portal-3", "plugin": "http-forward",
               "config": {"url": format!("{}/{path}", target.url), "secret": WHSEC}})
    };
    let file = json!({
        "sources": [{"code": "portal-3", "secrets": [PORTAL_SECRET]}],
        "connections": [conn("a", "a"), conn("b", "b")],
    });
    let apply = |body: Value, prune: bool, dry_run: bool| {
        let mut body = body;
        body["prune"] = json!(prune);
        body["dry_run"] = json!(dry_run);
        body
    };
    let actions = |a: &recoco_sync_tests::service::Answer| -> Vec<(String, String)> {
        a.json["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_string(),
                    c["action"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    // Dry run: the plan, nothing changed.
    let plan = post(&svc, "/config/apply", apply(file.clone(), false, true)).await;
    assert_eq!(plan.status, 200, "{:?}", plan.json);
    assert_eq!(plan.json["applied"], false);
    assert_eq!(
        actions(&plan),
        vec![
            ("a".into(), "create".into()),
            ("b".into(), "create".into()),
            ("portal-3".into(), "create".into())
        ]
    );
    assert_eq!(svc.admin(Method::GET, "/connections/a").await.status, 404);
    // Applied; applying again changes nothing.
    let done = post(&svc, "/config/apply", apply(file.clone(), false, false)).await;
    assert_eq!(done.json["applied"], true, "{:?}", done.json);
    assert_eq!(
        svc.admin(Method::GET, "/connections/a").await.json["owner"],
        "database"
    );
    let again = post(&svc, "/config/apply", apply(file.clone(), false, false)).await;
    assert!(
        actions(&again).iter().all(|(_, a)| a == "unchanged"),
        "{:?}",
        again.json
    );
    send_to(
        &svc,
        "portal-3",
        PORTAL_SECRET,
        envelope("projects.Project", "update", json!({"id": 3})),
    )
    .await;
    let got = target.wait_for(2, WAIT).await;
    let mut paths: Vec<String> = got.iter().map(|r| r.path.clone()).collect();
    paths.sort();
    assert_eq!(paths, ["/a", "/b"]);

    // A smaller file with --prune: b goes (its jobs cancelled), a is updated.
    let smaller = json!({
        "sources": [{"code": "portal-3", "secrets": [PORTAL_SECRET]}],
        "connections": [conn("a", "a2")],
    });
    let pruned = post(&svc, "/config/apply", apply(smaller.clone(), true, false)).await;
    assert_eq!(pruned.status, 200, "{:?}", pruned.json);
    assert_eq!(
        actions(&pruned),
        vec![
            ("a".into(), "update".into()),
            ("b".into(), "delete".into()),
            ("portal-3".into(), "unchanged".into())
        ]
    );
    assert_eq!(pruned.json["changes"][0]["detail"], "config");
    assert_eq!(svc.admin(Method::GET, "/connections/b").await.status, 404);

    // A file declaring the service file's connection differently: a conflict,
    // answered 409 with the plan, and nothing applied (not even the rest).
    let mut clash = smaller.clone();
    clash["connections"].as_array_mut().unwrap().push(json!({
        "name": "from-file", "source": SOURCE, "plugin": "http-forward",
        "config": {"url": format!("{}/elsewhere", target.url), "secret": WHSEC}}));
    clash["connections"][0] = conn("a", "a3");
    let refused = post(&svc, "/config/apply", apply(clash, false, false)).await;
    assert_eq!(refused.status, 409, "{:?}", refused.json);
    assert_eq!(refused.json["applied"], false);
    let conflict = refused.json["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "from-file")
        .unwrap()
        .clone();
    assert_eq!(conflict["action"], "conflict");
    assert!(conflict["detail"].as_str().unwrap().contains("config"));
    let a = svc.admin(Method::GET, "/connections/a").await.json;
    assert!(
        a["config"]["url"].as_str().unwrap().ends_with("/a2"),
        "{a:?}"
    );
    let after = post(&svc, "/config/apply", apply(smaller, true, true)).await;
    assert!(
        actions(&after).iter().all(|(_, a)| a == "unchanged"),
        "the conflict applied nothing: {:?}",
        after.json
    );
    // An invalid entry names itself and the field.
    let invalid = post(
        &svc,
        "/config/apply",
        apply(json!({"connections": [{"name": "c", "source": "portal-3", "plugin": "http-forward", "filter": "((("}]}), false, false),
    )
    .await;
    assert_eq!(invalid.status, 400, "{:?}", invalid.json);
    assert!(
        detail(&invalid).starts_with("connection \"c\": filter:"),
        "{}",
        detail(&invalid)
    );
    assert_eq!(svc.admin(Method::GET, "/connections/c").await.status, 404);
    svc.stop().await;
}

#[tokio::test]
async fn creates_racing_for_one_name_give_one_connection_and_conflicts() {
    let target = Target::start().await;
    let svc = TestService::start(&file_config(&target), &[]).await;
    for round in 0..10 {
        let body = json!({"name": format!("race-{round}"), "source": SOURCE, "plugin": "http-forward",
            "config": {"url": format!("{}/race", target.url), "secret": WHSEC}});
        let (a, b, c) = tokio::join!(
            post(&svc, "/connections", body.clone()),
            post(&svc, "/connections", body.clone()),
            post(&svc, "/connections", body.clone())
        );
        let mut statuses = vec![a.status, b.status, c.status];
        statuses.sort();
        assert_eq!(
            statuses,
            vec![201, 409, 409],
            "round {round}: {:?} {:?} {:?}",
            a.json,
            b.json,
            c.json
        );
        let source = json!({"code": format!("race-{round}"), "secrets": [PORTAL_SECRET]});
        let (a, b) = tokio::join!(
            post(&svc, "/sources", source.clone()),
            post(&svc, "/sources", source.clone())
        );
        let mut statuses = vec![a.status, b.status];
        statuses.sort();
        assert_eq!(
            statuses,
            vec![201, 409],
            "round {round}: {:?} {:?}",
            a.json,
            b.json
        );
    }
    svc.stop().await;
}
