//! The `sync-all` task: every project of the portal, page by page (100 a page),
//! each page upserted as one batch. A run keeps a checkpoint in the connection's
//! state after each page, so a retried job resumes where it stopped instead of
//! starting over; after a number of pages a job hands over to a new job, which
//! bounds the CPU time of one invocation whatever the portal's size. Progress is
//! reported after each page; the last job's summary gives the totals and the
//! reason of each failure.

use std::collections::BTreeSet;
use std::time::Duration;

use recoco_connector_sdk::{progress, schedule_json, state, warn, Context, Error};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::recoco;
use crate::record;
use crate::sync::{self, skipped_note};

/// State key of the current run.
pub const STATE_KEY: &str = "sync-all";
/// Projects a page; one page is one batch of upserts.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// Pages one job handles before handing over to the next.
pub const DEFAULT_PAGES_PER_JOB: u32 = 10;
/// Failures kept with their reason (the rest are counted and logged).
const KEPT_FAILURES: usize = 100;

/// What an operator (or the previous job of a run) passes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    /// The run to continue; absent: start a run.
    #[serde(default)]
    pub run: Option<String>,
    #[serde(default)]
    pub page_size: Option<u32>,
    #[serde(default)]
    pub pages_per_job: Option<u32>,
}

/// One failed project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub project: u64,
    pub reason: String,
}

/// A run's checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    /// Id of the job that started it.
    pub run: String,
    /// The next page to read; `None` once every page is done.
    pub next: Option<String>,
    pub pages: u32,
    pub total: Option<u64>,
    pub seen: u64,
    pub synced: u64,
    pub failed: u64,
    pub failures: Vec<Failure>,
    pub skipped: BTreeSet<String>,
    pub done: bool,
}

/// What to do with a job, given its payload and the stored run.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Start a new run (any older one is superseded).
    Start,
    /// Go on with the stored run.
    Resume,
    /// The stored run is finished: repeat its summary.
    Finished,
    /// The payload's run was replaced by a newer one.
    Superseded,
}

/// Decides from the payload's run, the stored run and the job's id. A job that
/// started a run and is retried has no run in its payload but its own id in
/// the stored run.
pub fn decide(payload_run: Option<&str>, stored: Option<&Run>, job_id: &str) -> Decision {
    match (payload_run, stored) {
        (Some(id), Some(run)) if run.run == id => {
            if run.done {
                Decision::Finished
            } else {
                Decision::Resume
            }
        }
        (Some(_), _) => Decision::Superseded,
        (None, Some(run)) if run.run == job_id && !run.done => Decision::Resume,
        (None, _) => Decision::Start,
    }
}

impl Run {
    /// Records a page: its projects synced or failed, the next page and the total.
    pub fn record_page(
        &mut self,
        count: Option<u64>,
        next: Option<String>,
        items: usize,
        synced: u64,
        failures: Vec<Failure>,
    ) {
        self.pages += 1;
        self.total = count.or(self.total);
        self.next = next;
        self.seen += items as u64;
        self.synced += synced;
        self.failed += failures.len() as u64;
        let room = KEPT_FAILURES.saturating_sub(self.failures.len());
        self.failures.extend(failures.into_iter().take(room));
    }

    /// `"249 of 250 projects synced, 1 failed"`.
    pub fn counts(&self) -> String {
        let total = self.total.unwrap_or(self.seen);
        format!(
            "{} of {total} projects synced, {} failed",
            self.synced, self.failed
        )
    }

    /// The final summary: totals, each failure with its reason, skipped columns.
    pub fn summary(&self, table_id: &str) -> String {
        let mut text = format!(
            "sync-all into {table_id} finished: {} ({} pages)",
            self.counts(),
            self.pages
        );
        if !self.failures.is_empty() {
            let each: Vec<String> = self
                .failures
                .iter()
                .map(|f| format!("project {}: {}", f.project, f.reason))
                .collect();
            text.push_str(&format!("; failures: {}", each.join("; ")));
            let more = self.failed.saturating_sub(self.failures.len() as u64);
            if more > 0 {
                text.push_str(&format!("; and {more} more (see the log)"));
            }
        }
        text.push_str(&skipped_note(&self.skipped));
        text
    }
}

fn save(run: &Run) -> Result<(), Error> {
    state::set_json(STATE_KEY, run)
}

