//! Hot swap: connectors installed, upgraded, broken and removed by changing
//! files in the plugins directory of a running service. `test-swap` v1 and v2
//! report to a fake target which version handled each event; the attempts
//! record the content hash of the version that ran.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use recoco_sync_tests::components;
use recoco_sync_tests::fakes::target::Target;
use recoco_sync_tests::service::{source_block, TestService, FAST_QUEUE, SOURCE};
use recoco_sync_tests::wait_for;
use recoco_sync_tests::webhook::envelope;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const WAIT: Duration = Duration::from_secs(60);
const FILE: &str = "swap.wasm";

fn config(target: &Target) -> String {
    format!(
        "{}{FAST_QUEUE}[[connections]]\nname = \"swap\"\nsource = {SOURCE:?}\nplugin = \"test-swap\"\n\
         [connections.config]\nurl = \"{}/report\"\n",
        source_block(None),
        target.url
    )
}

fn hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("component built by build.rs")
}

/// Installs `bytes` as `dir/name` the documented way: a temporary name in the
/// same directory (ignored by the watcher), then a rename.
fn drop_file(dir: &Path, name: &str, bytes: &[u8]) {
    let temp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&temp, bytes).unwrap();
    std::fs::rename(&temp, dir.join(name)).unwrap();
}

async fn plugins(svc: &TestService) -> Value {
    svc.admin(reqwest::Method::GET, "/plugins").await.json
}

fn listed<'a>(listing: &'a Value, name: &str) -> Option<&'a Value> {
    listing["plugins"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
}

fn refusal<'a>(listing: &'a Value, file: &str) -> Option<&'a Value> {
    listing["refused"]
        .as_array()?
        .iter()
        .find(|f| f["path"].as_str().is_some_and(|p| p.ends_with(file)))
}

/// Waits until `name` serves the version whose content hash is `hash`.
async fn serving(svc: &TestService, name: &str, hash: &str) -> Value {
    wait_for(&format!("{name} to serve {hash}"), WAIT, || async {
        let listing = plugins(svc).await;
        listed(&listing, name)
            .filter(|p| p["hash"] == hash)
            .cloned()
    })
    .await
}

/// Sends one event; returns its id.
async fn send(svc: &TestService, n: u64) -> String {
    let answer = svc
        .send(envelope("projects.Project", "update", json!({"id": n})))
        .await;
    assert_eq!(answer.status, 200, "{:?}", answer.json);
    answer.json["id"].as_str().unwrap().to_string()
}

/// The versions the target saw per event id.
fn reports(target: &Target) -> HashMap<String, Vec<String>> {
    let mut by_event: HashMap<String, Vec<String>> = HashMap::new();
    for r in target.received() {
        let body = r.json();
        by_event
            .entry(body["event_id"].as_str().unwrap().to_string())
            .or_default()
            .push(body["version"].as_str().unwrap().to_string());
    }
    by_event
}

/// Checks that `event_id` was processed once, by one attempt of one of
/// `versions` (content hash → version), reported once at the target by that
/// version; returns that run.
async fn processed_once(
    svc: &TestService,
    target: &Target,
    event_id: &str,
    versions: &HashMap<String, &str>,
) -> Run {
    let event = svc.settled_event(event_id, WAIT).await;
    assert_eq!(event.status, "processed", "event {event_id}");
    let jobs = svc.jobs_of_event(event_id).await;
    assert_eq!(jobs.len(), 1, "one job for event {event_id}");
    assert_eq!(jobs[0].state, "succeeded");
    let attempts = svc.attempts(&jobs[0].id).await;
    assert_eq!(attempts.len(), 1, "one attempt for event {event_id}");
    assert_eq!(attempts[0].outcome, "succeeded");
    let ran = attempts[0]
        .plugin_hash
        .clone()
        .expect("attempt names a hash");
    let version = versions
        .get(&ran)
        .unwrap_or_else(|| panic!("event {event_id} ran an unknown version {ran}"));
    assert_eq!(attempts[0].plugin_version.as_deref(), Some(*version));
    let seen = reports(target).remove(event_id).unwrap_or_default();
    assert_eq!(seen, [version.to_string()], "reports of event {event_id}");
    Run {
        version: version.to_string(),
        started: attempts[0].started_at,
        ended: attempts[0].started_at + attempts[0].duration_ms,
    }
}

