//! Service configuration: one TOML file, overlaid by `RECOCO_SYNC_*` environment
//! variables, then by command-line flags. Validated once at start; unknown keys are
//! errors so a typo cannot pass silently. `${VAR}` in any string reads the
//! environment (secrets stay out of the file).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde::Deserialize;

/// Prefix of the environment variables that override settings. Nested keys are
/// separated by a double underscore: `RECOCO_SYNC_QUEUE__WORKERS=8`.
pub const ENV_PREFIX: &str = "RECOCO_SYNC_";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub listen: SocketAddr,
    /// Database URL; `sqlite://path` (created with its directory when missing).
    pub database_url: String,
    /// Directory watched for connector components (`*.wasm`).
    pub plugins_dir: PathBuf,
    /// Where compiled connectors are cached, by content hash. Default:
    /// `plugin-cache` beside the SQLite file (no cache for an in-memory
    /// database). It holds native code the service runs: keep it private.
    pub plugin_cache_dir: Option<PathBuf>,
    /// Bearer token for the admin API and page. Without it, they answer only to
    /// requests from the loopback interface.
    pub admin_token: Option<String>,
    /// Key that encrypts secrets at rest (64 hex characters). When absent, a key is
    /// generated once in `secret_key_file`.
    pub secret_key: Option<String>,
    /// Where the generated secret key lives (mode 0600).
    pub secret_key_file: PathBuf,
    pub intake: IntakeConfig,
    pub queue: QueueConfig,
    pub runtime: RuntimeConfig,
    pub outbound: OutboundConfig,
    pub log: LogConfig,
    /// The admin API and page: sessions, names accepted without a key.
    pub admin: AdminConfig,
    pub storage: StorageConfig,
    /// Alerts on repeated failure (webhook, Sentry).
    pub alerts: crate::alerts::AlertsConfig,
    /// Recoco portals that send webhooks.
    pub sources: Vec<SourceDecl>,
    /// Connector instances fed by a source.
    pub connections: Vec<ConnectionDecl>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8000".parse().expect("valid default address"),
            database_url: "sqlite://data/recoco-sync.db".into(),
            plugins_dir: "connectors".into(),
            plugin_cache_dir: None,
            admin_token: None,
            secret_key: None,
            secret_key_file: "data/secret.key".into(),
            intake: IntakeConfig::default(),
            queue: QueueConfig::default(),
            runtime: RuntimeConfig::default(),
            outbound: OutboundConfig::default(),
            log: LogConfig::default(),
            admin: AdminConfig::default(),
            storage: StorageConfig::default(),
            alerts: Default::default(),
            sources: Vec::new(),
            connections: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntakeConfig {
    /// Largest accepted webhook body; larger ones get 413.
    pub max_body_bytes: usize,
    /// How far the `Django-Webhook-Request-Timestamp` may be from our clock.
    /// Recoco re-signs every retry, so a few minutes is safe.
    #[serde(with = "humantime_serde")]
    pub timestamp_tolerance: Duration,
    /// Take the client address from `X-Forwarded-For` (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// Most events committed in one transaction by the intake writer.
    pub max_batch: usize,
    /// How long a delivered webhook is remembered, so the same request posted
    /// again (a replay, a sender's retry) is answered with the first event
    /// instead of being stored twice. Never shorter than `timestamp_tolerance`
    /// (the longer of the two applies).
    #[serde(with = "humantime_serde")]
    pub dedup_window: Duration,
    /// Largest total size of a webhook request's headers (names and values);
    /// larger ones get 431.
    pub max_header_bytes: usize,
    /// Webhooks accepted per second and per source once the burst is spent
    /// (counted after the signature check, so only the source itself can spend
    /// it); more get 429 with Retry-After. 0 = unlimited. A source may set its own.
    pub rate_limit_per_second: f64,
    /// Webhooks a source may send at once before the rate applies.
    pub rate_limit_burst: u32,
    /// While the CPU is saturated and jobs wait for workers, intake accepts
    /// at most 1/ratio webhook jobs per delivered job, delaying the answers
    /// of the others (see [`crate::pacing`]): delivery keeps this share of
    /// intake's rate. 0 = no pacing.
    pub pacing_min_delivered_ratio: f64,
    /// Longest delay pacing adds to a webhook's answer; it is then accepted anyway.
    #[serde(with = "humantime_serde")]
    pub pacing_max_wait: Duration,
}

