//! Crash recovery, with a real process: the service runs as a child (this
//! test binary re-run on an ignored test), is SIGKILLed with 500 jobs queued
//! and some running, and a restarted process delivers all of them within
//! seconds, without waiting for the killed process's leases (2 minutes).

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use recoco_sync_tests::service::{SECRET, SOURCE};
use recoco_sync_tests::webhook;

use super::queue_order::Recorder;

// Not under RECOCO_SYNC_: the service would read it as a setting.
const CHILD_CONFIG: &str = "QUEUE_TEST_CHILD_CONFIG";
const JOBS: u64 = 500;

/// Runs the service of the config file named by the environment; does nothing
/// in a normal test run (it is ignored, and the variable is unset).
#[tokio::test]
#[ignore = "the child process of killed_service_restarts_and_delivers_everything"]
async fn child_service() {
    let Ok(path) = std::env::var(CHILD_CONFIG) else {
        return;
    };
    let config =
        recoco_sync::config::Config::load(Some(std::path::Path::new(&path)), &Default::default())
            .expect("child config");
    recoco_sync::run(config).await.expect("child service");
}

/// Kills the child when the test ends, however it ends.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(config: &std::path::Path) -> ChildGuard {
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "queue_crash::child_service",
            "--nocapture",
        ])
        .env(CHILD_CONFIG, config)
        .spawn()
        .expect("start the child service");
    ChildGuard(child)
}

async fn healthy(client: &reqwest::Client, url: &str) {
    recoco_sync_tests::wait_for("the child service", Duration::from_secs(60), || async {
        let ok = client.get(format!("{url}/healthz")).send().await;
        ok.ok().filter(|r| r.status() == 200).map(|_| ())
    })
    .await
}

#[tokio::test]
async fn killed_service_restarts_and_delivers_everything_within_seconds() {
    let target = Recorder::start(Duration::from_millis(300), 0).await;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let config = format!(
        "listen = \"127.0.0.1:{port}\"\ndatabase_url = \"sqlite://{db}\"\nplugins_dir = {plugins:?}\nsecret_key_file = {key:?}\n\
         [queue]\nworkers = 4\npoll_interval = \"50ms\"\n\
         [[sources]]\ncode = {SOURCE:?}\nsecrets = [{SECRET:?}]\n\
         [[connections]]\nname = \"crm\"\nsource = {SOURCE:?}\nplugin = \"http-forward\"\n\
         [connections.config]\nurl = \"{target}/hooks\"\nsecret = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"\n",
        db = dir.path().join("recoco-sync.db").display(),
        plugins = dir.path().join("connectors").display().to_string(),
        key = dir.path().join("secret.key").display().to_string(),
        target = target.url,
    );
    std::fs::create_dir_all(dir.path().join("connectors")).unwrap();
    let config_path = dir.path().join("recoco-sync.toml");
    std::fs::write(&config_path, config).unwrap();
    let client = reqwest::Client::new();

    let mut child = spawn(&config_path);
    healthy(&client, &url).await;
    for p in 1..=JOBS {
        let body = webhook::envelope(
            "projects.Project",
            "update",
            serde_json::json!({"id": p, "version": 1}),
        );
        let mut request = client
            .post(format!("{url}/api/webhook/{SOURCE}"))
            .body(body.clone());
        for (k, v) in webhook::headers(&body, &[SECRET], webhook::now_secs()) {
            request = request.header(k, v);
        }
        assert_eq!(request.send().await.unwrap().status(), 200);
    }
    // Some deliveries done, some running: kill -9.
    recoco_sync_tests::wait_for("a few deliveries", Duration::from_secs(30), || async {
        (target.hits().len() >= 4).then_some(())
    })
    .await;
    child.0.kill().unwrap(); // SIGKILL
    child.0.wait().unwrap();
    let before = target.hits().len();
    assert!(before < JOBS as usize, "killed while jobs remained");

    target.set_delay(Duration::from_millis(1));
    let restarted = Instant::now();
    let _child = spawn(&config_path);
    healthy(&client, &url).await;
    recoco_sync_tests::wait_for("every job delivered", Duration::from_secs(60), || async {
        let mut done: Vec<u64> = target
            .hits()
            .iter()
            .filter(|h| h.status == 200)
            .map(|h| h.project)
            .collect();
        done.sort();
        done.dedup();
        (done.len() == JOBS as usize).then_some(())
    })
    .await;
    let took = restarted.elapsed();
    // The killed process's leases last 2 minutes: seconds means they were released.
    assert!(
        took < Duration::from_secs(30),
        "all delivered {took:?} after the restart"
    );
    eprintln!("restart to all {JOBS} delivered: {took:?} ({before} delivered before the kill)");
}
