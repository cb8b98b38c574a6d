//! The shipped `lescommuns` connector end to end: signed Recoco webhooks in,
//! a fake Les Communs hub and a fake Recoco API (resource add-ons included) on
//! the other side. Delays are configured in milliseconds so that the scheduled
//! services loads run within the test.

use std::time::Duration;

use recoco_sync::queue::jobs::{JobFilter, JobView};
use recoco_sync_tests::fakes::lescommuns::{FakeHub, API_KEY};
use recoco_sync_tests::fakes::recoco::FakeRecoco;
use recoco_sync_tests::service::{source_block, Answer, TestService, FAST_QUEUE, SOURCE};
use recoco_sync_tests::wait_for;
use recoco_sync_tests::webhook::envelope;
use serde_json::{json, Value};

pub(crate) const WAIT: Duration = Duration::from_secs(40);
pub(crate) const TASK_4242: &[u8] = include_bytes!("../fixtures/webhook-task-lescommuns.json");
pub(crate) const PROJECT_UPDATE: &[u8] = include_bytes!("../fixtures/webhook-project-update.json");

pub(crate) fn project(id: i64) -> Value {
    let mut p: Value =
        serde_json::from_str(include_str!("../fixtures/project-detail.json")).unwrap();
    p["id"] = json!(id);
    p
}

pub(crate) fn services() -> Value {
    serde_json::from_str(include_str!("../fixtures/lescommuns-services.json")).unwrap()
}

/// A tagged (or not) recommendation event of `project`.
pub(crate) fn task_event(id: i64, project: i64, tags: &[&str]) -> Vec<u8> {
    envelope(
        "tasks.Task",
        "update",
        json!({"id": id, "status": 0, "project": project,
            "resource": {"id": 87, "title": "Aide", "subtitle": "", "tags": tags, "status": 2}}),
    )
}

/// A `[[connections]]` block of the lescommuns plugin.
pub(crate) fn connection(
    name: &str,
    hub: &FakeHub,
    key: &str,
    selection: &str,
    attempts: u32,
) -> String {
    format!(
        "[[connections]]\nname = {name:?}\nsource = {SOURCE:?}\nplugin = \"lescommuns\"\n\
         [connections.config]\nhub_url = {:?}\napi_key = {key:?}\n{selection}\n\
         [connections.config.load_services]\ndelay_ms = 100\nattempts = {attempts}\nbackoff_ms = 100\n",
        hub.url
    )
}

pub(crate) struct World {
    pub(crate) recoco: FakeRecoco,
    pub(crate) hub: FakeHub,
    pub(crate) svc: TestService,
}

impl World {
    /// Recoco with projects 1312 and 1400 and recommendations 4242, 4243 (of
    /// 1312) and 5000 (of 1400), each linked to a resource; `connections` built
    /// with the hub.
    pub(crate) async fn start(connections: impl FnOnce(&FakeHub) -> String) -> Self {
        let recoco = FakeRecoco::start().await;
        recoco.add_project(project(1312));
        recoco.add_project(project(1400));
        recoco.with(|s| {
            for (task, project) in [(4242, 1312), (4243, 1312), (5000, 1400)] {
                s.tasks.insert(
                    task,
                    json!({"id": task, "project": project, "resource": {"id": 87}}),
                );
            }
        });
        let hub = FakeHub::start().await;
        let config = format!(
            "{}{FAST_QUEUE}{}",
            source_block(Some(&recoco.api_url)),
            connections(&hub)
        );
        let svc = TestService::start(&config, &[]).await;
        Self { recoco, hub, svc }
    }

    /// Sends `body` and returns the settled job of `connection` for it.
    pub(crate) async fn send(&self, body: Vec<u8>, connection: &str) -> JobView {
        let answer = self.svc.send(body).await;
        assert_eq!(answer.status, 200, "{:?}", answer.json);
        self.job_of(&answer, connection).await
    }

    pub(crate) async fn job_of(&self, answer: &Answer, connection: &str) -> JobView {
        let event_id = answer.json["id"].as_str().unwrap();
        self.svc.settled_event(event_id, WAIT).await;
        let jobs = self.svc.jobs_of_event(event_id).await;
        jobs.into_iter()
            .find(|j| j.connection == connection)
            .expect("a job of the connection")
    }

