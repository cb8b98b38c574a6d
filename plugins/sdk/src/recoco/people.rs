//! Users as Recoco serializes them: advisors (`switchtenders`), `updated_by`,
//! project owners, and the `home.UserProfile` webhook object.

use serde::{Deserialize, Serialize};

/// A user (`switchtenders[]`, `updated_by`). In project lists the shape is
/// lighter: no `is_active`, no position, an organization with only a `name`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct User {
    /// Login (often the e-mail).
    #[serde(deserialize_with = "super::nullable")]
    pub username: String,
    /// First name.
    #[serde(deserialize_with = "super::nullable")]
    pub first_name: String,
    /// Last name.
    #[serde(deserialize_with = "super::nullable")]
    pub last_name: String,
    /// E-mail address.
    #[serde(deserialize_with = "super::nullable")]
    pub email: String,
    /// Profile, when serialized.
    pub profile: Option<Profile>,
    /// Whether the account is active (absent in lists).
    pub is_active: Option<bool>,
}

/// A user's profile.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Profile {
    /// The user's organization, if any.
    pub organization: Option<Organization>,
    /// Position in the organization (absent in lists).
    pub organization_position: Option<String>,
}

/// An organization of the address book.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Organization {
    /// Id (absent for advisors in project lists).
    pub id: Option<u64>,
    /// Name; may be `""`.
    #[serde(deserialize_with = "super::nullable")]
    pub name: String,
    /// Group of organizations, if any.
    pub group: Option<OrganizationGroup>,
    /// API URL (`_link`): relative in webhooks, absolute in API answers.
    #[serde(rename = "_link")]
    pub link: Option<String>,
}

/// A group of organizations (`DDT`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OrganizationGroup {
    /// Id.
    pub id: u64,
    /// Name.
    #[serde(deserialize_with = "super::nullable")]
    pub name: String,
}

/// The owner of a project in project lists: a [`User`] with its id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Owner {
    /// User id.
    pub id: u64,
    /// Login.
    #[serde(deserialize_with = "super::nullable")]
    pub username: String,
    /// First name.
    #[serde(deserialize_with = "super::nullable")]
    pub first_name: String,
    /// Last name.
    #[serde(deserialize_with = "super::nullable")]
    pub last_name: String,
    /// E-mail address.
    #[serde(deserialize_with = "super::nullable")]
    pub email: String,
    /// Profile (`organization: {id, name}`).
    pub profile: Option<Profile>,
}

/// The object of `home.UserProfile` events: a user and the projects it owns,
/// meant for refreshing those projects (their `orga_owner`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserProfileEvent {
    /// The **user** id (not the profile id).
    pub id: u64,
    /// E-mail address.
    #[serde(deserialize_with = "super::nullable")]
    pub email: String,
    /// Ids of the projects the user owns.
    #[serde(deserialize_with = "super::nullable")]
    pub projects: Vec<u64>,
}
