//! Projects in their two shapes: [`Project`] (webhooks and the detail endpoint)
//! and [`ProjectListItem`] (the lighter `/projects/` list), plus geography.

use serde::{Deserialize, Serialize};

use super::{Owner, User};

/// A project as webhooks (`projects.Project`, `taggit.TaggedItem`) and
/// `GET /projects/{id}/` give it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Project {
    /// Project id.
    pub id: u64,
    /// Name.
    #[serde(deserialize_with = "super::nullable")]
    pub name: String,
    /// Description; may be `""`.
    #[serde(deserialize_with = "super::nullable")]
    pub description: String,
    /// Since when the project is inactive.
    pub inactive_since: Option<String>,
    /// Status on the site the save ran for (`PRE_DRAFT` … `REJECTED`).
    #[serde(deserialize_with = "super::nullable")]
    pub status: String,
    /// Creation time.
    #[serde(deserialize_with = "super::nullable")]
    pub created_on: String,
    /// Last update.
    #[serde(deserialize_with = "super::nullable")]
    pub updated_on: String,
    /// Organization name typed by the requester; may be `""`.
    #[serde(deserialize_with = "super::nullable")]
    pub org_name: String,
    /// The advisors.
    #[serde(deserialize_with = "super::nullable")]
    pub switchtenders: Vec<User>,
    /// The commune, if set.
    pub commune: Option<Commune>,
    /// Free address text.
    pub location: Option<String>,
    /// Project latitude (not the commune's).
    pub latitude: Option<f64>,
    /// Project longitude (not the commune's).
    pub longitude: Option<f64>,
    /// Number of recommendations.
    pub recommendation_count: u64,
    /// Number of public messages.
    pub public_message_count: u64,
    /// Number of private messages.
    pub private_message_count: u64,
    /// The project's sites and its status on each.
    #[serde(deserialize_with = "super::nullable")]
    pub project_sites: Vec<ProjectSite>,
    /// Tags.
    #[serde(deserialize_with = "super::nullable")]
    pub tags: Vec<String>,
    /// Whether the diagnostic is done.
    #[serde(deserialize_with = "super::nullable")]
    pub is_diagnostic_done: bool,
    /// Advisors' private note: always `null` in webhooks.
    pub advisors_note: Option<String>,
    /// Excluded from statistics.
    #[serde(deserialize_with = "super::nullable")]
    pub exclude_stats: bool,
    /// Notifications muted.
    #[serde(deserialize_with = "super::nullable")]
    pub muted: bool,
    /// Soft-delete time, if deleted.
    pub deleted: Option<String>,
    /// Topic names.
    #[serde(deserialize_with = "super::nullable")]
    pub topics: Vec<String>,
    /// Organization of the project owner; `""` if none.
    #[serde(deserialize_with = "super::nullable")]
    pub orga_owner: String,
    /// Whether the API user advises the project (detail endpoint only).
    pub is_switchtender: Option<bool>,
    /// Whether the API user observes the project (detail endpoint only).
    pub is_observer: Option<bool>,
    /// The API user's notifications (detail endpoint only).
    pub notifications: Option<Notifications>,
}

/// A project as `GET /projects/` lists it: UTC datetimes, lighter advisors, an
/// owner, no counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProjectListItem {
    /// Project id.
    pub id: u64,
    /// Name.
    #[serde(deserialize_with = "super::nullable")]
    pub name: String,
    /// Description; may be `""`.
    #[serde(deserialize_with = "super::nullable")]
    pub description: String,
    /// Organization name typed by the requester.
    #[serde(deserialize_with = "super::nullable")]
    pub org_name: String,
    /// Status on the requesting site.
    #[serde(deserialize_with = "super::nullable")]
    pub status: String,
    /// Since when the project is inactive (UTC).
    pub inactive_since: Option<String>,
    /// Creation time (UTC).
    #[serde(deserialize_with = "super::nullable")]
    pub created_on: String,
    /// Last update (UTC).
    #[serde(deserialize_with = "super::nullable")]
    pub updated_on: String,
    /// The advisors (`profile.organization` has only a `name`).
    #[serde(deserialize_with = "super::nullable")]
    pub switchtenders: Vec<User>,
    /// Whether the API user advises the project.
    pub is_switchtender: Option<bool>,
    /// Whether the API user observes the project.
    pub is_observer: Option<bool>,
    /// The commune, if set.
    pub commune: Option<Commune>,
    /// Free address text.
    pub location: Option<String>,
    /// Project latitude.
    pub latitude: Option<f64>,
    /// Project longitude.
    pub longitude: Option<f64>,
    /// The API user's notifications.
    pub notifications: Option<Notifications>,
    /// The project's sites.
    #[serde(deserialize_with = "super::nullable")]
    pub project_sites: Vec<ProjectSite>,
    /// Tags.
    #[serde(deserialize_with = "super::nullable")]
    pub tags: Vec<String>,
    /// The project owner, if any.
    pub owner: Option<Owner>,
    /// Notifications muted.
    #[serde(deserialize_with = "super::nullable")]
    pub muted: bool,
    /// Excluded from statistics.
    #[serde(deserialize_with = "super::nullable")]
    pub exclude_stats: bool,
    /// Advisors' note as stored (not permission-filtered here).
    pub advisors_note: Option<String>,
    /// Soft-delete time, if deleted.
    pub deleted: Option<String>,
    /// Topic names.
    #[serde(deserialize_with = "super::nullable")]
    pub topics: Vec<String>,
    /// Organization of the project owner; `""` if none.
    #[serde(deserialize_with = "super::nullable")]
    pub orga_owner: String,
}

/// A commune. `insee` and `postal` are strings: keep their leading zeros.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Commune {
    /// Name (upper case in Recoco).
    #[serde(deserialize_with = "super::nullable")]
    pub name: String,
    /// INSEE code.
    #[serde(deserialize_with = "super::nullable")]
    pub insee: String,
    /// Postal code.
    #[serde(deserialize_with = "super::nullable")]
    pub postal: String,
    /// Department.
    pub department: Option<Department>,
    /// Latitude of the commune.
    pub latitude: Option<f64>,
    /// Longitude of the commune.
    pub longitude: Option<f64>,
}

/// A department.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Department {
    /// Name.
    #[serde(deserialize_with = "super::nullable")]
    pub name: String,
    /// Code (`79`, `2A`).
    #[serde(deserialize_with = "super::nullable")]
    pub code: String,
    /// Region.
    pub region: Option<Region>,
}

/// A region.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Region {
    /// Name.
    #[serde(deserialize_with = "super::nullable")]
    pub name: String,
    /// Code (`75`).
    #[serde(deserialize_with = "super::nullable")]
    pub code: String,
}

/// A project's presence on a site (portal).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProjectSite {
    /// Id of the link.
    pub id: u64,
    /// Site id.
    pub site: u64,
    /// Whether the project was created on this site.
    #[serde(deserialize_with = "super::nullable")]
    pub is_origin: bool,
    /// Status of the project on this site.
    #[serde(deserialize_with = "super::nullable")]
    pub status: String,
}

/// The API user's notifications about a project.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Notifications {
    /// Total.
    pub count: u64,
    /// Whether collaborators were active.
    pub has_collaborator_activity: bool,
    /// Unread public messages.
    pub unread_public_messages: u64,
    /// Unread private messages.
    pub unread_private_messages: u64,
    /// New recommendations.
    pub new_recommendations: u64,
}
