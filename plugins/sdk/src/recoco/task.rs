//! Recommendations (`tasks.Task`) with their resource, and the resource add-ons
//! that attach extra JSON to a recommendation (`/resource-addons/`).

use serde::{Deserialize, Serialize};

/// A recommendation ("task") of a project.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Task {
    /// Task id (the "recommendation" of a [`ResourceAddon`]).
    pub id: u64,
    /// Status: see [`task_status`].
    pub status: i32,
    /// The recommended resource; `None` when the task has none.
    pub resource: Option<Resource>,
    /// Project id.
    pub project: u64,
}

/// A resource (a help, a tool) recommended by a task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Resource {
    /// Resource id.
    pub id: u64,
    /// Title.
    #[serde(deserialize_with = "super::nullable")]
    pub title: String,
    /// Subtitle.
    #[serde(deserialize_with = "super::nullable")]
    pub subtitle: String,
    /// Tags.
    #[serde(deserialize_with = "super::nullable")]
    pub tags: Vec<String>,
    /// Status: see [`resource_status`].
    pub status: i32,
}

/// Extra JSON attached to a recommendation, one per (`recommendation`, `nature`).
/// Serialize it (without `id`) as the body of `POST /resource-addons/`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourceAddon {
    /// Add-on id; `None` before creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// Kind of add-on (`lescommuns`), at most 32 characters.
    #[serde(deserialize_with = "super::nullable")]
    pub nature: String,
    /// Task id.
    pub recommendation: u64,
    /// Any JSON.
    pub data: serde_json::Value,
    /// Whether it is shown (Recoco defaults to `false` when omitted).
    #[serde(deserialize_with = "super::nullable")]
    pub enabled: bool,
}

/// Values of [`Task::status`].
pub mod task_status {
    /// Proposed.
    pub const PROPOSED: i32 = 0;
    /// In progress.
    pub const IN_PROGRESS: i32 = 1;
    /// Blocked.
    pub const BLOCKED: i32 = 2;
    /// Done.
    pub const DONE: i32 = 3;
    /// Not interested.
    pub const NOT_INTERESTED: i32 = 4;
    /// Already done.
    pub const ALREADY_DONE: i32 = 5;
}

/// Values of [`Resource::status`].
pub mod resource_status {
    /// Draft.
    pub const DRAFT: i32 = 0;
    /// To review.
    pub const TO_REVIEW: i32 = 1;
    /// Published.
    pub const PUBLISHED: i32 = 2;
}
