//! Sharing projects with the hub: what an event triggers (after the selection
//! and the state are checked), and the share itself: reload the project from
//! Recoco, map it, `PATCH` the known hub projet or `POST` a new one (an upsert
//! on `externalId`, so a lost state never duplicates a projet either), then
//! schedule the services load.

use std::fmt;

use recoco_connector_sdk::recoco::{Owner, Project};
use recoco_connector_sdk::{info, source_api, warn, Error, Event};
use serde::Deserialize;

use crate::addons::{self, SourceAddons};
use crate::config::{Config, Selection};
use crate::hub::{Hub, Patched};
use crate::trigger::{self, Trigger};
use crate::{links, mapping, services};

/// Name of the operator task that (re)shares one project.
pub const TASK: &str = "share-project";

/// Payload of [`TASK`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareRequest {
    /// Recoco project id.
    pub project: u64,
}

/// How a share ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shared {
    /// A new hub projet.
    Created(String),
    /// The known hub projet, updated.
    Updated(String),
    /// The known projet was gone from the hub; a new one replaces it.
    Recreated { old: String, new: String },
    /// The project cannot be created in the hub yet, for this reason.
    Pending(String),
}

impl fmt::Display for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Created(id) => write!(f, "created hub projet {id}"),
            Self::Updated(id) => write!(f, "updated hub projet {id}"),
            Self::Recreated { old, new } => {
                write!(f, "hub projet {old} was gone from the hub, created {new}")
            }
            Self::Pending(reason) => write!(f, "not shared: {reason}"),
        }
    }
}

/// Handles one event.
pub fn on_event(config: &Config, event: &Event) -> Result<String, Error> {
    match trigger::classify(event, &config.tag)? {
        Trigger::Ignore(reason) => Ok(skipped(reason)),
        Trigger::NotTagged {
            project,
            recommendation,
            reason,
        } => {
            let mut summary = reason;
            let remembered = links::forget(project, recommendation);
            if remembered {
                summary.push_str(&format!(
                    "; it no longer receives the services of project {project}"
                ));
            }
            // An add-on left enabled would go on showing the old services.
            if remembered {
                if let Some(done) =
                    addons::withdraw(&mut SourceAddons, recommendation).map_err(|e| {
                        e.context(format_args!("add-on of recommendation {recommendation}"))
                    })?
                {
                    summary.push_str(&format!("; {done}"));
                }
            }
            Ok(skipped(summary))
        }
        Trigger::Recommendation {
            project,
            recommendation,
        } => {
            if let Some(reason) = unselected(config, project) {
                return Ok(skipped(reason));
            }
            links::remember(project, recommendation, &event.id)?;
            share_and_schedule(config, project)
                .map(|summary| format!("recommendation {recommendation}: {summary}"))
        }
        Trigger::ProjectChanged { project } => {
            if let Some(reason) = unselected(config, project) {
                return Ok(skipped(reason));
            }
            if !links::is_tracked(project) {
                return Ok(skipped(format!(
                    "project {project} is not shared with the hub (no tagged recommendation yet)"
                )));
            }
            share_and_schedule(config, project)
        }
    }
}

/// Name of the task that re-shares every followed project.
pub const SYNC_ALL: &str = "sync-all";

/// Runs [`SYNC_ALL`]: every project the connection follows (it had a tagged
/// recommendation) is reloaded from Recoco and its hub projet updated, then its
/// services are loaded again (an add-on whose services the hub no longer
/// proposes is emptied). Recoco lists no recommendations, so a tag change whose
/// webhook was lost is only seen at the recommendation's next event.
pub fn sync_all(config: &Config) -> Result<String, Error> {
    let mut done = Vec::new();
    let mut skipped = Vec::new();
    for project in links::tracked() {
        if let Some(reason) = unselected(config, project) {
            skipped.push(reason);
            continue;
        }
        match share_and_schedule(config, project) {
            Ok(summary) => done.push(summary),
            // The whole task is retried: re-sharing is an upsert.
            Err(err) if err.is_retryable() => return Err(err),
            Err(err) if err.message().contains("HTTP 404") => skipped.push(format!(
                "project {project} is gone from Recoco (the hub has no deletion: its projet is left as is)"
            )),
            Err(err) => skipped.push(format!("project {project}: {}", err.message())),
        }
    }
    let mut summary = format!("sync-all: {} projects re-shared", done.len());
    if !done.is_empty() {
        summary.push_str(&format!(" ({})", done.join("; ")));
    }
    if !skipped.is_empty() {
        summary.push_str(&format!("; not shared: {}", skipped.join("; ")));
    }
    info!("{summary}");
    Ok(summary)
}

