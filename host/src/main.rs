//! The `recoco-sync` command: `serve` (the default) runs the service; the other
//! sub-commands are operator tools. `events`, `jobs`, `task`, `status` and
//! `keys list` act through a running service's admin API when `--url` is given
//! (or `RECOCO_SYNC_URL`), else on the database directly (they then need no
//! running service, work while one runs, and never create a database). Exit
//! codes: see `cli/exit.rs` (0 ok, 1 error, 2 usage, 3 not found, 4 a followed
//! job failed, 5 a followed job outlived `--timeout`).

mod cli;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use recoco_sync::catalog::CatalogHandle;
use recoco_sync::config::{Config, Overrides};
use recoco_sync::ids::now_ms;
use recoco_sync::intake::signature;
use recoco_sync::store;

use cli::backend::{Backend, Db};
use cli::commands::{EventsCmd, JobsCmd, KeysCmd, TaskArgs};
use cli::manage::{ConnectionsCmd, SourcesCmd};
use cli::output::{Out, OutputFormat};
use cli::plugins::PluginsCmd;

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
    /// A running service (`http://127.0.0.1:8000`): `events`, `jobs`, `task`,
    /// `status` and `keys list` then go through its admin API instead of the
    /// database; for `send`, the webhook URL or the service's address.
    #[arg(long, global = true, env = "RECOCO_SYNC_URL")]
    url: Option<String>,
    /// Admin key for `--url` (sent as `Authorization: Bearer`).
    #[arg(
        long,
        global = true,
        env = "RECOCO_SYNC_ADMIN_KEY",
        hide_env_values = true
    )]
    key: Option<String>,
    /// Output: `table` for people, `json` for scripts.
    #[arg(long, short = 'o', global = true, value_enum, default_value = "table")]
    output: OutputFormat,
    /// Same as `-o json`.
    #[arg(long, global = true)]
    json: bool,
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
    /// Check a configuration file, or apply its sources and connections to
    /// the database.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Stored webhook events.
    #[command(subcommand)]
    Events(EventsCmd),
    /// Queued, running and finished jobs.
    #[command(subcommand)]
    Jobs(JobsCmd),
    /// Run a connector task (queued; a running service picks it up).
    Task(TaskArgs),
    /// Sources and connections (secrets redacted), events and jobs counts.
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
    /// Webhook sources: list, show, create, edit, enable, disable, delete,
    /// rotate-secret.
    #[command(subcommand)]
    Sources(SourcesCmd),
    /// Connections: list, show, create, edit, enable, disable, delete,
    /// set-secret.
    #[command(subcommand)]
    Connections(ConnectionsCmd),
    /// Connectors: list, show (manifest and config schema), check FILE,
    /// test PATH (scenarios), new NAME (a connector project).
    #[command(subcommand, alias = "plugin")]
    Plugins(PluginsCmd),
    /// Sign and send a webhook body to a running service (for trying things
    /// out): to `--url` when it is a webhook URL
    /// (`http://127.0.0.1:8000/api/webhook/recoco-prod`), else to the source
    /// `--source` of the service at `--url`.
    Send {
        /// Source code, when `--url` is the service's address.
        #[arg(long)]
        source: Option<String>,
        /// Signing secret of the source.
        #[arg(long, env = "RECOCO_WEBHOOK_SECRET", hide_env_values = true)]
        secret: String,
        /// File holding the JSON body (`-` for stdin).
        file: PathBuf,
    },
    /// Move the whole database to an empty PostgreSQL database, in one
    /// transaction (stop the service first; the source is only read). The
    /// master key (`secret.key` or `secret_key`) goes with the data.
    MigrateData {
        /// The SQLite database (`sqlite://path`).
        #[arg(long)]
        from: String,
        /// The PostgreSQL database (`postgres://user:password@host/db`).
        #[arg(long, env = "RECOCO_MIGRATE_TO", hide_env_values = true)]
        to: String,
    },
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// Parse and validate FILE as `serve` would (environment and `--set`
    /// included); print a summary, or the error with its key and origin.
    Check { file: PathBuf },
    /// Make the database-owned sources and connections match FILE's
    /// `[[sources]]` and `[[connections]]` (entries of the service's own file
    /// are left alone; a differing one is a conflict, exit 6). Prints the plan.
    Apply {
        file: PathBuf,
        /// Also delete the database-owned entries FILE does not declare.
        #[arg(long)]
        prune: bool,
        /// Print the plan only.
        #[arg(long)]
        dry_run: bool,
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
            std::process::ExitCode::from(cli::exit::code_of(&err))
        }
    }
}