/// One attempt: which version ran, from when to when (ms since the epoch).
#[derive(Debug)]
struct Run {
    version: String,
    started: i64,
    ended: i64,
}

#[tokio::test]
async fn swapping_two_versions_ten_times_under_a_stream_of_webhooks_loses_nothing() {
    let target = Target::start().await;
    let (v1, v2) = (read(&components::swap_v1()), read(&components::swap_v2()));
    let (h1, h2) = (hash(&v1), hash(&v2));
    let versions = HashMap::from([(h1.clone(), "1"), (h2.clone(), "2")]);
    let svc =
        Arc::new(TestService::start(&config(&target), &[(FILE, &components::swap_v1())]).await);
    serving(&svc, "test-swap", &h1).await;
    // Each invocation lasts at least this long, so swaps happen while some run.
    target.set_delay(Duration::from_millis(80));

    // A steady stream of signed webhooks, one every 30 ms, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (svc, stop) = (svc.clone(), stop.clone());
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..3000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                ids.push(send(&svc, n).await);
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            ids
        })
    };

    // (when the new version was loaded, the version it replaced)
    let mut swaps = Vec::new();
    for round in 0..10 {
        let (bytes, version, h, old) = if round % 2 == 0 {
            (&v2, "2", &h2, "1")
        } else {
            (&v1, "1", &h1, "2")
        };
        let before = target.received().len();
        drop_file(&svc.plugins_dir, FILE, bytes);
        let new = serving(&svc, "test-swap", h).await;
        swaps.push((new["loaded_at"].as_i64().unwrap(), old));
        // The new version handles events before the next swap.
        wait_for(
            &format!("round {round}: an event handled by v{version}"),
            WAIT,
            || async {
                target.received()[before..]
                    .iter()
                    .any(|r| r.json()["version"] == version)
                    .then_some(())
            },
        )
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    let ids = sender.await.unwrap();
    assert!(ids.len() >= 20, "the stream ran ({} events)", ids.len());

    let mut runs = Vec::new();
    for id in &ids {
        runs.push(processed_once(&svc, &target, id, &versions).await);
    }
    assert_eq!(
        target.received().len(),
        ids.len(),
        "no event reported twice"
    );
    let listing = plugins(&svc).await;
    assert_eq!(listing["refused"], json!([]), "no file was refused");
    // Sorted by start, the version changes at least once per swap: after each
    // swap, an event started on the new version before the next swap.
    runs.sort_by_key(|run| run.started);
    let changes = runs
        .windows(2)
        .filter(|w| w[0].version != w[1].version)
        .count();
    assert!(changes >= 10, "{changes} version changes in {runs:?}");
    // Invocations running during a swap finished on the version they started
    // with (the swap happens within microseconds after `loaded_at`; 10 ms of
    // margin).
    let finished_on_old = swaps
        .iter()
        .filter(|(at, old)| {
            runs.iter()
                .any(|r| r.version == *old && r.started < *at && r.ended > at + 10)
        })
        .count();
    assert!(
        finished_on_old >= 1,
        "no invocation spanned a swap: {swaps:?}"
    );
    let svc = Arc::try_unwrap(svc).ok().expect("sender finished");
    svc.stop().await;
}

