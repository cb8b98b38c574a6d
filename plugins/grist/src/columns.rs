//! The columns the connector wants in the table: the fixed project columns, then
//! one to three per survey question (value, `_comment`, `_attachment`), each
//! with a logical key (stable, ours), the id we ask Grist for, a label and a
//! type. Which id Grist actually gave a column is [`crate::table`]'s business.

use recoco_connector_sdk::recoco::Question;

use crate::survey::{self, Kind};

/// The column holding the Recoco project id: the upsert key.
pub const KEY_COLUMN: &str = "object_id";

/// Type of the date-time columns (the original service's choice, kept so that
/// tables it created keep matching).
pub const DATETIME_TYPE: &str = "DateTime:Europe/Amsterdam";

/// A Grist column type the connector uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    Int,
    Text,
    Numeric,
    Bool,
    ChoiceList,
    DateTime,
}

impl ColType {
    /// The Grist type string.
    pub fn grist(self) -> &'static str {
        match self {
            Self::Int => "Int",
            Self::Text => "Text",
            Self::Numeric => "Numeric",
            Self::Bool => "Bool",
            Self::ChoiceList => "ChoiceList",
            Self::DateTime => DATETIME_TYPE,
        }
    }
}

/// A column the connector wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSpec {
    /// Logical key: the column id for project columns, `survey:<slug>` (plus
    /// `#comment` or `#attachment`) for survey columns.
    pub key: String,
    /// The id asked of Grist (before Grist's sanitising and deduplication).
    pub wanted: String,
    /// Label shown in Grist.
    pub label: String,
    /// Type.
    pub col_type: ColType,
}

impl ColumnSpec {
    fn new(key: impl Into<String>, wanted: impl Into<String>, label: String, t: ColType) -> Self {
        Self {
            key: key.into(),
            wanted: wanted.into(),
            label,
            col_type: t,
        }
    }
}

/// The fixed project columns: (id, label, type), in table order.
const PROJECT_COLUMNS: &[(&str, &str, ColType)] = &[
    (KEY_COLUMN, "ID", ColType::Int),
    ("name", "Nom du projet", ColType::Text),
    ("description", "Description du projet", ColType::Text),
    ("tags", "Etiquettes", ColType::ChoiceList),
    ("city", "Commune", ColType::Text),
    ("postal_code", "Code postal", ColType::Text),
    ("insee", "Code Insee", ColType::Text),
    ("department", "Département", ColType::Text),
    ("department_code", "Code département", ColType::Text),
    ("region", "Région", ColType::Text),
    ("region_code", "Code région", ColType::Text),
    ("location", "Lieu", ColType::Text),
    ("latitude", "Latitude", ColType::Numeric),
    ("longitude", "Longitude", ColType::Numeric),
    ("organization", "Organisation", ColType::Text),
    ("created", "Créé le", ColType::DateTime),
    ("modified", "Modifié le", ColType::DateTime),
    ("inactive_since", "Inactif depuis le", ColType::DateTime),
    ("active", "Actif", ColType::Bool),
    ("status", "Statut", ColType::Text),
    ("advisors_note", "Note des conseillers", ColType::Text),
    // Not in the original: what `home.UserProfile` events exist to refresh.
    (
        "owner_organization",
        "Organisation du porteur",
        ColType::Text,
    ),
];

/// The fixed project columns, `object_id` first.
pub fn project_columns(label_max: usize) -> Vec<ColumnSpec> {
    PROJECT_COLUMNS
        .iter()
        .map(|(id, label, t)| ColumnSpec::new(*id, *id, truncate_label(label, label_max), *t))
        .collect()
}

/// Whether `id` is the id of a fixed project column (whose key is the id).
pub fn is_project_column(id: &str) -> bool {
    PROJECT_COLUMNS
        .iter()
        .any(|(c, _, _)| c.eq_ignore_ascii_case(id))
}

/// Logical key of a question's value column.
pub fn survey_key(slug: &str) -> String {
    format!("survey:{slug}")
}

