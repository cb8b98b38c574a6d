//! `jobs watch ID` and `task … --follow` on the database: the test plays the
//! worker, writing the job's state and `progress` as a worker does, and checks
//! what the follower shows (one line per change when not on a terminal), that
//! it follows a task's hand-over to the next job of its run, prints the
//! summary, and exits 0 / 4 (failed or dead) / 5 (`--timeout`) / 3 (no job).

mod cli_support;

use std::io::BufRead as _;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cli_support::*;

const CONFIG: &str = "[[sources]]\ncode = \"portal\"\nsecrets = [\"hook-secret-0001\"]\n\
    [[connections]]\nname = \"c1\"\nsource = \"portal\"\nplugin = \"grist\"\n";

fn setup() -> (tempfile::TempDir, rusqlite::Connection) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rs.toml"), CONFIG).unwrap();
    ok(dir.path(), &ENV, &["migrate", "--create"]);
    let db = rusqlite::Connection::open(dir.path().join("data/recoco-sync.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    (dir, db)
}

const ENV: [(&str, &str); 1] = [("RECOCO_SYNC_CONFIG", "rs.toml")];

/// What a worker writes.
fn set(db: &rusqlite::Connection, id: &str, sql: &str) {
    let n = db
        .execute(&format!("UPDATE jobs SET {sql} WHERE id = ?1"), [id])
        .unwrap();
    assert_eq!(n, 1);
}

struct Follower {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Follower {
    fn start(cwd: &std::path::Path, args: &[&str]) -> Self {
        let mut child = bin(cwd)
            .args(args)
            .envs(ENV)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    fn expect(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        if self.seen.iter().any(|l| l.contains(needle)) {
            return;
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return;
                    }
                }
                Err(_) => panic!("no line with {needle:?} in:\n{}", self.seen.join("\n")),
            }
        }
    }

    fn finish(self) -> (i32, String) {
        let out = self.child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

#[test]
fn watch_shows_progress_follows_the_hand_over_and_prints_the_summary() {
    let (dir, db) = setup();
    let cwd = dir.path();
    let first = ok(cwd, &ENV, &["task", "c1", "sync-all"])
        .trim()
        .to_string();
    assert!(first.starts_with("job_"), "{first}");
    let mut follower = Follower::start(cwd, &["jobs", "watch", &first]);
    follower.expect(&format!("job {first}: queued"));
    set(
        &db,
        &first,
        r#"state = 'running', attempts = 1, progress = '{"done": 1, "total": 3, "message": "page 1"}'"#,
    );
    follower.expect("running 1/3 page 1");
    set(
        &db,
        &first,
        r#"progress = '{"done": 2, "total": 3, "message": "page 2"}'"#,
    );
    follower.expect("running 2/3 page 2");
    // The task schedules its continuation (payload `run` = the first job), then ends.
    let payload = format!(r#"{{"run": "{first}"}}"#);
    let next = ok(
        cwd,
        &ENV,
        &["task", "c1", "sync-all", "--payload", &payload],
    )
    .trim()
    .to_string();
    set(
        &db,
        &first,
        "state = 'succeeded', summary = 'continuing in a new job', finished_at = updated_at",
    );
    follower.expect(&format!("job {first} handed over to {next}"));
    set(
        &db,
        &next,
        r#"state = 'running', attempts = 1, progress = '{"done": 3, "total": 3, "message": "page 3"}'"#,
    );
    follower.expect("running 3/3 page 3");
    set(
        &db,
        &next,
        "state = 'succeeded', summary = '3 projects synced', finished_at = updated_at",
    );
    let (code, stdout) = follower.finish();
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains(&format!("job {next} succeeded")) && stdout.contains("3 projects synced"),
        "{stdout}"
    );
}

#[test]
fn follow_exit_codes_for_scripts() {
    let (dir, db) = setup();
    let cwd = dir.path();
    // Nobody runs it: --timeout gives up with 5.
    let (_, err) = exits(
        cwd,
        &ENV,
        &["task", "c1", "sync-all", "--follow", "--timeout", "1s"],
        5,
    );
    assert!(err.contains("still queued after 1s"), "{err}");
    exits(cwd, &ENV, &["task", "c1", "sync-all", "--timeout", "1s"], 2);
    let id = ok(cwd, &ENV, &["task", "c1", "sync-all"])
        .trim()
        .to_string();
    set(
        &db,
        &id,
        "state = 'dead', attempts = 1, last_error = 'grist answered 500', finished_at = updated_at",
    );
    let (out, err) = exits(cwd, &ENV, &["jobs", "watch", &id], 4);
    assert!(out.contains(&format!("job {id} dead")), "{out}");
    assert!(err.contains("grist answered 500"), "{err}");
    let (out, _) = exits(cwd, &ENV, &["jobs", "watch", &id, "--json"], 4);
    let job: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(job["state"], "dead");
    assert!(is_rfc3339(job["finished_at"].as_str().unwrap()), "{job}");
    exits(cwd, &ENV, &["jobs", "watch", "job_none"], 3);
    exits(cwd, &ENV, &["task", "nobody", "sync-all"], 3);
    let (_, err) = exits(cwd, &ENV, &["task", "c1", "sync-all", "--payload", "{"], 2);
    assert!(err.contains("--payload must be JSON"), "{err}");
}
