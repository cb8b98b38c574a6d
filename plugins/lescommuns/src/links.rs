//! What the connection remembers, in the host's `state`: per Recoco project,
//! the hub projet id (`projet/{project}`) and the tagged recommendations whose
//! add-on receives the services (`recommendation/{project}/{task}`, one key
//! each, so that two events writing different recommendations never overwrite
//! each other). A project with recommendations but no hub id is waiting to be
//! shared (it had no commune yet).

use recoco_connector_sdk::{state, Error};

/// Key of the hub id of `project`.
pub fn projet_key(project: u64) -> String {
    format!("projet/{project}")
}

/// Prefix of the recommendation keys of `project` (the trailing `/` keeps
/// project 13 from listing project 131's).
pub fn recommendations_prefix(project: u64) -> String {
    format!("recommendation/{project}/")
}

/// Key of one recommendation of `project`.
pub fn recommendation_key(project: u64, recommendation: u64) -> String {
    format!("{}{recommendation}", recommendations_prefix(project))
}

/// The recommendation ids among `keys` (listed with the prefix of `project`).
pub fn parse_recommendations(project: u64, keys: &[String]) -> Vec<u64> {
    let prefix = recommendations_prefix(project);
    let mut ids: Vec<u64> = keys
        .iter()
        .filter_map(|key| key.strip_prefix(&prefix)?.parse().ok())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The hub id of `project`, if it is shared.
pub fn hub_id(project: u64) -> Option<String> {
    state::get(&projet_key(project)).filter(|id| !id.is_empty())
}

/// Remembers the hub id of `project`.
pub fn set_hub_id(project: u64, id: &str) -> Result<(), Error> {
    state::set(&projet_key(project), id)
}

/// Forgets the hub id of `project` (its projet is gone from the hub).
pub fn forget_hub_id(project: u64) {
    state::delete(&projet_key(project));
}

/// The tagged recommendations of `project`, sorted.
pub fn recommendations(project: u64) -> Vec<u64> {
    parse_recommendations(project, &state::keys(&recommendations_prefix(project)))
}

/// Remembers a tagged recommendation; the value says which event did.
pub fn remember(project: u64, recommendation: u64, event_id: &str) -> Result<(), Error> {
    state::set(&recommendation_key(project, recommendation), event_id)
}

/// Forgets a recommendation; true if it was remembered.
pub fn forget(project: u64, recommendation: u64) -> bool {
    let key = recommendation_key(project, recommendation);
    let known = state::get(&key).is_some();
    if known {
        state::delete(&key);
    }
    known
}

/// Every project the connector follows (shared, or waiting to be), sorted.
pub fn tracked() -> Vec<u64> {
    tracked_in(&state::keys("projet/"), &state::keys("recommendation/"))
}

/// The project ids of `projet/{p}` and `recommendation/{p}/{r}` keys.
pub fn tracked_in(projets: &[String], recommendations: &[String]) -> Vec<u64> {
    let mut ids: Vec<u64> = projets
        .iter()
        .filter_map(|k| k.strip_prefix("projet/")?.parse().ok())
        .chain(recommendations.iter().filter_map(|k| {
            k.strip_prefix("recommendation/")?
                .split('/')
                .next()?
                .parse()
                .ok()
        }))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Whether the connector follows `project`: shared, or waiting to be.
pub fn is_tracked(project: u64) -> bool {
    hub_id(project).is_some() || !recommendations(project).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_scoped_per_project() {
        assert_eq!(projet_key(1312), "projet/1312");
        assert_eq!(recommendation_key(13, 4242), "recommendation/13/4242");
        let keys = vec![
            "recommendation/13/4243".to_string(),
            "recommendation/13/4242".to_string(),
            "recommendation/13/x".to_string(),
            // Another project's, which a prefix without `/` would also match.
            "recommendation/131/9".to_string(),
        ];
        assert_eq!(parse_recommendations(13, &keys), [4242, 4243]);
        assert_eq!(
            tracked_in(&["projet/131".into(), "projet/x".into()], &keys),
            [13, 131]
        );
    }
}