/// Whether `command` goes through the admin API when `--url` is given.
fn uses_api(command: &Option<Command>) -> bool {
    matches!(
        command,
        Some(
            Command::Events(_)
                | Command::Jobs(_)
                | Command::Task(_)
                | Command::Status
                | Command::Keys(KeysCmd::List)
                | Command::Sources(_)
                | Command::Connections(_)
                | Command::Plugins(PluginsCmd::List | PluginsCmd::Show { .. })
                | Command::Config(ConfigCmd::Apply { .. })
        )
    )
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn cli_main(cli: Cli) -> anyhow::Result<()> {
    let out = Out::new(cli.output, cli.json);
    if let (Some(url), true) = (&cli.url, uses_api(&cli.command)) {
        // Through the service: no configuration or database needed here.
        let _telemetry = recoco_sync::telemetry::init(&Default::default());
        let client = cli::client::AdminClient::new(url, cli.key.clone())?;
        let backend = Backend::Api(client);
        let command = cli.command.expect("checked by uses_api");
        if let Command::Config(ConfigCmd::Apply { file, .. }) = &command {
            // The file's `${VAR}` secrets come from this environment.
            let declared = declarations_of(file, &Overrides::default())?;
            return runtime()?.block_on(command_on(&backend, command, out, Some(declared)));
        }
        return runtime()?.block_on(command_on(&backend, command, out, None));
    }
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
        None | Some(Command::Migrate { .. }) | Some(Command::Config(ConfigCmd::Check { .. })) => {}
        // The other commands work on the database and never apply the declared
        // sources and connections: their `${VAR}` secrets need not be set.
        Some(_) => overrides.skip_declarations = true,
    }
    if let Some(Command::Config(ConfigCmd::Check { file })) = &cli.command {
        return config_check(file, &overrides);
    }
    let declared = match &cli.command {
        Some(Command::Config(ConfigCmd::Apply { file, .. })) => {
            Some(declarations_of(file, &overrides)?)
        }
        _ => None,
    };
    if let Some(Command::Send {
        source,
        secret,
        file,
    }) = &cli.command
    {
        let url = webhook_url(cli.url.as_deref(), source.as_deref())?;
        return runtime()?.block_on(send(&url, secret, file));
    }
    if let Some(Command::MigrateData { from, to }) = &cli.command {
        // Both databases are named on the command line: no configuration.
        return runtime()?.block_on(migrate_data(from, to, out));
    }
    if let Some(Command::Plugins(cmd @ PluginsCmd::New { .. })) = &cli.command {
        // Writes files only: no configuration, no database.
        return cli::plugins::new(cmd, out);
    }
    let config = Config::load(cli.config.as_deref(), &overrides)?;
    let _telemetry = recoco_sync::telemetry::init(&config.log);
    if let Some(Command::Plugins(PluginsCmd::Test { path, scenario })) = &cli.command {
        // The runtime's limits from the configuration; no database.
        return runtime()?.block_on(cli::plugins::test(&config, path, scenario.as_deref(), out));
    }
    if let Some(Command::Plugins(PluginsCmd::Check { file })) = &cli.command {
        // Needs no database of its own: a scratch one is made and thrown away.
        return runtime()?.block_on(cli::plugins::check(&config, file, out));
    }
    let env: Vec<(String, String)> = std::env::vars().collect();
    for name in recoco_sync::config::ignored_env_vars(&env) {
        tracing::debug!(variable = %name, "not a setting: ignored");
    }
    runtime()?.block_on(async move {
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
            command => operate(config, command, out, declared).await,
        }
    })
}