impl Default for IntakeConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            timestamp_tolerance: Duration::from_secs(300),
            trust_forwarded_for: false,
            max_batch: 256,
            dedup_window: Duration::from_secs(600),
            max_header_bytes: 16 * 1024,
            rate_limit_per_second: 100.0,
            rate_limit_burst: 5000,
            pacing_min_delivered_ratio: 0.8,
            pacing_max_wait: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Jobs run at the same time by this process (default 128: connectors
    /// mostly wait on the network, and the queue's batches grow with the
    /// jobs in flight; measured by the delivery benchmark). 0 disables the
    /// workers (intake only).
    pub workers: usize,
    /// Attempts before a job that keeps failing with retryable errors is dead.
    pub max_attempts: u32,
    /// Delays before the 2nd, 3rd, … attempt, each ±20 % (about a day by
    /// default). Per connection: `[connections.delivery] retry_schedule`.
    #[serde(deserialize_with = "crate::queue::policy::durations")]
    pub retry_schedule: Vec<Duration>,
    /// When set, retries double from this delay (capped by `backoff_max`)
    /// instead of following `retry_schedule`.
    #[serde(with = "humantime_serde")]
    pub backoff_base: Option<Duration>,
    /// Longest delay of the doubling `backoff_base` schedule.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Longest Retry-After honoured (a connector passes on a 429/503's).
    #[serde(with = "humantime_serde")]
    pub retry_after_max: Duration,
    /// Reschedules after a 429/503 with Retry-After that do not use an
    /// attempt, per job; past it they do.
    pub max_throttles: u32,
    /// Jobs of one connection running at once in this process, unless the
    /// connection sets its own; default half the workers (at least 1), so one
    /// connection cannot hold every worker.
    pub max_concurrency: Option<usize>,
    /// Consecutive failures of a connection that open its circuit breaker:
    /// its delivery pauses for `circuit_cool_down`, then one probe decides.
    pub circuit_failures: u32,
    #[serde(with = "humantime_serde")]
    pub circuit_cool_down: Duration,
    /// How often idle workers look for due jobs (they are also woken on intake).
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How long a claimed job is reserved; renewed while it runs, so a crashed
    /// worker's job is taken again after this delay.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// How long shutdown waits for running jobs; one still running is stopped
    /// and runs again once its lease expires.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// A replica (a process serving the database) whose heartbeat is older
    /// than this is lost: another one queues its running jobs again. Each
    /// replica beats every third of it.
    #[serde(with = "humantime_serde")]
    pub replica_timeout: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            // Workers are tasks that mostly wait on the network, and the
            // queue's transactions grow with the jobs in flight: against 32,
            // 128 delivered 1.4 times as many events end to end under a
            // sustained load, keeping up with intake, for 9 % more memory
            // (delivery benchmark).
            workers: 128,
            max_attempts: 1 + crate::queue::policy::DEFAULT_SCHEDULE.len() as u32,
            retry_schedule: crate::queue::policy::DEFAULT_SCHEDULE.to_vec(),
            backoff_base: None,
            backoff_max: Duration::from_secs(3600),
            retry_after_max: Duration::from_secs(3600),
            max_throttles: 20,
            max_concurrency: None,
            circuit_failures: 10,
            circuit_cool_down: Duration::from_secs(60),
            poll_interval: Duration::from_millis(500),
            lease: Duration::from_secs(120),
            shutdown_grace: Duration::from_secs(20),
            replica_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// CPU time a connector may spend in one invocation, not counting the time it
    /// waits for the host (HTTP calls and the like). Enforced with epochs.
    #[serde(with = "humantime_serde")]
    pub deadline: Duration,
    /// Wall-clock limit of one event invocation, host calls included.
    #[serde(with = "humantime_serde")]
    pub event_timeout: Duration,
    /// Wall-clock limit of one task invocation (a full sync can be long).
    #[serde(with = "humantime_serde")]
    pub task_timeout: Duration,
    /// Linear memory cap of one invocation, in bytes.
    pub memory_limit: usize,
    /// Instances that may exist at once (pooling allocator slots; default
    /// twice the default workers, for tasks and hooks beside every job).
    pub max_instances: u32,
    /// Quotas of every connection, unless its `[connections.limits]` says otherwise.
    pub max_host_calls: u64,
    pub max_summary_bytes: usize,
    pub max_log_lines: u64,
    pub max_log_bytes: u64,
    pub max_state_keys: u64,
    pub max_state_bytes: u64,
    pub max_pending_tasks: u64,
    pub max_requests: u64,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(30),
            event_timeout: Duration::from_secs(600),
            task_timeout: Duration::from_secs(4 * 3600),
            memory_limit: 64 * 1024 * 1024,
            max_instances: 256,
            max_host_calls: 1_000_000,
            max_summary_bytes: 16 * 1024,
            max_log_lines: 1000,
            max_log_bytes: 1024 * 1024,
            max_state_keys: 10_000,
            max_state_bytes: 64 * 1024 * 1024,
            max_pending_tasks: 1000,
            max_requests: 10_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// Default timeout of a connector's HTTP request.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Largest timeout a connector may ask for.
    #[serde(with = "humantime_serde")]
    pub max_timeout: Duration,
    /// Largest response body handed to a connector.
    pub max_response_bytes: usize,
    /// Let allowed host *names* resolve to private or loopback addresses. IP
    /// literals in `allowed_hosts` are always an explicit grant.
    pub allow_private_networks: bool,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_timeout: Duration::from_secs(300),
            max_response_bytes: 16 * 1024 * 1024,
            allow_private_networks: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// tracing filter; `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// How long a sign-in on the admin page lasts.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// Without any key (loopback-only mode), requests must name the service by a
    /// loopback address or `localhost` in their `Host` header (against DNS
    /// rebinding); these names are accepted too (e.g. a name in /etc/hosts).
    pub allowed_hosts: Vec<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            session_ttl: Duration::from_secs(8 * 3600),
            allowed_hosts: Vec::new(),
        }
    }
}

/// Disk use of the database (see `store::maintenance`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Size the write-ahead log (`<database>-wal`) is kept under, in bytes: it is
    /// truncated once it passes half of this.
    pub wal_max_bytes: u64,
    /// Succeeded jobs (with their attempts) and processed or ignored events
    /// older than this are deleted; failed, dead, paused and pending work never.
    /// `"0s"` keeps everything.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            wal_max_bytes: crate::store::DEFAULT_WAL_MAX_BYTES,
            retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// A Recoco portal, as declared in the file.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceDecl {
    /// Last path segment of the webhook URL: `POST /api/webhook/{code}`.
    pub code: String,
    /// The portal's API base, e.g. `https://portal.example/api` (no trailing slash).
    #[serde(default)]
    pub api_url: Option<String>,
    /// Webhook signing secrets; any unexpired one validates a request
    /// (rotation). Each is a string or `{ value = "…", expires_at = "RFC 3339" }`;
    /// at least 16 bytes (of key, for `whsec_` secrets).
    pub secrets: Vec<SecretDecl>,
    /// How the source signs: `recoco` (the default) or `standard-webhooks`.
    #[serde(default)]
    pub scheme: Scheme,
    /// This source's intake rate (webhooks per second), instead of `intake.rate_limit_per_second`.
    #[serde(default)]
    pub rate_limit_per_second: Option<f64>,
    /// This source's burst, instead of `intake.rate_limit_burst`.
    #[serde(default)]
    pub rate_limit_burst: Option<u32>,
    /// Technical account used for the source API.
    #[serde(default)]
    pub api_username: Option<String>,
    #[serde(default)]
    pub api_password: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

