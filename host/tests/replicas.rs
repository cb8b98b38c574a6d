//! Two `serve` processes on one database, as replicas: each registers itself
//! with a heartbeat, the plugin listing says which version each serves, and
//! when one is killed mid-job the other queues that job again after
//! `queue.replica_timeout`, long before its lease would expire. Three
//! replicas sharing a stream of webhooks, one killed midway, deliver every
//! accepted event with each project's versions in order.

mod cli_support;
mod pg_support;

use std::io::{BufRead as _, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cli_support::*;
use pg_support::PgCluster;

/// A webhook target that never answers its first request (the job stays
/// running) and answers 200 to every later one. Returns its address and the
/// number of requests received.
fn first_request_hangs() -> (String, Arc<Mutex<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let count = Arc::new(Mutex::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        let mut held: Vec<TcpStream> = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let _ = stream.set_nodelay(true);
            let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let n = {
                let mut c = seen.lock().unwrap();
                *c += 1;
                *c
            };
            if n == 1 {
                held.push(stream);
            } else {
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
            }
        }
    });
    (addr, count)
}

const ENV: [(&str, &str); 1] = [("RECOCO_SYNC_CONFIG", "rs.toml")];

/// A replica timeout of 3 s and a lease of ten minutes: only the replica
/// timeout can explain a takeover within seconds.
const SETTINGS: [&str; 6] = [
    "--set",
    "queue.replica_timeout=3s",
    "--set",
    "queue.lease=10m",
    "--set",
    "queue.poll_interval=100ms",
];

/// `rs.toml` in `cwd`: a source and an http-forward connection to `target`.
fn write_config(cwd: &std::path::Path, target: &str) {
    write_config_with(cwd, target, "");
}

/// [`write_config`] and `more` (other connections).
fn write_config_with(cwd: &std::path::Path, target: &str, more: &str) {
    std::fs::write(
        cwd.join("rs.toml"),
        format!(
            "[[sources]]\ncode = \"portal\"\nsecrets = [\"hook-secret-0001\"]\n\
             [[connections]]\nname = \"crm\"\nsource = \"portal\"\nplugin = \"http-forward\"\n\
             [connections.config]\nurl = \"http://{target}/hook\"\nsecret = \"whsec_c2VjcmV0LXZhbHVl\"\n{more}"
        ),
    )
    .unwrap();
}

/// Every log line `served` wrote so far (a killed one's included).
fn all_lines(served: &mut Served) -> Vec<String> {
    let more: Vec<String> = served.lines.try_iter().collect();
    served.seen.extend(more);
    served.seen.clone()
}

fn replicas(addr: &str) -> Vec<serde_json::Value> {
    let (status, body) = get(addr, "/admin/api/replicas");
    assert_eq!(status, 200, "{body}");
    let list: serde_json::Value = serde_json::from_str(&body).unwrap();
    list["replicas"].as_array().unwrap().clone()
}

