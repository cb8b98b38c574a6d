//! Typed Recoco payloads: the webhook [`Envelope`] and the objects it carries,
//! and the shapes of the REST API the connectors read. Every struct tolerates
//! missing keys, `null` where Recoco may send it, and extra keys, so a new
//! Recoco field never breaks a connector. Datetimes stay strings (RFC 3339):
//! webhooks and details use the `Europe/Paris` offset, list endpoints UTC `Z`.

mod page;
mod people;
mod project;
mod survey;
mod task;

pub use page::Page;
pub use people::{Organization, OrganizationGroup, Owner, Profile, User, UserProfileEvent};
pub use project::{
    Commune, Department, Notifications, Project, ProjectListItem, ProjectSite, Region,
};
pub use survey::{Choice, Question, Session, SurveyAnswer};
pub use task::{resource_status, task_status, Resource, ResourceAddon, Task};

use serde::{Deserialize, Deserializer, Serialize};

/// A webhook body: `{topic, object, object_type, webhook_uuid}`. `object` is a
/// [`serde_json::Value`] unless a type is given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T = serde_json::Value> {
    /// `<app_label>.<ModelName>/<action>`, e.g. `projects.Project/update`.
    #[serde(default)]
    pub topic: String,
    /// The changed object; for `taggit.TaggedItem` it is the tagged [`Project`].
    pub object: T,
    /// `<app_label>.<ModelName>`, e.g. `projects.Project`.
    #[serde(default)]
    pub object_type: String,
    /// UUID of the Recoco subscription (not an event id).
    #[serde(default)]
    pub webhook_uuid: String,
}

impl<T> Envelope<T> {
    /// `create`, `update` or `delete`: the part of the topic after `/`.
    pub fn action(&self) -> &str {
        self.topic.rsplit_once('/').map_or("", |(_, action)| action)
    }
}

/// Deserializes `null` as the type's default (`""`, `[]`, `false`, `0`), for
/// fields Recoco documents as non-null but that older portals may leave empty.
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}
