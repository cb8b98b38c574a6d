//! The shipped `grist` connector end to end, against the fake Grist and the fake
//! Recoco portal: `setup` (twice, and after a user changed the table), signed
//! webhooks of every subscribed type ending as the right row, duplicates,
//! deleted projects, Grist failures, and `sync-all` (250 projects on three
//! pages with one refused record, a run outliving the access token, a run
//! handed over between jobs and resumed after a failure).

use std::time::Duration;

use recoco_sync::queue::jobs::{JobFilter, JobView};
use recoco_sync_tests::fakes::grist::{FakeGrist, API_KEY};
use recoco_sync_tests::fakes::recoco::FakeRecoco;
use recoco_sync_tests::service::{source_block, TestService, FAST_QUEUE, SOURCE};
use serde_json::{json, Map, Value};

pub(crate) const WAIT: Duration = Duration::from_secs(60);
const TABLE: &str = "Projets";

pub(crate) fn fixture(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

/// A project in the detail shape, created `rank` minutes after a fixed time
/// (the list shows the highest rank first).
pub(crate) fn project(id: i64, rank: i64) -> Value {
    let mut p = fixture(include_str!("../fixtures/project-detail.json"));
    let created = chrono::DateTime::parse_from_rfc3339("2025-01-01T10:00:00+01:00").unwrap()
        + chrono::Duration::minutes(rank);
    p["id"] = json!(id);
    p["name"] = json!(format!("Projet {id}"));
    p["created_on"] = json!(created.to_rfc3339());
    p
}

/// The fixture's questions plus: a slug starting with a digit, a slug equal to
/// a project column, a yes/no question in lower case, a multiple choice whose
/// label holds a comma.
pub(crate) fn questions() -> Vec<Value> {
    let mut qs = fixture(include_str!("../fixtures/survey-questions.json"))["results"]
        .as_array()
        .unwrap()
        .clone();
    let choice = |id: i64, text: &str| json!({"id": id, "value": format!("v{id}"), "text": text, "conclusion": null});
    qs.push(json!({"id": 306, "text": "Une deuxième tranche ?", "text_short": "2e tranche", "slug": "2e-tranche", "is_multiple": false, "choices": []}));
    qs.push(json!({"id": 307, "text": "Qui suit le projet ?", "text_short": "Nom du référent", "slug": "name", "is_multiple": false, "choices": []}));
    qs.push(json!({"id": 308, "text": "Le projet est-il prêt ?", "text_short": "Projet prêt", "slug": "projet-pret", "is_multiple": false, "choices": [choice(931, "non"), choice(932, "Oui")]}));
    qs.push(json!({"id": 309, "text": "Quelles filières ?", "text_short": "Filières", "slug": "filieres", "is_multiple": true, "choices": [choice(933, "Commerce, artisanat"), choice(934, "Tourisme")]}));
    qs
}

fn question(slug: &str) -> Value {
    questions().into_iter().find(|q| q["slug"] == slug).unwrap()
}

/// One answer of every kind for `project_id` in session `session`.
pub(crate) fn answers(project_id: i64, session: i64) -> Vec<Value> {
    let mut list = fixture(include_str!("../fixtures/survey-session-answers.json"))["results"]
        .as_array()
        .unwrap()
        .clone();
    let answer = |id: i64, slug: &str, selected: &[usize], comment: &str| {
        let q = question(slug);
        let chosen: Vec<Value> = selected.iter().map(|i| q["choices"][*i].clone()).collect();
        json!({"id": id, "created_on": "2025-03-20T11:02:44+01:00", "updated_on": "2025-03-20T11:02:44+01:00",
            "question": q, "session": session, "project": project_id, "choices": chosen,
            "values": [], "comment": comment, "signals": "", "updated_by": null, "attachment": null})
    };
    list.push(answer(89006, "2e-tranche", &[], "oui, en 2026"));
    list.push(answer(89007, "name", &[], "Mme Roux"));
    list.push(answer(89008, "projet-pret", &[], "à voir"));
    list.push(answer(89009, "filieres", &[0, 1], ""));
    for a in list.iter_mut() {
        a["project"] = json!(project_id);
        a["session"] = json!(session);
    }
    list
}

/// The `[[connections]]` block of a grist connection.
pub(crate) fn connection(api_url: &str, api_key: &str, doc: &str, extra: &str) -> String {
    format!(
        "[[connections]]\nname = \"grist\"\nsource = {SOURCE:?}\nplugin = \"grist\"\n[connections.config]\n\
         api_url = {api_url:?}\napi_key = {api_key:?}\ndoc_id = {doc:?}\ntable_id = {TABLE:?}\n{extra}"
    )
}

/// Starts task `task` with `payload` and waits until its job ends.
pub(crate) async fn run_task(svc: &TestService, task: &str, payload: Value) -> JobView {
    let response = svc
        .client
        .post(format!(
            "{}/admin/api/connections/grist/tasks/{task}",
            svc.url
        ))
        .json(&payload)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let body: Value = response.json().await.unwrap();
    let job = body["job_id"].as_str().unwrap().to_string();
    svc.job_in(&job, &["succeeded", "failed", "dead"], WAIT)
        .await
}

/// Sends a webhook body and waits until its event is settled; returns its job.
pub(crate) async fn deliver(svc: &TestService, body: &[u8]) -> JobView {
    let answer = svc.send(body.to_vec()).await;
    assert_eq!(answer.status, 200, "{:?}", answer.json);
    let event = answer.json["id"].as_str().unwrap().to_string();
    svc.settled_event(&event, WAIT).await;
    svc.jobs_of_event(&event).await.remove(0)
}

struct World {
    recoco: FakeRecoco,
    grist: FakeGrist,
    doc: String,
    svc: TestService,
}

impl World {
    async fn start(extra_config: &str) -> Self {
        let recoco = FakeRecoco::start().await;
        recoco.with(|s| s.questions = questions());
        let grist = FakeGrist::start().await;
        let doc = grist.create_doc();
        let config = format!(
            "{}{FAST_QUEUE}{}",
            source_block(Some(&recoco.api_url)),
            connection(&grist.api_url, API_KEY, &doc, extra_config)
        );
        let svc = TestService::start(&config, &[]).await;
        Self {
            recoco,
            grist,
            doc,
            svc,
        }
    }

    fn rows_of(&self, project: i64) -> Vec<Map<String, Value>> {
        self.grist
            .rows_where(&self.doc, TABLE, "object_id", &json!(project))
    }

    fn row(&self, project: i64) -> Map<String, Value> {
        let rows = self.rows_of(project);
        assert_eq!(rows.len(), 1, "one row for project {project}: {rows:?}");
        rows.into_iter().next().unwrap()
    }

    fn columns(&self) -> Vec<(String, String, String, u64)> {
        let table = self.grist.table(&self.doc, TABLE).expect("table exists");
        table
            .columns
            .iter()
            .filter(|c| !c.hidden)
            .map(|c| (c.id.clone(), c.label.clone(), c.col_type.clone(), c.col_ref))
            .collect()
    }

    fn puts(&self) -> usize {
        self.grist
            .log()
            .iter()
            .filter(|l| l.method == "PUT" && l.path.contains("/records"))
            .count()
    }
}

fn succeeded(job: &JobView) -> &str {
    assert_eq!(job.state, "succeeded", "{job:?}");
    job.summary.as_deref().unwrap()
}

#[tokio::test]
async fn setup_creates_the_table_then_changes_nothing_and_keeps_user_changes() {
    let w = World::start("").await;
    let summary = succeeded(&run_task(&w.svc, "setup", json!({})).await).to_string();
    assert!(
        summary.starts_with("created table Projets with 37 columns"),
        "{summary}"
    );
    let first = w.columns();
    let ids: Vec<&str> = first.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(&ids[..4], ["object_id", "name", "description", "tags"]);
    assert!(
        ids.contains(&"c2e_tranche"),
        "a leading digit gets Grist's prefix: {ids:?}"
    );
    assert!(
        ids.contains(&"name2"),
        "a slug equal to a project column gets a suffix: {ids:?}"
    );
    let find = |id: &str| first.iter().find(|c| c.0 == id).unwrap().clone();
    assert_eq!(find("tags").2, "ChoiceList");
    assert_eq!(find("created").2, "DateTime:Europe/Amsterdam");
    assert_eq!(find("diagnostic_energetique").2, "Bool");
    assert_eq!(
        find("projet_pret").2,
        "Bool",
        "yes/no detected whatever the case"
    );
    assert_eq!(find("filieres").2, "ChoiceList");
    assert_eq!(find("thematiques_comment").1, "Commentaire de Thématiques");
    assert_eq!(find("name2").1, "Nom du référent");

    // Twice: nothing changes.
    let again = succeeded(&run_task(&w.svc, "setup", json!({})).await).to_string();
    assert_eq!(
        again,
        "table Projets already has its 37 columns: nothing to add"
    );
    assert_eq!(w.columns(), first);

    // A user retypes, renames (the id follows the label), deletes and adds columns;
    // the portal gains a question.
    w.grist
        .user_patch_column(&w.doc, TABLE, "tags", json!({"type": "Text"}));
    w.grist.user_patch_column(
        &w.doc,
        TABLE,
        "name",
        json!({"label": "Nom du projet (officiel)"}),
    );
    w.grist.user_add_column(&w.doc, TABLE, "mes_notes", "Text");
    w.grist.with(|s| {
        let t = s
            .docs
            .get_mut(&w.doc)
            .unwrap()
            .tables
            .iter_mut()
            .find(|t| t.id == TABLE)
            .unwrap();
        t.columns.retain(|c| c.id != "postal_code");
    });
    w.recoco.with(|s| s.questions.push(json!({"id": 310, "text": "Budget ?", "text_short": "Budget", "slug": "budget", "is_multiple": false, "choices": []})));
    let third = succeeded(&run_task(&w.svc, "setup", json!({})).await).to_string();
    assert!(
        third.starts_with("table Projets: added 2 columns (postal_code, budget)"),
        "{third}"
    );
    assert!(
        third.contains("tags is Text (setup would create ChoiceList)"),
        "{third}"
    );
    let now = w.columns();
    let ids: Vec<&str> = now.iter().map(|c| c.0.as_str()).collect();
    assert!(
        ids.contains(&"Nom_du_projet_officiel_") && !ids.contains(&"name"),
        "not re-created: {ids:?}"
    );
    assert!(ids.contains(&"mes_notes"));
    assert_eq!(
        now.iter().find(|c| c.0 == "tags").unwrap().2,
        "Text",
        "not retyped back"
    );
    assert_eq!(now.len(), first.len() + 2);

    // The renamed column still receives the project name.
    w.recoco.add_project(project(1312, 0));
    let job = deliver(
        &w.svc,
        include_bytes!("../fixtures/webhook-project-update.json"),
    )
    .await;
    succeeded(&job);
    let row = w.row(1312);
    assert_eq!(row["Nom_du_projet_officiel_"], "Projet 1312");
    assert_eq!(row["mes_notes"], "", "a user's column is left alone");
    w.svc.stop().await;
}

#[tokio::test]
async fn every_subscribed_event_ends_as_the_right_row() {
    let w = World::start("").await;
    succeeded(&run_task(&w.svc, "setup", json!({})).await);
    let mut halle = fixture(include_str!("../fixtures/project-detail.json"));
    w.recoco.add_project(halle.clone());
    w.recoco.add_session(5501, 1312, answers(1312, 5501));

    // A project update.
    let job = deliver(
        &w.svc,
        include_bytes!("../fixtures/webhook-project-update.json"),
    )
    .await;
    let summary = succeeded(&job).to_string();
    assert!(
        summary.contains("project 1312 → row 1 of Projets (added)"),
        "{summary}"
    );
    assert!(
        summary.contains("created columns diagnostic_energetique_attachment"),
        "{summary}"
    );
    let row = w.row(1312);
    assert_eq!(row["name"], "Réhabilitation de la halle du Vieux-Bourg");
    assert_eq!(row["tags"], json!(["L", "patrimoine", "centre-bourg"]));
    assert_eq!(row["city"], "SAINT-ALBIN-DES-PRES");
    assert_eq!(row["postal_code"], "79220");
    assert_eq!(row["region_code"], "75");
    assert_eq!(row["latitude"], json!(46.44187));
    assert_eq!(row["created"], json!(1741944067.512344));
    assert_eq!(row["inactive_since"], Value::Null);
    assert_eq!(row["active"], json!(true));
    assert_eq!(row["owner_organization"], "Commune de Saint-Albin-des-Prés");
    assert_eq!(
        row["description_du_site"],
        "Halle de 1890, charpente métallique, 600 m² au sol."
    );
    assert_eq!(row["diagnostic_energetique"], json!(true));
    assert_eq!(
        row["diagnostic_energetique_attachment"],
        "https://portail.example.org/media/survey/5501/diagnostic-2024.pdf"
    );
    assert_eq!(row["competence_voirie"], "je ne sais pas");
    assert_eq!(row["etat_du_bati"], "Travaux importants à prévoir");
    assert_eq!(
        row["thematiques"],
        json!(["L", "Commerce de proximité", "Mobilités douces"])
    );
    assert_eq!(row["c2e_tranche"], "oui, en 2026");
    assert_eq!(row["name2"], "Mme Roux");
    assert_eq!(
        row["filieres"],
        json!(["L", "Commerce, artisanat", "Tourisme"])
    );
    assert_eq!(row["projet_pret_comment"], "à voir");
    // Unanswered yes/no is sent as null (Grist's Bool then stores false).
    let put = w
        .grist
        .log()
        .into_iter()
        .rev()
        .find(|l| l.method == "PUT")
        .unwrap();
    assert_eq!(put.body["records"][0]["fields"]["projet_pret"], Value::Null);
    assert!(put.path.contains("onmany=all"), "{}", put.path);
    assert_eq!(row["projet_pret"], json!(false));

    // A tag change: the tagged item's object is the project itself.
    halle["tags"] = json!(["patrimoine", "tiers-lieu, culture"]);
    w.recoco.add_project(halle.clone());
    succeeded(
        &deliver(
            &w.svc,
            include_bytes!("../fixtures/webhook-tagged-item.json"),
        )
        .await,
    );
    assert_eq!(
        w.row(1312)["tags"],
        json!(["L", "patrimoine", "tiers-lieu, culture"])
    );

    // A survey answer: re-read from the API, not from the webhook body.
    w.recoco.with(|s| {
        let list = s.answers.get_mut(&5501).unwrap();
        let thematiques = list
            .iter_mut()
            .find(|a| a["question"]["slug"] == "thematiques")
            .unwrap();
        thematiques["choices"] = json!([thematiques["question"]["choices"][1]]);
    });
    succeeded(
        &deliver(
            &w.svc,
            include_bytes!("../fixtures/webhook-survey-answer.json"),
        )
        .await,
    );
    assert_eq!(w.row(1312)["thematiques"], json!(["L", "Logement"]));

    // A deleted answer empties its columns.
    let deleted = w.recoco.with(|s| {
        let list = s.answers.get_mut(&5501).unwrap();
        let i = list
            .iter()
            .position(|a| a["question"]["slug"] == "2e-tranche")
            .unwrap();
        list.remove(i)
    });
    let body = recoco_sync_tests::webhook::envelope("survey.Answer", "delete", deleted);
    succeeded(&deliver(&w.svc, &body).await);
    let row = w.row(1312);
    assert_eq!(
        row["c2e_tranche"],
        Value::Null,
        "a deleted answer leaves no stale cell"
    );
    assert_eq!(row["thematiques"], json!(["L", "Logement"]));

    // A user profile: every project it owns.
    halle["orga_owner"] = json!("Communauté de communes");
    w.recoco.add_project(halle);
    let mut other = project(1288, 1);
    other["orga_owner"] = json!("Communauté de communes");
    other["commune"] = Value::Null;
    w.recoco.add_project(other);
    let summary = succeeded(
        &deliver(
            &w.svc,
            include_bytes!("../fixtures/webhook-user-profile.json"),
        )
        .await,
    )
    .to_string();
    assert!(
        summary.contains("project 1288 → row 2 of Projets (added)"),
        "{summary}"
    );
    assert_eq!(w.row(1312)["owner_organization"], "Communauté de communes");
    let no_commune = w.row(1288);
    assert_eq!(no_commune["owner_organization"], "Communauté de communes");
    assert_eq!(
        no_commune["city"],
        Value::Null,
        "a project without commune is fine"
    );

    // The same webhook twice: still one row each.
    for _ in 0..2 {
        succeeded(
            &deliver(
                &w.svc,
                include_bytes!("../fixtures/webhook-project-update.json"),
            )
            .await,
        );
    }
    assert_eq!(w.rows_of(1312).len(), 1);
    assert_eq!(w.grist.rows(&w.doc, TABLE).len(), 2);
    w.svc.stop().await;
}

#[tokio::test]
async fn a_deleted_project_is_marked_inactive_not_failed() {
    let w = World::start("").await;
    succeeded(&run_task(&w.svc, "setup", json!({})).await);
    w.recoco.add_project(project(1312, 0));
    succeeded(
        &deliver(
            &w.svc,
            include_bytes!("../fixtures/webhook-project-update.json"),
        )
        .await,
    );
    assert_eq!(w.row(1312)["active"], json!(true));

    w.recoco.with(|s| s.deleted.insert(1312));
    let delete = include_str!("../fixtures/webhook-project-update.json")
        .replace("projects.Project/update", "projects.Project/delete");
    let summary = succeeded(&deliver(&w.svc, delete.as_bytes()).await).to_string();
    assert!(
        summary.contains("project 1312 no longer exists in Recoco: row 1 marked inactive"),
        "{summary}"
    );
    let row = w.row(1312);
    assert_eq!(row["active"], json!(false));
    assert_eq!(row["name"], "Projet 1312", "the rest of the row is kept");

    // A project that never had a row gets none.
    let unknown =
        recoco_sync_tests::webhook::envelope("projects.Project", "update", json!({"id": 4040}));
    let summary = succeeded(&deliver(&w.svc, &unknown).await).to_string();
    assert!(
        summary.contains("project 4040 no longer exists in Recoco and has no row"),
        "{summary}"
    );
    assert_eq!(w.grist.rows(&w.doc, TABLE).len(), 1);

    // A project announced as created that Recoco does not show yet (its webhook
    // preceded the commit) is read again later, not marked inactive.
    let created =
        recoco_sync_tests::webhook::envelope("projects.Project", "create", json!({"id": 5050}));
    let answer = w.svc.send(created).await;
    let event = answer.json["id"].as_str().unwrap().to_string();
    let job = recoco_sync_tests::wait_for("a first attempt", WAIT, || async {
        w.svc
            .jobs_of_event(&event)
            .await
            .into_iter()
            .find(|j| j.attempts >= 1 && j.state == "queued")
    })
    .await;
    let error = job.last_error.as_deref().unwrap();
    assert!(error.contains("may precede the commit"), "{job:?}");
    w.recoco.add_project(project(5050, 2));
    w.svc.settled_event(&event, WAIT).await;
    succeeded(&w.svc.jobs_of_event(&event).await[0]);
    assert_eq!(w.row(5050)["active"], json!(true));
    w.svc.stop().await;
}

#[tokio::test]
async fn grist_failures_are_retried_or_explained() {
    let w = World::start("").await;
    w.recoco.add_project(project(1312, 0));
    // No setup yet: the table does not exist.
    let job = deliver(
        &w.svc,
        include_bytes!("../fixtures/webhook-project-update.json"),
    )
    .await;
    assert_eq!(job.state, "failed", "{job:?}");
    assert_eq!(job.attempts, 1, "permanent: not retried");
    let error = job.last_error.unwrap();
    assert!(
        error.contains("Grist has no table \"Projets\"")
            && error.contains("run the connection's `setup` task"),
        "{error}"
    );
    assert!(!error.contains(API_KEY));

    succeeded(&run_task(&w.svc, "setup", json!({})).await);
    w.grist.fail(429, 2, Some(1));
    let job = deliver(
        &w.svc,
        include_bytes!("../fixtures/webhook-project-update.json"),
    )
    .await;
    succeeded(&job);
    let attempts = w.svc.attempts(&job.id).await;
    let outcomes: Vec<&str> = attempts.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, ["retry", "retry", "succeeded"]);
    assert!(
        attempts[0].error.as_deref().unwrap().contains("429"),
        "{:?}",
        attempts[0].error
    );
    let gap = attempts[2].started_at - attempts[1].started_at;
    assert!(gap >= 900, "Retry-After: 1 honoured, waited {gap} ms");

    w.grist.fail(500, 1, None);
    let job = deliver(
        &w.svc,
        include_bytes!("../fixtures/webhook-project-update.json"),
    )
    .await;
    succeeded(&job);
    assert_eq!(w.svc.attempts(&job.id).await.len(), 2);
    assert_eq!(w.rows_of(1312).len(), 1);
    w.svc.stop().await;
}