/// The commands that run on either backend.
async fn command_on(
    backend: &Backend,
    command: Command,
    out: Out,
    declared: Option<recoco_sync::managed::Declarations>,
) -> anyhow::Result<()> {
    match command {
        Command::Events(cmd) => cli::commands::events(backend, cmd, out).await,
        Command::Jobs(cmd) => cli::commands::jobs(backend, cmd, out).await,
        Command::Task(args) => cli::commands::task(backend, args, out).await,
        Command::Status => cli::commands::status(backend, out).await,
        Command::Keys(KeysCmd::List) => cli::commands::keys_list(backend, out).await,
        Command::Sources(cmd) => cli::manage::sources(backend, cmd, out).await,
        Command::Connections(cmd) => cli::manage::connections(backend, cmd, out).await,
        Command::Plugins(cmd) => cli::plugins::plugins(backend, cmd, out).await,
        Command::Config(ConfigCmd::Apply { prune, dry_run, .. }) => {
            let declared = declared.expect("parsed by the caller");
            cli::manage::apply(backend, &declared, prune, dry_run, out).await
        }
        _ => unreachable!("only the commands of uses_api"),
    }
}

/// `send`'s target: `--url` itself when it is a webhook URL, else the webhook
/// of `--source` at the service `--url`.
fn webhook_url(url: Option<&str>, source: Option<&str>) -> anyhow::Result<String> {
    let Some(url) = url else {
        return Err(cli::exit::usage(
            "send needs --url (the webhook URL, or the service's address with --source)",
        ));
    };
    if url.contains("/api/webhook/") {
        return Ok(url.to_string());
    }
    let Some(source) = source else {
        return Err(cli::exit::usage(format!(
            "{url} is not a webhook URL (…/api/webhook/CODE): give --source CODE"
        )));
    };
    let mut parsed = url::Url::parse(url)
        .map_err(|e| cli::exit::usage(format!("--url {url:?} is not a URL: {e}")))?;
    parsed
        .path_segments_mut()
        .map_err(|_| cli::exit::usage(format!("--url {url:?} cannot have a path")))?
        .pop_if_empty()
        .extend(["api", "webhook", source]);
    Ok(parsed.to_string())
}

/// The `[[sources]]` and `[[connections]]` of FILE, read as `serve` reads a
/// configuration (environment and `--set` included, `${VAR}` expanded).
fn declarations_of(
    file: &std::path::Path,
    overrides: &Overrides,
) -> anyhow::Result<recoco_sync::managed::Declarations> {
    let mut overrides = overrides.clone();
    overrides.skip_declarations = false;
    let config = Config::load(Some(file), &overrides)?;
    Ok(recoco_sync::managed::Declarations {
        sources: config.sources,
        connections: config.connections,
    })
}

/// `recoco-sync config check FILE`.
fn config_check(file: &std::path::Path, overrides: &Overrides) -> anyhow::Result<()> {
    let config = Config::load(Some(file), overrides)?;
    let invalid = runtime()?.block_on(invalid_connections(&config))?;
    if !invalid.is_empty() {
        let lines: Vec<String> = invalid
            .iter()
            .map(|(name, why)| format!("  connection {name:?}: {why}"))
            .collect();
        anyhow::bail!(
            "{}: {} connection config(s) fail their plugin's schema:\n{}",
            file.display(),
            invalid.len(),
            lines.join("\n")
        );
    }
    println!(
        "{} is valid: listen {}, database {}, {} source(s), {} connection(s)",
        file.display(),
        config.listen,
        store::postgres::redacted_database_url(&config.database_url),
        config.sources.len(),
        config.connections.len()
    );
    Ok(())
}

