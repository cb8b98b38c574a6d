//! The `load-services` task: read the services the hub proposes for a shared
//! projet and put them on each tagged recommendation's add-on.
//!
//! While the hub proposes none (it qualifies a new projet asynchronously), the
//! task schedules its own next attempt with a growing delay, up to the
//! connection's `load_services.attempts`. Each attempt is a separate job: the
//! host's own retries (bounded by its `max_attempts`) only cover transient
//! failures within one attempt (429, 5xx, timeouts), so the "no services yet"
//! count is exactly the connector's setting. The dedup key keeps one pending
//! load per project.

use std::time::Duration;

use recoco_connector_sdk::{info, schedule_json, warn, Error};
use serde::{Deserialize, Serialize};

use crate::addons::{self, Outcome, SourceAddons};
use crate::config::{Config, LoadServices};
use crate::hub::Hub;
use crate::links;

/// Name of the task.
pub const TASK: &str = "load-services";

/// The task's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadRequest {
    /// Recoco project id.
    pub project: u64,
    /// Attempt of the current cycle, from 1.
    #[serde(default = "first_attempt")]
    pub attempt: u32,
}

fn first_attempt() -> u32 {
    1
}

/// What to do after reading the services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Attach them.
    Attach,
    /// None yet: try again after the delay, as attempt `attempt`.
    Retry { attempt: u32, after: Duration },
    /// None after the last attempt.
    GiveUp,
}

/// Decides after attempt `attempt` read `count` services.
pub fn decide(count: usize, attempt: u32, settings: &LoadServices) -> Next {
    if count > 0 {
        Next::Attach
    } else if attempt < settings.attempts {
        Next::Retry {
            attempt: attempt + 1,
            after: settings.delay_before(attempt + 1),
        }
    } else {
        Next::GiveUp
    }
}

/// The dedup key of a project's pending load.
pub fn dedup_key(project: u64) -> String {
    format!("project-{project}")
}

/// Schedules attempt `attempt` of the load of `project` after `delay`,
/// replacing a pending one.
pub fn schedule(project: u64, attempt: u32, delay: Duration) -> Result<(), Error> {
    let request = LoadRequest { project, attempt };
    schedule_json(TASK, &request, delay, Some(&dedup_key(project)))
}

/// Runs the task.
pub fn run(config: &Config, request: LoadRequest) -> Result<String, Error> {
    let project = request.project;
    let Some(hub_id) = links::hub_id(project) else {
        return Err(Error::permanent(format!(
            "project {project} is not shared with the hub (no hub projet id is known)"
        )));
    };
    let recommendations = links::recommendations(project);
    if recommendations.is_empty() {
        // Retrying cannot help: nothing to attach the services to.
        let summary = format!(
            "project {project} has no tagged recommendation to attach services to; nothing loaded"
        );
        info!("{summary}");
        return Ok(summary);
    }
    let hub = Hub::new(config.hub_base()?, &config.api_key);
    let services = hub.services(&hub_id)?;
    let settings = &config.load_services;
    match decide(services.len(), request.attempt, settings) {
        Next::Retry { attempt, after } => {
            schedule(project, attempt, after)?;
            let summary = format!(
                "the hub proposes no service yet for project {project} (attempt {} of {}); \
                 next attempt in {} ms",
                request.attempt,
                settings.attempts,
                after.as_millis()
            );
            info!("{summary}");
            Ok(summary)
        }
        Next::GiveUp => {
            let mut summary = format!(
                "the hub proposed no service for project {project} after {} attempts; giving up \
                 until the project changes",
                request.attempt
            );
            // Services it proposed before must not stay on show.
            for &recommendation in &recommendations {
                if let Some(done) =
                    addons::withdraw(&mut SourceAddons, recommendation).map_err(|e| {
                        e.context(format_args!("add-on of recommendation {recommendation}"))
                    })?
                {
                    summary.push_str(&format!("; recommendation {recommendation}: {done}"));
                }
            }
            warn!("{summary}");
            Ok(summary)
        }
        Next::Attach => attach(project, &recommendations, &services),
    }
}

/// Puts `services` on the add-on of every recommendation. One failing
/// recommendation does not stop the others; the first error is returned after.
fn attach(
    project: u64,
    recommendations: &[u64],
    services: &[serde_json::Value],
) -> Result<String, Error> {
    let mut done = Vec::new();
    let mut failure: Option<Error> = None;
    for &recommendation in recommendations {
        match addons::upsert(&mut SourceAddons, recommendation, services) {
            Ok(Outcome::Created(id)) => {
                done.push(format!("{recommendation} (add-on {id} created)"))
            }
            Ok(Outcome::Replaced(id)) => {
                done.push(format!("{recommendation} (add-on {id} updated)"))
            }
            Err(err) => {
                let err = err.context(format_args!("add-on of recommendation {recommendation}"));
                warn!("{err}");
                // A retryable failure wins, so the host tries the whole load again.
                if failure
                    .as_ref()
                    .is_none_or(|f| !f.is_retryable() && err.is_retryable())
                {
                    failure = Some(err);
                }
            }
        }
    }
    if let Some(err) = failure {
        return Err(err);
    }
    let summary = format!(
        "{} service(s) of project {project} attached to recommendation(s) {}",
        services.len(),
        done.join(", ")
    );
    info!("{summary}");
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(attempts: u32) -> LoadServices {
        LoadServices {
            delay_ms: 60_000,
            attempts,
            backoff_ms: 1000,
        }
    }

    #[test]
    fn services_are_attached_as_soon_as_there_are_some() {
        assert_eq!(decide(2, 1, &settings(4)), Next::Attach);
        assert_eq!(decide(1, 4, &settings(4)), Next::Attach);
        // Even past the configured attempts (an operator's run).
        assert_eq!(decide(1, 9, &settings(4)), Next::Attach);
    }

    #[test]
    fn no_services_retries_with_backoff_up_to_the_setting() {
        let s = settings(4);
        assert_eq!(
            decide(0, 1, &s),
            Next::Retry {
                attempt: 2,
                after: Duration::from_secs(1)
            }
        );
        assert_eq!(
            decide(0, 2, &s),
            Next::Retry {
                attempt: 3,
                after: Duration::from_secs(2)
            }
        );
        assert_eq!(
            decide(0, 3, &s),
            Next::Retry {
                attempt: 4,
                after: Duration::from_secs(4)
            }
        );
        assert_eq!(decide(0, 4, &s), Next::GiveUp);
        assert_eq!(decide(0, 1, &settings(1)), Next::GiveUp);
        // A whole cycle makes exactly `attempts` loads.
        let mut loads = 1;
        let mut attempt = 1;
        while let Next::Retry { attempt: next, .. } = decide(0, attempt, &s) {
            attempt = next;
            loads += 1;
            assert!(loads <= 20, "unbounded");
        }
        assert_eq!(loads, 4);
    }

    #[test]
    fn payloads_default_to_the_first_attempt_and_refuse_unknown_keys() {
        let request: LoadRequest = serde_json::from_str(r#"{"project": 1312}"#).unwrap();
        assert_eq!(
            request,
            LoadRequest {
                project: 1312,
                attempt: 1
            }
        );
        assert!(serde_json::from_str::<LoadRequest>(r#"{"projet": 1312}"#).is_err());
        assert_eq!(
            serde_json::to_string(&LoadRequest {
                project: 7,
                attempt: 2
            })
            .unwrap(),
            r#"{"project":7,"attempt":2}"#
        );
        assert_eq!(dedup_key(7), "project-7");
    }
}
