//! Every Recoco-shaped fixture (copied from the shared fixtures) parses into its
//! SDK type, and nothing is lost: serializing the typed value back gives every
//! key and value of the fixture (a misspelt field would come back missing).

use recoco_connector_sdk::recoco::{
    Envelope, Page, Project, ProjectListItem, Question, ResourceAddon, Session, SurveyAnswer, Task,
    UserProfileEvent,
};
use recoco_connector_sdk::Event;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"))
}

/// Parses fixture `name` as `T` and checks that `T` keeps all of it.
fn parse_lossless<T: DeserializeOwned + Serialize>(name: &str) -> T {
    let text = fixture(name);
    let typed: T = serde_json::from_str(&text).unwrap_or_else(|err| panic!("{name}: {err}"));
    let original: Value = serde_json::from_str(&text).unwrap();
    let back = serde_json::to_value(&typed).unwrap();
    assert_contains(&back, &original, name);
    typed
}

/// Every key and value of `expected` is in `actual` (which may have more keys).
fn assert_contains(actual: &Value, expected: &Value, path: &str) {
    match (actual, expected) {
        (Value::Object(actual), Value::Object(expected)) => {
            for (key, value) in expected {
                let inner = format!("{path}.{key}");
                let found = actual.get(key).unwrap_or_else(|| panic!("{inner} is lost"));
                assert_contains(found, value, &inner);
            }
        }
        (Value::Array(actual), Value::Array(expected)) => {
            assert_eq!(actual.len(), expected.len(), "{path}: length");
            for (index, (a, e)) in actual.iter().zip(expected).enumerate() {
                assert_contains(a, e, &format!("{path}[{index}]"));
            }
        }
        (Value::Number(a), Value::Number(e)) => assert_eq!(a.as_f64(), e.as_f64(), "{path}"),
        _ => assert_eq!(actual, expected, "{path}"),
    }
}

#[test]
fn webhook_project_update() {
    let envelope: Envelope<Project> = parse_lossless("webhook-project-update.json");
    assert_eq!(envelope.topic, "projects.Project/update");
    assert_eq!(envelope.action(), "update");
    let project = envelope.object;
    assert_eq!(project.id, 1312);
    assert_eq!(project.advisors_note, None);
    let commune = project.commune.unwrap();
    assert_eq!(commune.insee, "79888");
    assert_eq!(commune.department.unwrap().region.unwrap().code, "75");
    assert_eq!(
        project.switchtenders[1]
            .profile
            .as_ref()
            .unwrap()
            .organization,
        None
    );
}

#[test]
fn webhook_tagged_item_carries_the_project() {
    let envelope: Envelope<Project> = parse_lossless("webhook-tagged-item.json");
    assert_eq!(envelope.object_type, "taggit.TaggedItem");
    assert!(envelope.object.tags.contains(&"tiers-lieu".to_owned()));
}

#[test]
fn webhook_survey_answer() {
    let envelope: Envelope<SurveyAnswer> = parse_lossless("webhook-survey-answer.json");
    let answer = envelope.object;
    assert_eq!((answer.project, answer.session), (1312, 5501));
    assert_eq!(answer.values, ["diag_oui"]);
    assert_eq!(answer.question.choices.len(), 2);
    assert_eq!(
        answer.attachment.as_deref(),
        Some("/media/survey/5501/diagnostic-2024.pdf")
    );
}

#[test]
fn webhook_task_with_resource() {
    let envelope: Envelope<Task> = parse_lossless("webhook-task-lescommuns.json");
    let task = envelope.object;
    assert_eq!((task.id, task.project, task.status), (4242, 1312, 1));
    let resource = task.resource.unwrap();
    assert_eq!(resource.title, "Rénover l'école");
    assert_eq!(resource.tags, ["les-communs", "batiment"]);
}

#[test]
fn webhook_user_profile() {
    let envelope: Envelope<UserProfileEvent> = parse_lossless("webhook-user-profile.json");
    assert_eq!(envelope.object.projects, [1312, 1288]);
}

#[test]
fn webhook_bodies_make_events() {
    for name in [
        "webhook-project-update.json",
        "webhook-survey-answer.json",
        "webhook-tagged-item.json",
        "webhook-task-lescommuns.json",
        "webhook-user-profile.json",
    ] {
        let event = Event::from_webhook_body("evt_test", fixture(name)).unwrap();
        assert!(event.topic.starts_with(&event.object_type), "{name}");
        assert!(event.object_id.is_some(), "{name}");
    }
}

#[test]
fn project_shapes() {
    let project: Project = parse_lossless("project.json");
    assert_eq!(project.orga_owner, "Commune de Saint-Albin-des-Prés");
    let detail: Project = parse_lossless("project-detail.json");
    assert_eq!(detail.notifications.unwrap().count, 3);
    assert!(detail.advisors_note.is_some());
}

#[test]
fn projects_page() {
    let page: Page<ProjectListItem> = parse_lossless("projects-page.json");
    assert_eq!(page.count, Some(137));
    assert!(page.next.is_some());
    assert_eq!(page.results.len(), 2);
    let first = &page.results[0];
    assert!(first.created_on.ends_with('Z'));
    assert_eq!(first.owner.as_ref().unwrap().id, 9031);
    assert_eq!(page.results[1].commune, None);
    assert_eq!(page.results[1].owner, None);
}

#[test]
fn survey_pages() {
    let questions: Page<Question> = parse_lossless("survey-questions.json");
    assert_eq!(questions.results.len(), 5);
    assert!(questions.results.iter().any(|q| q.is_multiple));
    let answers: Page<SurveyAnswer> = parse_lossless("survey-session-answers.json");
    assert_eq!(answers.results.len(), 5);
    let sessions: Page<Session> = parse_lossless("survey-sessions.json");
    assert_eq!(sessions.results[0].survey, 12);
}

#[test]
fn resource_addon_page() {
    let page: Page<ResourceAddon> = parse_lossless("resource-addon-page.json");
    let addon = &page.results[0];
    assert_eq!((addon.id, addon.recommendation), (Some(31), 4242));
    assert!(addon.enabled);
    assert_eq!(addon.data.as_array().unwrap().len(), 2);
}

#[test]
fn older_bare_array_lists() {
    let page: Value = serde_json::from_str(&fixture("projects-page.json")).unwrap();
    let bare = serde_json::to_string(&page["results"]).unwrap();
    let page: Page<ProjectListItem> = serde_json::from_str(&bare).unwrap();
    assert_eq!(page.results.len(), 2);
    assert_eq!(page.next, None);
}

#[test]
fn tolerates_missing_null_and_extra_keys() {
    let project: Project = serde_json::from_str(
        r#"{"id": 1, "name": null, "tags": null, "commune": null, "plugin_extra": {"x": 1}}"#,
    )
    .unwrap();
    assert_eq!((project.id, project.name.as_str()), (1, ""));
    assert!(project.tags.is_empty());
    let task: Task = serde_json::from_str(r#"{"id": 2, "resource": null}"#).unwrap();
    assert_eq!(task.resource, None);
}