#[tokio::test]
async fn broken_files_are_refused_and_the_previous_version_keeps_serving() {
    let target = Target::start().await;
    let v1 = read(&components::swap_v1());
    let v2 = read(&components::swap_v2());
    let h1 = hash(&v1);
    let versions = HashMap::from([(h1.clone(), "1"), (hash(&v2), "2")]);
    let svc = TestService::start(&config(&target), &[(FILE, &components::swap_v1())]).await;
    serving(&svc, "test-swap", &h1).await;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "not wasm",
            b"#!/bin/sh\necho not a component\n".to_vec(),
            "not a WebAssembly file",
        ),
        (
            "corrupted (truncated) component",
            v2[..v2.len() / 2].to_vec(),
            "invalid component",
        ),
        (
            "core module",
            b"\0asm\x01\0\0\0".to_vec(),
            "a core WebAssembly module, not a component",
        ),
        (
            "component of another world",
            read(&components::other_world()),
            "not a component of a supported recoco:connector world (0.2.0, 0.1.0)",
        ),
        (
            "manifest that traps",
            read(&components::swap_trap()),
            "manifest() failed: plugin trapped",
        ),
        (
            "invalid config schema",
            read(&components::swap_bad_schema()),
            "config schema is not a valid JSON Schema",
        ),
    ];
    for (n, (what, bytes, expected)) in cases.iter().enumerate() {
        drop_file(&svc.plugins_dir, FILE, bytes);
        let bad = hash(bytes);
        let listing = wait_for(&format!("the {what} to be refused"), WAIT, || async {
            let listing = plugins(&svc).await;
            refusal(&listing, FILE)
                .is_some_and(|f| f["hash"] == bad)
                .then_some(listing)
        })
        .await;
        let error = refusal(&listing, FILE).unwrap()["error"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(error.contains(expected), "{what}: {error}");
        let plugin = listed(&listing, "test-swap").expect("still listed");
        assert_eq!(plugin["hash"], h1.as_str(), "{what}: v1 still serves");
        assert_eq!(plugin["version"], "1");
        assert_eq!(plugin["origin"]["kind"], "file");
        assert!(plugin["loaded_at"].as_i64().unwrap() > 0);
        assert_eq!(
            plugin["last_error"],
            error.as_str(),
            "{what}: shown with the plugin"
        );
        let id = send(&svc, n as u64).await;
        let run = processed_once(&svc, &target, &id, &versions).await;
        assert_eq!(run.version, "1", "{what}");
    }
    // A good file again replaces v1 and clears the error.
    drop_file(&svc.plugins_dir, FILE, &v2);
    let plugin = serving(&svc, "test-swap", &hash(&v2)).await;
    assert_eq!(plugin["last_error"], Value::Null);
    assert!(refusal(&plugins(&svc).await, FILE).is_none());
    svc.stop().await;
}

#[tokio::test]
async fn a_removed_plugin_s_events_wait_for_it_and_run_when_it_comes_back() {
    let target = Target::start().await;
    let v2 = read(&components::swap_v2());
    let versions = HashMap::from([(hash(&v2), "2")]);
    let svc = TestService::start(&config(&target), &[(FILE, &components::swap_v1())]).await;
    std::fs::remove_file(svc.plugins_dir.join(FILE)).unwrap();
    wait_for("test-swap to be unloaded", WAIT, || async {
        listed(&plugins(&svc).await, "test-swap")
            .is_none()
            .then_some(())
    })
    .await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(send(&svc, n).await);
    }
    for id in &ids {
        let job = svc.jobs_of_event(id).await.remove(0);
        let job = svc.job_in(&job.id, &["waiting"], WAIT).await;
        assert_eq!(job.attempts, 0, "waiting does not use an attempt");
        let why = job.last_error.unwrap();
        assert!(why.contains("waiting for plugin \"test-swap\""), "{why}");
        assert!(svc.attempts(&job.id).await.is_empty());
    }
    assert!(target.received().is_empty());
    drop_file(&svc.plugins_dir, FILE, &v2);
    for id in &ids {
        let run = processed_once(&svc, &target, id, &versions).await;
        assert_eq!(run.version, "2");
    }
    svc.stop().await;
}

#[tokio::test]
async fn a_file_overrides_a_shipped_connector_which_serves_again_when_it_is_removed() {
    let svc = TestService::start(&source_block(None), &[]).await;
    let shipped = listed(&plugins(&svc).await, "http-forward")
        .unwrap()
        .clone();
    assert_eq!(shipped["origin"]["kind"], "shipped");
    drop_file(
        &svc.plugins_dir,
        "forward.wasm",
        &read(&components::http_forward()),
    );
    let file = wait_for(
        "the file to override the shipped connector",
        WAIT,
        || async {
            listed(&plugins(&svc).await, "http-forward")
                .filter(|p| p["origin"]["kind"] == "file")
                .cloned()
        },
    )
    .await;
    assert!(file["origin"]["path"]
        .as_str()
        .unwrap()
        .ends_with("forward.wasm"));
    std::fs::remove_file(svc.plugins_dir.join("forward.wasm")).unwrap();
    let back = wait_for("the shipped connector to serve again", WAIT, || async {
        listed(&plugins(&svc).await, "http-forward")
            .filter(|p| p["origin"]["kind"] == "shipped")
            .cloned()
    })
    .await;
    assert_eq!(back["hash"], shipped["hash"]);
    svc.stop().await;
}

