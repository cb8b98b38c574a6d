//! Per-connection routing filters (CEL), end to end: an event a connection's
//! filter does not accept creates no job for it, the event says which filter
//! dropped it, and an invalid expression is refused when the connection is saved.

use std::time::Duration;

use recoco_sync::config::{Config, ConnectionDecl, Overrides};
use recoco_sync::secrets::Sealer;
use recoco_sync::store::connections;
use recoco_sync_tests::components;
use recoco_sync_tests::service::{source_block, TestService, FAST_QUEUE, SOURCE};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

const DEPT_22: &str = r#"object.commune.department.code == "22""#;
const SOME_TAGS: &str = r#"object.tags.exists(t, t in ["tiers-lieu", "ecole"])"#;

fn connection(name: &str, filter: Option<&str>) -> String {
    let filter = filter
        .map(|f| format!("filter = {f:?}\n"))
        .unwrap_or_default();
    format!(
        "[[connections]]\nname = {name:?}\nsource = {SOURCE:?}\nplugin = \"test-noop\"\n{filter}"
    )
}

/// The project update fixture (department 79, tags patrimoine, centre-bourg,
/// tiers-lieu), with its department code and tags replaced.
fn project(department: &str, tags: &[&str], topic: &str) -> Vec<u8> {
    let mut body: Value =
        serde_json::from_str(include_str!("../fixtures/webhook-project-update.json")).unwrap();
    body["topic"] = json!(topic);
    body["object_type"] = json!(topic.split('/').next().unwrap());
    body["object"]["commune"]["department"]["code"] = json!(department);
    body["object"]["tags"] = json!(tags);
    serde_json::to_vec(&body).unwrap()
}

/// Names of the connections event `id` got a job for.
async fn routed_to(svc: &TestService, id: &str) -> Vec<String> {
    let mut names: Vec<String> = svc
        .jobs_of_event(id)
        .await
        .into_iter()
        .map(|j| j.connection)
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_filter_drops_what_it_does_not_accept_and_the_event_says_so() {
    let config = format!(
        "{}{FAST_QUEUE}{}{}{}",
        source_block(None),
        connection("all", None),
        connection("dept-22", Some(DEPT_22)),
        connection("some-tags", Some(SOME_TAGS)),
    );
    let svc = TestService::start(&config, &[("noop.wasm", &components::noop())]).await;

    // Department 79, tagged tiers-lieu: the department filter drops it.
    let answer = svc
        .send(project("79", &["tiers-lieu"], "projects.Project/update"))
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.json);
    let id = answer.json["id"].as_str().unwrap().to_string();
    assert_eq!(routed_to(&svc, &id).await, ["all", "some-tags"]);
    let detail = svc
        .admin(reqwest::Method::GET, &format!("/events/{id}"))
        .await;
    assert_eq!(detail.status, 200);
    let event = &detail.json;
    assert_eq!(
        event["filtered"],
        json!([{"connection": "dept-22", "filter": DEPT_22, "reason": "false"}]),
        "{event}"
    );
    assert_eq!(svc.settled_event(&id, WAIT).await.status, "processed");

    // Department 22, tagged tiers-lieu on a tag event: every connection.
    let answer = svc
        .send(project("22", &["tiers-lieu"], "taggit.TaggedItem/create"))
        .await;
    let id = answer.json["id"].as_str().unwrap().to_string();
    assert_eq!(routed_to(&svc, &id).await, ["all", "dept-22", "some-tags"]);
    assert!(svc.event(&id).await.unwrap().filtered.is_empty());

    // Department 22, other tags: the tag filter drops it.
    let answer = svc
        .send(project("22", &["voirie"], "projects.Project/update"))
        .await;
    let id = answer.json["id"].as_str().unwrap().to_string();
    assert_eq!(routed_to(&svc, &id).await, ["all", "dept-22"]);
    let filtered = svc.event(&id).await.unwrap().filtered;
    assert_eq!(filtered.len(), 1);
    assert_eq!(filtered[0].connection, "some-tags");

    // A task event has no commune nor tags: both filters drop it, saying why.
    let task = serde_json::to_vec(&json!({
        "topic": "tasks.Task/update", "object_type": "tasks.Task",
        "webhook_uuid": "6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e",
        "object": {"id": 4242, "status": 1, "project": 1312, "resource": null}
    }))
    .unwrap();
    let id = svc.send(task).await.json["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(routed_to(&svc, &id).await, ["all"]);
    let filtered = svc.event(&id).await.unwrap().filtered;
    assert_eq!(filtered.len(), 2, "{filtered:?}");
    for dropped in &filtered {
        assert!(
            dropped
                .reason
                .starts_with("cannot be evaluated for this event")
                && dropped.reason.contains("commune") | dropped.reason.contains("tags"),
            "{dropped:?}"
        );
    }
    svc.stop().await;
}

#[tokio::test]
async fn an_event_every_filter_drops_is_ignored_with_the_reason() {
    let config = format!(
        "{}{FAST_QUEUE}{}",
        source_block(None),
        connection("dept-22", Some(DEPT_22)),
    );
    let svc = TestService::start(&config, &[("noop.wasm", &components::noop())]).await;
    let answer = svc
        .send(project("79", &[], "projects.Project/update"))
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json["status"], "ignored");
    assert_eq!(
        answer.json["message"],
        "Webhook event stored; the filters of its connections dropped it"
    );
    let id = answer.json["id"].as_str().unwrap();
    assert!(svc.jobs_of_event(id).await.is_empty());
    let event = svc.event(id).await.unwrap();
    assert_eq!(event.status, "ignored");
    assert_eq!(event.filtered[0].connection, "dept-22");
    assert_eq!(event.filtered[0].filter, DEPT_22);
    svc.stop().await;
}