/// The connections of `config` whose config fails their plugin's schema, as
/// `serve` would find them: the service is started on a scratch database
/// (shipped connectors and the plugins directory loaded), which is then
/// thrown away, so checking creates and changes nothing of the real one.
async fn invalid_connections(config: &Config) -> anyhow::Result<Vec<(String, String)>> {
    let scratch = tempfile::tempdir().context("cannot make a scratch directory")?;
    let mut trial = config.clone();
    trial.database_url = format!("sqlite://{}", scratch.path().join("check.db").display());
    trial.secret_key = None;
    trial.secret_key_file = scratch.path().join("secret.key");
    let service = recoco_sync::Service::start(trial).await?;
    Ok(recoco_sync::connection_check::invalid_connections(
        &service.catalog.get(),
        &service.registry,
    ))
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

/// `migrate-data`: tables as they are copied (stderr), then the counts.
async fn migrate_data(from: &str, to: &str, out: Out) -> anyhow::Result<()> {
    let report = recoco_sync::migrate_data::migrate(from, to, |done| {
        eprintln!("copied {} ({} rows)", done.table, done.rows);
    })
    .await?;
    let shown = store::postgres::redacted(to);
    out.print(&serde_json::to_value(&report)?, || {
        let rows = report
            .tables
            .iter()
            .map(|t| vec![t.table.clone(), t.rows.to_string()])
            .collect();
        cli::output::table(&["table", "rows"], rows, "tables")
    })?;
    eprintln!(
        "moved {} rows to {shown} in {:.1} s; point database_url at it, and keep the \
         secret key (secret.key or secret_key) with the data: the secrets stay sealed under it",
        report.rows,
        report.elapsed_ms as f64 / 1000.0
    );
    Ok(())
}

fn parse_set(s: &str) -> Result<(String, String), String> {
    let (key, value) = s.split_once('=').ok_or("expected KEY=VALUE")?;
    Ok((key.trim().to_string(), value.to_string()))
}

/// Sub-commands that work on the database.
async fn operate(
    config: Config,
    command: Command,
    out: Out,
    declared: Option<recoco_sync::managed::Declarations>,
) -> anyhow::Result<()> {
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
    let backend = Backend::Db(Db {
        pool: pool.clone(),
        catalog,
        max_attempts,
    });
    let Backend::Db(db) = &backend else {
        unreachable!()
    };
    let result = match command {
        Command::Migrate { .. } => {
            db.catalog.apply_config(&config).await?;
            println!(
                "database {} is up to date",
                store::postgres::redacted_database_url(&config.database_url)
            );
            Ok(())
        }
        command @ (Command::Events(_)
        | Command::Jobs(_)
        | Command::Task(_)
        | Command::Status
        | Command::Keys(KeysCmd::List)
        | Command::Sources(_)
        | Command::Connections(_)
        | Command::Plugins(PluginsCmd::List | PluginsCmd::Show { .. })
        | Command::Config(ConfigCmd::Apply { .. })) => {
            command_on(&backend, command, out, declared).await
        }
        Command::Keys(cmd) => keys_command(&pool, cmd).await,
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
            Ok(())
        }
        Command::Serve { .. }
        | Command::Send { .. }
        | Command::MigrateData { .. }
        | Command::Config(_)
        | Command::Plugins(
            PluginsCmd::Check { .. } | PluginsCmd::Test { .. } | PluginsCmd::New { .. },
        ) => {
            unreachable!("handled by main")
        }
    };
    pool.close().await;
    result
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
        KeysCmd::List => unreachable!("on either backend"),
        KeysCmd::Revoke { name } => {
            if !keys::revoke(pool, &name).await? {
                return Err(cli::exit::not_found(format!(
                    "no active key named {name:?}"
                )));
            }
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
