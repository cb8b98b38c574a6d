//! The survey ("état des lieux"): answers (`survey.Answer` webhooks and
//! `/survey/sessions/{id}/answers/`), questions with their choices, sessions.

use serde::{Deserialize, Serialize};

use super::User;

/// An answer to a survey question.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SurveyAnswer {
    /// Answer id.
    pub id: u64,
    /// Creation time.
    #[serde(deserialize_with = "super::nullable")]
    pub created_on: String,
    /// Last update.
    #[serde(deserialize_with = "super::nullable")]
    pub updated_on: String,
    /// The question, with **all** its choices.
    #[serde(deserialize_with = "super::nullable")]
    pub question: Question,
    /// Survey session id.
    pub session: u64,
    /// Project id (use this, not the answer's `id`).
    pub project: u64,
    /// The **selected** choices.
    #[serde(deserialize_with = "super::nullable")]
    pub choices: Vec<Choice>,
    /// The selected choices' `value`s.
    #[serde(deserialize_with = "super::nullable")]
    pub values: Vec<String>,
    /// Free text; `""` when empty.
    #[serde(deserialize_with = "super::nullable")]
    pub comment: String,
    /// Tag-like string; `""` when empty.
    #[serde(deserialize_with = "super::nullable")]
    pub signals: String,
    /// Who last changed it.
    pub updated_by: Option<User>,
    /// Attached file URL: relative in webhooks, absolute in API answers.
    pub attachment: Option<String>,
}

/// A survey question.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Question {
    /// Question id.
    pub id: u64,
    /// Full text.
    #[serde(deserialize_with = "super::nullable")]
    pub text: String,
    /// Short text; may be `""`.
    #[serde(deserialize_with = "super::nullable")]
    pub text_short: String,
    /// Unique slug (lower case, `-`-separated, may start with a digit).
    #[serde(deserialize_with = "super::nullable")]
    pub slug: String,
    /// Whether several choices may be selected.
    #[serde(deserialize_with = "super::nullable")]
    pub is_multiple: bool,
    /// Every choice of the question.
    #[serde(deserialize_with = "super::nullable")]
    pub choices: Vec<Choice>,
}

/// A choice of a question.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Choice {
    /// Choice id.
    pub id: u64,
    /// Machine value (at most 30 characters).
    #[serde(deserialize_with = "super::nullable")]
    pub value: String,
    /// Label.
    #[serde(deserialize_with = "super::nullable")]
    pub text: String,
    /// Conclusion drawn from the choice, if any.
    pub conclusion: Option<String>,
}

/// A survey session: one project's answers to one survey.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Session {
    /// Session id.
    pub id: u64,
    /// Survey id.
    pub survey: u64,
    /// Project id.
    pub project: u64,
}
