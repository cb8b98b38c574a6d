//! `grist`: keeps every project of a Recoco portal as one flat row of a Grist
//! table — the project's fields and its survey answers, one or more columns per
//! question — upserted by project id (`PUT …/records` with a `require` on
//! `object_id`), so replays and duplicates are harmless.
//!
//! Events (`projects.Project`, `taggit.TaggedItem`, `survey.Answer`,
//! `home.UserProfile`) name the projects to refresh; each is re-read from the
//! Recoco API (never from the webhook body) with all its answers. A project
//! Recoco no longer has is marked inactive in its row. Tasks: `setup` creates the
//! table and its missing columns; `sync-all` upserts every project of the portal.
//!
//! The mapping lives in plain modules tested natively: [`columns`] (which
//! columns), [`survey`] and [`record`] (which values), [`ids`] (Grist's id
//! rules), [`table`] (which column holds what), [`batch`] (batches and the
//! one-by-one fallback). [`grist`] and [`recoco`] are the two APIs.

pub mod batch;
pub mod columns;
pub mod config;
pub mod events;
pub mod grist;
pub mod ids;
pub mod recoco;
pub mod record;
pub mod setup;
pub mod survey;
pub mod sync;
pub mod sync_all;
pub mod table;

use std::time::Duration;

use recoco_connector_sdk::{Connector, Context, Error, Event, Manifest};

use crate::config::Config;
use crate::record::Record;

/// How long to wait before re-reading a project Recoco announced as created but
/// answers 404 for: its webhook can arrive before its transaction commits.
const NOT_COMMITTED_RETRY: Duration = Duration::from_secs(2);

/// The connector.
pub struct Grist;

impl Connector for Grist {
    fn manifest() -> Manifest {
        let mut manifest = Manifest::new("grist", env!("CARGO_PKG_VERSION"))
            .coalesce()
            .description(
                "Keeps every project of the portal as one row of a Grist table: project fields and \
                 survey answers (one or more columns per question), upserted by project id.",
            )
            .allow_host("config:/api_url")
            .config_schema(config::schema())
            .task(
                "setup",
                "Creates the table if missing and adds missing columns (project fields, survey \
                 questions); never drops, renames or retypes a column.",
            )
            .task(
                "sync-all",
                "Upserts every project of the portal (all pages, 100 per batch) and reports each \
                 failure; payload {} or {\"page_size\": 100}.",
            );
        for subscription in events::SUBSCRIPTIONS {
            manifest = manifest.subscribe(*subscription);
        }
        manifest
    }

    fn handle_event(ctx: &Context, event: &Event) -> Result<String, Error> {
        let config = Config::from_context(ctx)?;
        let ids = events::project_ids(event)?;
        if ids.is_empty() {
            return Ok(format!("nothing to sync: {} names no project", event.topic));
        }
        let mut records = Vec::with_capacity(ids.len());
        for id in &ids {
            match sync::fetch_record(*id, &config)? {
                Some(record) => records.push(record),
                None if event.object_type == "projects.Project" && event.action == "create" => {
                    return Err(Error::retryable(format!(
                        "project {id} was just created but Recoco answers 404: its webhook may \
                         precede the commit; trying again"
                    ))
                    .with_retry_after(NOT_COMMITTED_RETRY));
                }
                None => records.push(Record::gone(*id)),
            }
        }
        if event.object_type == "survey.Answer" && event.action == "delete" {
            clear_deleted_answer(event, &mut records)?;
        }
        let synced = sync::write_records(&config, &records)?;
        if !synced.written.failed.is_empty() {
            let reasons: Vec<String> = synced
                .written
                .failed
                .iter()
                .map(|(id, why)| format!("project {id}: {why}"))
                .collect();
            return Err(Error::permanent(format!(
                "Grist refused the record of {}",
                reasons.join("; ")
            )));
        }
        Ok(event_summary(&config, &records, &synced))
    }

    fn run_task(ctx: &Context, name: &str, payload: &str) -> Result<String, Error> {
        let config = Config::from_context(ctx)?;
        match name {
            "setup" => setup::run(&config),
            "sync-all" => sync_all::run(ctx, &config, payload),
            other => Err(Error::permanent(format!(
                "unknown task `{other}` (grist offers setup and sync-all)"
            ))),
        }
    }
}