    /// The add-on of `recommendation`, once it holds `data`.
    pub(crate) async fn addon(&self, recommendation: i64, data: &Value) -> Value {
        wait_for(&format!("the add-on of {recommendation}"), WAIT, || async {
            self.recoco.with(|s| {
                s.addons
                    .values()
                    .find(|a| a["recommendation"] == recommendation && a["data"] == *data)
                    .cloned()
            })
        })
        .await
    }

    /// Task jobs named `load-services`, oldest first.
    pub(crate) async fn loads(&self) -> Vec<JobView> {
        let mut loads: Vec<JobView> = self
            .svc
            .jobs(JobFilter {
                kind: Some("task".into()),
                ..Default::default()
            })
            .await
            .into_iter()
            .filter(|j| j.task_name.as_deref() == Some("load-services"))
            .collect();
        loads.sort_by_key(|j| (j.created_at, j.id.clone()));
        loads
    }

    /// Waits until no task job is pending or running; returns the loads.
    pub(crate) async fn loads_settled(&self) -> Vec<JobView> {
        wait_for("the services loads to settle", WAIT, || async {
            let loads = self.loads().await;
            let busy = loads
                .iter()
                .any(|j| ["queued", "running"].contains(&j.state.as_str()));
            (!busy && !loads.is_empty()).then_some(loads)
        })
        .await
    }

    pub(crate) async fn state(&self, connection: &str) -> Value {
        let answer = self
            .svc
            .admin(
                reqwest::Method::GET,
                &format!("/connections/{connection}/state"),
            )
            .await;
        answer.json["state"].clone()
    }

    pub(crate) async fn run_task(&self, connection: &str, task: &str, payload: Value) -> String {
        let response = self
            .svc
            .client
            .post(format!(
                "{}/admin/api/connections/{connection}/tasks/{task}",
                self.svc.url
            ))
            .json(&payload)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        answer["job_id"].as_str().unwrap().to_string()
    }
}

pub(crate) fn summary(job: &JobView) -> &str {
    assert_eq!(job.state, "succeeded", "{job:?}");
    job.summary.as_deref().unwrap()
}

#[tokio::test]
async fn a_tagged_recommendation_shares_the_project_then_attaches_the_services() {
    let w = World::start(|hub| connection("communs", hub, API_KEY, "projects = [1312]", 4)).await;
    w.hub.script_services("1312", vec![services()]);

    // The fixture's exact bytes, as Recoco signs them.
    let job = w.send(TASK_4242.to_vec(), "communs").await;
    assert!(
        summary(&job).starts_with("recommendation 4242: project 1312: created hub projet "),
        "{job:?}"
    );

    // One projet, mapped from the project reloaded from Recoco.
    let projets = w.hub.projets();
    assert_eq!(projets.len(), 1);
    let p = &projets[0];
    let hub_id = p["id"].as_str().unwrap().to_string();
    assert_eq!(p["recocoId"], "1312");
    assert_eq!(p["nom"], "Réhabilitation de la halle du Vieux-Bourg");
    assert_eq!(
        (&p["phase"], &p["phaseStatut"]),
        (&json!("Idée"), &json!("En cours"))
    );
    assert_eq!(p["dateDebutPrevisionnelle"], "2025-03-14");
    assert_eq!(p["collectivites"][0]["codeInsee"], "79888");
    assert_eq!(
        (
            &p["porteur"]["referentEmail"],
            &p["porteur"]["referentPrenom"],
            &p["porteur"]["referentNom"]
        ),
        (
            &json!("camille.durand@example.org"),
            &json!("Camille"),
            &json!("Durand")
        )
    );
    assert!(w
        .recoco
        .log()
        .iter()
        .any(|l| l.path == "/api/projects/1312/" && l.status == 200));
    let posts = w.hub.requests("POST", "/projets");
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].status, 201);
    assert_eq!(
        posts[0].authorization.as_deref(),
        Some(format!("Bearer {API_KEY}").as_str())
    );
    let sent = posts[0].body.as_ref().unwrap();
    assert!(
        sent.get("competences").is_none() && sent.get("leviers").is_none(),
        "{sent}"
    );

    // Then the scheduled task puts the hub's own service objects on the add-on.
    let addon = w.addon(4242, &services()).await;
    assert_eq!(addon["nature"], "lescommuns");
    assert_eq!(addon["enabled"], true);
    assert_eq!(
        addon["data"][0]["id"],
        "0197c3a1-5b2e-7d40-9f11-2a6b8c0d4e51"
    );
    let loads = w.loads_settled().await;
    assert_eq!(loads.len(), 1);
    assert_eq!(
        loads[0].payload.as_deref(),
        Some(r#"{"project":1312,"attempt":1}"#)
    );
    assert!(summary(&loads[0]).contains("attached to recommendation(s) 4242 (add-on 1 created)"));
    let gets = w.hub.requests("GET", "/services/project/");
    assert_eq!(gets.len(), 1);
    assert_eq!(gets[0].path, format!("/services/project/{hub_id}"));
    assert_eq!(gets[0].query.as_deref(), Some("idType=communId"));
    assert_eq!(
        gets[0].authorization, None,
        "the public route gets no API key"
    );

    let state = w.state("communs").await;
    assert_eq!(state["projet/1312"], hub_id.as_str());
    assert!(state.get("recommendation/1312/4242").is_some(), "{state}");
    // The key is a secret: not in any recorded summary.
    assert!(!job.summary.unwrap().contains(API_KEY));
    w.svc.stop().await;
}