#[tokio::test]
async fn a_subset_of_columns_and_shorter_labels() {
    let w =
        World::start("columns = [\"name\", \"city\", \"thematiques\"]\nlabel_max_length = 10\n")
            .await;
    succeeded(&run_task(&w.svc, "setup", json!({})).await);
    let columns = w.columns();
    let ids: Vec<&str> = columns.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(ids, ["object_id", "name", "city", "thematiques"]);
    assert_eq!(columns[1].1, "Nom du ...");
    w.recoco.add_project(project(1312, 0));
    w.recoco.add_session(5501, 1312, answers(1312, 5501));
    succeeded(
        &deliver(
            &w.svc,
            include_bytes!("../fixtures/webhook-project-update.json"),
        )
        .await,
    );
    let put = w
        .grist
        .log()
        .into_iter()
        .rev()
        .find(|l| l.method == "PUT")
        .unwrap();
    let fields: Vec<&String> = put.body["records"][0]["fields"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(fields, ["city", "name", "thematiques"]);
    assert_eq!(
        w.columns().len(),
        4,
        "no attachment column outside the subset"
    );
    w.svc.stop().await;
}

#[tokio::test]
async fn sync_all_250_projects_on_three_pages_with_one_refused() {
    let w = World::start("").await;
    w.recoco.with(|s| s.questions.push(json!({"id": 320, "text": "Rare ?", "text_short": "Rare", "slug": "rare", "is_multiple": false, "choices": []})));
    for id in 1..=250 {
        w.recoco.add_project(project(id, id));
    }
    // The newest project (first page) answers the rare question.
    let rare = json!({"id": 99001, "created_on": "2025-03-20T11:02:44+01:00", "updated_on": "2025-03-20T11:02:44+01:00",
        "question": w.recoco.with(|s| s.questions.last().cloned().unwrap()), "session": 7250, "project": 250,
        "choices": [], "values": [], "comment": "seulement ici", "signals": "", "updated_by": null, "attachment": null});
    w.recoco.add_session(7250, 250, vec![rare]);
    w.recoco.add_session(7100, 100, answers(100, 7100));
    succeeded(&run_task(&w.svc, "setup", json!({})).await);
    // Grist's data engine refuses that one value (the whole batch of 100 with it).
    w.grist
        .with(|s| s.refuse_value = Some("seulement ici".into()));
    let before = w.grist.log().len();

    let job = run_task(&w.svc, "sync-all", json!({})).await;
    let summary = succeeded(&job).to_string();
    assert!(
        summary.starts_with(
            "sync-all into Projets finished: 249 of 250 projects synced, 1 failed (6 pages)"
        ),
        "three pages, read again once: {summary}"
    );
    assert!(
        summary.contains("project 250: HTTP 400: Error manipulating data: [Sandbox] ValueError could not convert value in column rare"),
        "{summary}"
    );
    assert!(
        summary.contains("; 0 rows of projects Recoco no longer has marked inactive"),
        "{summary}"
    );
    assert_eq!(job.progress.as_ref().unwrap()["done"], 250);
    assert_eq!(job.progress.as_ref().unwrap()["total"], 250);
    let rows = w.grist.rows(&w.doc, TABLE);
    assert_eq!(rows.len(), 249);
    assert!(w.rows_of(250).is_empty());
    assert_eq!(
        w.row(100)["thematiques"],
        json!(["L", "Commerce de proximité", "Mobilités douces"])
    );
    // Three batches; the refused one makes the connector re-read the columns
    // once (its cached list may be stale), then halve it down to the bad record.
    let log: Vec<_> = w.grist.log().into_iter().skip(before).collect();
    let columns_reads = log
        .iter()
        .filter(|l| l.method == "GET" && l.path.ends_with("/columns"))
        .count();
    // Once for the refused batch, once after adding the attachment column.
    assert_eq!(columns_reads, 2);
    let puts = w.puts();
    assert!(
        (3 + 1 + 2..=3 + 1 + 2 * 7).contains(&puts),
        "log₂ halvings, not 100 single records: {puts}"
    );
    let sql = log.iter().filter(|l| l.path.ends_with("/sql")).count();
    assert_eq!(sql, 1, "the rows' ids read once (250 rows < 1000 a page)");
    let pages: Vec<String> = w
        .recoco
        .log()
        .into_iter()
        .filter(|l| l.path.starts_with("/api/projects/?") || l.path.contains("/api/projects/?"))
        .map(|l| l.path)
        .collect();
    assert_eq!(pages.len(), 6, "{pages:?}");
    w.grist.with(|s| s.refuse_value = None);

    // Again: all upserts, no duplicate.
    let again = run_task(&w.svc, "sync-all", json!({})).await;
    assert!(succeeded(&again).contains("250 of 250 projects synced, 0 failed"));
    assert_eq!(w.grist.rows(&w.doc, TABLE).len(), 250);
    w.svc.stop().await;
}

#[tokio::test]
async fn a_sync_outliving_the_access_token_completes() {
    let w = World::start("").await;
    w.recoco.with(|s| {
        s.access_lifetime = Duration::from_secs(1);
        s.latency = Duration::from_millis(25);
    });
    // 60 projects: at least 61 requests of 25 ms, well past the token's second.
    for id in 1..=60 {
        w.recoco.add_project(project(id, id));
    }
    succeeded(&run_task(&w.svc, "setup", json!({})).await);
    let job = run_task(&w.svc, "sync-all", json!({})).await;
    assert!(succeeded(&job).contains("60 of 60 projects synced, 0 failed"));
    assert_eq!(w.grist.rows(&w.doc, TABLE).len(), 60);
    let log = w.recoco.log();
    let expired = log.iter().filter(|l| l.status == 403).count();
    assert!(expired >= 1, "the access token expired during the sync");
    let renewals = w.recoco.with(|s| s.refreshes) + w.recoco.logins() - 1;
    assert!(renewals >= 1, "and was renewed");
    w.svc.stop().await;
}

#[tokio::test]
async fn sync_all_hands_over_between_jobs_and_resumes_after_a_failure() {
    let w = World::start("").await;
    for id in 1..=30 {
        w.recoco.add_project(project(id, id));
    }
    succeeded(&run_task(&w.svc, "setup", json!({})).await);
    // The second page's upsert fails once.
    w.grist.fail_method("PUT", 1, 500, 1);
    let first = run_task(
        &w.svc,
        "sync-all",
        json!({"page_size": 10, "pages_per_job": 1}),
    )
    .await;
    let summary = succeeded(&first).to_string();
    assert!(
        summary.contains(
            "10 of 30 projects synced, 0 failed so far, 1 pages; continuing in a new job"
        ),
        "{summary}"
    );
    let last = recoco_sync_tests::wait_for("the run's last job", WAIT, || async {
        w.svc
            .jobs(JobFilter {
                connection: Some("grist".into()),
                ..JobFilter::default()
            })
            .await
            .into_iter()
            .find(|j| {
                j.state == "succeeded"
                    && j.summary.as_deref().is_some_and(|s| s.contains("finished"))
            })
    })
    .await;
    assert!(
        last.summary
            .as_deref()
            .unwrap()
            .contains("30 of 30 projects synced, 0 failed (6 pages)"),
        "{last:?}"
    );
    let sync_jobs: Vec<JobView> = w
        .svc
        .jobs(JobFilter {
            connection: Some("grist".into()),
            ..JobFilter::default()
        })
        .await
        .into_iter()
        .filter(|j| j.task_name.as_deref() == Some("sync-all"))
        .collect();
    // One job per page (three, then the same three read again), and one to
    // check the table's rows for deleted projects.
    assert_eq!(sync_jobs.len(), 7, "{sync_jobs:?}");
    assert_eq!(
        sync_jobs.iter().map(|j| j.attempts).sum::<i64>(),
        8,
        "one retry"
    );
    // The retry resumed at page 2: page 2 was read twice by the first walk,
    // page 1 once; the second walk read each once more.
    let pages: Vec<String> = w
        .recoco
        .log()
        .into_iter()
        .filter(|l| l.path.contains("/api/projects/?"))
        .map(|l| l.path)
        .collect();
    assert_eq!(
        pages.iter().filter(|p| p.contains("offset=10")).count(),
        3,
        "{pages:?}"
    );
    assert_eq!(
        pages.iter().filter(|p| !p.contains("offset")).count(),
        2,
        "{pages:?}"
    );
    assert_eq!(w.puts(), 4, "the second walk writes nothing");
    assert_eq!(w.grist.rows(&w.doc, TABLE).len(), 30);
    w.svc.stop().await;
}

#[tokio::test]
async fn short_lived_tokens_are_renewed_before_they_expire() {
    let w = World::start("").await;
    w.recoco.with(|s| {
        s.jwt_tokens = true;
        s.access_lifetime = Duration::from_secs(2);
        s.latency = Duration::from_millis(25);
    });
    // 100 projects: at least 201 requests of 25 ms, past the token's 2 seconds.
    for id in 1..=100 {
        w.recoco.add_project(project(id, id));
    }
    succeeded(&run_task(&w.svc, "setup", json!({})).await);
    let job = run_task(&w.svc, "sync-all", json!({})).await;
    assert!(succeeded(&job).contains("100 of 100 projects synced, 0 failed"));
    let refused = w.recoco.log().iter().filter(|l| l.status == 403).count();
    assert_eq!(refused, 0, "renewed from the JWT's exp, never refused");
    assert!(w.recoco.with(|s| s.refreshes) >= 1, "and renewed");

    // A refresh token refused: the host logs in again, and the run goes on.
    let logins = w.recoco.logins();
    w.recoco.with(|s| s.refuse_refresh = true);
    let job = run_task(&w.svc, "sync-all", json!({})).await;
    assert!(succeeded(&job).contains("100 of 100 projects synced, 0 failed"));
    assert!(w.recoco.logins() > logins, "logged in again");
    w.svc.stop().await;
}

#[tokio::test]
async fn recoco_429_and_5xx_are_retried_during_events_and_sync_all() {
    let w = World::start("").await;
    succeeded(&run_task(&w.svc, "setup", json!({})).await);
    w.recoco.add_project(project(1312, 0));
    // The project's read is throttled, then its answers' read fails.
    w.recoco.with(|s| s.fail_next.extend([429, 502]));
    let job = deliver(
        &w.svc,
        include_bytes!("../fixtures/webhook-project-update.json"),
    )
    .await;
    succeeded(&job);
    let attempts = w.svc.attempts(&job.id).await;
    let outcomes: Vec<&str> = attempts.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, ["retry", "retry", "succeeded"]);
    assert!(
        attempts[0].error.as_deref().unwrap().contains("429"),
        "{attempts:?}"
    );
    let gap = attempts[1].started_at - attempts[0].started_at;
    assert!(
        gap >= 900,
        "Recoco's Retry-After: 1 honoured, waited {gap} ms"
    );
    assert_eq!(w.rows_of(1312).len(), 1);

    for id in 1..=30 {
        w.recoco.add_project(project(id, id));
    }
    // The first list page answers 503 once: the job is retried.
    w.recoco.with(|s| s.fail_next.push_back(503));
    let job = run_task(&w.svc, "sync-all", json!({"page_size": 10})).await;
    assert!(
        succeeded(&job).contains("31 of 31 projects synced, 0 failed"),
        "{job:?}"
    );
    assert_eq!(job.attempts, 2, "{job:?}");
    assert_eq!(w.grist.rows(&w.doc, TABLE).len(), 31);
    w.svc.stop().await;
}