/// How a source signs its webhooks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    /// `Django-Webhook-Signature-v1` (hex HMAC over `timestamp:body`).
    #[default]
    Recoco,
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature` (`whsec_` secrets).
    StandardWebhooks,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Recoco => "recoco",
            Self::StandardWebhooks => "standard-webhooks",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "recoco" => Some(Self::Recoco),
            "standard-webhooks" => Some(Self::StandardWebhooks),
            _ => None,
        }
    }

    /// The HMAC key of a secret under this scheme.
    pub fn signing_key(self, secret: &str) -> Result<Vec<u8>, String> {
        match self {
            Self::Recoco => Ok(secret.as_bytes().to_vec()),
            Self::StandardWebhooks => crate::intake::standard_webhooks::key_from_secret(secret),
        }
    }
}

/// Shortest signing key accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;

/// A source secret as declared: a plain string, or a table with an expiry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum SecretDecl {
    Plain(String),
    Entry(SecretEntry),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SecretEntry {
    pub value: String,
    /// After this instant (RFC 3339) the secret no longer validates requests.
    #[serde(default)]
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl SecretDecl {
    pub fn value(&self) -> &str {
        match self {
            Self::Plain(v) => v,
            Self::Entry(e) => &e.value,
        }
    }

    /// Expiry in milliseconds since the epoch.
    pub fn expires_at_ms(&self) -> Option<i64> {
        match self {
            Self::Plain(_) => None,
            Self::Entry(e) => e.expires_at.map(|t| t.timestamp_millis()),
        }
    }
}

/// Why a secret cannot sign for `scheme`, naming it by its place, never its value.
pub fn check_secret(scheme: Scheme, secret: &str, at: &str) -> anyhow::Result<()> {
    let key = scheme
        .signing_key(secret)
        .map_err(|why| anyhow::anyhow!("{at}: {why}"))?;
    if key.len() < MIN_SECRET_BYTES {
        bail!(
            "{at}: a signing secret must be at least {MIN_SECRET_BYTES} bytes{}, this one has {}",
            if secret.starts_with(crate::intake::standard_webhooks::SECRET_PREFIX) {
                " of decoded key"
            } else {
                ""
            },
            key.len()
        );
    }
    Ok(())
}

/// A connection: one plugin fed by one source, with its own config and grants.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionDecl {
    pub name: String,
    /// Code of the source whose events it receives.
    pub source: String,
    /// Plugin name (from its manifest).
    pub plugin: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Hosts the plugin may call; when absent, the plugin's defaults.
    #[serde(default)]
    pub allowed_hosts: Option<Vec<String>>,
    /// Plugin configuration, validated against the plugin's schema.
    #[serde(default = "empty_table")]
    pub config: serde_json::Value,
    /// Retry schedule, concurrency, rate limit and circuit breaker of this
    /// connection (`[connections.delivery]`); `[queue]` gives the defaults.
    #[serde(default)]
    pub delivery: crate::queue::policy::DeliveryDecl,
    /// Periodic tasks: `[{task = "sync-all", every = "24h"}]` or `cron = "…"`.
    #[serde(default)]
    pub schedule: Vec<crate::queue::policy::ScheduleDecl>,
    /// Routing filter: a CEL expression over the event (see `filter`); events
    /// it does not accept create no job for this connection.
    #[serde(default)]
    pub filter: Option<String>,
    /// This connection's quotas, where they differ from `[runtime]`.
    #[serde(default)]
    pub limits: ConnectionLimits,
}

/// Per-connection overrides of the `[runtime]` quotas (same names and units).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionLimits {
    pub max_host_calls: Option<u64>,
    pub max_summary_bytes: Option<usize>,
    pub max_log_lines: Option<u64>,
    pub max_log_bytes: Option<u64>,
    pub max_state_keys: Option<u64>,
    pub max_state_bytes: Option<u64>,
    pub max_pending_tasks: Option<u64>,
    pub max_requests: Option<u64>,
}

fn yes() -> bool {
    true
}

fn empty_table() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

/// Flags given on the command line; they win over the file and the environment.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub database_url: Option<String>,
    pub plugins_dir: Option<PathBuf>,
    pub workers: Option<usize>,
    /// Any other setting, as `(dotted.key, value)`: `("queue.max_attempts", "3")`.
    pub sets: Vec<(String, String)>,
    /// Leave out `[[sources]]` and `[[connections]]` (and so their `${VAR}`
    /// secrets): for commands that read the database and never apply them.
    pub skip_declarations: bool,
}

/// Where a setting was given, for error messages.
struct Given {
    path: Vec<String>,
    raw: String,
    origin: String,
    /// Already retried as a plain string (the setting's type wanted one).
    as_string: bool,
}

impl Config {
    /// Reads `path` (if any), applies the environment and `overrides`, validates.
    pub fn load(path: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Self> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        let text = match path {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?,
            None => String::new(),
        };
        Self::from_source(&text, path, &env, overrides)
    }

    /// The pure part of [`Config::load`], for tests.
    pub fn from_parts(
        text: &str,
        env: &[(String, String)],
        overrides: &Overrides,
    ) -> anyhow::Result<Self> {
        Self::from_source(text, None, env, overrides)
    }

    /// Like [`Config::from_parts`], naming `file` in errors.
    ///
    /// The rule for the environment: `RECOCO_SYNC_X` is a setting when `x` is a
    /// top-level key or section of this file format (`RECOCO_SYNC_QUEUE__WORKERS`
    /// sets `queue.workers`), and is then checked like a key of the file (a typo
    /// inside a section is an error). Other `RECOCO_SYNC_*` variables
    /// (`RECOCO_SYNC_CONFIG`, which is `--config`, or those of the tests) are not
    /// settings and are left alone; see [`ignored_env_vars`]. A value is read as
    /// TOML (`8`, `true`, `["a", "b"]`) unless the setting wants a string, in
    /// which case it is taken as written (`RECOCO_SYNC_ADMIN_TOKEN=12345678`).
    pub fn from_source(
        text: &str,
        file: Option<&Path>,
        env: &[(String, String)],
        overrides: &Overrides,
    ) -> anyhow::Result<Self> {
        let place = match file {
            Some(f) => format!("config file {}", f.display()),
            None => "the configuration".to_string(),
        };
        let mut doc: toml::Table =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{place} is not valid TOML: {e}"))?;
        let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let mut given = Vec::new();
        for (key, value) in env {
            let Some(path) = setting_path(key) else {
                continue;
            };
            given.push(Given {
                path,
                raw: value.clone(),
                origin: format!("environment variable {key}"),
                as_string: false,
            });
        }
        for (key, value) in &overrides.sets {
            given.push(Given {
                path: key.split('.').map(|p| p.trim().to_string()).collect(),
                raw: value.clone(),
                origin: format!("--set {key}"),
                as_string: false,
            });
        }
        for g in &given {
            set_path(&mut doc, &g.path, parse_env_value(&g.raw))
                .with_context(|| format!("cannot apply {}", g.origin))?;
        }
        if overrides.skip_declarations {
            doc.remove("sources");
            doc.remove("connections");
            // Nor does any operator command send alerts: their `${VAR}` need not be set.
            doc.remove("alerts");
        }
        let mut value = toml::Value::Table(doc);
        expand_env(&mut value, "", &lookup).map_err(|e| anyhow::anyhow!("{place}: {e:#}"))?;
        let mut config: Config = loop {
            let err = match serde_path_to_error::deserialize::<_, Config>(value.clone()) {
                Ok(config) => break config,
                Err(err) => err,
            };
            let at = err.path().to_string();
            // The value read as TOML does not fit the setting: take it as written
            // (a string), and report that error if it does not fit either.
            if let Some(g) = given
                .iter_mut()
                .rev()
                .find(|g| !g.as_string && g.path.join(".") == at)
            {
                g.as_string = true;
                if let toml::Value::Table(doc) = &mut value {
                    set_path(doc, &g.path, toml::Value::String(g.raw.clone()))?;
                }
                continue;
            }
            let origin = given
                .iter()
                .rev()
                .find(|g| {
                    let p = g.path.join(".");
                    at == p || at.starts_with(&format!("{p}.")) || p.starts_with(&format!("{at}."))
                })
                .map_or(place.as_str(), |g| g.origin.as_str());
            let at = if at == "." || at.is_empty() {
                "top level".to_string()
            } else {
                at
            };
            bail!(
                "invalid setting in {origin}: {at}: {}",
                err.inner().message()
            );
        };
        if let Some(listen) = overrides.listen {
            config.listen = listen;
        }
        if let Some(url) = &overrides.database_url {
            config.database_url = url.clone();
        }
        if let Some(dir) = &overrides.plugins_dir {
            config.plugins_dir = dir.clone();
        }
        if let Some(workers) = overrides.workers {
            config.queue.workers = workers;
        }
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("{place}: {e:#}"))?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        let postgres = crate::store::postgres::is_postgres_url(&self.database_url);
        if !postgres && !self.database_url.starts_with("sqlite:") {
            bail!("database_url must start with sqlite: or postgres: (got a different scheme)");
        }
        if self.queue.replica_timeout < Duration::from_secs(3) {
            bail!(
                "queue.replica_timeout must be at least 3s (got {:?}): replicas beat every third of it",
                self.queue.replica_timeout
            );
        }
        if !postgres && self.sqlite_path().is_none() {
            bail!("database_url must name a SQLite file (sqlite://path/to/file.db), not an in-memory database");
        }
        validate_log(&self.log)?;
        self.alerts.validate()?;
        if self.queue.max_attempts == 0 {
            bail!("queue.max_attempts must be at least 1");
        }
        if self.queue.retry_schedule.is_empty() {
            bail!("queue.retry_schedule needs at least one delay");
        }
        if self.queue.max_concurrency == Some(0) || self.queue.circuit_failures == 0 {
            bail!("queue.max_concurrency and queue.circuit_failures must be at least 1");
        }
        if self.storage.wal_max_bytes < 1024 * 1024 {
            bail!("storage.wal_max_bytes must be at least 1 MiB (1048576)");
        }
        if self.runtime.memory_limit < 1024 * 1024 {
            bail!("runtime.memory_limit must be at least 1 MiB");
        }
        let rate = self.intake.rate_limit_per_second;
        if !rate.is_finite() || rate < 0.0 {
            bail!("intake.rate_limit_per_second must be a positive number of webhooks per second (0 = unlimited)");
        }
        let pacing = self.intake.pacing_min_delivered_ratio;
        if !(0.0..=1.0).contains(&pacing) {
            bail!("intake.pacing_min_delivered_ratio must be between 0 (no pacing) and 1");
        }
        let mut codes = std::collections::HashSet::new();
        for (i, source) in self.sources.iter().enumerate() {
            if source.code.is_empty()
                || !source
                    .code
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                bail!(
                    "source code {:?} must be non-empty and use only letters, digits, - and _",
                    source.code
                );
            }
            if !codes.insert(source.code.as_str()) {
                bail!("source {:?} is declared twice", source.code);
            }
            if source.secrets.is_empty() {
                bail!("source {:?} has no secret", source.code);
            }
            for (n, secret) in source.secrets.iter().enumerate() {
                check_secret(
                    source.scheme,
                    secret.value(),
                    &format!("sources[{i}].secrets[{n}] (source {:?})", source.code),
                )?;
            }
            if let Some(rate) = source.rate_limit_per_second {
                if !rate.is_finite() || rate < 0.0 {
                    bail!("source {:?}: rate_limit_per_second must be a positive number of webhooks per second (0 = unlimited)", source.code);
                }
            }
            if let Some(api_url) = &source.api_url {
                url::Url::parse(api_url)
                    .with_context(|| format!("source {:?}: api_url is not a URL", source.code))?;
            }
        }
        let mut names = std::collections::HashSet::new();
        for connection in &self.connections {
            if !names.insert(connection.name.as_str()) {
                bail!("connection {:?} is declared twice", connection.name);
            }
            if !connection.config.is_object() {
                bail!("connection {:?}: config must be a table", connection.name);
            }
            connection.delivery.validate(&connection.name)?;
            for s in &connection.schedule {
                crate::queue::schedules::Spec::of(s)
                    .with_context(|| format!("connection {:?}: schedule", connection.name))?;
            }
            if let Some(filter) = &connection.filter {
                crate::filter::Filter::compile(filter)
                    .map_err(|e| anyhow::anyhow!("connection {:?}: {e}", connection.name))?;
            }
        }
        Ok(())
    }

    /// The plugin cache directory: as configured, else beside the database.
    pub fn plugin_cache_path(&self) -> Option<PathBuf> {
        if let Some(dir) = &self.plugin_cache_dir {
            return Some(dir.clone());
        }
        // On PostgreSQL, beside the secret key file (the local data directory).
        let db = self.sqlite_path().or_else(|| {
            crate::store::postgres::is_postgres_url(&self.database_url)
                .then(|| self.secret_key_file.clone())
        })?;
        Some(match db.parent() {
            Some(parent) => parent.join("plugin-cache"),
            None => PathBuf::from("plugin-cache"),
        })
    }

    /// Path of the SQLite file named by `database_url`.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        let rest = self
            .database_url
            .strip_prefix("sqlite://")
            .or_else(|| self.database_url.strip_prefix("sqlite:"))?;
        let rest = rest.split('?').next().unwrap_or(rest);
        (rest != ":memory:" && !rest.is_empty()).then(|| PathBuf::from(rest))
    }
}

/// The setting path of environment variable `key`, when it names one (see
/// [`Config::from_source`] for the rule).
fn setting_path(key: &str) -> Option<Vec<String>> {
    let rest = key.strip_prefix(ENV_PREFIX)?;
    let path: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
    top_level_keys().contains(&path[0].as_str()).then_some(path)
}

/// `RECOCO_SYNC_*` variables of `env` that are not settings (they are ignored).
pub fn ignored_env_vars(env: &[(String, String)]) -> Vec<String> {
    env.iter()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with(ENV_PREFIX) && setting_path(k).is_none())
        .cloned()
        .collect()
}

/// The top-level keys of the file format, read from `Config`'s own
/// `Deserialize` (so a new field is a setting without another list to keep).
pub fn top_level_keys() -> &'static [&'static str] {
    use std::cell::Cell;
    struct Probe<'a>(&'a Cell<&'static [&'static str]>);
    impl<'de> serde::Deserializer<'de> for Probe<'_> {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: serde::de::Visitor<'de>>(
            self,
            _: V,
        ) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("probe"))
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0.set(fields);
            Err(serde::de::Error::custom("probe"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    static KEYS: std::sync::OnceLock<&'static [&'static str]> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let fields = Cell::new(&[][..]);
        let _ = Config::deserialize(Probe(&fields));
        fields.get()
    })
}

/// Log levels accepted in `[log] level` (alone or as `target=level`).
const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];

/// `[log]`: a known format, and a level that is a level (not a target name,
/// which would silence everything else).
fn validate_log(log: &LogConfig) -> anyhow::Result<()> {
    if !["text", "json"].contains(&log.format.as_str()) {
        bail!(
            "log.format must be \"text\" or \"json\" (got {:?})",
            log.format
        );
    }
    for directive in log
        .level
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        let level = directive.rsplit_once('=').map_or(directive, |(_, l)| l);
        if !LOG_LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            bail!(
                "log.level: {directive:?} is not a level; use one of {} (or target=level, comma-separated)",
                LOG_LEVELS.join(", ")
            );
        }
    }
    tracing_subscriber::EnvFilter::try_new(&log.level)
        .map_err(|e| anyhow::anyhow!("log.level {:?}: {e}", log.level))?;
    Ok(())
}

/// Environment values are TOML scalars when they parse as such (`8`, `true`,
/// `"30s"`), lists when they look like one, else plain strings.
fn parse_env_value(raw: &str) -> toml::Value {
    if let Ok(table) = toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        if let Some(value) = table.get("v") {
            return value.clone();
        }
    }
    toml::Value::String(raw.to_string())
}

fn set_path(doc: &mut toml::Table, path: &[String], value: toml::Value) -> anyhow::Result<()> {
    let (last, parents) = path.split_last().context("empty key")?;
    let mut table = doc;
    for part in parents {
        let entry = table
            .entry(part.clone())
            .or_insert_with(|| toml::Value::Table(Default::default()));
        table = entry
            .as_table_mut()
            .with_context(|| format!("{part} is not a table"))?;
    }
    table.insert(last.clone(), value);
    Ok(())
}

/// Replaces `${VAR}` in every string by the variable's value; `$$` is a literal `$`.
fn expand_env(
    value: &mut toml::Value,
    at: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<()> {
    match value {
        toml::Value::String(s) if s.contains('$') => *s = expand_str(s, at, lookup)?,
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_env(item, &format!("{at}[{i}]"), lookup)?;
            }
        }
        toml::Value::Table(table) => {
            for (key, item) in table.iter_mut() {
                let here = if at.is_empty() {
                    key.clone()
                } else {
                    format!("{at}.{key}")
                };
                expand_env(item, &here, lookup)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn expand_str(
    s: &str,
    at: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if let Some(after) = tail.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after
                .find('}')
                .with_context(|| format!("{at}: unclosed ${{ in value"))?;
            let name = &after[..end];
            let value = lookup(name)
                .with_context(|| format!("{at}: environment variable {name} is not set"))?;
            out.push_str(&value);
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_without_file() {
        let c = Config::from_parts("", &[], &Overrides::default()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8000");
        assert_eq!(c.database_url, "sqlite://data/recoco-sync.db");
        assert_eq!(c.plugins_dir, PathBuf::from("connectors"));
        assert_eq!(c.intake.max_body_bytes, 1024 * 1024);
        assert_eq!(c.intake.timestamp_tolerance, Duration::from_secs(300));
        assert_eq!(c.sqlite_path(), Some(PathBuf::from("data/recoco-sync.db")));
        assert_eq!(
            c.plugin_cache_path(),
            Some(PathBuf::from("data/plugin-cache"))
        );
    }

    #[test]
    fn the_plugin_cache_follows_the_database_unless_set() {
        let c = Config::from_parts(
            "database_url = \"sqlite:app.db\"",
            &[],
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.plugin_cache_path(), Some(PathBuf::from("plugin-cache")));
        // On PostgreSQL: beside the secret key file.
        let c = Config::from_parts(
            "database_url = \"postgres://rs@db.internal/rs\"\nsecret_key_file = \"/var/lib/rs/secret.key\"",
            &[],
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(
            c.plugin_cache_path(),
            Some(PathBuf::from("/var/lib/rs/plugin-cache"))
        );
        // Intake writes to the file itself: an in-memory database is refused.
        let err = Config::from_parts(
            "database_url = \"sqlite::memory:\"",
            &[],
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("not an in-memory database"),
            "{err}"
        );
        let c = Config::from_parts(
            "plugin_cache_dir = \"/var/cache/rs\"",
            &[],
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.plugin_cache_path(), Some(PathBuf::from("/var/cache/rs")));
    }

    #[test]
    fn file_then_env_then_flags() {
        let text = r#"
            listen = "127.0.0.1:9000"
            [queue]
            workers = 2
            backoff_base = "2s"
        "#;
        let e = env(&[
            ("RECOCO_SYNC_QUEUE__WORKERS", "7"),
            ("RECOCO_SYNC_LISTEN", "127.0.0.1:9100"),
        ]);
        let c = Config::from_parts(text, &e, &Overrides::default()).unwrap();
        assert_eq!(c.queue.workers, 7);
        assert_eq!(c.queue.backoff_base, Some(Duration::from_secs(2)));
        assert_eq!(c.listen.port(), 9100);
        let flags = Overrides {
            workers: Some(1),
            ..Default::default()
        };
        assert_eq!(
            Config::from_parts(text, &e, &flags).unwrap().queue.workers,
            1
        );
    }

    #[test]
    fn sources_and_connections_expand_variables() {
        let text = r#"
            [[sources]]
            code = "recoco-prod"
            api_url = "https://portal.example/api"
            secrets = ["${HOOK_SECRET}", "literal$$dollar-16-bytes"]
            [[connections]]
            name = "fwd"
            source = "recoco-prod"
            plugin = "http-forward"
            allowed_hosts = ["crm.example.org"]
            [connections.config]
            url = "https://crm.example.org/hooks"
            secret = "${FWD}"
        "#;
        let e = env(&[("HOOK_SECRET", "s3cr3t-value-0001"), ("FWD", "whsec_abc")]);
        let c = Config::from_parts(text, &e, &Overrides::default()).unwrap();
        let values: Vec<&str> = c.sources[0].secrets.iter().map(|s| s.value()).collect();
        assert_eq!(values, vec!["s3cr3t-value-0001", "literal$dollar-16-bytes"]);
        assert!(c.sources[0].enabled);
        assert_eq!(c.connections[0].config["secret"], "whsec_abc");
    }

    #[test]
    fn missing_variable_names_the_place_not_a_value() {
        let text = "[[sources]]\ncode = \"a\"\nsecrets = [\"${NOPE}\"]\n";
        let err = Config::from_parts(text, &[], &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("NOPE") && err.contains("sources[0].secrets[0]"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = Config::from_parts("listne = \"x\"", &[], &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("listne"), "{err}");
        let err = Config::from_parts(
            "",
            &env(&[("RECOCO_SYNC_QUEUE__WORKRS", "1")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("workrs"), "{err}");
    }

    #[test]
    fn the_documented_example_is_valid() {
        let text = include_str!("../../examples/recoco-sync.toml");
        let e = env(&[
            ("RECOCO_WEBHOOK_SECRET", "webhook-secret-1"),
            ("RECOCO_API_PASSWORD", "api-password-1"),
            ("FORWARD_SECRET", "whsec_abc"),
        ]);
        let c = Config::from_parts(text, &e, &Overrides::default()).unwrap();
        let d = Config::default();
        assert_eq!(
            (c.listen, &c.database_url, &c.plugins_dir),
            (d.listen, &d.database_url, &d.plugins_dir)
        );
        assert_eq!(c.plugin_cache_path(), d.plugin_cache_path());
        assert_eq!(c.queue.backoff_max, d.queue.backoff_max);
        assert_eq!(c.runtime.memory_limit, d.runtime.memory_limit);
        assert_eq!(c.admin.session_ttl, d.admin.session_ttl);
        assert_eq!(c.admin.allowed_hosts, d.admin.allowed_hosts);
        assert_eq!(c.storage.wal_max_bytes, d.storage.wal_max_bytes);
        assert_eq!(c.storage.retention, d.storage.retention);
        assert_eq!(c.connections[0].config["secret"], "whsec_abc");
        assert_eq!(c.queue.retry_schedule, d.queue.retry_schedule);
        assert_eq!(c.queue.max_attempts, d.queue.max_attempts);
        assert_eq!(
            c.queue.workers, d.queue.workers,
            "the example shows the default"
        );
        assert_eq!(
            (c.queue.retry_after_max, c.queue.max_throttles),
            (d.queue.retry_after_max, d.queue.max_throttles)
        );
        assert_eq!(c.connections[0].delivery.rate_limit, Some(20.0));
        assert_eq!(c.connections[0].delivery.max_concurrency, Some(2));
        // Quotas: the documented values are the defaults, and a connection's
        // limits override them.
        let (r, dr) = (&c.runtime, &d.runtime);
        assert_eq!(
            (
                r.max_host_calls,
                r.max_summary_bytes,
                r.max_log_lines,
                r.max_log_bytes
            ),
            (
                dr.max_host_calls,
                dr.max_summary_bytes,
                dr.max_log_lines,
                dr.max_log_bytes
            )
        );
        assert_eq!(
            (
                r.max_state_keys,
                r.max_state_bytes,
                r.max_pending_tasks,
                r.max_requests
            ),
            (
                dr.max_state_keys,
                dr.max_state_bytes,
                dr.max_pending_tasks,
                dr.max_requests
            )
        );
        assert_eq!(c.connections[0].limits.max_requests, Some(50000));
        assert_eq!(c.connections[0].limits.max_state_keys, Some(20000));
        assert_eq!(c.connections[0].limits.max_log_lines, None);
        assert_eq!(c.intake.dedup_window, d.intake.dedup_window);
        assert_eq!(c.intake.max_header_bytes, d.intake.max_header_bytes);
        assert_eq!(c.intake.rate_limit_burst, d.intake.rate_limit_burst);
        assert_eq!(
            (
                c.intake.pacing_min_delivered_ratio,
                c.intake.pacing_max_wait
            ),
            (
                d.intake.pacing_min_delivered_ratio,
                d.intake.pacing_max_wait
            )
        );
        assert_eq!(c.sources[0].scheme, Scheme::Recoco);
    }

    #[test]
    fn delivery_settings_and_schedules_are_checked() {
        let base = "[[sources]]\ncode = \"s\"\nsecrets = [\"a-secret-of-16-bytes\"]\n[[connections]]\nname = \"c\"\nsource = \"s\"\nplugin = \"p\"\n";
        let ok = format!("{base}schedule = [{{task = \"sync-all\", cron = \"0 3 * * *\"}}]\n[connections.delivery]\nretry_schedule = [\"1m\", \"1h\"]\ncircuit_cool_down = \"5s\"\n");
        let c = Config::from_parts(&ok, &[], &Overrides::default()).unwrap();
        assert_eq!(
            c.connections[0].delivery.retry_schedule,
            Some(vec![Duration::from_secs(60), Duration::from_secs(3600)])
        );
        let bad_cron = format!("{base}schedule = [{{task = \"t\", cron = \"99 * * * *\"}}]\n");
        let err = Config::from_parts(&bad_cron, &[], &Overrides::default()).unwrap_err();
        assert!(format!("{err:#}").contains("cron"), "{err:#}");
        let bad_rate = format!("{base}[connections.delivery]\nrate_limit = 0.0\n");
        assert!(Config::from_parts(&bad_rate, &[], &Overrides::default()).is_err());
        let typo = format!("{base}[connections.delivery]\nrate_limt = 1.0\n");
        assert!(Config::from_parts(&typo, &[], &Overrides::default()).is_err());
        let queue = "[queue]\nretry_schedule = [\"5s\"]\nretry_after_max = \"10m\"\nmax_throttles = 3\nmax_concurrency = 3\ncircuit_failures = 4\ncircuit_cool_down = \"2s\"\n";
        let c = Config::from_parts(queue, &[], &Overrides::default()).unwrap();
        assert_eq!(c.queue.retry_schedule, vec![Duration::from_secs(5)]);
        assert_eq!(
            (
                c.queue.max_throttles,
                c.queue.max_concurrency,
                c.queue.circuit_failures
            ),
            (3, Some(3), 4)
        );
    }

    #[test]
    fn duplicate_source_is_refused() {
        let text = "[[sources]]\ncode = \"a\"\nsecrets = [\"xxxxxxxxxxxxxxxx\"]\n[[sources]]\ncode = \"a\"\nsecrets = [\"yyyyyyyyyyyyyyyy\"]\n";
        let err = Config::from_parts(text, &[], &Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("declared twice"), "{err}");
    }

    #[test]
    fn source_secrets_have_a_life_cycle_and_a_minimum_length() {
        let text = r#"
            [intake]
            dedup_window = "1h"
            max_header_bytes = 8192
            rate_limit_per_second = 5.5
            rate_limit_burst = 10
            pacing_min_delivered_ratio = 0.5
            pacing_max_wait = "250ms"
            [[sources]]
            code = "portal"
            secrets = ["current-secret-0001", { value = "previous-secret-01", expires_at = "2027-01-31T12:00:00Z" }]
            rate_limit_per_second = 2.0
            rate_limit_burst = 3
            [[sources]]
            code = "other"
            scheme = "standard-webhooks"
            secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
        "#;
        let c = Config::from_parts(text, &[], &Overrides::default()).unwrap();
        let over = text.replace(
            "pacing_min_delivered_ratio = 0.5",
            "pacing_min_delivered_ratio = 1.5",
        );
        let err = Config::from_parts(&over, &[], &Overrides::default()).unwrap_err();
        assert!(
            err.to_string().contains("pacing_min_delivered_ratio"),
            "{err}"
        );
        assert_eq!(c.intake.dedup_window, Duration::from_secs(3600));
        assert_eq!(c.intake.max_header_bytes, 8192);
        assert_eq!(
            (c.intake.rate_limit_per_second, c.intake.rate_limit_burst),
            (5.5, 10)
        );
        assert_eq!(
            (
                c.intake.pacing_min_delivered_ratio,
                c.intake.pacing_max_wait
            ),
            (0.5, Duration::from_millis(250))
        );
        let portal = &c.sources[0];
        assert_eq!(portal.scheme, Scheme::Recoco);
        assert_eq!(
            (portal.rate_limit_per_second, portal.rate_limit_burst),
            (Some(2.0), Some(3))
        );
        assert_eq!(portal.secrets[0].expires_at_ms(), None);
        assert_eq!(portal.secrets[1].value(), "previous-secret-01");
        assert_eq!(portal.secrets[1].expires_at_ms(), Some(1_801_396_800_000));
        assert_eq!(c.sources[1].scheme, Scheme::StandardWebhooks);

        // Too short: refused at load, naming the key and never the value.
        let short =
            "[[sources]]\ncode = \"p\"\nsecrets = [\"long-enough-secret-1\", \"short-secret\"]\n";
        let err = Config::from_parts(short, &[], &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sources[0].secrets[1]") && err.contains("at least 16 bytes"),
            "{err}"
        );
        assert!(!err.contains("short-secret"), "{err}");
        // A whsec_ secret counts its decoded key (12 bytes here), and must be base64.
        let sw = |secret: &str| {
            format!("[[sources]]\ncode = \"p\"\nscheme = \"standard-webhooks\"\nsecrets = [{secret:?}]\n")
        };
        let err = Config::from_parts(&sw("whsec_MTIzNDU2Nzg5MDEy"), &[], &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("decoded key") && err.contains("has 12"),
            "{err}"
        );
        let err = Config::from_parts(&sw("whsec_!!notbase64!!"), &[], &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sources[0].secrets[0]") && err.contains("base64"),
            "{err}"
        );
        let err = Config::from_parts(
            &sw("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").replace("standard-webhooks", "github"),
            &[],
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("github") || err.contains("scheme"), "{err}");
    }

    #[test]
    fn errors_name_the_key_and_where_it_was_given() {
        let text = "[queue]\nworkers = \"four\"\n";
        let err = Config::from_source(
            text,
            Some(Path::new("/etc/rs.toml")),
            &[],
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("/etc/rs.toml") && err.contains("queue.workers") && err.contains("four"),
            "{err}"
        );
        let e = env(&[("RECOCO_SYNC_RUNTIME__MAX_INSTANCES", "many")]);
        let err = Config::from_source("", Some(Path::new("x.toml")), &e, &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("environment variable RECOCO_SYNC_RUNTIME__MAX_INSTANCES")
                && err.contains("runtime.max_instances"),
            "{err}"
        );
        let sets = Overrides {
            sets: vec![("queue.bogus".into(), "1".into())],
            ..Default::default()
        };
        let err = Config::from_parts("", &[], &sets).unwrap_err().to_string();
        assert!(
            err.contains("--set queue.bogus") && err.contains("bogus"),
            "{err}"
        );
    }

    #[test]
    fn environment_values_follow_the_settings_type() {
        let e = env(&[
            ("RECOCO_SYNC_ADMIN_TOKEN", "12345678"),
            ("RECOCO_SYNC_QUEUE__MAX_ATTEMPTS", "3"),
            ("RECOCO_SYNC_OUTBOUND__ALLOW_PRIVATE_NETWORKS", "true"),
            ("RECOCO_SYNC_ADMIN__ALLOWED_HOSTS", "[\"sync.lan\"]"),
            ("RECOCO_SYNC_QUEUE__LEASE", "45s"),
        ]);
        let c = Config::from_parts("", &e, &Overrides::default()).unwrap();
        assert_eq!(c.admin_token.as_deref(), Some("12345678"));
        assert_eq!(c.queue.max_attempts, 3);
        assert!(c.outbound.allow_private_networks);
        assert_eq!(c.admin.allowed_hosts, vec!["sync.lan"]);
        assert_eq!(c.queue.lease, Duration::from_secs(45));
        let sets = Overrides {
            sets: vec![("secret_key_file".into(), "true".into())],
            ..Default::default()
        };
        let c = Config::from_parts("", &[], &sets).unwrap();
        assert_eq!(c.secret_key_file, PathBuf::from("true"));
    }

    #[test]
    fn variables_that_are_not_settings_are_left_alone() {
        let e = env(&[
            ("RECOCO_SYNC_CONFIG", "/etc/recoco-sync.toml"),
            ("RECOCO_SYNC_GRIST_SCRIPT", "/opt/start-grist.sh"),
            ("RECOCO_SYNC_LISTEN", "127.0.0.1:9300"),
        ]);
        let c = Config::from_parts("", &e, &Overrides::default()).unwrap();
        assert_eq!(c.listen.port(), 9300);
        assert_eq!(
            ignored_env_vars(&e),
            vec!["RECOCO_SYNC_CONFIG", "RECOCO_SYNC_GRIST_SCRIPT"]
        );
        let keys = top_level_keys();
        assert!(keys.contains(&"queue") && keys.contains(&"listen") && !keys.contains(&"config"));
    }

    #[test]
    fn log_settings_are_checked() {
        for (text, wanted) in [
            ("[log]\nlevel = \"verbose\"", "not a level"),
            ("[log]\nformat = \"xml\"", "log.format"),
            ("[log]\nlevel = \"info,sqlx=loud\"", "not a level"),
        ] {
            let err = Config::from_parts(text, &[], &Overrides::default()).unwrap_err();
            assert!(format!("{err:#}").contains(wanted), "{text}: {err:#}");
        }
        let c = Config::from_parts(
            "[log]\nlevel = \"warn,recoco_sync=debug\"\nformat = \"json\"",
            &[],
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(c.log.format, "json");
    }

    #[test]
    fn declarations_can_be_left_out_with_their_secrets() {
        let text = "[[sources]]\ncode = \"a\"\nsecrets = [\"${NOPE}\"]\n";
        let skip = Overrides {
            skip_declarations: true,
            ..Default::default()
        };
        let c = Config::from_parts(text, &[], &skip).unwrap();
        assert!(c.sources.is_empty());
        assert!(Config::from_parts(text, &[], &Overrides::default()).is_err());
    }
}

/// The CLI's own variables (`--url`, `--key`) under the environment rule.
#[cfg(test)]
mod cli_variables {
    use super::*;

    #[test]
    fn the_cli_variables_are_not_settings() {
        let e: Vec<(String, String)> = [
            ("RECOCO_SYNC_URL", "http://127.0.0.1:8000"),
            ("RECOCO_SYNC_ADMIN_KEY", "rsk_abc"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let keys = top_level_keys();
        assert!(!keys.contains(&"url") && !keys.contains(&"admin_key"));
        // They neither stop the load nor set anything.
        let c = Config::from_parts("", &e, &Overrides::default()).unwrap();
        assert!(c.admin_token.is_none());
        assert_eq!(
            ignored_env_vars(&e),
            vec!["RECOCO_SYNC_URL", "RECOCO_SYNC_ADMIN_KEY"]
        );
    }
}
