//! What an event asks of the connector, decided from the event alone (pure):
//! a recommendation whose resource carries the tag shares its project; any
//! other recommendation event is a reason to forget it; a project change
//! refreshes the project if it is shared. The selection and the state are
//! checked later, by the caller.

use recoco_connector_sdk::recoco::{Project, Task};
use recoco_connector_sdk::{Error, Event};

/// The decision for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A tagged recommendation: share `project` and attach services to
    /// `recommendation`.
    Recommendation { project: u64, recommendation: u64 },
    /// A recommendation that does not (or no longer) qualify: it gets no
    /// services, and is forgotten if it was remembered.
    NotTagged {
        project: u64,
        recommendation: u64,
        reason: String,
    },
    /// A project changed: refresh its hub projet if it is shared.
    ProjectChanged { project: u64 },
    /// Nothing to do, for the reason given.
    Ignore(String),
}

/// Decides what `event` asks, with `tag` the configured resource tag.
pub fn classify(event: &Event, tag: &str) -> Result<Trigger, Error> {
    match event.object_type.as_str() {
        "tasks.Task" => {
            let task: Task = event.object()?;
            Ok(classify_task(&task, &event.action, tag))
        }
        "projects.Project" => {
            let project: Project = event.object()?;
            if event.action == "delete" || project.deleted.is_some() {
                return Ok(Trigger::Ignore(format!(
                    "project {} is deleted in Recoco; the hub has no deletion, its projet is left as is",
                    project.id
                )));
            }
            Ok(Trigger::ProjectChanged {
                project: project.id,
            })
        }
        other => Ok(Trigger::Ignore(format!("{other} events are not used"))),
    }
}

fn classify_task(task: &Task, action: &str, tag: &str) -> Trigger {
    let not_tagged = |reason: String| Trigger::NotTagged {
        project: task.project,
        recommendation: task.id,
        reason,
    };
    if action == "delete" {
        return not_tagged(format!("recommendation {} was deleted", task.id));
    }
    let Some(resource) = &task.resource else {
        return not_tagged(format!("recommendation {} has no resource", task.id));
    };
    if !resource.tags.iter().any(|t| t == tag) {
        return not_tagged(format!(
            "the resource {} of recommendation {} is not tagged `{tag}`",
            resource.id, task.id
        ));
    }
    Trigger::Recommendation {
        project: task.project,
        recommendation: task.id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAGGED: &str = include_str!("../../../tests/fixtures/webhook-task-lescommuns.json");
    const PROJECT: &str = include_str!("../../../tests/fixtures/webhook-project-update.json");

    fn event(body: &str) -> Event {
        Event::from_webhook_body("evt_1", body).unwrap()
    }

    #[test]
    fn a_tagged_recommendation_shares_its_project() {
        assert_eq!(
            classify(&event(TAGGED), "les-communs").unwrap(),
            Trigger::Recommendation {
                project: 1312,
                recommendation: 4242
            }
        );
    }

    #[test]
    fn the_tag_must_match_exactly() {
        for tag in ["les-commun", "Les-Communs", "communs"] {
            let got = classify(&event(TAGGED), tag).unwrap();
            let Trigger::NotTagged { reason, .. } = got else {
                panic!("{tag}: {got:?}")
            };
            assert!(reason.contains(&format!("not tagged `{tag}`")), "{reason}");
        }
        assert!(matches!(
            classify(&event(TAGGED), "batiment").unwrap(),
            Trigger::Recommendation { .. }
        ));
    }

    #[test]
    fn a_recommendation_without_resource_or_tags_is_not_tagged() {
        let null_resource = TAGGED.replace(
            r#"{"id": 87, "title": "R\u00e9nover l'\u00e9cole", "subtitle": "Aide \u00e0 la r\u00e9novation", "tags": ["les-communs", "batiment"], "status": 2}"#,
            "null",
        );
        assert_ne!(null_resource, TAGGED);
        let got = classify(&event(&null_resource), "les-communs").unwrap();
        assert_eq!(
            got,
            Trigger::NotTagged {
                project: 1312,
                recommendation: 4242,
                reason: "recommendation 4242 has no resource".into()
            }
        );
        let no_tags = TAGGED.replace(r#""tags": ["les-communs", "batiment"], "#, "");
        assert_ne!(no_tags, TAGGED);
        assert!(matches!(
            classify(&event(&no_tags), "les-communs").unwrap(),
            Trigger::NotTagged { .. }
        ));
        let null_tags = TAGGED.replace(r#"["les-communs", "batiment"]"#, "null");
        assert!(matches!(
            classify(&event(&null_tags), "les-communs").unwrap(),
            Trigger::NotTagged { .. }
        ));
    }

    #[test]
    fn a_deleted_recommendation_is_forgotten() {
        let deleted = TAGGED.replace("tasks.Task/update", "tasks.Task/delete");
        let got = classify(&event(&deleted), "les-communs").unwrap();
        assert!(
            matches!(got, Trigger::NotTagged { recommendation: 4242, ref reason, .. } if reason.contains("deleted")),
            "{got:?}"
        );
    }

    #[test]
    fn project_events_refresh_unless_deleted() {
        let got = classify(&event(PROJECT), "les-communs").unwrap();
        assert_eq!(got, Trigger::ProjectChanged { project: 1312 });

        let soft = PROJECT.replace(
            r#""deleted": null"#,
            r#""deleted": "2026-01-01T10:00:00+01:00""#,
        );
        assert_ne!(soft, PROJECT);
        assert!(matches!(
            classify(&event(&soft), "les-communs").unwrap(),
            Trigger::Ignore(_)
        ));
        let hard = PROJECT.replace("projects.Project/update", "projects.Project/delete");
        assert!(matches!(
            classify(&event(&hard), "les-communs").unwrap(),
            Trigger::Ignore(_)
        ));
    }

    #[test]
    fn other_events_are_ignored_and_malformed_ones_fail() {
        let answer = include_str!("../../../tests/fixtures/webhook-survey-answer.json");
        assert!(matches!(
            classify(&event(answer), "les-communs").unwrap(),
            Trigger::Ignore(_)
        ));
        let bad = TAGGED.replace(r#""project": 1312"#, r#""project": "x""#);
        let err = classify(&event(&bad), "les-communs").unwrap_err();
        assert!(!err.is_retryable());
        assert!(err.message().contains("object.project"), "{err}");
    }
}
