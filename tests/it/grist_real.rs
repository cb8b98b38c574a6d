//! The `grist` connector against a real grist-core (1.7.17), not only our fake:
//! a fresh document, `setup` twice (identical result), the fake portal's
//! projects synced through the real service (an answer of every question kind),
//! rows read back with their types, then a webhook and a deleted project.
//!
//! The server comes from `GRIST_URL`, `GRIST_API_KEY` and `GRIST_WORKSPACE_ID`
//! when set; otherwise this test runs the start script (`$RECOCO_SYNC_GRIST_SCRIPT`,
//! else `<workspace>/../shared/grist-real/start-grist.sh`) and reads its last
//! lines. Without either it says loudly that it did not run and passes (a
//! plain clone has no grist-core), unless `RECOCO_SYNC_REQUIRE_REAL_GRIST=1`
//! (set by `.ci/run`): then it fails, saying how to provide one.
//!
//! The convergence scenario and the formula column of `convergence.rs` run
//! here too, each in fresh documents of that server.

use std::collections::HashMap;
use std::path::PathBuf;

use recoco_sync_tests::fakes::recoco::FakeRecoco;
use recoco_sync_tests::service::{source_block, TestService, FAST_QUEUE};
use serde_json::{json, Map, Value};

use crate::convergence::{formula_scenario, grist_scenario, GristApi};
use crate::grist::{answers, connection, deliver, fixture, project, questions, run_task};

struct RealGrist {
    url: String,
    api_key: String,
    workspace: String,
}

fn script_path() -> PathBuf {
    match std::env::var_os("RECOCO_SYNC_GRIST_SCRIPT") {
        Some(path) => PathBuf::from(path),
        None => {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/grist-real/start-grist.sh")
        }
    }
}

/// The real server to use: from the environment, else started by the script;
/// `None` (with a loud notice) when there is none and it is not required.
/// The real server, or `None` (said loudly) when there is none and none is required.
fn real_grist(test: &'static str) -> Option<RealGrist> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let (Some(url), Some(api_key), Some(workspace)) = (
        var("GRIST_URL"),
        var("GRIST_API_KEY"),
        var("GRIST_WORKSPACE_ID"),
    ) {
        return Some(RealGrist {
            url,
            api_key,
            workspace,
        });
    }
    let script = script_path();
    let required = std::env::var("RECOCO_SYNC_REQUIRE_REAL_GRIST").is_ok_and(|v| v == "1");
    if !script.is_file() && !required {
        eprintln!(
            "\n!!!!!!!! {test} DID NOT RUN: no real Grist \
             (set GRIST_URL, GRIST_API_KEY and GRIST_WORKSPACE_ID, or RECOCO_SYNC_GRIST_SCRIPT; \
             looked for {}). RECOCO_SYNC_REQUIRE_REAL_GRIST=1 makes this a failure. !!!!!!!!\n",
            script.display()
        );
        return None;
    }
    assert!(
        script.is_file(),
        "no real Grist to test against: set GRIST_URL, GRIST_API_KEY and GRIST_WORKSPACE_ID \
         (eval \"$(../shared/grist-real/start-grist.sh)\" prints them), or point \
         RECOCO_SYNC_GRIST_SCRIPT at start-grist.sh (looked for {})",
        script.display()
    );
    let output = std::process::Command::new("bash")
        .arg(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        output.status.success(),
        "{} failed ({})",
        script.display(),
        output.status
    );
    let values: HashMap<String, String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_start_matches("export ").split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect();
    let get = |k: &str| {
        values
            .get(k)
            .cloned()
            .unwrap_or_else(|| panic!("{} printed no {k}", script.display()))
    };
    Some(RealGrist {
        url: get("GRIST_URL"),
        api_key: get("GRIST_API_KEY"),
        workspace: get("GRIST_WORKSPACE_ID"),
    })
}

struct Api {
    client: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .client
            .request(method, format!("{}/api{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("real Grist answers");
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn columns(&self, doc: &str) -> Vec<(String, String, String)> {
        let body = self
            .call(
                reqwest::Method::GET,
                &format!("/docs/{doc}/tables/Projets/columns"),
                None,
            )
            .await;
        body["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                let f = &c["fields"];
                (
                    c["id"].as_str().unwrap().into(),
                    f["label"].as_str().unwrap().into(),
                    f["type"].as_str().unwrap().into(),
                )
            })
            .collect()
    }

    async fn rows(&self, doc: &str) -> HashMap<i64, Map<String, Value>> {
        let body = self
            .call(
                reqwest::Method::GET,
                &format!("/docs/{doc}/tables/Projets/records"),
                None,
            )
            .await;
        body["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let fields = r["fields"].as_object().unwrap().clone();
                (fields["object_id"].as_i64().unwrap(), fields)
            })
            .collect()
    }
}

