//! The Recoco resource add-on (nature `lescommuns`) that shows the hub's
//! services on a recommendation: find it, create it when there is none,
//! replace it otherwise. Two concurrent runs may both find none and both
//! create; Recoco refuses the second as a duplicate (one add-on per
//! recommendation and nature), which then falls back to replacing the first.
//! The steps go through [`AddonApi`], so the logic is tested natively.

use recoco_connector_sdk::recoco::{Page, ResourceAddon};
use recoco_connector_sdk::{source_api, Error};

/// The add-on nature Recoco's interface shows the services under.
pub const NATURE: &str = "lescommuns";

/// The outcome of a create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// Created with this id.
    Id(u64),
    /// Refused: an add-on of this recommendation and nature exists.
    Duplicate,
}

/// What was done for a recommendation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new add-on, with its id.
    Created(u64),
    /// The existing add-on, replaced.
    Replaced(u64),
}

/// The add-on calls to Recoco.
pub trait AddonApi {
    /// The id of the `lescommuns` add-on of `recommendation`, if any.
    fn find(&mut self, recommendation: u64) -> Result<Option<u64>, Error>;
    /// Creates `addon`.
    fn create(&mut self, addon: &ResourceAddon) -> Result<Created, Error>;
    /// Replaces add-on `id` with `addon`; `Ok(false)` when Recoco refuses it
    /// as invalid (its recommendation lost its resource, or is gone).
    fn replace(&mut self, id: u64, addon: &ResourceAddon) -> Result<bool, Error>;
    /// Deletes add-on `id` (already gone is fine).
    fn delete(&mut self, id: u64) -> Result<(), Error>;
}

/// What was done to the add-on of a recommendation that no longer gets services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Withdrawn {
    /// Disabled, its services emptied.
    Disabled(u64),
    /// Recoco no longer accepts it (no resource, or no recommendation): deleted.
    Deleted(u64),
}

impl std::fmt::Display for Withdrawn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Disabled(id) => write!(f, "its add-on {id} was disabled and emptied"),
            Self::Deleted(id) => write!(f, "its add-on {id} was deleted"),
        }
    }
}

/// Withdraws the services of `recommendation`: its add-on, if any, is disabled
/// with no services, or deleted when Recoco no longer accepts it.
pub fn withdraw(api: &mut impl AddonApi, recommendation: u64) -> Result<Option<Withdrawn>, Error> {
    let Some(id) = api.find(recommendation)? else {
        return Ok(None);
    };
    let mut empty = addon(recommendation, &[]);
    empty.enabled = false;
    if api.replace(id, &empty)? {
        return Ok(Some(Withdrawn::Disabled(id)));
    }
    api.delete(id)?;
    Ok(Some(Withdrawn::Deleted(id)))
}

/// A refusal of an add-on call: a 403 that is not about the token (the host
/// renews those) is a missing permission, named.
fn addon_failure(what: &str, response: &recoco_connector_sdk::http::Response) -> Error {
    if response.status == 403 {
        return Error::permanent(format!(
            "{what}: Recoco answered 403: the source's API user lacks the \"manage resources\" \
             permission on the site, which resource add-ons require; grant it in Recoco"
        ));
    }
    Error::from_response(what, response)
}

/// The add-on of `recommendation` holding `services`, shown (`enabled`).
pub fn addon(recommendation: u64, services: &[serde_json::Value]) -> ResourceAddon {
    ResourceAddon {
        id: None,
        nature: NATURE.to_owned(),
        recommendation,
        data: serde_json::Value::Array(services.to_vec()),
        enabled: true,
    }
}

/// Creates or replaces the add-on of `recommendation` with `services`.
pub fn upsert(
    api: &mut impl AddonApi,
    recommendation: u64,
    services: &[serde_json::Value],
) -> Result<Outcome, Error> {
    let addon = addon(recommendation, services);
    if let Some(id) = api.find(recommendation)? {
        replaced(api.replace(id, &addon)?, recommendation)?;
        return Ok(Outcome::Replaced(id));
    }
    match api.create(&addon)? {
        Created::Id(id) => Ok(Outcome::Created(id)),
        Created::Duplicate => {
            // Another run created it between our find and our create.
            let id = api.find(recommendation)?.ok_or_else(|| {
                Error::retryable(format!(
                    "Recoco refused the add-on of recommendation {recommendation} as a \
                     duplicate but lists none"
                ))
            })?;
            replaced(api.replace(id, &addon)?, recommendation)?;
            Ok(Outcome::Replaced(id))
        }
    }
}