#[tokio::test]
async fn untagged_recommendations_and_unselected_projects_share_nothing() {
    let w = World::start(|hub| {
        connection("communs", hub, API_KEY, "projects = [1312]", 4)
            + &connection("nothing-selected", hub, API_KEY, "", 4)
    })
    .await;

    let job = w
        .send(task_event(4243, 1312, &["batiment"]), "communs")
        .await;
    assert_eq!(
        summary(&job),
        "skipped: the resource 87 of recommendation 4243 is not tagged `les-communs`"
    );
    let no_resource = envelope(
        "tasks.Task",
        "update",
        json!({"id": 4243, "status": 1, "resource": null, "project": 1312}),
    );
    let job = w.send(no_resource, "communs").await;
    assert_eq!(
        summary(&job),
        "skipped: recommendation 4243 has no resource"
    );

    let answer = w.svc.send(task_event(5000, 1400, &["les-communs"])).await;
    let job = w.job_of(&answer, "communs").await;
    assert_eq!(
        summary(&job),
        "skipped: project 1400 is not in the connection's `projects`"
    );
    let job = w.job_of(&answer, "nothing-selected").await;
    assert!(
        summary(&job).contains("the connection selects no project"),
        "{job:?}"
    );

    // A project update of a project never shared does nothing either.
    let job = w.send(PROJECT_UPDATE.to_vec(), "communs").await;
    assert!(
        summary(&job).contains("project 1312 is not shared with the hub"),
        "{job:?}"
    );

    assert!(w.hub.log().is_empty(), "{:?}", w.hub.log());
    assert!(w.recoco.log().is_empty(), "{:?}", w.recoco.log());
    assert!(w.loads().await.is_empty());
    w.svc.stop().await;
}