#[tokio::test]
async fn the_connector_works_against_a_real_grist() {
    let Some(real) =
        tokio::task::spawn_blocking(|| real_grist("the_connector_works_against_a_real_grist"))
            .await
            .unwrap()
    else {
        return;
    };
    // Our client is built before the service, which would otherwise install it.
    recoco_sync::install_crypto_provider();
    let api = Api {
        client: reqwest::Client::new(),
        base: real.url.trim_end_matches('/').to_string(),
        key: real.api_key.clone(),
    };
    let name = format!("recoco-sync-test-{}", uuid::Uuid::new_v4());
    let doc = api
        .call(
            reqwest::Method::POST,
            &format!("/workspaces/{}/docs", real.workspace),
            Some(json!({"name": name})),
        )
        .await;
    let doc = doc.as_str().expect("the new document's id").to_string();

    let recoco = FakeRecoco::start().await;
    recoco.with(|s| s.questions = questions());
    recoco.add_project(fixture(include_str!("../fixtures/project-detail.json")));
    recoco.add_session(5501, 1312, answers(1312, 5501));
    let mut no_commune = project(1288, 1);
    no_commune["commune"] = Value::Null;
    recoco.add_project(no_commune);
    for id in 2..=6 {
        recoco.add_project(project(id, id + 1));
    }
    let config = format!(
        "{}{FAST_QUEUE}{}",
        source_block(Some(&recoco.api_url)),
        connection(&format!("{}/api", api.base), &real.api_key, &doc, "")
    );
    let svc = TestService::start(&config, &[]).await;

    // setup, twice: the same columns.
    let job = run_task(&svc, "setup", json!({})).await;
    assert_eq!(job.state, "succeeded", "{job:?}");
    assert!(
        job.summary
            .as_deref()
            .unwrap()
            .starts_with("created table Projets with 37 columns"),
        "{job:?}"
    );
    let first = api.columns(&doc).await;
    let ids: Vec<&str> = first.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(ids.len(), 37, "{ids:?}");
    for id in [
        "object_id",
        "tags",
        "c2e_tranche",
        "name2",
        "projet_pret",
        "filieres_comment",
    ] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    let type_of = |cols: &[(String, String, String)], id: &str| {
        cols.iter().find(|c| c.0 == id).unwrap().2.clone()
    };
    assert_eq!(type_of(&first, "created"), "DateTime:Europe/Amsterdam");
    assert_eq!(type_of(&first, "tags"), "ChoiceList");
    assert_eq!(type_of(&first, "diagnostic_energetique"), "Bool");
    let job = run_task(&svc, "setup", json!({})).await;
    assert_eq!(
        job.summary.as_deref(),
        Some("table Projets already has its 37 columns: nothing to add"),
        "{job:?}"
    );
    assert_eq!(api.columns(&doc).await, first);

    // sync-all through the real service.
    let job = run_task(&svc, "sync-all", json!({})).await;
    assert_eq!(job.state, "succeeded", "{job:?}");
    assert!(
        job.summary
            .as_deref()
            .unwrap()
            .contains("7 of 7 projects synced, 0 failed"),
        "{job:?}"
    );
    let rows = api.rows(&doc).await;
    assert_eq!(rows.len(), 7);
    let halle = &rows[&1312];
    assert_eq!(halle["name"], "Réhabilitation de la halle du Vieux-Bourg");
    assert_eq!(halle["tags"], json!(["L", "patrimoine", "centre-bourg"]));
    assert_eq!(halle["created"], json!(1741944067.512344));
    assert_eq!(halle["latitude"], json!(46.44187));
    assert_eq!(halle["active"], json!(true));
    assert_eq!(
        halle["description_du_site"],
        "Halle de 1890, charpente métallique, 600 m² au sol."
    );
    assert_eq!(halle["diagnostic_energetique"], json!(true));
    assert_eq!(
        halle["diagnostic_energetique_attachment"],
        "https://portail.example.org/media/survey/5501/diagnostic-2024.pdf"
    );
    assert_eq!(halle["competence_voirie"], "je ne sais pas");
    assert_eq!(halle["etat_du_bati"], "Travaux importants à prévoir");
    assert_eq!(
        halle["thematiques"],
        json!(["L", "Commerce de proximité", "Mobilités douces"])
    );
    assert_eq!(
        halle["filieres"],
        json!(["L", "Commerce, artisanat", "Tourisme"]),
        "a comma inside a choice survives"
    );
    assert_eq!(halle["c2e_tranche"], "oui, en 2026");
    assert_eq!(halle["name2"], "Mme Roux");
    assert_eq!(
        halle["projet_pret"],
        json!(false),
        "null, stored by Grist's Bool as false"
    );
    assert_eq!(halle["projet_pret_comment"], "à voir");
    let bare = &rows[&1288];
    assert_eq!(bare["city"], Value::Null);
    assert_eq!(bare["tags"], json!(["L", "patrimoine", "centre-bourg"]));
    assert_eq!(
        bare["diagnostic_energetique"],
        json!(false),
        "no answer: the Bool default"
    );

    // A webhook updates the row in place; a deleted project is marked inactive.
    let mut renamed = fixture(include_str!("../fixtures/project-detail.json"));
    renamed["name"] = json!("Halle du Vieux-Bourg (tiers-lieu)");
    recoco.add_project(renamed);
    let job = deliver(
        &svc,
        include_bytes!("../fixtures/webhook-project-update.json"),
    )
    .await;
    assert_eq!(job.state, "succeeded", "{job:?}");
    recoco.with(|s| s.deleted.insert(1288));
    let gone =
        recoco_sync_tests::webhook::envelope("projects.Project", "delete", json!({"id": 1288}));
    let job = deliver(&svc, &gone).await;
    assert_eq!(job.state, "succeeded", "{job:?}");
    let rows = api.rows(&doc).await;
    assert_eq!(rows.len(), 7);
    assert_eq!(rows[&1312]["name"], "Halle du Vieux-Bourg (tiers-lieu)");
    assert_eq!(rows[&1288]["active"], json!(false));

    svc.stop().await;
    api.call(reqwest::Method::DELETE, &format!("/docs/{doc}"), None)
        .await;
}