fn replaced(accepted: bool, recommendation: u64) -> Result<(), Error> {
    if accepted {
        Ok(())
    } else {
        Err(Error::permanent(format!(
            "Recoco refused the add-on of recommendation {recommendation}: the recommendation \
             is no longer linked to a resource"
        )))
    }
}

/// Whether a `400` body is Recoco's "must make a unique set" refusal. Its text
/// is translated, so the shape is matched: the `non_field_errors` key.
pub fn is_duplicate(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .is_some_and(|v| v.get("non_field_errors").is_some())
}

/// [`AddonApi`] over the source's Recoco API (through the host).
pub struct SourceAddons;

impl AddonApi for SourceAddons {
    fn find(&mut self, recommendation: u64) -> Result<Option<u64>, Error> {
        let path = format!("/resource-addons/?recommendation={recommendation}&nature={NATURE}");
        let what = format!("GET {path}");
        let response = source_api::get(&path)?;
        if !response.is_success() {
            return Err(addon_failure(&what, &response));
        }
        let page: Page<ResourceAddon> = response.json().map_err(|e| e.context(&what))?;
        // Newest first; there is at most one per pair anyway.
        Ok(page.results.into_iter().find_map(|a| a.id))
    }

    fn create(&mut self, addon: &ResourceAddon) -> Result<Created, Error> {
        let what = "POST /resource-addons/";
        let response = source_api::post_json("/resource-addons/", addon)?;
        if response.status == 400 && is_duplicate(&response.body) {
            return Ok(Created::Duplicate);
        }
        if !response.is_success() {
            return Err(addon_failure(what, &response));
        }
        let created: ResourceAddon = response.json()?;
        created
            .id
            .map(Created::Id)
            .ok_or_else(|| Error::permanent(format!("{what}: the answer has no add-on id")))
    }

    fn replace(&mut self, id: u64, addon: &ResourceAddon) -> Result<bool, Error> {
        let path = format!("/resource-addons/{id}/");
        let response = source_api::put_json(&path, addon)?;
        if response.status == 400 {
            return Ok(false);
        }
        if !response.is_success() {
            return Err(addon_failure(&format!("PUT {path}"), &response));
        }
        Ok(true)
    }