#[tokio::test]
async fn a_second_recommendation_or_a_replay_updates_and_never_duplicates() {
    let w = World::start(|hub| connection("communs", hub, API_KEY, "projects = [1312]", 4)).await;
    w.hub.script_services("1312", vec![services()]);

    let first = w.svc.send(TASK_4242.to_vec()).await;
    let original = w.job_of(&first, "communs").await;
    assert!(
        summary(&original).contains("created hub projet"),
        "{original:?}"
    );
    w.addon(4242, &services()).await;

    // The same delivery again (Recoco re-sends), then an operator's replay.
    let job = w.send(TASK_4242.to_vec(), "communs").await;
    assert!(summary(&job).contains("updated hub projet"), "{job:?}");
    let event_id = first.json["id"].as_str().unwrap();
    let replay = w
        .svc
        .admin(reqwest::Method::POST, &format!("/events/{event_id}/replay"))
        .await;
    assert_eq!(replay.status, 200, "{:?}", replay.json);
    let replayed = wait_for("the replayed job", WAIT, || async {
        let jobs = w.svc.jobs_of_event(event_id).await;
        jobs.into_iter().find(|j| {
            j.id != job.id
                && j.state == "succeeded"
                && j.summary.as_deref().is_some_and(|s| s.contains("updated"))
        })
    })
    .await;
    assert!(summary(&replayed).contains("updated hub projet"));

    // A second tagged recommendation of the same project.
    let job = w
        .send(task_event(4243, 1312, &["les-communs"]), "communs")
        .await;
    assert!(
        summary(&job).starts_with("recommendation 4243: project 1312: updated hub projet"),
        "{job:?}"
    );
    w.addon(4243, &services()).await;
    w.loads_settled().await;

    let hub_id = w.hub.projets()[0]["id"].as_str().unwrap().to_string();
    assert_eq!(w.hub.projets().len(), 1);
    assert_eq!(w.hub.requests("POST", "/projets").len(), 1);
    let patches = w.hub.requests("PATCH", "/projets/");
    assert_eq!(patches.len(), 3);
    assert!(patches
        .iter()
        .all(|p| p.path == format!("/projets/{hub_id}") && p.status == 200));
    // One add-on per recommendation: 4242's was replaced, not created again.
    let addons = w
        .recoco
        .with(|s| s.addons.values().cloned().collect::<Vec<_>>());
    assert_eq!(addons.len(), 2, "{addons:?}");
    assert!(w
        .recoco
        .log()
        .iter()
        .any(|l| l.method == "PUT" && l.path == "/api/resource-addons/1/" && l.status == 200));
    let state = w.state("communs").await;
    assert!(
        state.get("recommendation/1312/4242").is_some()
            && state.get("recommendation/1312/4243").is_some()
    );
    w.svc.stop().await;
}

#[tokio::test]
async fn services_that_appear_on_the_third_attempt_still_end_as_an_addon() {
    let w = World::start(|hub| {
        connection("communs", hub, API_KEY, "projects = [1312]", 4)
            + &connection("impatient", hub, API_KEY, "projects = [1400]", 2)
    })
    .await;
    w.hub
        .script_services("1312", vec![json!([]), json!([]), services()]);
    w.hub
        .script_services("1400", vec![json!([]), json!([]), services()]);

    let job = w.send(TASK_4242.to_vec(), "communs").await;
    assert!(summary(&job).contains("created hub projet"), "{job:?}");
    w.addon(4242, &services()).await;
    let job = w
        .send(task_event(5000, 1400, &["les-communs"]), "impatient")
        .await;
    assert!(summary(&job).contains("created hub projet"), "{job:?}");
    let loads = w.loads_settled().await;

    let of = |c: &str| {
        loads
            .iter()
            .filter(|j| j.connection == c)
            .collect::<Vec<_>>()
    };
    let patient = of("communs");
    let payloads: Vec<&str> = patient
        .iter()
        .map(|j| j.payload.as_deref().unwrap())
        .collect();
    assert_eq!(
        payloads,
        [
            r#"{"project":1312,"attempt":1}"#,
            r#"{"project":1312,"attempt":2}"#,
            r#"{"project":1312,"attempt":3}"#
        ]
    );
    assert!(summary(patient[0])
        .contains("no service yet for project 1312 (attempt 1 of 4); next attempt in 100 ms"));
    assert!(summary(patient[1]).contains("(attempt 2 of 4); next attempt in 200 ms"));
    assert!(summary(patient[2]).contains("2 service(s) of project 1312 attached"));

    // With two attempts allowed, the cycle stops there: no add-on, nothing pending.
    let impatient = of("impatient");
    assert_eq!(impatient.len(), 2, "{impatient:?}");
    assert!(
        summary(impatient[1]).contains("no service for project 1400 after 2 attempts; giving up")
    );
    assert!(w
        .recoco
        .with(|s| s.addons.values().all(|a| a["recommendation"] != 5000)));
    let gets = w.hub.requests("GET", "/services/project/");
    assert_eq!(gets.len(), 5, "three loads for 1312, two for 1400");
    w.svc.stop().await;
}