impl Api {
    async fn new_doc(&self, workspace: &str) -> String {
        let name = format!("recoco-sync-test-{}", uuid::Uuid::new_v4());
        let doc = self
            .call(
                reqwest::Method::POST,
                &format!("/workspaces/{workspace}/docs"),
                Some(json!({"name": name})),
            )
            .await;
        doc.as_str().expect("the new document's id").to_string()
    }
}

async fn real_api(test: &'static str) -> Option<(Api, RealGrist)> {
    let real = tokio::task::spawn_blocking(move || real_grist(test))
        .await
        .unwrap()?;
    recoco_sync::install_crypto_provider();
    let api = Api {
        client: reqwest::Client::new(),
        base: real.url.trim_end_matches('/').to_string(),
        key: real.api_key.clone(),
    };
    Some((api, real))
}

#[tokio::test]
async fn the_connector_converges_against_a_real_grist() {
    let Some((api, real)) = real_api("the_connector_converges_against_a_real_grist").await else {
        return;
    };
    let (churned, fresh) = (
        api.new_doc(&real.workspace).await,
        api.new_doc(&real.workspace).await,
    );
    let grist = GristApi {
        api_url: format!("{}/api", api.base),
        api_key: real.api_key.clone(),
        client: api.client.clone(),
    };
    grist_scenario(&grist, &churned, &fresh, 7, 30).await;
    for doc in [churned, fresh] {
        api.call(reqwest::Method::DELETE, &format!("/docs/{doc}"), None)
            .await;
    }
}

#[tokio::test]
async fn a_formula_column_in_a_real_grist_breaks_no_record() {
    let Some((api, real)) = real_api("a_formula_column_in_a_real_grist_breaks_no_record").await
    else {
        return;
    };
    let doc = api.new_doc(&real.workspace).await;
    let grist = GristApi {
        api_url: format!("{}/api", api.base),
        api_key: real.api_key.clone(),
        client: api.client.clone(),
    };
    formula_scenario(&grist, &doc).await;
    api.call(reqwest::Method::DELETE, &format!("/docs/{doc}"), None)
        .await;
}