/// Runs the operator task [`TASK`]: shares `project` now, if selected.
pub fn run_task(config: &Config, request: ShareRequest) -> Result<String, Error> {
    if let Some(reason) = unselected(config, request.project) {
        return Err(Error::permanent(reason));
    }
    share_and_schedule(config, request.project)
}

/// Why `project` may not be shared, logged; `None` if it may.
fn unselected(config: &Config, project: u64) -> Option<String> {
    let reason = match config.selection(project) {
        Selection::Selected => return None,
        Selection::Nothing => format!(
            "the connection selects no project (set `projects` or `all_projects`), so project \
             {project} is not shared"
        ),
        Selection::NotListed => {
            format!("project {project} is not in the connection's `projects`")
        }
    };
    info!("{reason}");
    Some(reason)
}

fn skipped(reason: String) -> String {
    info!("skipped: {reason}");
    format!("skipped: {reason}")
}

/// Shares `project`, then schedules the services load when a recommendation
/// is waiting for them (one pending load per project).
fn share_and_schedule(config: &Config, project: u64) -> Result<String, Error> {
    let shared = share(config, project)?;
    if let Shared::Pending(reason) = &shared {
        let summary = format!(
            "project {project} not shared yet: {reason}; it will be by the next update of the \
             project (or the task {TASK})"
        );
        warn!("{summary}");
        return Ok(summary);
    }
    let load = if links::recommendations(project).is_empty() {
        "no tagged recommendation: services are not loaded".to_owned()
    } else {
        let delay = config.load_services.first_delay();
        services::schedule(project, 1, delay)?;
        format!("services load in {} ms", delay.as_millis())
    };
    let summary = format!("project {project}: {shared}; {load}");
    info!("{summary}");
    Ok(summary)
}

/// Reloads `project` from Recoco and creates or updates its hub projet.
pub fn share(config: &Config, project: u64) -> Result<Shared, Error> {
    let path = format!("/projects/{project}/");
    let reload = |err: Error| err.context(format_args!("reload project {project} from Recoco"));
    let raw: serde_json::Value = source_api::get_json(&path).map_err(reload)?;
    let owner: Option<Owner> = raw
        .get("owner")
        .cloned()
        .and_then(|o| serde_json::from_value(o).ok());
    let detail: Project = serde_json::from_value(raw)
        .map_err(|e| reload(Error::permanent(format!("GET {path}: {e}"))))?;
    let payload = mapping::map_project(&detail, owner.as_ref());
    let hub = Hub::new(config.hub_base()?, &config.api_key);

    if let Some(old) = links::hub_id(project) {
        match hub.update(&old, &payload)? {
            Patched::Updated => return Ok(Shared::Updated(old)),
            Patched::NotFound => {
                // Deleted on the hub's side: the original never recovered (B30).
                links::forget_hub_id(project);
                warn!(
                    "hub projet {old} of project {project} is gone from the hub; creating it again"
                );
                if let Some(reason) = payload.cannot_create() {
                    return Ok(Shared::Pending(reason));
                }
                let new = hub.create(&payload)?;
                links::set_hub_id(project, &new)?;
                return Ok(Shared::Recreated { old, new });
            }
        }
    }
    if let Some(reason) = payload.cannot_create() {
        return Ok(Shared::Pending(reason));
    }
    let id = hub.create(&payload)?;
    links::set_hub_id(project, &id)?;
    Ok(Shared::Created(id))
}