#[tokio::test]
async fn project_updates_patch_shared_projects_and_recreate_projets_deleted_in_the_hub() {
    let w = World::start(|hub| connection("communs", hub, API_KEY, "projects = [1312]", 4)).await;
    w.hub.script_services("1312", vec![services()]);
    w.send(TASK_4242.to_vec(), "communs").await;
    w.addon(4242, &services()).await;
    let first_id = w.hub.projets()[0]["id"].as_str().unwrap().to_string();

    // The hub qualified the projet meanwhile; then the project changes in Recoco.
    w.hub
        .qualify("1312", json!(["90-212"]), json!(["Gestion des haies"]));
    w.recoco.with(|s| {
        let p = s.projects.get_mut(&1312).unwrap();
        p["name"] = json!("Halle du Vieux-Bourg, tranche 2");
        p["status"] = json!("DONE");
    });
    let job = w.send(PROJECT_UPDATE.to_vec(), "communs").await;
    assert!(
        summary(&job).starts_with(&format!("project 1312: updated hub projet {first_id}")),
        "{job:?}"
    );
    let p = w.hub.projet_of("1312").unwrap();
    assert_eq!(p["nom"], "Halle du Vieux-Bourg, tranche 2");
    assert_eq!(p["phaseStatut"], "Terminé");
    assert_eq!(
        p["competences"],
        json!(["90-212"]),
        "the PATCH kept the hub's qualification"
    );
    assert_eq!(p["leviers"], json!(["Gestion des haies"]));
    let patch = &w.hub.requests("PATCH", "/projets/")[0];
    assert!(patch.body.as_ref().unwrap().get("competences").is_none());

    // Deleted in the hub: the PATCH gets a 404, the project is created again.
    w.hub.delete_projet(&first_id);
    let job = w.send(PROJECT_UPDATE.to_vec(), "communs").await;
    assert!(
        summary(&job).contains(&format!(
            "hub projet {first_id} was gone from the hub, created "
        )),
        "{job:?}"
    );
    let p = w.hub.projet_of("1312").unwrap();
    let new_id = p["id"].as_str().unwrap();
    assert_ne!(new_id, first_id);
    assert_eq!(w.hub.projets().len(), 1);
    assert_eq!(
        w.hub.requests("PATCH", "/projets/").last().unwrap().status,
        404
    );
    assert_eq!(w.state("communs").await["projet/1312"], new_id);
    // And the services load follows the new projet.
    let gets = wait_for("a services read of the new projet", WAIT, || async {
        let gets = w
            .hub
            .requests("GET", &format!("/services/project/{new_id}"));
        (!gets.is_empty()).then_some(gets)
    })
    .await;
    assert_eq!(gets[0].status, 200);
    w.svc.stop().await;
}

#[tokio::test]
async fn a_project_without_commune_is_shared_once_it_has_one() {
    let w = World::start(|hub| connection("communs", hub, API_KEY, "projects = [1312]", 4)).await;
    w.hub.script_services("1312", vec![services()]);
    let commune = w
        .recoco
        .with(|s| s.projects.get_mut(&1312).unwrap()["commune"].take());

    let job = w.send(TASK_4242.to_vec(), "communs").await;
    assert!(
        summary(&job).contains("project 1312 not shared yet: project 1312 has no commune"),
        "{job:?}"
    );
    assert!(
        w.hub.log().is_empty(),
        "nothing the hub would refuse is sent"
    );
    assert!(w.loads().await.is_empty());

    // The commune is set: the project update shares it, the services follow.
    w.recoco
        .with(|s| s.projects.get_mut(&1312).unwrap()["commune"] = commune);
    let job = w.send(PROJECT_UPDATE.to_vec(), "communs").await;
    assert!(
        summary(&job).contains("project 1312: created hub projet"),
        "{job:?}"
    );
    w.addon(4242, &services()).await;

    // An operator may also share it again on demand.
    let id = w
        .run_task("communs", "share-project", json!({"project": 1312}))
        .await;
    let task = w.svc.job_in(&id, &["succeeded", "failed"], WAIT).await;
    assert!(
        summary(&task).contains("project 1312: updated hub projet"),
        "{task:?}"
    );
    assert_eq!(w.hub.projets().len(), 1);
    let id = w
        .run_task("communs", "share-project", json!({"project": 1400}))
        .await;
    let task = w.svc.job_in(&id, &["succeeded", "failed"], WAIT).await;
    assert_eq!(task.state, "failed");
    assert!(task
        .last_error
        .unwrap()
        .contains("project 1400 is not in the connection's `projects`"));
    w.svc.stop().await;
}