#[test]
fn a_killed_replica_s_job_is_taken_over_after_the_replica_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let (target, requests) = first_request_hangs();
    write_config(cwd, &target);
    let env = ENV;
    let settings = SETTINGS;
    let mut a = Served::start(cwd, &env, &settings);
    std::fs::write(
        cwd.join("hook.json"),
        r#"{"topic": "projects.Project/update", "object": {"id": 42}, "object_type": "projects.Project", "webhook_uuid": "6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e"}"#,
    )
    .unwrap();
    let url = format!("http://{}/api/webhook/portal", a.addr);
    ok(
        cwd,
        &env,
        &[
            "send",
            "--url",
            &url,
            "--secret",
            "hook-secret-0001",
            "hook.json",
        ],
    );
    eventually("replica A's request at the target", || {
        (*requests.lock().unwrap() == 1).then_some(())
    });

    let b = Served::start(cwd, &env, &settings);
    // Both registered, up, each naming itself and where it listens.
    let both = eventually("two replicas up", || {
        let list = replicas(&b.addr);
        let up = list.iter().filter(|r| r["state"] == "up").count();
        (up == 2).then_some(list)
    });
    let this: Vec<&serde_json::Value> = both.iter().filter(|r| r["this"] == true).collect();
    assert_eq!(this.len(), 1);
    assert_eq!(this[0]["listen"], b.addr.as_str());
    let a_id = both
        .iter()
        .find(|r| r["listen"] == a.addr.as_str())
        .expect("replica A listed")["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Named as its workers' lease owners are: host:pid:start.
    assert!(a_id.contains(&format!(":{}:", a.child.id())), "{a_id}");
    // The listing says which version of each plugin each up replica serves.
    let listed = ok(
        cwd,
        &[],
        &[
            "--url",
            &format!("http://{}", b.addr),
            "-o",
            "json",
            "plugins",
            "list",
        ],
    );
    let plugins: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let forward = plugins
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "http-forward")
        .unwrap();
    let version = forward["version"].as_str().unwrap();
    assert!(
        forward["served_by"].as_str().unwrap().starts_with(version)
            && forward["served_by"].as_str().unwrap().ends_with(" on 2"),
        "{forward}"
    );
    assert_eq!(forward["replicas"].as_array().unwrap().len(), 2);
    let table = ok(
        cwd,
        &[],
        &["--url", &format!("http://{}", b.addr), "plugins", "list"],
    );
    assert!(
        table.contains("REPLICAS") && table.contains(" on 2"),
        "{table}"
    );

    let status = ok(
        cwd,
        &[],
        &["--url", &format!("http://{}", b.addr), "status"],
    );
    assert!(status.contains("replicas: 2 up: "), "{status}");

    // A dies holding the job; B takes it over after the replica timeout.
    let killed = Instant::now();
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    eventually("the job delivered by replica B", || {
        (*requests.lock().unwrap() == 2).then_some(())
    });
    let took = killed.elapsed();
    eprintln!("replica A killed: its job delivered by replica B {took:?} later");
    assert!(
        took < Duration::from_secs(30),
        "taken over in {took:?}: the replica timeout (3 s), not the 10 min lease"
    );
    let done = eventually("the job succeeded", || {
        let list = ok(
            cwd,
            &env,
            &["-o", "json", "jobs", "list", "--state", "succeeded"],
        );
        let jobs: serde_json::Value = serde_json::from_str(&list).unwrap();
        jobs.as_array()
            .filter(|j| j.len() == 1)
            .map(|j| j[0].clone())
    });
    let shown = ok(
        cwd,
        &env,
        &["-o", "json", "jobs", "show", done["id"].as_str().unwrap()],
    );
    assert!(
        shown.contains(&format!("replica {a_id} stopped sending heartbeats")),
        "{shown}"
    );
    // A is now listed as stopped, B up.
    let after = replicas(&b.addr);
    let state_of = |id: &str| after.iter().find(|r| r["id"] == id).unwrap()["state"].clone();
    assert_eq!(state_of(&a_id), "stopped");
    let b_id = this[0]["id"].as_str().unwrap();
    assert_eq!(state_of(b_id), "up");
    // The database's view (no --url) says the same.
    let status = ok(cwd, &env, &["status"]);
    assert!(
        status.contains(&format!("replicas: 1 up: {b_id}")),
        "{status}"
    );

    // A clean stop marks the replica stopped too (read from the database).
    let (status, _) = b.terminate();
    assert!(status.success());
    let db = rusqlite::Connection::open(cwd.join("data/recoco-sync.db")).unwrap();
    let stopped: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM replicas WHERE stopped_at IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stopped, 2);
}

#[test]
fn a_replica_timeout_under_three_seconds_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rs.toml"),
        "[queue]\nreplica_timeout = \"1s\"\n",
    )
    .unwrap();
    let err = fails(dir.path(), &[], &["config", "check", "rs.toml"]);
    assert!(
        err.contains("queue.replica_timeout must be at least 3s"),
        "{err}"
    );
}

#[test]
fn three_replicas_one_killed_midway_deliver_every_accepted_event_in_order() {
    three_replicas_one_killed_midway(None);
}

#[test]
fn three_replicas_on_postgresql_one_killed_midway_deliver_every_accepted_event_in_order() {
    let Some(pg) = PgCluster::start("three_replicas_on_postgresql") else {
        return;
    };
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(pg.create_database("replicas"));
    three_replicas_one_killed_midway(Some(&pg.url("replicas")));
}

/// A replica with no workers stores a webhook; the other replica's idle
/// workers, polling every 30 s, start it at once: PostgreSQL's NOTIFY woke them.
#[test]
fn on_postgresql_a_job_stored_by_one_replica_wakes_the_idle_workers_of_another() {
    let Some(pg) = PgCluster::start("a_job_stored_by_one_replica_wakes_another") else {
        return;
    };
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(pg.create_database("notify"));
    let url = pg.url("notify");
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let (target, received) =
        fake_server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    write_config(cwd, &target);
    let idle = ["--database-url", &url, "--set", "queue.poll_interval=30s"];
    let _worker = Served::start(cwd, &ENV, &idle);
    // Its workers have polled once and now wait (for a wake-up or 30 s).
    std::thread::sleep(Duration::from_millis(500));
    let intake_only = ["--database-url", &url, "--set", "queue.workers=0"];
    let intake = Served::start(cwd, &ENV, &intake_only);
    std::fs::write(
        cwd.join("hook.json"),
        r#"{"topic": "projects.Project/update", "object": {"id": 7, "version": 1}, "object_type": "projects.Project", "webhook_uuid": "00000000-0000-4000-8000-000000000007"}"#,
    )
    .unwrap();
    let sent = Instant::now();
    let url = format!("http://{}/api/webhook/portal", intake.addr);
    ok(
        cwd,
        &ENV,
        &[
            "send",
            "--url",
            &url,
            "--secret",
            "hook-secret-0001",
            "hook.json",
        ],
    );
    while received.lock().unwrap().is_empty() {
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "the job waited for the other replica's poll"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "delivered by the other replica {:?} after the webhook",
        sent.elapsed()
    );
}

