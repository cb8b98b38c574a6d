//! Convergence of the `lescommuns` connector (issue 11): after random changes
//! of the shared projects in Recoco (40 % of their webhooks lost) and of the
//! services the hub proposes, a `sync-all` makes every hub projet equal to its
//! Recoco project (name, description, status, porteur) and every tagged
//! recommendation's add-on show exactly the services the hub proposes now
//! (disabled and empty when it proposes none).

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::convergence::Rng;
use crate::lescommuns::{connection, services, summary, task_event, World, WAIT};
use recoco_sync_tests::fakes::lescommuns::API_KEY;
use recoco_sync_tests::wait_for;
use recoco_sync_tests::webhook::envelope;

const PROJECTS: [(i64, i64); 2] = [(1312, 4242), (1400, 5000)];

fn phase_statut(status: &str) -> &'static str {
    match status {
        "DONE" => "Terminé",
        "STUCK" => "Bloqué",
        "REJECTED" => "Abandonné",
        _ => "En cours",
    }
}

/// What the hub should hold for `project` as Recoco describes it now.
fn expected_porteur(project: &Value) -> Value {
    let who = match project.get("owner").filter(|o| !o.is_null()) {
        Some(owner) => owner,
        None => &project["switchtenders"][0],
    };
    json!({"email": who["email"], "first": who["first_name"], "last": who["last_name"]})
}

#[tokio::test]
async fn lescommuns_converges_whatever_webhooks_were_lost() {
    let w = World::start(|hub| connection("communs", hub, API_KEY, "all_projects = true", 2)).await;
    let mut offered = HashMap::new();
    for (project, task) in PROJECTS {
        w.hub
            .script_services(&project.to_string(), vec![services()]);
        offered.insert(project, services());
        let job = w
            .send(task_event(task, project, &["les-communs"]), "communs")
            .await;
        assert!(summary(&job).contains("created hub projet"), "{job:?}");
        w.addon(task, &services()).await;
    }
    w.loads_settled().await;

    let mut rng = Rng(42);
    let mut steps = Vec::new();
    for step in 0..30 {
        let (project, _) = PROJECTS[rng.below(PROJECTS.len())];
        let lost = rng.chance(40);
        let changed = w.recoco.with(|s| {
            let p = s.projects.get_mut(&project).unwrap();
            match rng.below(5) {
                0 => p["name"] = json!(format!("Projet {project} v{step}")),
                1 => p["description"] = json!(format!("Description {step}")),
                2 => {
                    p["status"] = json!(["DONE", "STUCK", "REJECTED", "IN_PROGRESS"][rng.below(4)])
                }
                3 => {
                    p["owner"] = json!({"id": 60 + step, "first_name": format!("Prénom{step}"),
                        "last_name": "Porteur", "username": format!("p{step}"),
                        "email": format!("porteur{step}@example.org"), "profile": null})
                }
                _ => p["owner"] = Value::Null,
            }
            p.clone()
        });
        // The hub changes its mind about the services too (no webhook exists).
        if rng.chance(25) {
            let now = if rng.chance(50) {
                json!([])
            } else {
                services()
            };
            w.hub
                .script_services(&project.to_string(), vec![now.clone()]);
            offered.insert(project, now);
        }
        if lost {
            steps.push(format!("{project} changed (webhook lost)"));
            continue;
        }
        steps.push(format!("{project} changed"));
        let job = w
            .send(envelope("projects.Project", "update", changed), "communs")
            .await;
        assert_eq!(job.state, "succeeded", "{job:?}");
        w.loads_settled().await;
    }

    // The last change of each project is one whose webhook was lost.
    for (project, _) in PROJECTS {
        w.recoco.with(|s| {
            s.projects.get_mut(&project).unwrap()["name"] = json!(format!("Projet {project} final"))
        });
        steps.push(format!("{project} renamed (webhook lost)"));
    }
    let before = differences(&w, &offered);
    assert!(
        !before.is_empty(),
        "the lost webhooks left the hub or the add-ons behind: {steps:#?}"
    );
    let job_id = w.run_task("communs", "sync-all", json!({})).await;
    let job = w.svc.job_in(&job_id, &["succeeded", "failed"], WAIT).await;
    assert!(
        summary(&job).starts_with("sync-all: 2 projects re-shared"),
        "{job:?}"
    );
    // Every scheduled load has run (each gives up after 2 empty answers).
    wait_for("the loads after sync-all", WAIT, || async {
        let loads = w.loads().await;
        let done = loads
            .iter()
            .filter(|j| j.created_at >= job.created_at)
            .count()
            >= 2;
        let busy = loads
            .iter()
            .any(|j| ["queued", "running"].contains(&j.state.as_str()));
        (done && !busy).then_some(())
    })
    .await;

    let after = differences(&w, &offered);
    assert!(after.is_empty(), "{after:#?}\nsteps {steps:#?}");
    w.svc.stop().await;
}

/// How the hub and the add-ons differ from Recoco and the services offered.
fn differences(w: &World, offered: &HashMap<i64, Value>) -> Vec<String> {
    let mut out = Vec::new();
    for (project, task) in PROJECTS {
        let recoco = w.recoco.with(|s| s.projects[&project].clone());
        let projet = w.hub.projet_of(&project.to_string()).unwrap();
        let got = json!({"email": projet["porteur"]["referentEmail"],
            "first": projet["porteur"]["referentPrenom"], "last": projet["porteur"]["referentNom"]});
        let pairs = [
            ("nom", projet["nom"].clone(), recoco["name"].clone()),
            (
                "description",
                projet["description"].clone(),
                recoco["description"].clone(),
            ),
            (
                "phaseStatut",
                projet["phaseStatut"].clone(),
                json!(phase_statut(recoco["status"].as_str().unwrap())),
            ),
            ("porteur", got, expected_porteur(&recoco)),
        ];
        for (what, got, want) in pairs {
            if got != want {
                out.push(format!(
                    "project {project} {what}: hub {got}, Recoco {want}"
                ));
            }
        }
        let addon = w.recoco.with(|s| {
            s.addons
                .values()
                .find(|a| a["recommendation"] == task)
                .cloned()
                .unwrap()
        });
        let now = &offered[&project];
        let want = if now.as_array().unwrap().is_empty() {
            (json!(false), json!([]))
        } else {
            (json!(true), now.clone())
        };
        let got = (addon["enabled"].clone(), addon["data"].clone());
        if got != want {
            out.push(format!(
                "add-on of {task}: {got:?}, the hub offers {want:?}"
            ));
        }
    }
    out
}