/// Runs one job of `sync-all`.
pub fn run(ctx: &Context, config: &Config, payload: &str) -> Result<String, Error> {
    let payload: Payload = serde_json::from_str(if payload.trim().is_empty() {
        "{}"
    } else {
        payload
    })
    .map_err(|e| {
        Error::permanent(format!(
            "sync-all: bad payload: {e} (expected {{}}, or {{\"page_size\": 100}})"
        ))
    })?;
    let page_size = payload
        .page_size
        .unwrap_or(DEFAULT_PAGE_SIZE)
        .clamp(1, 1000);
    let pages_per_job = payload
        .pages_per_job
        .unwrap_or(DEFAULT_PAGES_PER_JOB)
        .max(1);
    let stored: Option<Run> = state::get_json(STATE_KEY)?;
    let mut run = match decide(payload.run.as_deref(), stored.as_ref(), &ctx.job_id) {
        Decision::Finished => return Ok(stored.unwrap_or_default().summary(&config.table_id)),
        Decision::Superseded => {
            return Ok("this sync-all run was superseded by a newer one: nothing done".into())
        }
        Decision::Resume => stored.unwrap_or_default(),
        Decision::Start => {
            let run = Run {
                run: ctx.job_id.clone(),
                next: Some(recoco::projects_path(page_size)),
                ..Run::default()
            };
            save(&run)?;
            run
        }
    };
    progress::report(run.seen, run.total, &format!("sync-all: {}", run.counts()));
    for _ in 0..pages_per_job {
        let Some(path) = run.next.clone() else { break };
        let page = recoco::projects_page(&path)?;
        let mut records = Vec::with_capacity(page.results.len());
        let mut failures = Vec::new();
        for (i, item) in page.results.iter().enumerate() {
            // The host stores at most one report a second: cheap to call often.
            progress::report(
                run.seen + i as u64,
                run.total.or(page.count),
                &format!("sync-all: reading page {}", run.pages + 1),
            );
            match recoco::answers(item.id) {
                Ok(answers) => records.push(record::build(
                    &item.into(),
                    &answers,
                    config.label_max_length(),
                )),
                // Retrying the job redoes this page only.
                Err(err) if err.is_retryable() => return Err(err),
                Err(err) => failures.push(Failure {
                    project: item.id,
                    reason: err.message().to_owned(),
                }),
            }
        }
        let synced = sync::write_records(config, &records)?;
        failures.extend(
            synced
                .written
                .failed
                .iter()
                .map(|(project, reason)| Failure {
                    project: *project,
                    reason: reason.clone(),
                }),
        );
        for f in &failures {
            warn!("sync-all: project {} not synced: {}", f.project, f.reason);
        }
        // Another run may have started meanwhile: leave its checkpoint alone.
        if state::get_json::<Run>(STATE_KEY)?.is_some_and(|current| current.run != run.run) {
            return Ok("this sync-all run was superseded by a newer one: stopped".into());
        }
        run.skipped.extend(synced.skipped);
        run.record_page(
            page.count,
            page.next,
            page.results.len(),
            synced.written.synced.len() as u64,
            failures,
        );
        save(&run)?;
        progress::report(run.seen, run.total, &format!("sync-all: {}", run.counts()));
    }
    if run.next.is_some() {
        let next = serde_json::json!({"run": run.run, "page_size": page_size, "pages_per_job": pages_per_job});
        schedule_json("sync-all", &next, Duration::ZERO, Some(STATE_KEY))?;
        return Ok(format!(
            "sync-all: {} so far, {} pages; continuing in a new job",
            run.counts(),
            run.pages
        ));
    }
    run.done = true;
    save(&run)?;
    Ok(run.summary(&config.table_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(run: &str, done: bool) -> Run {
        Run {
            run: run.into(),
            done,
            ..Run::default()
        }
    }

    #[test]
    fn decisions() {
        assert_eq!(decide(None, None, "job_1"), Decision::Start);
        assert_eq!(
            decide(None, Some(&stored("job_1", false)), "job_1"),
            Decision::Resume,
            "a retried first job"
        );
        assert_eq!(
            decide(None, Some(&stored("job_1", true)), "job_1"),
            Decision::Start,
            "run again after the end"
        );
        assert_eq!(
            decide(None, Some(&stored("job_0", false)), "job_1"),
            Decision::Start,
            "a new run supersedes"
        );
        assert_eq!(
            decide(Some("job_1"), Some(&stored("job_1", false)), "job_2"),
            Decision::Resume
        );
        assert_eq!(
            decide(Some("job_1"), Some(&stored("job_1", true)), "job_2"),
            Decision::Finished
        );
        assert_eq!(
            decide(Some("job_1"), Some(&stored("job_3", false)), "job_2"),
            Decision::Superseded
        );
        assert_eq!(decide(Some("job_1"), None, "job_2"), Decision::Superseded);
    }

    #[test]
    fn pages_add_up_and_the_summary_gives_each_reason() {
        let mut run = stored("job_1", false);
        run.record_page(Some(250), Some("next-1".into()), 100, 100, vec![]);
        run.record_page(
            Some(250),
            Some("next-2".into()),
            100,
            99,
            vec![Failure {
                project: 42,
                reason: "column \"x\" does not exist".into(),
            }],
        );
        run.record_page(Some(250), None, 50, 50, vec![]);
        assert_eq!(
            (run.seen, run.synced, run.failed, run.pages),
            (250, 249, 1, 3)
        );
        assert_eq!(run.next, None);
        run.skipped.insert("new_q".into());
        let summary = run.summary("Projets");
        assert!(
            summary.starts_with(
                "sync-all into Projets finished: 249 of 250 projects synced, 1 failed (3 pages)"
            ),
            "{summary}"
        );
        assert!(
            summary.contains("failures: project 42: column \"x\" does not exist"),
            "{summary}"
        );
        assert!(summary.contains("no column for: new_q"), "{summary}");
    }

    #[test]
    fn failures_kept_are_bounded() {
        let mut run = Run::default();
        let many: Vec<Failure> = (0..150)
            .map(|i| Failure {
                project: i,
                reason: "r".into(),
            })
            .collect();
        run.record_page(None, None, 150, 0, many);
        assert_eq!(run.failures.len(), KEPT_FAILURES);
        assert!(run.summary("T").ends_with("and 50 more (see the log)"));
        assert_eq!(run.counts(), "0 of 150 projects synced, 150 failed");
    }

    #[test]
    fn payloads() {
        let p: Payload = serde_json::from_str(r#"{"run": "job_1", "page_size": 50}"#).unwrap();
        assert_eq!(
            (p.run.as_deref(), p.page_size, p.pages_per_job),
            (Some("job_1"), Some(50), None)
        );
        assert!(serde_json::from_str::<Payload>(r#"{"pagesize": 5}"#).is_err());
    }
}