    fn delete(&mut self, id: u64) -> Result<(), Error> {
        let path = format!("/resource-addons/{id}/");
        let response = source_api::delete(&path)?;
        if response.is_success() || response.status == 404 {
            return Ok(());
        }
        Err(addon_failure(&format!("DELETE {path}"), &response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Recoco's add-on table in memory, with a competitor that creates the
    /// add-on right after our first find.
    #[derive(Default)]
    struct Table {
        rows: Vec<(u64, ResourceAddon)>,
        calls: Vec<String>,
        competitor: bool,
        /// The recommendation lost its resource: Recoco refuses its add-ons.
        no_resource: bool,
    }

    impl AddonApi for Table {
        fn find(&mut self, recommendation: u64) -> Result<Option<u64>, Error> {
            self.calls.push(format!("find {recommendation}"));
            let found = self
                .rows
                .iter()
                .find(|(_, a)| a.recommendation == recommendation && a.nature == NATURE)
                .map(|(id, _)| *id);
            if self.competitor {
                self.competitor = false;
                self.rows.push((77, addon(recommendation, &[])));
            }
            Ok(found)
        }

        fn create(&mut self, addon: &ResourceAddon) -> Result<Created, Error> {
            self.calls.push(format!("create {}", addon.recommendation));
            if self
                .rows
                .iter()
                .any(|(_, a)| a.recommendation == addon.recommendation)
            {
                return Ok(Created::Duplicate);
            }
            let id = self.rows.len() as u64 + 1;
            self.rows.push((id, addon.clone()));
            Ok(Created::Id(id))
        }

        fn replace(&mut self, id: u64, addon: &ResourceAddon) -> Result<bool, Error> {
            self.calls.push(format!("replace {id}"));
            if self.no_resource {
                return Ok(false);
            }
            let row = self.rows.iter_mut().find(|(i, _)| *i == id).unwrap();
            row.1 = addon.clone();
            Ok(true)
        }

        fn delete(&mut self, id: u64) -> Result<(), Error> {
            self.calls.push(format!("delete {id}"));
            self.rows.retain(|(i, _)| *i != id);
            Ok(())
        }
    }

    fn services() -> Vec<serde_json::Value> {
        vec![json!({"id": "0197c3a1-5b2e-7d40-9f11-2a6b8c0d4e51", "name": "Diag"})]
    }

    #[test]
    fn creates_when_none_then_replaces() {
        let mut table = Table::default();
        assert_eq!(
            upsert(&mut table, 4242, &services()).unwrap(),
            Outcome::Created(1)
        );
        assert_eq!(
            upsert(&mut table, 4242, &services()).unwrap(),
            Outcome::Replaced(1)
        );
        assert_eq!(
            table.calls,
            ["find 4242", "create 4242", "find 4242", "replace 1"]
        );
        assert_eq!(table.rows.len(), 1);
        let stored = &table.rows[0].1;
        assert_eq!(stored.nature, "lescommuns");
        assert!(stored.enabled);
        assert_eq!(stored.data, json!(services()));
    }

    #[test]
    fn a_duplicate_created_concurrently_falls_back_to_replacing_it() {
        let mut table = Table {
            competitor: true,
            ..Table::default()
        };
        assert_eq!(
            upsert(&mut table, 4242, &services()).unwrap(),
            Outcome::Replaced(77)
        );
        assert_eq!(
            table.calls,
            ["find 4242", "create 4242", "find 4242", "replace 77"]
        );
        assert_eq!(table.rows.len(), 1);
        assert_eq!(table.rows[0].1.data, json!(services()));
    }

    #[test]
    fn withdrawn_services_disable_the_addon_or_delete_it() {
        let mut table = Table::default();
        upsert(&mut table, 4242, &services()).unwrap();
        assert_eq!(
            withdraw(&mut table, 4242).unwrap(),
            Some(Withdrawn::Disabled(1))
        );
        let stored = &table.rows[0].1;
        assert!(!stored.enabled);
        assert_eq!(stored.data, json!([]));
        assert_eq!(withdraw(&mut table, 9999).unwrap(), None);
        table.no_resource = true;
        assert_eq!(
            withdraw(&mut table, 4242).unwrap(),
            Some(Withdrawn::Deleted(1))
        );
        assert!(table.rows.is_empty());
        assert_eq!(
            Withdrawn::Disabled(3).to_string(),
            "its add-on 3 was disabled and emptied"
        );
    }

    #[test]
    fn a_missing_permission_is_named() {
        let response = recoco_connector_sdk::http::Response::new(
            403,
            &[],
            r#"{"detail": "Vous n'avez pas la permission d'effectuer cette action."}"#,
        );
        let err = addon_failure("POST /resource-addons/", &response);
        assert!(!err.is_retryable());
        assert!(
            err.message().contains("\"manage resources\" permission"),
            "{err}"
        );
    }

    #[test]
    fn the_body_is_the_documented_one() {
        let body = serde_json::to_value(addon(4242, &services())).unwrap();
        assert_eq!(
            body,
            json!({"nature": "lescommuns", "recommendation": 4242, "data": services(), "enabled": true})
        );
    }

    #[test]
    fn duplicates_are_recognised_by_shape() {
        assert!(is_duplicate(
            br#"{"non_field_errors": ["Les champs recommendation, nature doivent former un ensemble unique."]}"#
        ));
        assert!(!is_duplicate(
            br#"["Recommendation must be linked to a resource."]"#
        ));
        assert!(!is_duplicate(br#"{"recommendation": ["invalide"]}"#));
        assert!(!is_duplicate(b"<h1>oops</h1>"));
    }
}
