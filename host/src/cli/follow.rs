//! `task … --follow` and `jobs watch ID`: polls the job (through the API or
//! the database) and shows its stored `progress` (`{done, total, message}`,
//! reported by the connector) as a progress bar on a terminal, or as one line
//! per change otherwise; then prints the summary. A job folded into another
//! (coalesced) is followed into it, and a task that hands over to a new job of
//! the same run (the payload's `run` names the first job, as `sync-all` does)
//! is followed into that job.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use recoco_sync::queue::jobs::JobFilter;

use super::backend::Backend;
use super::exit;
use super::output::{cell, Out};

/// States a job does not leave by itself.
const FINAL: &[&str] = &["succeeded", "failed", "dead", "skipped", "coalesced"];

pub async fn follow(
    backend: &Backend,
    id: &str,
    timeout: Option<Duration>,
    out: Out,
) -> anyhow::Result<()> {
    let poll = match backend {
        Backend::Api(_) => Duration::from_millis(500),
        Backend::Db(_) => Duration::from_millis(250),
    };
    let started = Instant::now();
    let mut display = Display::new();
    let root = id.to_string();
    let mut current = id.to_string();
    let job = loop {
        let job = backend.get_job(&current).await?;
        let state = cell(&job, "state");
        display.show(&job);
        if state == "coalesced" {
            if let Some(into) = job["coalesced_into"].as_str() {
                display.note(&format!(
                    "job {current} was folded into {into}; following it"
                ));
                current = into.to_string();
                continue;
            }
        }
        if state == "succeeded" {
            if let Some(next) = continuation(backend, &job, &root).await? {
                display.note(&format!(
                    "job {current} handed over to {next}; following it"
                ));
                current = next;
                continue;
            }
        }
        if FINAL.contains(&state.as_str()) {
            break job;
        }
        if let Some(limit) = timeout {
            if started.elapsed() >= limit {
                display.finish();
                return Err(exit::timeout(format!(
                    "job {current} is still {state} after {}",
                    humantime::format_duration(limit)
                )));
            }
        }
        tokio::time::sleep(poll).await;
    };
    display.finish();
    let state = cell(&job, "state");
    let id = cell(&job, "id");
    if out.is_json() {
        out.json(&job)?;
    } else {
        let attempts = job["attempts_log"].as_array().map_or(0, Vec::len);
        let what = match state.as_str() {
            "succeeded" | "skipped" => cell(&job, "summary"),
            _ => cell(&job, "last_error"),
        };
        println!(
            "job {id} {state} after {attempts} attempt(s) in {}: {what}",
            humantime::format_duration(Duration::from_secs(started.elapsed().as_secs()))
        );
    }
    match state.as_str() {
        "failed" | "dead" => Err(exit::job_failed(format!(
            "job {id} ended {state}: {}",
            cell(&job, "last_error")
        ))),
        _ => Ok(()),
    }
}

/// A later task job of the same connection and task whose payload's `run` is
/// the followed run's first job.
async fn continuation(
    backend: &Backend,
    job: &Value,
    root: &str,
) -> anyhow::Result<Option<String>> {
    let Some(task) = job["task_name"].as_str() else {
        return Ok(None);
    };
    let list = backend
        .list_jobs(&JobFilter {
            connection: job["connection"].as_str().map(String::from),
            kind: Some("task".into()),
            limit: Some(50),
            ..Default::default()
        })
        .await?;
    let created = |j: &Value| j["created_at"].as_i64().unwrap_or_default();
    let run_of = |j: &Value| {
        j["payload"]
            .as_str()
            .and_then(|p| serde_json::from_str::<Value>(p).ok())
            .and_then(|p| p["run"].as_str().map(String::from))
    };
    Ok(list
        .iter()
        .filter(|j| j["task_name"] == task && j["id"] != job["id"])
        .filter(|j| created(j) >= created(job) && run_of(j).as_deref() == Some(root))
        .min_by_key(|j| created(j))
        .and_then(|j| j["id"].as_str().map(String::from)))
}

/// A progress bar on a terminal; lines on a pipe (logs, CI, tests).
struct Display {
    bar: Option<ProgressBar>,
    last: String,
}

impl Display {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self {
            bar,
            last: String::new(),
        }
    }

    fn show(&mut self, job: &Value) {
        let state = cell(job, "state");
        let progress = &job["progress"];
        let done = progress["done"].as_u64();
        let total = progress["total"].as_u64();
        let message = progress["message"].as_str().unwrap_or_default();
        let line = match (done, total) {
            (Some(d), Some(t)) => format!("{state} {d}/{t} {message}"),
            (Some(d), None) => format!("{state} {d} {message}"),
            _ => state.clone(),
        };
        match &self.bar {
            Some(bar) => {
                match total {
                    Some(t) => {
                        if bar.length() != Some(t) {
                            bar.set_style(
                                ProgressStyle::with_template(
                                    "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg}",
                                )
                                .expect("a valid template"),
                            );
                            bar.set_length(t);
                        }
                    }
                    None => bar.set_style(
                        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {pos} {msg}")
                            .expect("a valid template"),
                    ),
                }
                bar.set_position(done.unwrap_or(0));
                bar.set_message(format!("{} {state}: {message}", cell(job, "id")));
            }
            None => {
                if line != self.last {
                    eprintln!("job {}: {line}", cell(job, "id"));
                }
            }
        }
        self.last = line;
    }

    fn note(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
