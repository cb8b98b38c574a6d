//! The real service, in-process: real HTTP on 127.0.0.1, a real SQLite file in
//! a temporary directory, real compiled components in its plugins directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use recoco_sync::config::{Config, Overrides};
use recoco_sync::queue::jobs::{self, JobFilter, JobView};
use recoco_sync::store::{self, attempts, events, Pool};
use recoco_sync::Service;
use tokio_util::sync::CancellationToken;

/// The secret of the source every test declares, unless it declares its own.
pub const SECRET: &str = "test-webhook-secret-0001";
pub const SOURCE: &str = "recoco-test";

/// Settings that make a test fast: short backoff, quick polling.
pub const FAST_QUEUE: &str = r#"
[queue]
workers = 4
backoff_base = "100ms"
backoff_max = "2s"
poll_interval = "50ms"
max_attempts = 4
"#;

/// The database of a service in `dir`: a SQLite file there, or in the
/// PostgreSQL run a database of its own, named in `dir` so that a restart in
/// the same directory finds it again.
async fn database_in(dir: &Path) -> String {
    if !crate::postgres::on_postgres() {
        return format!("sqlite://{}", dir.join("recoco-sync.db").display());
    }
    let named = dir.join("postgres-url");
    if let Ok(url) = std::fs::read_to_string(&named) {
        return url;
    }
    let url = crate::postgres::new_database().await;
    std::fs::write(&named, &url).unwrap();
    url
}

/// A running service and what it owns.
pub struct TestService {
    pub url: String,
    pub dir: tempfile::TempDir,
    pub plugins_dir: PathBuf,
    pub database_url: String,
    /// A pool of our own on the same file, to check what the service stored.
    pub pool: Pool,
    pub client: reqwest::Client,
    /// Last second each body was signed at by [`TestService::send`].
    signed_at: std::sync::Mutex<std::collections::HashMap<Vec<u8>, i64>>,
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// What a webhook request got back.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub json: serde_json::Value,
}

impl TestService {
    /// Starts with `config_toml` (sources, connections, overrides) appended to
    /// the test defaults, after copying `plugins` (file name, component) into the
    /// plugins directory.
    pub async fn start(config_toml: &str, plugins: &[(&str, &Path)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, config_toml, plugins).await
    }

