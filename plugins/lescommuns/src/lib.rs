//! `lescommuns`: shares Recoco projects with the "Les Communs de la transition
//! écologique" hub and brings the services the hub proposes back into Recoco.
//!
//! - A recommendation (`tasks.Task`) whose resource carries the configured tag
//!   shares its project, if the connection's selection allows it: the project
//!   is reloaded from Recoco, mapped ([`mapping`]) and created in the hub
//!   (`POST /projets`, an upsert on the Recoco id) or updated
//!   (`PATCH /projets/{id}`). The hub id and the recommendation are kept in the
//!   connection's state ([`links`]).
//! - Updates of a project already shared (`projects.Project`) update its hub
//!   projet.
//! - After each share, a `load-services` task ([`services`]) reads the hub's
//!   services for the projet, retrying with backoff while there are none, and
//!   writes them as the `lescommuns` resource add-on of each tagged
//!   recommendation ([`addons`]).
//!
//! Survey answers are not subscribed to: nothing of them goes to the hub.

pub mod addons;
pub mod config;
pub mod hub;
pub mod links;
pub mod mapping;
pub mod services;
pub mod share;
pub mod trigger;

use recoco_connector_sdk::{Connector, Context, Error, Event, Manifest};
use serde::de::DeserializeOwned;

use config::Config;

/// The connector.
pub struct LesCommuns;

impl Connector for LesCommuns {
    fn manifest() -> Manifest {
        Manifest::new("lescommuns", env!("CARGO_PKG_VERSION"))
            .coalesce()
            .description(
                "Shares the projects of tagged recommendations with the Les Communs hub, keeps \
                 them up to date, and shows the services the hub proposes as a resource add-on \
                 of those recommendations.",
            )
            .subscribe("tasks.Task")
            .subscribe("projects.Project")
            .allow_host("config:/hub_url")
            .config_schema(config::schema())
            .task(
                services::TASK,
                "Reads the hub's services of a shared project and updates its recommendations' \
                 add-ons. Payload: {\"project\": <Recoco project id>}.",
            )
            .task(
                share::TASK,
                "Shares a selected project with the hub now (creates or updates its projet), then \
                 loads its services. Payload: {\"project\": <Recoco project id>}.",
            )
            .task(
                share::SYNC_ALL,
                "Re-shares every project the connection follows and loads its services again \
                 (catches up with webhooks lost while the service was down). Payload: {}.",
            )
    }

    fn handle_event(ctx: &Context, event: &Event) -> Result<String, Error> {
        let config = Config::from_context(ctx)?;
        share::on_event(&config, event)
    }

    fn run_task(ctx: &Context, name: &str, payload: &str) -> Result<String, Error> {
        let config = Config::from_context(ctx)?;
        match name {
            services::TASK => services::run(&config, task_payload(name, payload)?),
            share::TASK => share::run_task(&config, task_payload(name, payload)?),
            share::SYNC_ALL => share::sync_all(&config),
            other => Err(Error::permanent(format!(
                "unknown task `{other}` (this connector offers {}, {} and {})",
                services::TASK,
                share::TASK,
                share::SYNC_ALL
            ))),
        }
    }
}

/// The payload of task `name`, whose shape is `{"project": <id>}`.
fn task_payload<T: DeserializeOwned>(name: &str, payload: &str) -> Result<T, Error> {
    serde_json::from_str(payload).map_err(|err| {
        Error::permanent(format!(
            "task `{name}` expects {{\"project\": <Recoco project id>}}: {err}"
        ))
    })
}

recoco_connector_sdk::export_connector!(LesCommuns);

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(config: &str) -> Context {
        Context {
            config: config.into(),
            connection: "communs".into(),
            ..Context::default()
        }
    }

    const CONFIG: &str =
        r#"{"hub_url": "https://hub.example.org", "api_key": "k", "projects": [1]}"#;

    #[test]
    fn manifest_declares_subscriptions_hosts_tasks_and_schema() {
        let manifest = LesCommuns::manifest();
        assert_eq!(manifest.name, "lescommuns");
        assert_eq!(manifest.subscriptions, ["tasks.Task", "projects.Project"]);
        assert_eq!(manifest.default_allowed_hosts, ["config:/hub_url"]);
        let tasks: Vec<&str> = manifest.tasks.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(tasks, ["load-services", "share-project", "sync-all"]);
        let schema: serde_json::Value = serde_json::from_str(&manifest.config_schema).unwrap();
        assert_eq!(schema, config::schema());
    }

    #[test]
    fn a_bad_config_or_payload_is_a_permanent_error() {
        let err = LesCommuns::run_task(
            &ctx(r#"{"hub_url": "https://h/api", "api_key": "k"}"#),
            "load-services",
            "{}",
        )
        .unwrap_err();
        assert!(
            !err.is_retryable() && err.message().contains("/api"),
            "{err}"
        );

        let err = LesCommuns::run_task(&ctx(CONFIG), "share-project", r#"{"id": 1}"#).unwrap_err();
        assert!(!err.is_retryable());
        assert!(
            err.message().starts_with("task `share-project` expects"),
            "{err}"
        );

        let err = LesCommuns::run_task(&ctx(CONFIG), "sync-everything", "{}").unwrap_err();
        assert!(
            err.message().contains("unknown task `sync-everything`"),
            "{err}"
        );
    }

    #[test]
    fn an_operator_cannot_share_an_unselected_project() {
        // Refused before any host call (which would panic natively).
        let err =
            LesCommuns::run_task(&ctx(CONFIG), "share-project", r#"{"project": 2}"#).unwrap_err();
        assert!(!err.is_retryable());
        assert!(err
            .message()
            .contains("project 2 is not in the connection's `projects`"));
    }

    #[test]
    fn events_outside_the_selection_make_no_call() {
        let body = include_str!("../../../tests/fixtures/webhook-task-lescommuns.json");
        let event = Event::from_webhook_body("evt_1", body).unwrap();
        let summary = LesCommuns::handle_event(&ctx(CONFIG), &event).unwrap();
        assert_eq!(
            summary,
            "skipped: project 1312 is not in the connection's `projects`"
        );
        let nothing = ctx(r#"{"hub_url": "https://hub.example.org", "api_key": "k"}"#);
        let summary = LesCommuns::handle_event(&nothing, &event).unwrap();
        assert!(summary.contains("selects no project"), "{summary}");
    }
}