#[tokio::test]
async fn a_file_copied_in_place_is_not_loaded_half_written() {
    let target = Target::start().await;
    let v2 = read(&components::swap_v2());
    let versions = HashMap::from([(hash(&v2), "2")]);
    let svc = TestService::start(&config(&target), &[]).await;
    // A slow copy straight to the final name (against the convention): 8 KiB
    // chunks, 10 ms apart, so the file is incomplete for well over SETTLE.
    let path = svc.plugins_dir.join(FILE);
    let copying = Arc::new(AtomicBool::new(true));
    let writer = {
        let (bytes, copying) = (v2.clone(), copying.clone());
        std::thread::spawn(move || {
            use std::io::Write as _;
            let mut file = std::fs::File::create(&path).unwrap();
            for chunk in bytes.chunks(8 * 1024) {
                file.write_all(chunk).unwrap();
                file.flush().unwrap();
                std::thread::sleep(Duration::from_millis(10));
            }
            copying.store(false, Ordering::Relaxed);
        })
    };
    // While it is copied and until it serves, the file is never refused.
    let looks = AtomicUsize::new(0);
    wait_for("the copied plugin to serve", WAIT, || async {
        looks.fetch_add(1, Ordering::Relaxed);
        let listing = plugins(&svc).await;
        assert!(
            refusal(&listing, FILE).is_none(),
            "refused a partial file: {listing}"
        );
        if copying.load(Ordering::Relaxed) {
            return None;
        }
        listed(&listing, "test-swap")
            .filter(|p| p["hash"] == hash(&v2))
            .map(|_| ())
    })
    .await;
    writer.join().unwrap();
    let looks = looks.into_inner();
    assert!(
        looks > 5,
        "the listing was watched during the copy ({looks} looks)"
    );
    let id = send(&svc, 1).await;
    assert_eq!(
        processed_once(&svc, &target, &id, &versions).await.version,
        "2"
    );
    svc.stop().await;
}

#[tokio::test]
async fn compiled_plugins_come_from_the_disk_cache_after_a_restart() {
    let target = Target::start().await;
    let v1 = read(&components::swap_v1());
    let versions = HashMap::from([(hash(&v1), "1")]);
    let plugin_files = [(FILE, components::swap_v1())];
    let files: Vec<(&str, &Path)> = plugin_files
        .iter()
        .map(|(n, p)| (*n, p.as_path()))
        .collect();
    let svc = TestService::start(&config(&target), &files).await;
    let first = plugins(&svc).await;
    assert_eq!(listed(&first, "test-swap").unwrap()["from_cache"], false);
    assert_eq!(listed(&first, "http-forward").unwrap()["from_cache"], false);
    let dir = svc.stop().await;
    let cache = dir.path().join("plugin-cache");
    let entries: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    let components = recoco_sync::shipped::COMPONENTS.len() + 1;
    assert_eq!(
        entries.len(),
        components,
        "one entry per component: {entries:?}"
    );

    let svc = TestService::start_in(dir, &config(&target), &files).await;
    let again = plugins(&svc).await;
    assert_eq!(listed(&again, "test-swap").unwrap()["from_cache"], true);
    assert_eq!(listed(&again, "http-forward").unwrap()["from_cache"], true);
    let id = send(&svc, 1).await;
    assert_eq!(
        processed_once(&svc, &target, &id, &versions).await.version,
        "1"
    );
    let dir = svc.stop().await;

    // Damaged entries are ignored: compiled again, and the plugins still run.
    for entry in &entries {
        let bytes = std::fs::read(entry).unwrap();
        std::fs::write(entry, &bytes[..bytes.len() / 3]).unwrap();
    }
    let svc = TestService::start_in(dir, &config(&target), &files).await;
    let repaired = plugins(&svc).await;
    assert_eq!(listed(&repaired, "test-swap").unwrap()["from_cache"], false);
    let id = send(&svc, 2).await;
    assert_eq!(
        processed_once(&svc, &target, &id, &versions).await.version,
        "1"
    );
    for entry in &entries {
        let len = std::fs::metadata(entry).unwrap().len();
        assert!(
            len > 1024,
            "{} rewritten whole ({len} bytes)",
            entry.display()
        );
    }
    svc.stop().await;
}
