//! One project as one record: the project columns' values (from the detail or
//! the list shape of the Recoco API) and its survey answers', by logical column
//! key, encoded as Grist stores each type (epoch seconds for date-times,
//! `["L", …]` for lists, `null` where Recoco has nothing). Pure functions.

use std::collections::BTreeMap;

use recoco_connector_sdk::recoco::{Commune, Project, ProjectListItem, SurveyAnswer};
use serde_json::{json, Value};

use crate::columns::{attachment_column, ColumnSpec};
use crate::survey;

/// The project fields the table holds, whichever API shape they came from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProjectData {
    pub id: u64,
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
    pub commune: Option<Commune>,
    pub location: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub org_name: String,
    pub created_on: String,
    pub updated_on: String,
    pub inactive_since: Option<String>,
    pub deleted: Option<String>,
    pub status: String,
    pub advisors_note: Option<String>,
    pub orga_owner: String,
}

macro_rules! project_data_from {
    ($t:ty) => {
        impl From<&$t> for ProjectData {
            fn from(p: &$t) -> Self {
                Self {
                    id: p.id,
                    name: p.name.clone(),
                    description: p.description.clone(),
                    tags: p.tags.clone(),
                    commune: p.commune.clone(),
                    location: p.location.clone(),
                    latitude: p.latitude,
                    longitude: p.longitude,
                    org_name: p.org_name.clone(),
                    created_on: p.created_on.clone(),
                    updated_on: p.updated_on.clone(),
                    inactive_since: p.inactive_since.clone(),
                    deleted: p.deleted.clone(),
                    status: p.status.clone(),
                    advisors_note: p.advisors_note.clone(),
                    orga_owner: p.orga_owner.clone(),
                }
            }
        }
    };
}

project_data_from!(Project);
project_data_from!(ProjectListItem);

/// A project's values by logical column key, ready to be matched to the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The Recoco project id (the upsert key).
    pub project_id: u64,
    /// Values by logical key; `object_id` is not among them.
    pub values: BTreeMap<String, Value>,
    /// Attachment columns some answer needs, with their labels.
    pub attachment_columns: Vec<ColumnSpec>,
    /// Whether the project no longer exists in Recoco: only `active` is written,
    /// and only to rows that exist.
    pub gone: bool,
}

impl Record {
    /// The record of a project that Recoco no longer has (404 or soft-deleted
    /// without data): its row, if any, is marked inactive.
    pub fn gone(project_id: u64) -> Self {
        Self {
            project_id,
            values: BTreeMap::from([("active".to_owned(), json!(false))]),
            attachment_columns: Vec::new(),
            gone: true,
        }
    }
}

/// An RFC 3339 date-time as Grist stores it: seconds since the epoch (fractional
/// when there are microseconds). A string that does not parse is sent as is, so
/// Grist keeps it visible (as invalid) rather than losing it.
pub fn datetime(text: Option<&str>) -> Value {
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        None => Value::Null,
        Some(t) => match chrono::DateTime::parse_from_rfc3339(t) {
            Ok(at) => {
                let micros = at.timestamp_subsec_micros();
                let seconds = at.timestamp();
                if micros == 0 {
                    json!(seconds)
                } else if seconds >= 0 {
                    // Parsing the decimal text rounds once, so the number reads
                    // back as the microseconds Recoco sent.
                    let text = format!("{seconds}.{micros:06}");
                    json!(text.parse::<f64>().unwrap_or(seconds as f64))
                } else {
                    json!(seconds as f64 + f64::from(micros) / 1e6)
                }
            }
            Err(_) => json!(t),
        },
    }
}

/// A list cell: `["L", …]`, or `null` when empty (Grist stores `["L"]` as null).
fn choice_list(items: &[String]) -> Value {
    if items.is_empty() {
        return Value::Null;
    }
    let mut list = vec![json!("L")];
    list.extend(items.iter().map(|t| json!(t)));
    Value::Array(list)
}