/// A deleted answer is absent from what Recoco returns: empty its question's
/// columns (value, comment, attachment), unless another session still answers it.
fn clear_deleted_answer(event: &Event, records: &mut [Record]) -> Result<(), Error> {
    let answer: recoco_connector_sdk::recoco::SurveyAnswer = event.object()?;
    let slug = &answer.question.slug;
    if slug.is_empty() {
        return Ok(());
    }
    for record in records.iter_mut().filter(|r| !r.gone) {
        if record.values.contains_key(&columns::survey_key(slug)) {
            continue;
        }
        for key in [
            columns::survey_key(slug),
            columns::comment_key(slug),
            columns::attachment_key(slug),
        ] {
            record.values.insert(key, serde_json::Value::Null);
        }
    }
    Ok(())
}

/// `"project 1312 → row 17 of Projets (added)"`, one part per project.
fn event_summary(config: &Config, records: &[Record], synced: &sync::Synced) -> String {
    let parts: Vec<String> = records
        .iter()
        .map(|r| {
            let rows = synced
                .written
                .rows
                .get(&r.project_id)
                .cloned()
                .unwrap_or_default();
            let list = rows
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            match (r.gone, rows.is_empty()) {
                (true, true) => format!(
                    "project {} no longer exists in Recoco and has no row",
                    r.project_id
                ),
                (true, false) => format!(
                    "project {} no longer exists in Recoco: row {list} marked inactive",
                    r.project_id
                ),
                (false, true) => {
                    format!("project {} upserted into {}", r.project_id, config.table_id)
                }
                (false, false) => {
                    let how = if rows.iter().all(|row| synced.written.added.contains(row)) {
                        "added"
                    } else {
                        "updated"
                    };
                    format!(
                        "project {} → row {list} of {} ({how})",
                        r.project_id, config.table_id
                    )
                }
            }
        })
        .collect();
    let mut summary = parts.join("; ");
    if !synced.new_columns.is_empty() {
        summary.push_str(&format!(
            "; created columns {}",
            synced.new_columns.join(", ")
        ));
    }
    summary.push_str(&sync::skipped_note(&synced.skipped));
    summary.push_str(&sync::formula_note(&synced.formula));
    summary
}

recoco_connector_sdk::export_connector!(Grist);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest() {
        let m = Grist::manifest();
        assert_eq!(m.name, "grist");
        assert_eq!(m.subscriptions, events::SUBSCRIPTIONS);
        assert_eq!(m.default_allowed_hosts, ["config:/api_url"]);
        let tasks: Vec<&str> = m.tasks.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(tasks, ["setup", "sync-all"]);
        assert!(m.tasks.iter().all(|t| !t.description.is_empty()));
        let schema: serde_json::Value = serde_json::from_str(&m.config_schema).unwrap();
        assert_eq!(schema["properties"]["api_key"]["writeOnly"], true);
    }

    #[test]
    fn a_deleted_answer_empties_its_columns_unless_still_answered() {
        let body = |slug: &str| {
            format!(
                r#"{{"topic": "survey.Answer/delete", "object": {{"id": 1, "project": 7, "question": {{"slug": "{slug}"}}}}, "object_type": "survey.Answer", "webhook_uuid": "u"}}"#
            )
        };
        let mut records = vec![Record {
            project_id: 7,
            values: [(
                "survey:kept".to_string(),
                serde_json::json!("still answered"),
            )]
            .into(),
            attachment_columns: vec![],
            gone: false,
        }];
        clear_deleted_answer(
            &Event::from_webhook_body("e", body("gone-q")).unwrap(),
            &mut records,
        )
        .unwrap();
        clear_deleted_answer(
            &Event::from_webhook_body("e", body("kept")).unwrap(),
            &mut records,
        )
        .unwrap();
        let values = &records[0].values;
        assert_eq!(values["survey:gone-q"], serde_json::Value::Null);
        assert_eq!(values["survey:gone-q#comment"], serde_json::Value::Null);
        assert_eq!(values["survey:gone-q#attachment"], serde_json::Value::Null);
        assert_eq!(values["survey:kept"], "still answered");
        assert!(!values.contains_key("survey:kept#comment"));
    }

    #[test]
    fn bad_configs_fail_before_any_call() {
        let ctx = Context { config: r#"{"api_url": "https://g.example.org/api", "api_key": "k", "doc_id": "d", "table_id": "projets"}"#.into(), ..Context::default() };
        // Calling a host import would panic natively: an error proves none was made.
        let err = Grist::run_task(&ctx, "setup", "{}").unwrap_err();
        assert!(
            err.message().contains("set table_id to \"Projets\""),
            "{err}"
        );
        let ok = Context {
            config: ctx.config.replace("projets", "Projets"),
            ..Context::default()
        };
        let err = Grist::run_task(&ok, "nope", "{}").unwrap_err();
        assert!(err.message().contains("unknown task `nope`"));
    }
}