/// Logical key of a question's comment column.
pub fn comment_key(slug: &str) -> String {
    format!("survey:{slug}#comment")
}

/// Logical key of a question's attachment column.
pub fn attachment_key(slug: &str) -> String {
    format!("survey:{slug}#attachment")
}

/// Whether a logical key is a survey column's.
pub fn is_survey_key(key: &str) -> bool {
    key.starts_with("survey:")
}

/// Slugs use `-`; Grist would turn it into `_` anyway, we do it so the id asked
/// reads the same as the id given.
fn base_id(slug: &str) -> String {
    slug.replace('-', "_")
}

/// The id asked of Grist for the column of logical key `key`.
pub fn wanted_id(key: &str) -> String {
    let Some(rest) = key.strip_prefix("survey:") else {
        return key.to_owned();
    };
    match rest.rsplit_once('#') {
        Some((slug, suffix)) => format!("{}_{suffix}", base_id(slug)),
        None => base_id(rest),
    }
}

/// The label of a question: its short text, else its text, else its slug in
/// words (`etat-du-bati` → `Etat Du Bati`).
pub fn question_label(q: &Question) -> String {
    for text in [&q.text_short, &q.text] {
        if !text.trim().is_empty() {
            return text.trim().to_owned();
        }
    }
    q.slug
        .split(['-', '_', ' '])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut chars = w.chars();
            chars.next().map_or_else(String::new, |first| {
                first
                    .to_uppercase()
                    .chain(chars.flat_map(char::to_lowercase))
                    .collect()
            })
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Cuts a label longer than `max` characters to `max - 3` plus `...`.
pub fn truncate_label(label: &str, max: usize) -> String {
    if label.chars().count() <= max {
        return label.to_owned();
    }
    let kept: String = label.chars().take(max.saturating_sub(3)).collect();
    format!("{kept}...")
}

/// The value column of a question and, unless it is free text, its comment column.
pub fn question_columns(q: &Question, label_max: usize) -> Vec<ColumnSpec> {
    let label = question_label(q);
    let kind = survey::kind(q);
    let value_type = match kind {
        Kind::YesNo => ColType::Bool,
        Kind::Multiple => ColType::ChoiceList,
        Kind::Simple | Kind::YesNoMaybe | Kind::SingleChoice => ColType::Text,
    };
    let base = base_id(&q.slug);
    let mut columns = vec![ColumnSpec::new(
        survey_key(&q.slug),
        base.clone(),
        truncate_label(&label, label_max),
        value_type,
    )];
    if kind != Kind::Simple {
        columns.push(ColumnSpec::new(
            comment_key(&q.slug),
            format!("{base}_comment"),
            truncate_label(&format!("Commentaire de {label}"), label_max),
            ColType::Text,
        ));
    }
    columns
}

/// The column holding the attachment URL of a question's answers, created when
/// an answer first carries one.
pub fn attachment_column(q: &Question, label_max: usize) -> ColumnSpec {
    ColumnSpec::new(
        attachment_key(&q.slug),
        format!("{}_attachment", base_id(&q.slug)),
        truncate_label(&format!("Pièce jointe de {}", question_label(q)), label_max),
        ColType::Text,
    )
}

/// Every column `setup` creates: the project columns, then each question's in
/// the order given (a slug met twice keeps its first question).
pub fn all_columns(questions: &[Question], label_max: usize) -> Vec<ColumnSpec> {
    let mut columns = project_columns(label_max);
    let mut seen = std::collections::HashSet::new();
    for q in questions {
        if !q.slug.is_empty() && seen.insert(q.slug.as_str()) {
            columns.extend(question_columns(q, label_max));
        }
    }
    columns
}

#[cfg(test)]
mod tests {
    use super::*;
    use recoco_connector_sdk::recoco::Choice;

    fn question(slug: &str, short: &str, multiple: bool, choices: &[&str]) -> Question {
        Question {
            slug: slug.into(),
            text_short: short.into(),
            text: format!("{short} ?"),
            is_multiple: multiple,
            choices: choices
                .iter()
                .map(|t| Choice {
                    text: (*t).into(),
                    ..Choice::default()
                })
                .collect(),
            ..Question::default()
        }
    }

    #[test]
    fn project_columns_match_the_original_table() {
        let fixture: serde_json::Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/grist-create-table-request.json"
        ))
        .unwrap();
        let expected = fixture["tables"][0]["columns"].as_array().unwrap();
        let ours = project_columns(80);
        // The original's 21 columns, same ids, labels and types, in the same order.
        for (spec, col) in ours.iter().zip(expected.iter().take(21)) {
            assert_eq!(spec.wanted, col["id"], "id");
            assert_eq!(
                spec.label, col["fields"]["label"],
                "label of {}",
                spec.wanted
            );
            assert_eq!(
                spec.col_type.grist(),
                col["fields"]["type"],
                "type of {}",
                spec.wanted
            );
        }
        assert_eq!(ours.len(), 22);
        assert_eq!(ours[21].wanted, "owner_organization");
    }

    #[test]
    fn question_columns_follow_the_question_type() {
        let fixture: serde_json::Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/grist-create-table-request.json"
        ))
        .unwrap();
        let expected: Vec<(String, String, String)> = fixture["tables"][0]["columns"]
            .as_array()
            .unwrap()
            .iter()
            .skip(21)
            .map(|c| {
                let f = &c["fields"];
                (
                    c["id"].as_str().unwrap().into(),
                    f["label"].as_str().unwrap().into(),
                    f["type"].as_str().unwrap().into(),
                )
            })
            .collect();
        let page: recoco_connector_sdk::recoco::Page<Question> = serde_json::from_str(
            include_str!("../../../tests/fixtures/survey-questions.json"),
        )
        .unwrap();
        let ours: Vec<(String, String, String)> = all_columns(&page.results, 80)
            .into_iter()
            .skip(22)
            .map(|c| (c.wanted, c.label, c.col_type.grist().to_owned()))
            .collect();
        assert_eq!(ours, expected);
    }

    #[test]
    fn labels_are_cut_and_slugs_worded() {
        let long = "x".repeat(100);
        let cut = truncate_label(&long, 80);
        assert_eq!(cut.chars().count(), 80);
        assert!(cut.ends_with("xxx..."));
        assert_eq!(truncate_label("é".repeat(80).as_str(), 80), "é".repeat(80));
        let q = question("etat-du-bati", "", false, &[]);
        let q = Question {
            text: String::new(),
            ..q
        };
        assert_eq!(question_label(&q), "Etat Du Bati");
        let cols = question_columns(&question("q", &long, false, &["a", "b"]), 80);
        assert!(cols.iter().all(|c| c.label.chars().count() <= 80));
        assert!(cols[1].label.starts_with("Commentaire de xxx"));
    }

    #[test]
    fn duplicate_slugs_keep_the_first_question() {
        let a = question("dup", "First", false, &[]);
        let b = question("dup", "Second", true, &["x"]);
        let cols = all_columns(&[a, b], 80);
        let dup: Vec<_> = cols
            .iter()
            .filter(|c| c.key.starts_with("survey:dup"))
            .collect();
        assert_eq!(dup.len(), 1);
        assert_eq!(dup[0].label, "First");
    }

    #[test]
    fn wanted_ids_follow_from_keys() {
        let q = question("2e-tranche", "Tranche", false, &["a", "b"]);
        let mut cols = question_columns(&q, 80);
        cols.push(attachment_column(&q, 80));
        cols.extend(project_columns(80));
        for c in cols {
            assert_eq!(wanted_id(&c.key), c.wanted, "{}", c.key);
        }
    }

    #[test]
    fn attachment_columns() {
        let c = attachment_column(
            &question("diagnostic-energetique", "Diagnostic", false, &[]),
            80,
        );
        assert_eq!(c.key, "survey:diagnostic-energetique#attachment");
        assert_eq!(c.wanted, "diagnostic_energetique_attachment");
        assert_eq!(c.label, "Pièce jointe de Diagnostic");
        assert_eq!(c.col_type, ColType::Text);
    }
}