/// The project columns' values. Without a commune its columns are `null` (the
/// original refused such projects).
pub fn project_values(p: &ProjectData) -> Vec<(String, Value)> {
    let commune = p.commune.as_ref();
    let department = commune.and_then(|c| c.department.as_ref());
    let region = department.and_then(|d| d.region.as_ref());
    let text = |s: Option<&String>| s.map_or(Value::Null, |s| json!(s));
    let values = [
        ("name", json!(p.name)),
        ("description", json!(p.description)),
        ("tags", choice_list(&p.tags)),
        ("city", text(commune.map(|c| &c.name))),
        ("postal_code", text(commune.map(|c| &c.postal))),
        ("insee", text(commune.map(|c| &c.insee))),
        ("department", text(department.map(|d| &d.name))),
        ("department_code", text(department.map(|d| &d.code))),
        ("region", text(region.map(|r| &r.name))),
        ("region_code", text(region.map(|r| &r.code))),
        ("location", text(p.location.as_ref())),
        ("latitude", p.latitude.map_or(Value::Null, |v| json!(v))),
        ("longitude", p.longitude.map_or(Value::Null, |v| json!(v))),
        ("organization", json!(p.org_name)),
        ("created", datetime(Some(&p.created_on))),
        ("modified", datetime(Some(&p.updated_on))),
        ("inactive_since", datetime(p.inactive_since.as_deref())),
        (
            "active",
            json!(p.inactive_since.is_none() && p.deleted.is_none()),
        ),
        ("status", json!(p.status)),
        ("advisors_note", text(p.advisors_note.as_ref())),
        ("owner_organization", json!(p.orga_owner)),
    ];
    values.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// The record of a project with all its answers (later answers to the same
/// question win).
pub fn build(project: &ProjectData, answers: &[SurveyAnswer], label_max: usize) -> Record {
    let mut values: BTreeMap<String, Value> = project_values(project).into_iter().collect();
    let mut attachment_columns: Vec<ColumnSpec> = Vec::new();
    for answer in answers {
        for (key, value) in survey::answer_values(answer) {
            if key.ends_with("#attachment") && !attachment_columns.iter().any(|c| c.key == key) {
                attachment_columns.push(attachment_column(&answer.question, label_max));
            }
            values.insert(key, value);
        }
    }
    Record {
        project_id: project.id,
        values,
        attachment_columns,
        gone: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use recoco_connector_sdk::recoco::Page;

    fn fixture_project() -> Project {
        serde_json::from_str(include_str!("../../../tests/fixtures/project-detail.json")).unwrap()
    }

    fn fixture_answers() -> Vec<SurveyAnswer> {
        let page: Page<SurveyAnswer> = serde_json::from_str(include_str!(
            "../../../tests/fixtures/survey-session-answers.json"
        ))
        .unwrap();
        page.results
    }

    #[test]
    fn the_shared_fixtures_give_the_original_body_with_lists_and_timestamps() {
        let record = build(&(&fixture_project()).into(), &fixture_answers(), 80);
        let expected: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/grist-upsert-request.json"
        ))
        .unwrap();
        let expected = &expected["records"][0];
        assert_eq!(
            record.project_id,
            expected["require"]["object_id"].as_u64().unwrap()
        );
        let stored: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/grist-records-response.json"
        ))
        .unwrap();
        let stored = &stored["records"][0]["fields"];
        for (id, original) in expected["fields"].as_object().unwrap() {
            let key = match id.as_str() {
                "description_du_site" => "survey:description-du-site".to_owned(),
                id if id.ends_with("_comment") => format!(
                    "survey:{}#comment",
                    id.trim_end_matches("_comment").replace('_', "-")
                ),
                "diagnostic_energetique" | "competence_voirie" | "etat_du_bati" | "thematiques" => {
                    format!("survey:{}", id.replace('_', "-"))
                }
                id => id.to_owned(),
            };
            let ours = record
                .values
                .get(&key)
                .unwrap_or_else(|| panic!("no value for {key}"));
            // Where the original sent a string Grist had to parse (lists, dates), we
            // send what Grist stores: compare with the stored row instead.
            let want = if ["tags", "thematiques", "created", "modified"].contains(&id.as_str()) {
                &stored[id]
            } else {
                original
            };
            assert_eq!(ours, want, "{id}");
        }
        assert_eq!(
            record.values["survey:diagnostic-energetique#attachment"],
            json!("https://portail.example.org/media/survey/5501/diagnostic-2024.pdf")
        );
        assert_eq!(record.attachment_columns.len(), 1);
        assert_eq!(
            record.attachment_columns[0].wanted,
            "diagnostic_energetique_attachment"
        );
        assert_eq!(
            record.values["owner_organization"],
            json!(fixture_project().orga_owner)
        );
        assert!(!record.gone);
    }

    #[test]
    fn missing_commune_and_answers_give_nulls() {
        let p = ProjectData {
            id: 5,
            name: "Sans commune".into(),
            created_on: "2025-01-01T00:00:00Z".into(),
            updated_on: "garbage".into(),
            inactive_since: Some("2025-06-01T12:00:00.250000+02:00".into()),
            ..ProjectData::default()
        };
        let record = build(&p, &[], 80);
        for key in [
            "city",
            "postal_code",
            "insee",
            "department",
            "department_code",
            "region",
            "region_code",
            "location",
            "latitude",
            "longitude",
            "advisors_note",
            "tags",
        ] {
            assert_eq!(record.values[key], Value::Null, "{key}");
        }
        assert_eq!(record.values["created"], json!(1735689600));
        assert_eq!(record.values["modified"], json!("garbage"));
        assert_eq!(record.values["inactive_since"], json!(1748772000.25));
        assert_eq!(record.values["active"], json!(false));
        assert!(!record.values.keys().any(|k| k.starts_with("survey:")));
    }

    #[test]
    fn a_commune_without_region_and_a_deleted_project() {
        let mut p: ProjectData = (&fixture_project()).into();
        p.commune
            .as_mut()
            .unwrap()
            .department
            .as_mut()
            .unwrap()
            .region = None;
        p.deleted = Some("2025-10-01T00:00:00+02:00".into());
        let values = build(&p, &[], 80).values;
        assert_eq!(values["region"], Value::Null);
        assert_eq!(values["department_code"], json!("79"));
        assert_eq!(values["active"], json!(false));
        let gone = Record::gone(9);
        assert!(gone.gone);
        assert_eq!(gone.values.len(), 1);
    }

    #[test]
    fn list_items_map_like_details() {
        let detail = fixture_project();
        let item: ProjectListItem =
            serde_json::from_value(serde_json::to_value(&detail).unwrap()).unwrap();
        let mut utc = item.clone();
        // The list serializer renders the same instants in UTC.
        utc.created_on = "2025-03-14T09:21:07.512344Z".into();
        let a = project_values(&(&detail).into());
        let b = project_values(&(&utc).into());
        assert_eq!(a, b);
    }
}