#[tokio::test]
async fn an_invalid_filter_is_refused_when_the_connection_is_saved() {
    // At configuration load: the connection and the problem are named.
    for (filter, expected) in [
        (
            "object.commune.department.code ==",
            "not a valid CEL expression",
        ),
        (r#"departement == "22""#, "unknown variable `departement`"),
        ("object_id", "must give true or false, not a string"),
    ] {
        let text = format!("{}{}", source_block(None), connection("crm", Some(filter)));
        let err = Config::from_parts(&text, &[], &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("connection \"crm\"") && err.contains(expected),
            "{filter}: {err}"
        );
    }

    // When saved to the database by any other path (admin API, CLI): refused
    // too, and nothing is written.
    let svc = TestService::start(
        &format!("{}{}", source_block(None), connection("crm", Some(DEPT_22))),
        &[("noop.wasm", &components::noop())],
    )
    .await;
    let sealer = Sealer::load(None, &svc.dir.path().join("secret.key")).unwrap();
    let source_id: i64 = recoco_sync::store::sql::query_scalar("SELECT id FROM sources")
        .fetch_one(&svc.pool)
        .await
        .unwrap();
    let decl = ConnectionDecl {
        name: "crm".into(),
        source: SOURCE.into(),
        plugin: "test-noop".into(),
        enabled: true,
        allowed_hosts: None,
        config: json!({}),
        filter: Some("object.tags.exists(t, ".into()),
        limits: Default::default(),
        delivery: Default::default(),
        schedule: Vec::new(),
    };
    let err = connections::upsert(
        &svc.pool,
        &sealer,
        &decl,
        source_id,
        recoco_sync::store::Owner::File,
        recoco_sync::store::Write::CreateOrUpdate,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("not a valid CEL expression"), "{err}");
    let stored: Option<String> =
        recoco_sync::store::sql::query_scalar("SELECT filter FROM connections WHERE name = 'crm'")
            .fetch_one(&svc.pool)
            .await
            .unwrap();
    assert_eq!(stored.as_deref(), Some(DEPT_22));
    svc.stop().await;
}
