//! Which projects an event concerns: `object.id` for a project and for a tagged
//! item (its object is the tagged project itself), `object.project` for a survey
//! answer, every id of `object.projects` for a user profile (the projects it
//! owns). Pure functions.

use recoco_connector_sdk::{Error, Event};
use serde_json::Value;

/// The object types the connector subscribes to.
pub const SUBSCRIPTIONS: &[&str] = &[
    "projects.Project",
    "taggit.TaggedItem",
    "survey.Answer",
    "home.UserProfile",
];

/// An id Recoco may send as a number or a numeric string.
fn id_of(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The ids of the projects `event` concerns, without duplicates; empty for an
/// object type the connector does not handle.
pub fn project_ids(event: &Event) -> Result<Vec<u64>, Error> {
    let object: Value = event.object()?;
    let bad = |field: &str| {
        Error::permanent(format!(
            "event {} ({}) has no project id at `object.{field}`",
            event.id, event.topic
        ))
    };
    let ids = match event.object_type.as_str() {
        "projects.Project" | "taggit.TaggedItem" => {
            vec![id_of(&object["id"]).ok_or_else(|| bad("id"))?]
        }
        "survey.Answer" => vec![id_of(&object["project"]).ok_or_else(|| bad("project"))?],
        "home.UserProfile" => match &object["projects"] {
            Value::Array(items) => items
                .iter()
                .map(|v| id_of(v).ok_or_else(|| bad("projects")))
                .collect::<Result<Vec<_>, _>>()?,
            Value::Null => Vec::new(),
            _ => return Err(bad("projects")),
        },
        _ => Vec::new(),
    };
    let mut unique = Vec::with_capacity(ids.len());
    for id in ids {
        if !unique.contains(&id) {
            unique.push(id);
        }
    }
    Ok(unique)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(fixture: &str) -> Event {
        Event::from_webhook_body("evt_1", fixture).unwrap()
    }

    #[test]
    fn ids_of_the_fixture_events() {
        let project = event(include_str!(
            "../../../tests/fixtures/webhook-project-update.json"
        ));
        let tagged = event(include_str!(
            "../../../tests/fixtures/webhook-tagged-item.json"
        ));
        let answer = event(include_str!(
            "../../../tests/fixtures/webhook-survey-answer.json"
        ));
        let profile = event(include_str!(
            "../../../tests/fixtures/webhook-user-profile.json"
        ));
        let of = |e: &Event| project_ids(e).unwrap();
        let expected_profile: Vec<u64> = serde_json::from_str::<Value>(&profile.payload).unwrap()
            ["object"]["projects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(of(&project), vec![1312]);
        assert_eq!(
            of(&tagged),
            vec![1312],
            "a tagged item's object is the project"
        );
        assert_eq!(of(&answer), vec![1312]);
        assert_eq!(of(&profile), expected_profile);
        assert!(!expected_profile.is_empty());
    }

    #[test]
    fn odd_shapes() {
        let body = |t: &str, o: &str| {
            format!(
                r#"{{"topic": "{t}/update", "object": {o}, "object_type": "{t}", "webhook_uuid": "u"}}"#
            )
        };
        let e = event(&body(
            "home.UserProfile",
            r#"{"id": 3, "email": "a@b", "projects": [5, "6", 5]}"#,
        ));
        assert_eq!(project_ids(&e).unwrap(), vec![5, 6]);
        let e = event(&body("home.UserProfile", r#"{"id": 3, "projects": []}"#));
        assert!(project_ids(&e).unwrap().is_empty());
        let e = event(&body("survey.Answer", r#"{"id": 3}"#));
        let err = project_ids(&e).unwrap_err();
        assert!(
            !err.is_retryable() && err.message().contains("object.project"),
            "{err}"
        );
        let e = event(&body("tasks.Task", r#"{"id": 3, "project": 4}"#));
        assert!(project_ids(&e).unwrap().is_empty());
    }
}