#[tokio::test]
async fn hub_errors_are_retried_or_fail_with_the_hubs_message() {
    let w = World::start(|hub| {
        connection("communs", hub, API_KEY, "all_projects = true", 4)
            + &connection(
                "wrong-key",
                hub,
                "not-the-hub-key-0003",
                "projects = [1400]",
                4,
            )
    })
    .await;

    // 500 then 429 (Retry-After: 1) on the POST: retried, then created.
    w.hub.fail_next(&[500, 429]);
    let job = w.send(TASK_4242.to_vec(), "communs").await;
    assert!(summary(&job).contains("created hub projet"), "{job:?}");
    let attempts = w.svc.attempts(&job.id).await;
    let outcomes: Vec<&str> = attempts.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, ["retry", "retry", "succeeded"]);
    assert!(attempts[0]
        .error
        .as_deref()
        .unwrap()
        .ends_with("HTTP 500: Internal server error"));
    assert!(attempts[1]
        .error
        .as_deref()
        .unwrap()
        .contains("ThrottlerException: Too Many Requests"));
    assert!(
        attempts[2].started_at - attempts[1].started_at >= 900,
        "Retry-After honoured"
    );
    assert_eq!(w.hub.projets().len(), 1);

    // A commune unknown to the hub: a permanent failure quoting the hub.
    w.recoco
        .with(|s| s.projects.get_mut(&1400).unwrap()["commune"]["insee"] = json!("99999"));
    let answer = w.svc.send(task_event(5000, 1400, &["les-communs"])).await;
    let job = w.job_of(&answer, "communs").await;
    assert_eq!((job.state.as_str(), job.attempts), ("failed", 1), "{job:?}");
    let error = job.last_error.unwrap();
    assert!(
        error.contains(
            "/projets: HTTP 400: Cannot find a corresponding Commune for this code 99999"
        ),
        "{error}"
    );

    // A wrong API key: permanent, says so, and does not show the key.
    let job = w.job_of(&answer, "wrong-key").await;
    assert_eq!((job.state.as_str(), job.attempts), ("failed", 1), "{job:?}");
    let error = job.last_error.unwrap();
    assert!(
        error.contains("HTTP 401: Invalid API key (check the connection's api_key)"),
        "{error}"
    );
    assert!(!error.contains("not-the-hub-key-0003"));
    assert_eq!(w.hub.projets().len(), 1);
    w.svc.stop().await;
}

/// The add-on of `recommendation` as Recoco holds it, once `check` accepts it.
async fn addon_where(w: &World, recommendation: i64, check: impl Fn(&Value) -> bool) -> Value {
    wait_for(&format!("the add-on of {recommendation}"), WAIT, || async {
        w.recoco.with(|s| {
            s.addons
                .values()
                .find(|a| a["recommendation"] == recommendation && check(a))
                .cloned()
        })
    })
    .await
}