    /// Like [`TestService::start`], in an existing directory (to restart on the
    /// same database).
    pub async fn start_in(
        dir: tempfile::TempDir,
        config_toml: &str,
        plugins: &[(&str, &Path)],
    ) -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), dir, config_toml, plugins).await
    }

    /// Like [`TestService::start_in`], listening on `bind` (an address of a test
    /// network namespace's veth, for a real non-loopback client).
    pub async fn start_on(
        bind: std::net::SocketAddr,
        dir: tempfile::TempDir,
        config_toml: &str,
        plugins: &[(&str, &Path)],
    ) -> Self {
        crate::init_logs();
        let plugins_dir = dir.path().join("connectors");
        std::fs::create_dir_all(&plugins_dir).unwrap();
        for (name, path) in plugins {
            std::fs::copy(path, plugins_dir.join(name)).expect("copy component");
        }
        let database_url = database_in(dir.path()).await;
        let text = format!(
            "database_url = {database_url:?}\nplugins_dir = {:?}\nsecret_key_file = {:?}\nlisten = \"127.0.0.1:0\"\n{config_toml}",
            plugins_dir.display().to_string(),
            dir.path().join("secret.key").display().to_string(),
        );
        let config =
            Config::from_parts(&text, &[], &Overrides::default()).expect("valid test config");
        let service = Service::start(config).await.expect("service starts");
        let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = service.shutdown.clone();
        let handle = tokio::spawn(service.serve(listener));
        let pool = store::open(&database_url).await.unwrap();
        let svc = Self {
            url,
            dir,
            plugins_dir,
            database_url,
            pool,
            client: reqwest::Client::new(),
            signed_at: Default::default(),
            shutdown,
            handle,
        };
        let health = svc
            .client
            .get(format!("{}/healthz", svc.url))
            .send()
            .await
            .expect("healthz answers");
        // 503 says a connection's config fails its schema: up, but not healthy.
        assert!(
            [200, 503].contains(&health.status().as_u16()),
            "healthz: {}",
            health.status()
        );
        svc
    }

    /// Stops the service (waiting for its workers) and hands back its directory.
    pub async fn stop(self) -> tempfile::TempDir {
        self.shutdown.cancel();
        self.handle
            .await
            .expect("service task")
            .expect("service ran cleanly");
        self.pool.close().await;
        self.dir
    }

    /// POSTs `body` to the webhook of `code` with the given headers.
    pub async fn post_webhook(
        &self,
        code: &str,
        body: Vec<u8>,
        headers: &[(String, String)],
    ) -> Answer {
        let mut request = self
            .client
            .post(format!("{}/api/webhook/{code}", self.url))
            .body(body);
        for (k, v) in headers {
            request = request.header(k, v);
        }
        let response = request.send().await.expect("webhook request");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        Answer {
            status,
            json: serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        }
    }

    /// Sends `body` signed now with [`SECRET`] to [`SOURCE`]. The same body
    /// sent again is signed at a later second, as Recoco's separate deliveries
    /// are: intake answers an identical signed request as a duplicate.
    pub async fn send(&self, body: Vec<u8>) -> Answer {
        let timestamp = {
            let mut signed_at = self.signed_at.lock().unwrap();
            let now = crate::webhook::now_secs();
            let ts = match signed_at.get(&body) {
                Some(last) if *last >= now => last + 1,
                _ => now,
            };
            signed_at.insert(body.clone(), ts);
            ts
        };
        let headers = crate::webhook::headers(&body, &[SECRET], timestamp);
        self.post_webhook(SOURCE, body, &headers).await
    }

    pub async fn event(&self, id: &str) -> Option<events::Event> {
        events::get(&self.pool, id).await.unwrap()
    }

    pub async fn jobs_of_event(&self, id: &str) -> Vec<JobView> {
        jobs::list(
            &self.pool,
            &JobFilter {
                event_id: Some(id.into()),
                limit: Some(1000),
                ..Default::default()
            },
        )
        .await
        .unwrap()
    }

    pub async fn jobs(&self, filter: JobFilter) -> Vec<JobView> {
        jobs::list(
            &self.pool,
            &JobFilter {
                limit: Some(1000),
                ..filter
            },
        )
        .await
        .unwrap()
    }

    pub async fn attempts(&self, job_id: &str) -> Vec<attempts::Attempt> {
        attempts::for_job(&self.pool, job_id).await.unwrap()
    }

    /// Waits until event `id` leaves the `queued` status; returns it.
    pub async fn settled_event(&self, id: &str, timeout: Duration) -> events::Event {
        crate::wait_for(&format!("event {id} to settle"), timeout, || async {
            self.event(id).await.filter(|e| e.status != "queued")
        })
        .await
    }

    /// Waits until job `id` is in one of `states`; returns it.
    pub async fn job_in(&self, id: &str, states: &[&str], timeout: Duration) -> JobView {
        crate::wait_for(&format!("job {id} to be {states:?}"), timeout, || async {
            jobs::get(&self.pool, id)
                .await
                .unwrap()
                .filter(|j| states.contains(&j.state.as_str()))
        })
        .await
    }

    /// An admin API call with a JSON body.
    pub async fn admin_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Answer {
        self.admin_call(method, path, Some(body)).await
    }

    /// An admin API call (the service answers loopback clients without a token).
    pub async fn admin(&self, method: reqwest::Method, path: &str) -> Answer {
        self.admin_call(method, path, None).await
    }

    async fn admin_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Answer {
        let mut request = self
            .client
            .request(method, format!("{}/admin/api{path}", self.url));
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        Answer {
            status,
            json: response.json().await.unwrap_or_default(),
        }
    }
}

/// A `[[sources]]` block for [`SOURCE`] signed with [`SECRET`], with the given
/// API base (a fake Recoco) when any.
pub fn source_block(api_url: Option<&str>) -> String {
    let api = api_url
        .map(|u| format!("api_url = {u:?}\napi_username = \"sync@example.org\"\napi_password = \"sync-password-123\"\n"))
        .unwrap_or_default();
    format!("[[sources]]\ncode = {SOURCE:?}\nsecrets = [{SECRET:?}]\n{api}")
}
