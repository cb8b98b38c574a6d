//! The `recoco-sync` command: `serve` (the default) runs the service; the other
//! sub-commands are operator tools that work on the database directly, so they
//! need no running service (and work while one runs).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use recoco_sync::admin::ops;
use recoco_sync::catalog::CatalogHandle;
use recoco_sync::config::{Config, Overrides};
use recoco_sync::ids::{now_ms, rfc3339};
use recoco_sync::intake::signature;
use recoco_sync::queue::jobs::{self, JobFilter};
use recoco_sync::secrets::redact_config;
use recoco_sync::store::{self, attempts, events, events::EventFilter};

#[derive(Parser)]
#[command(
    name = "recoco-sync",
    version,
    about = "Recoco webhooks in, sandboxed connectors out"
)]
struct Cli {
    /// Configuration file (TOML). Settings may also come from RECOCO_SYNC_* variables.
    #[arg(long, short, global = true, env = "RECOCO_SYNC_CONFIG")]
    config: Option<PathBuf>,
    /// Database URL (overrides the file and the environment).
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// Any setting, as a dotted key: `--set queue.max_attempts=3` (repeatable).
    #[arg(long = "set", global = true, value_name = "KEY=VALUE", value_parser = parse_set)]
    sets: Vec<(String, String)>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (the default).
    Serve {
        /// Address to listen on.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Directory of connector components.
        #[arg(long)]
        plugins_dir: Option<PathBuf>,
        /// Number of workers (0: intake only).
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Upgrade the database, apply the configured sources and connections, and exit.
    Migrate {
        /// Create the database (and the secret key file) when missing; without
        /// it, a missing database is an error rather than a new empty one.
        #[arg(long)]
        create: bool,
    },
    /// Check a configuration file (with the environment) and exit.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Stored webhook events.
    #[command(subcommand)]
    Events(EventsCmd),
    /// Queued, running and finished jobs.
    #[command(subcommand)]
    Jobs(JobsCmd),
    /// Run a connector task (queued; a running service picks it up).
    Task {
        /// Connection name.
        connection: String,
        /// Task name, e.g. `setup` or `sync-all`.
        task: String,
        /// JSON payload.
        #[arg(long, default_value = "{}")]
        payload: String,
    },
    /// Sources and connections as stored (secrets redacted).
    Status,
    /// Admin API keys: create (shown once), list, revoke.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Re-encrypt every stored secret under a new master key, in one transaction.
    /// Stop the service first; with a key file the new key replaces it.
    Rekey {
        /// The new key (64 hex characters). Generated when absent (key file only).
        #[arg(long, env = "RECOCO_NEW_SECRET_KEY", hide_env_values = true)]
        new_key: Option<String>,
    },
    /// Webhook sources.
    #[command(subcommand)]
    Sources(SourcesCmd),
    /// Sign and send a webhook body to a running service (for trying things out).
    Send {
        /// Webhook URL, e.g. http://127.0.0.1:8000/api/webhook/recoco-prod
        #[arg(long)]
        url: String,
        /// Signing secret of the source.
        #[arg(long, env = "RECOCO_WEBHOOK_SECRET", hide_env_values = true)]
        secret: String,
        /// File holding the JSON body (`-` for stdin).
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Parse and validate FILE as `serve` would (environment and `--set`
    /// included); print a summary, or the error with its key and origin.
    Check { file: PathBuf },
}

#[derive(Subcommand)]
enum EventsCmd {
    /// Newest first.
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        source: Option<String>,
        #[arg(long)]
        object_type: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// One event, its body, its jobs and their attempts.
    Show { id: String },
    /// Route an event again (new jobs).
    Replay { id: String },
}

#[derive(Subcommand)]
enum KeysCmd {
    /// Create a key and print it (the only time it is shown; only its hash is kept).
    Create {
        #[arg(long)]
        name: String,
        /// `read` (sees everything, changes nothing) or `admin`.
        #[arg(long, default_value = "read")]
        scope: String,
    },
    /// Name, scope, creation and last use of every key.
    List,
    /// Revoke a key now (and end its page sessions); no restart needed.
    Revoke { name: String },
}

#[derive(Subcommand)]
enum SourcesCmd {
    /// Add a new signing secret to a source and retire its current ones after
    /// a grace period. Prints the new secret once (give it to the sender).
    RotateSecret {
        /// Source code.
        code: String,
        /// The new secret (default: 32 random bytes, hex, or `whsec_` + base64
        /// for a Standard Webhooks source).
        #[arg(long, env = "RECOCO_NEW_SOURCE_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// How long the current secrets keep validating, e.g. `24h`, `0s`.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        grace: std::time::Duration,
    },
}

#[derive(Subcommand)]
enum JobsCmd {
    List {
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        connection: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    Show {
        id: String,
    },
    /// Retry one failed or dead job.
    Retry {
        id: String,
    },
    /// Retry every failed or dead job (of one connection).
    RetryFailed {
        #[arg(long)]
        connection: Option<String>,
    },
}

fn main() -> std::process::ExitCode {
    // First of all: Sentry's transport and reqwest need the TLS provider.
    recoco_sync::install_crypto_provider();
    let cli = Cli::parse();
    match cli_main(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn cli_main(cli: Cli) -> anyhow::Result<()> {
    let mut overrides = Overrides {
        database_url: cli.database_url.clone(),
        sets: cli.sets.clone(),
        ..Default::default()
    };
    match &cli.command {
        Some(Command::Serve {
            listen,
            plugins_dir,
            workers,
        }) => {
            overrides.listen = *listen;
            overrides.plugins_dir = plugins_dir.clone();
            overrides.workers = *workers;
        }
        None | Some(Command::Migrate { .. }) | Some(Command::Config(_)) => {}
        // The other commands work on the database and never apply the declared
        // sources and connections: their `${VAR}` secrets need not be set.
        Some(_) => overrides.skip_declarations = true,
    }
    if let Some(Command::Config(ConfigCmd::Check { file })) = &cli.command {
        return config_check(file, &overrides);
    }
    let config = Config::load(cli.config.as_deref(), &overrides)?;
    let _telemetry = recoco_sync::telemetry::init(&config.log);
    let env: Vec<(String, String)> = std::env::vars().collect();
    for name in recoco_sync::config::ignored_env_vars(&env) {
        tracing::debug!(variable = %name, "not a setting: ignored");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve {
            listen: None,
            plugins_dir: None,
            workers: None,
        }) {
            Command::Serve { .. } => {
                let result = recoco_sync::run(config).await;
                if let Err(err) = &result {
                    tracing::error!(error = %format!("{err:#}"), "the service stopped");
                }
                result
            }
            Command::Send { url, secret, file } => send(&url, &secret, &file).await,
            command => operate(config, command).await,
        }
    })
}

/// `recoco-sync config check FILE`.
fn config_check(file: &std::path::Path, overrides: &Overrides) -> anyhow::Result<()> {
    let config = Config::load(Some(file), overrides)?;
    println!(
        "{} is valid: listen {}, database {}, {} source(s), {} connection(s)",
        file.display(),
        config.listen,
        config.database_url,
        config.sources.len(),
        config.connections.len()
    );
    Ok(())
}

/// Operator commands never create a database by accident (a command run in
/// the wrong directory would otherwise make an empty one and a new key).
fn require_existing(config: &Config) -> anyhow::Result<()> {
    let cwd = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_else(|_| "?".into());
    if let Some(db) = config.sqlite_path() {
        anyhow::ensure!(
            db.exists(),
            "no database at {} (relative paths are read from {cwd}): give --config or \
             --database-url, or create it with `recoco-sync migrate --create`",
            db.display()
        );
    }
    if config.secret_key.is_none() {
        anyhow::ensure!(
            config.secret_key_file.exists(),
            "no secret key file at {} (relative paths are read from {cwd}) and no secret_key \
             set: without it the stored secrets cannot be read",
            config.secret_key_file.display()
        );
    }
    Ok(())
}

fn parse_set(s: &str) -> Result<(String, String), String> {
    let (key, value) = s.split_once('=').ok_or("expected KEY=VALUE")?;
    Ok((key.trim().to_string(), value.to_string()))
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Sub-commands that work on the database.
async fn operate(config: Config, command: Command) -> anyhow::Result<()> {
    if !matches!(command, Command::Migrate { create: true }) {
        require_existing(&config)?;
    }
    let pool = store::open(&config.database_url).await?;
    let sealer = recoco_sync::secrets::open_checked(
        &pool,
        &recoco_sync::secrets::KeySource {
            hex_key: config.secret_key.as_deref(),
            key_file: &config.secret_key_file,
        },
    )
    .await?;
    let catalog = CatalogHandle::load(pool.clone(), sealer.clone()).await?;
    let max_attempts = config.queue.max_attempts;
    match command {
        Command::Migrate { .. } => {
            catalog.apply_config(&config).await?;
            println!("database {} is up to date", config.database_url);
        }
        Command::Status => {
            let snapshot = catalog.get();
            let sources: Vec<_> = snapshot
                .sources()
                .map(|s| serde_json::json!({"code": s.code, "api_url": s.api_url, "enabled": s.enabled, "secrets": s.secrets.len()}))
                .collect();
            let connections: Vec<_> = snapshot
                .connections()
                .map(|c| {
                    serde_json::json!({"name": c.name, "plugin": c.plugin, "enabled": c.enabled,
                        "allowed_hosts": c.allowed_hosts, "config": redact_config(&c.config, None)})
                })
                .collect();
            let counts = |rows: Vec<(String, i64)>| {
                rows.into_iter()
                    .collect::<std::collections::BTreeMap<_, _>>()
            };
            print_json(&serde_json::json!({
                "sources": sources,
                "connections": connections,
                "events": counts(events::count_by_status(&pool).await?),
                "jobs": counts(jobs::count_by_state(&pool).await?),
            }))?;
        }
        Command::Events(EventsCmd::List {
            status,
            source,
            object_type,
            limit,
        }) => {
            let filter = EventFilter {
                status,
                source,
                object_type,
                limit: Some(limit),
                ..Default::default()
            };
            for e in events::list(&pool, &filter).await? {
                println!(
                    "{}  {}  {:<9}  {:<28}  object {:<8}  {}",
                    e.id,
                    rfc3339(e.received_at),
                    e.status,
                    e.topic.as_deref().unwrap_or("-"),
                    e.object_id.as_deref().unwrap_or("-"),
                    e.error.as_deref().unwrap_or("")
                );
            }
        }
        Command::Events(EventsCmd::Show { id }) => {
            let e = events::get(&pool, &id)
                .await?
                .with_context(|| format!("no event {id}"))?;
            let body: serde_json::Value = serde_json::from_slice(&e.body).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&e.body).into())
            });
            let job_list = jobs::list(
                &pool,
                &JobFilter {
                    event_id: Some(id),
                    ..Default::default()
                },
            )
            .await?;
            let mut out = serde_json::to_value(&e)?;
            out["body"] = body;
            out["jobs"] = serde_json::to_value(&job_list)?;
            print_json(&out)?;
        }
        Command::Events(EventsCmd::Replay { id }) => {
            let known = ops::KnownPlugins::load(&pool).await?;
            let replayed = ops::replay_event(
                &pool,
                &catalog.get(),
                &|p| known.subscriptions.get(p).cloned(),
                &id,
                max_attempts,
            )
            .await?;
            print_json(&replayed)?;
        }
        Command::Jobs(JobsCmd::List {
            state,
            connection,
            limit,
        }) => {
            for j in jobs::list(
                &pool,
                &JobFilter {
                    state,
                    connection,
                    limit: Some(limit),
                    ..Default::default()
                },
            )
            .await?
            {
                println!(
                    "{}  {:<9}  {:<20}  {:<6} {:<24}  attempts {}/{}  {}",
                    j.id,
                    j.state,
                    j.connection,
                    j.kind,
                    j.task_name.or(j.event_id).unwrap_or_default(),
                    j.attempts,
                    j.max_attempts,
                    j.last_error.or(j.summary).unwrap_or_default()
                );
            }
        }
        Command::Jobs(JobsCmd::Show { id }) => {
            let job = jobs::get(&pool, &id)
                .await?
                .with_context(|| format!("no job {id}"))?;
            let mut out = serde_json::to_value(&job)?;
            out["attempts_log"] = serde_json::to_value(attempts::for_job(&pool, &id).await?)?;
            print_json(&out)?;
        }
        Command::Jobs(JobsCmd::Retry { id }) => {
            anyhow::ensure!(
                jobs::retry(&pool, &id).await?,
                "job {id} is not failed or dead (or does not exist)"
            );
            println!("job {id} queued again");
        }
        Command::Jobs(JobsCmd::RetryFailed { connection }) => {
            let retried = ops::retry_failed(&pool, connection.as_deref()).await?;
            println!("{} job(s) queued again", retried.len());
        }
        Command::Task {
            connection,
            task,
            payload,
        } => {
            let payload: serde_json::Value =
                serde_json::from_str(&payload).context("--payload must be JSON")?;
            let known = ops::KnownPlugins::load(&pool).await?;
            if let Some(conn) = catalog.get().connection_by_name(&connection) {
                if let Some(problem) = known.unreadable.get(&conn.plugin) {
                    anyhow::bail!(
                        "the stored manifest of plugin {} does not parse ({problem}); \
                         its tasks cannot be checked: load a valid version of the plugin",
                        conn.plugin
                    );
                }
            }
            let id = ops::run_task(
                &pool,
                &catalog.get(),
                &|p| known.tasks.get(p).cloned(),
                &connection,
                &task,
                &payload,
                max_attempts,
            )
            .await?;
            println!("{id}");
            eprintln!("task {task} of {connection} queued as {id}; follow it with `recoco-sync jobs show {id}`");
        }
        Command::Keys(cmd) => keys_command(&pool, cmd).await?,
        Command::Rekey { new_key } => {
            let done = recoco_sync::secrets::rekey(
                &pool,
                &recoco_sync::secrets::KeySource {
                    hex_key: config.secret_key.as_deref(),
                    key_file: &config.secret_key_file,
                },
                new_key.as_deref(),
            )
            .await?;
            println!(
                "{} sealed value(s) re-encrypted under the new key",
                done.values
            );
            match done.key_file {
                Some(path) => println!("the new key is in {}", path.display()),
                None => println!("now set secret_key to the new key before starting the service"),
            }
        }
        Command::Sources(SourcesCmd::RotateSecret {
            code,
            secret,
            grace,
        }) => {
            let scheme = catalog
                .get()
                .source_by_code(&code)
                .map(|s| s.scheme)
                .with_context(|| format!("no source {code:?}"))?;
            let generated = secret.is_none();
            let secret =
                secret.unwrap_or_else(|| recoco_sync::store::sources::generate_secret(scheme));
            let until = now_ms() + grace.as_millis() as i64;
            let rotation =
                recoco_sync::store::sources::rotate_secret(&pool, &sealer, &code, &secret, until)
                    .await?;
            if generated {
                println!("{secret}");
            }
            eprintln!(
                "source {code}: new secret added{}; its {} previous secret(s) validate until {}. Configure the sender with the new secret before then.",
                if generated { " (printed above, shown only once)" } else { "" },
                rotation.previous,
                rfc3339(until)
            );
        }
        Command::Serve { .. } | Command::Send { .. } | Command::Config(_) => {
            unreachable!("handled by main")
        }
    }
    pool.close().await;
    Ok(())
}

/// `recoco-sync keys …`.
async fn keys_command(pool: &store::Pool, cmd: KeysCmd) -> anyhow::Result<()> {
    use recoco_sync::store::keys::{self, Scope};
    match cmd {
        KeysCmd::Create { name, scope } => {
            let key = keys::create(pool, &name, Scope::parse(&scope)?).await?;
            println!("{key}");
            eprintln!("key {name:?} ({scope}) created; it is shown only now: store it safely");
        }
        KeysCmd::List => {
            let when = |t: Option<i64>| t.map(rfc3339).unwrap_or_else(|| "never".into());
            println!(
                "{:<24} {:<6} {:<25} {:<25} status",
                "name", "scope", "created", "last used"
            );
            for k in keys::list(pool).await? {
                let status = match k.revoked_at {
                    Some(t) => format!("revoked {}", rfc3339(t)),
                    None => "active".into(),
                };
                println!(
                    "{:<24} {:<6} {:<25} {:<25} {status}",
                    k.name,
                    k.scope.as_str(),
                    rfc3339(k.created_at),
                    when(k.last_used_at)
                );
            }
        }
        KeysCmd::Revoke { name } => {
            anyhow::ensure!(
                keys::revoke(pool, &name).await?,
                "no active key named {name:?}"
            );
            println!("key {name:?} revoked");
        }
    }
    Ok(())
}

/// Signs `file` like Recoco does and posts it.
async fn send(url: &str, secret: &str, file: &std::path::Path) -> anyhow::Result<()> {
    let body = if file.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)?;
        buf
    } else {
        std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?
    };
    let timestamp = (now_ms() / 1000).to_string();
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header(signature::TIMESTAMP_HEADER, &timestamp)
        .header(
            signature::SIGNATURE_HEADER,
            signature::sign(secret, &timestamp, &body),
        )
        .body(body)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    println!("{status} {}", response.text().await.unwrap_or_default());
    anyhow::ensure!(status.is_success(), "the webhook was refused");
    Ok(())
}
