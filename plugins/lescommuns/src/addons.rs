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
    /// Replaces add-on `id` with `addon`.
    fn replace(&mut self, id: u64, addon: &ResourceAddon) -> Result<(), Error>;
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
        api.replace(id, &addon)?;
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
            api.replace(id, &addon)?;
            Ok(Outcome::Replaced(id))
        }
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
        let page: Page<ResourceAddon> = source_api::get_json(&path)?;
        // Newest first; there is at most one per pair anyway.
        Ok(page.results.into_iter().find_map(|a| a.id))
    }

    fn create(&mut self, addon: &ResourceAddon) -> Result<Created, Error> {
        let what = "POST /resource-addons/";
        let response = source_api::post_json("/resource-addons/", addon)?;
        if response.status == 400 && is_duplicate(&response.body) {
            return Ok(Created::Duplicate);
        }
        let created: ResourceAddon = response.ensure_success(what)?.json()?;
        created
            .id
            .map(Created::Id)
            .ok_or_else(|| Error::permanent(format!("{what}: the answer has no add-on id")))
    }

    fn replace(&mut self, id: u64, addon: &ResourceAddon) -> Result<(), Error> {
        let path = format!("/resource-addons/{id}/");
        source_api::put_json(&path, addon)?.ensure_success(&format!("PUT {path}"))?;
        Ok(())
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

        fn replace(&mut self, id: u64, addon: &ResourceAddon) -> Result<(), Error> {
            self.calls.push(format!("replace {id}"));
            let row = self.rows.iter_mut().find(|(i, _)| *i == id).unwrap();
            row.1 = addon.clone();
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