#[tokio::test]
async fn the_porteur_is_the_owner_and_stale_addons_are_withdrawn() {
    let w = World::start(|hub| connection("communs", hub, API_KEY, "projects = [1312]", 2)).await;
    w.recoco.with(|s| {
        s.projects.get_mut(&1312).unwrap()["owner"] = json!({"id": 51, "first_name": "Sylvie",
            "last_name": "Martin", "username": "maire@saint-albin.fr", "email": "maire@saint-albin.fr",
            "profile": {"organization": {"id": 3, "name": "Commune de Saint-Albin-des-Prés"}}});
    });
    w.hub.script_services("1312", vec![services()]);
    let job = w.send(TASK_4242.to_vec(), "communs").await;
    assert!(summary(&job).contains("created hub projet"), "{job:?}");
    let projet = w.hub.projet_of("1312").unwrap();
    assert_eq!(
        (
            &projet["porteur"]["referentEmail"],
            &projet["porteur"]["referentPrenom"],
            &projet["porteur"]["referentNom"]
        ),
        (
            &json!("maire@saint-albin.fr"),
            &json!("Sylvie"),
            &json!("Martin")
        ),
        "the owner, not an advisor"
    );
    w.addon(4242, &services()).await;
    w.loads_settled().await;

    // The recommendation's resource loses the tag: its add-on stops showing services.
    let job = w
        .send(task_event(4242, 1312, &["batiment"]), "communs")
        .await;
    assert!(
        summary(&job).contains("; its add-on 1 was disabled and emptied"),
        "{job:?}"
    );
    let addon = addon_where(&w, 4242, |a| a["enabled"] == false).await;
    assert_eq!(addon["data"], json!([]));

    // Tagged again: the services are back.
    w.send(task_event(4242, 1312, &["les-communs"]), "communs")
        .await;
    addon_where(&w, 4242, |a| {
        a["enabled"] == true && a["data"] == services()
    })
    .await;
    wait_for("the reload", WAIT, || async {
        let loads = w.loads().await;
        (loads.len() == 2 && loads.iter().all(|j| j.state == "succeeded")).then_some(())
    })
    .await;

    // The hub stops proposing services: after the configured attempts, the
    // add-on is emptied, and the last load says so.
    w.hub.script_services("1312", vec![json!([])]);
    let job = w.send(PROJECT_UPDATE.to_vec(), "communs").await;
    assert!(summary(&job).contains("updated hub projet"), "{job:?}");
    let addon = addon_where(&w, 4242, |a| a["enabled"] == false).await;
    assert_eq!(addon["data"], json!([]));
    let loads = w.loads_settled().await;
    let last = loads.last().unwrap();
    assert!(
        summary(last).contains("after 2 attempts; giving up")
            && summary(last).contains("recommendation 4242: its add-on 1 was disabled and emptied"),
        "{last:?}"
    );
    w.svc.stop().await;
}

#[tokio::test]
async fn refusals_of_recoco_and_the_hub_are_explained_or_retried() {
    let w = World::start(|hub| connection("communs", hub, API_KEY, "projects = [1312]", 2)).await;
    w.hub.script_services("1312", vec![services()]);

    // A valid token without the "manage resources" permission: named, not retried.
    w.recoco.with(|s| s.addons_forbidden = true);
    let job = w.send(TASK_4242.to_vec(), "communs").await;
    assert!(summary(&job).contains("created hub projet"), "{job:?}");
    let loads = w.loads_settled().await;
    let load = &loads[0];
    assert_eq!(
        (load.state.as_str(), load.attempts),
        ("failed", 1),
        "{load:?}"
    );
    assert!(
        load.last_error
            .as_deref()
            .unwrap()
            .contains("lacks the \"manage resources\" permission"),
        "{load:?}"
    );
    w.recoco.with(|s| s.addons_forbidden = false);

    // A 429 without Retry-After: retried with the host's backoff.
    w.hub.with(|s| s.retry_after_on_429 = false);
    w.hub.fail_next(&[429]);
    let job = w.send(PROJECT_UPDATE.to_vec(), "communs").await;
    assert!(summary(&job).contains("updated hub projet"), "{job:?}");
    let outcomes: Vec<String> = w
        .svc
        .attempts(&job.id)
        .await
        .into_iter()
        .map(|a| a.outcome)
        .collect();
    assert_eq!(outcomes, ["retry", "succeeded"]);

    // A description over the hub's body limit: permanent at once, not five 500s.
    let writes = |w: &World| {
        w.hub.requests("PATCH", "/projets").len() + w.hub.requests("POST", "/projets").len()
    };
    let writes_before = writes(&w);
    w.recoco
        .with(|s| s.projects.get_mut(&1312).unwrap()["description"] = json!("x".repeat(120_000)));
    let answer = w.svc.send(PROJECT_UPDATE.to_vec()).await;
    let job = w.job_of(&answer, "communs").await;
    assert_eq!((job.state.as_str(), job.attempts), ("failed", 1), "{job:?}");
    assert!(
        job.last_error
            .as_deref()
            .unwrap()
            .contains("over the hub's 100 kB limit"),
        "{job:?}"
    );
    assert_eq!(writes(&w), writes_before, "nothing sent");
    w.svc.stop().await;
}
