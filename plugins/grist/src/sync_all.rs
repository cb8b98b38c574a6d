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

use recoco_connector_sdk::recoco::ProjectListItem;

use crate::config::Config;
use crate::grist::Grist;
use crate::recoco;
use crate::record::{self, Record};
use crate::sync::{self, formula_note, skipped_note};
use crate::table::{self, Found, Table};

/// State key of the current run.
pub const STATE_KEY: &str = "sync-all";
/// Projects a page; one page is one batch of upserts.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// Pages one job handles before handing over to the next.
pub const DEFAULT_PAGES_PER_JOB: u32 = 10;
/// Failures kept with their reason (the rest are counted and logged).
const KEPT_FAILURES: usize = 100;
/// Walks over the project list at most (the first and the re-reads).
pub const MAX_WALKS: u32 = 3;
/// Table rows read per request when looking for deleted projects.
pub const ROWS_PAGE: u32 = 1000;

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
    /// Formula columns left as Grist computes them.
    #[serde(default)]
    pub formula: BTreeSet<String>,
    /// Every project id read (or settled) in this run: each is synced once.
    #[serde(default)]
    pub ids: BTreeSet<u64>,
    /// The walk over the project list: 0 the first, then the re-reads.
    #[serde(default)]
    pub walk: u32,
    /// Projects the current re-read found that earlier walks missed.
    #[serde(default)]
    pub found: u64,
    /// Projects missed by the first walk and synced since.
    #[serde(default)]
    pub missed: u64,
    #[serde(default)]
    pub walks_done: bool,
    /// The last table row id checked for deleted projects.
    #[serde(default)]
    pub inactive_after: Option<u64>,
    #[serde(default)]
    pub inactive_done: bool,
    /// Why the rows were not checked, when they were not.
    #[serde(default)]
    pub inactive_note: Option<String>,
    /// Rows marked inactive (their project is gone from Recoco).
    #[serde(default)]
    pub marked: u64,
    /// Rows whose project no walk listed but Recoco has: synced.
    #[serde(default)]
    pub late: u64,
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
        if self.missed > 0 {
            text.push_str(&format!(
                "; {} projects missed as pages shifted were synced on a re-read",
                self.missed
            ));
        }
        if self.late > 0 {
            text.push_str(&format!(
                "; {} projects in the table but in no page were synced",
                self.late
            ));
        }
        match &self.inactive_note {
            Some(note) => text.push_str(&format!("; {note}")),
            None => text.push_str(&format!(
                "; {} rows of projects Recoco no longer has marked inactive",
                self.marked
            )),
        }
        text.push_str(&skipped_note(&self.skipped));
        text.push_str(&formula_note(&self.formula));
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
    let mut steps = 0;
    while steps < pages_per_job {
        if let Some(path) = run.next.clone() {
            steps += 1;
            if !sync_page(config, &mut run, &path)? {
                return Ok("this sync-all run was superseded by a newer one: stopped".into());
            }
            save(&run)?;
            progress::report(run.seen, run.total, &format!("sync-all: {}", run.counts()));
        } else if !run.walks_done {
            // A walk ended. Pages shift while we read them (Recoco lists newest
            // first by limit/offset: a project created or deleted meanwhile moves
            // the others), so walk again, syncing only ids not seen yet, until a
            // walk finds none.
            if run.walk > 0 && (run.found == 0 || run.walk >= MAX_WALKS) {
                run.walks_done = true;
            } else {
                run.walk += 1;
                run.found = 0;
                run.next = Some(recoco::projects_path(page_size));
            }
            save(&run)?;
        } else if !run.inactive_done {
            steps += 1;
            mark_inactive(config, &mut run)?;
            save(&run)?;
        } else {
            break;
        }
    }
    if !run.inactive_done {
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

/// Reads one page of the project list and upserts its projects not synced yet
/// in this run. `false` when another run took over meanwhile.
fn sync_page(config: &Config, run: &mut Run, path: &str) -> Result<bool, Error> {
    let page = recoco::projects_page(path)?;
    let fresh: Vec<&ProjectListItem> = page
        .results
        .iter()
        .filter(|item| !run.ids.contains(&item.id))
        .collect();
    let mut records = Vec::with_capacity(fresh.len());
    let mut failures = Vec::new();
    for (i, item) in fresh.iter().enumerate() {
        // The host stores at most one report a second: cheap to call often.
        progress::report(
            run.seen + i as u64,
            run.total.or(page.count),
            &format!("sync-all: reading page {}", run.pages + 1),
        );
        match recoco::answers(item.id) {
            Ok(answers) => records.push(record::build(
                &(*item).into(),
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
    let synced = if records.is_empty() {
        sync::Synced::default()
    } else {
        sync::write_records(config, &records)?
    };
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
        return Ok(false);
    }
    run.skipped.extend(synced.skipped);
    run.formula.extend(synced.formula);
    if run.walk > 0 {
        run.found += fresh.len() as u64;
        run.missed += fresh.len() as u64;
    }
    run.ids.extend(fresh.iter().map(|item| item.id));
    run.record_page(
        page.count,
        page.next,
        fresh.len(),
        synced.written.synced.len() as u64,
        failures,
    );
    Ok(true)
}

/// Reads one page of the table's rows (their project id and `active` only) and
/// settles every active row whose project this run did not see: a project
/// Recoco no longer has (deleted while we were not listening) gets
/// `active = false` (its row is kept), one Recoco still has (created after
/// the walks) is synced.
fn mark_inactive(config: &Config, run: &mut Run) -> Result<(), Error> {
    let grist = Grist::new(config);
    let columns = match sync::cached_columns(config)? {
        Some(columns) => columns,
        None => sync::refresh_columns(&grist, config)?,
    };
    let map = sync::load_map(config)?;
    let table = Table {
        columns: &columns,
        map: &map,
    };
    let (Ok(key), Found::Column(active)) = (table::key_column(&table), table.find("active")) else {
        run.inactive_note = Some(
            "rows of deleted projects were not checked: the table has no `object_id` or \
             `active` column"
                .into(),
        );
        run.inactive_done = true;
        return Ok(());
    };
    let after = run.inactive_after.unwrap_or(0);
    let rows = grist.rows_page(&[&key.id, &active.id], after, ROWS_PAGE)?;
    run.inactive_after = rows.last().map(|(id, _)| *id).or(Some(after));
    run.inactive_done = rows.len() < ROWS_PAGE as usize;
    let mut unseen: Vec<u64> = rows
        .iter()
        .filter(|(_, cells)| {
            cells[1] != serde_json::json!(0) && cells[1] != serde_json::json!(false)
        })
        .filter_map(|(_, cells)| cells[0].as_u64())
        .filter(|id| *id != 0 && !run.ids.contains(id))
        .collect();
    unseen.sort_unstable();
    unseen.dedup();
    if unseen.is_empty() {
        return Ok(());
    }
    let mut records = Vec::with_capacity(unseen.len());
    for id in &unseen {
        records.push(match sync::fetch_record(*id, config)? {
            Some(record) => {
                run.late += 1;
                record
            }
            None => Record::gone(*id),
        });
    }
    let synced = sync::write_records(config, &records)?;
    run.marked += records
        .iter()
        .filter(|r| r.gone && synced.written.synced.contains(&r.project_id))
        .count() as u64;
    run.ids.extend(unseen);
    for (project, reason) in synced.written.failed {
        warn!("sync-all: project {project} not synced: {reason}");
        run.failed += 1;
        if run.failures.len() < KEPT_FAILURES {
            run.failures.push(Failure { project, reason });
        }
    }
    Ok(())
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
        assert!(run
            .summary("T")
            .contains("; and 50 more (see the log); 0 rows of projects"));
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