/// On SQLite (one file in the temp dir) or the PostgreSQL database `database_url`.
fn three_replicas_one_killed_midway(database_url: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let (target, received) =
        fake_server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    // A schedule every second on a connection of its own: each period must
    // fire once across the three replicas, not once per replica.
    let (ticks, _) =
        fake_server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    write_config_with(
        cwd,
        &target,
        &format!(
            "[[connections]]\nname = \"ticks\"\nsource = \"portal\"\nplugin = \"http-forward\"\n\
             schedule = [{{task = \"tick\", every = \"1s\"}}]\n\
             [connections.config]\nurl = \"http://{ticks}/hook\"\nsecret = \"whsec_c2VjcmV0LXZhbHVl\"\n"
        ),
    );
    let env = ENV;
    let mut settings = SETTINGS.to_vec();
    if let Some(url) = database_url {
        settings.extend(["--database-url", url]);
    }
    let started = Instant::now();
    let mut replicas: Vec<Served> = (0..3)
        .map(|_| Served::start(cwd, &env, &settings))
        .collect();
    // 5 projects × 12 versions, sent in turn to the three replicas; the
    // second one is killed halfway, and the webhooks meant for it then go to
    // the others. Order of acceptance = order of sending.
    let mut accepted: Vec<(u64, u64)> = Vec::new();
    let mut killed = false;
    for version in 1..=12u64 {
        for project in 1..=5u64 {
            let n = accepted.len();
            if n == 30 && !killed {
                replicas[1].child.kill().unwrap();
                replicas[1].child.wait().unwrap();
                killed = true;
            }
            let mut at = n % 3;
            if killed && at == 1 {
                at = 2;
            }
            let file = cwd.join("hook.json");
            std::fs::write(
                &file,
                format!(
                    r#"{{"topic": "projects.Project/update", "object": {{"id": {project}, "version": {version}}}, "object_type": "projects.Project", "webhook_uuid": "00000000-0000-4000-8000-{:012}"}}"#,
                    version * 10 + project
                ),
            )
            .unwrap();
            let url = format!("http://{}/api/webhook/portal", replicas[at].addr);
            ok(
                cwd,
                &env,
                &[
                    "send",
                    "--url",
                    &url,
                    "--secret",
                    "hook-secret-0001",
                    "hook.json",
                ],
            );
            accepted.push((project, version));
        }
    }
    // Every accepted event reaches the target (at least once).
    let seen = |received: &Arc<Mutex<Vec<String>>>| -> Vec<(u64, u64)> {
        received
            .lock()
            .unwrap()
            .iter()
            // A request the kill cut short is no delivery.
            .filter_map(|body| serde_json::from_str::<serde_json::Value>(body).ok())
            .map(|json| {
                let object = &json["payload"]["object"];
                (
                    object["id"].as_u64().unwrap(),
                    object["version"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    eventually("every accepted event delivered", || {
        let got = seen(&received);
        accepted.iter().all(|a| got.contains(a)).then_some(())
    });
    // Per project, versions arrive in order (a run cut by the kill may be
    // delivered again, never after a later version).
    let got = seen(&received);
    for project in 1..=5 {
        let versions: Vec<u64> = got
            .iter()
            .filter(|(p, _)| *p == project)
            .map(|(_, v)| *v)
            .collect();
        assert!(
            versions.windows(2).all(|w| w[0] <= w[1]),
            "project {project}: {versions:?}"
        );
    }
    // No period fired twice: at most one fire per second since the first start.
    let elapsed = started.elapsed().as_secs_f64();
    let fires = replicas
        .iter_mut()
        .flat_map(all_lines)
        .filter(|l| l.contains("scheduled task queued"))
        .count();
    assert!(
        fires >= 1 && fires as f64 <= elapsed + 1.0,
        "{fires} schedule fires in {elapsed:.1} s of a 1 s schedule"
    );
    eprintln!(
        "{} webhooks accepted by 3 replicas (one killed midway), {} deliveries; {fires} schedule fires in {elapsed:.1} s",
        accepted.len(),
        got.len()
    );
}
