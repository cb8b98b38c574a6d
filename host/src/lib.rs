//! recoco-sync: receives Recoco webhooks, stores every one, queues the work, and
//! runs sandboxed WebAssembly connectors that synchronise the data elsewhere.
//!
//! [`Service::start`] assembles the parts; the data path is
//! [`intake`] → [`store`] + [`queue`] → [`queue::worker`] → [`runtime`] →
//! [`outbound`] / [`source_api`]. Dependencies point down only.

pub mod admin;
pub mod alerts;
pub mod catalog;
pub mod config;
pub mod connection_check;
pub mod filter;
pub mod flow;
pub mod health;
pub mod ids;
pub mod intake;
pub mod managed;
pub mod metrics;
pub mod migrate_data;
pub mod outbound;
pub mod pacing;
pub mod queue;
pub mod registry;
pub mod replicas;
pub mod routing;
pub mod runtime;
pub mod scaffold;
pub mod secrets;
pub mod shipped;
pub mod source_api;
pub mod store;
pub mod telemetry;
pub mod testkit;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use catalog::CatalogHandle;
use config::Config;
use intake::{EventSink, EventWriter, IntakeState};
use outbound::OutboundClient;
use registry::Registry;
use runtime::{HostServices, Runtime};
use source_api::SourceApi;

/// How often the catalog checks for changes made by other processes.
const CATALOG_REFRESH: Duration = Duration::from_secs(2);

/// Installs the process-wide TLS provider (reqwest is built without one).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Everything a running service holds.
pub struct Service {
    pub config: Config,
    pub pool: store::Pool,
    pub catalog: Arc<CatalogHandle>,
    pub registry: Arc<Registry>,
    pub runtime: Arc<Runtime>,
    /// Wakes idle workers when jobs are queued.
    pub wake: Arc<Notify>,
    pub shutdown: CancellationToken,
    /// Per-connection concurrency, rate limits and circuit breakers.
    pub flow: Arc<flow::FlowControl>,
    /// Intake's pacing against delivery (fed by the workers).
    pub pacing: Arc<pacing::Pacing>,
    /// The queue workers, once spawned (checked by `/readyz`).
    pub workers: Arc<health::Workers>,
    /// On SQLite, the connection intake's writer and the queue's thread
    /// share (opened by the first of them).
    write_turn: std::sync::OnceLock<Arc<store::write_turn::WriteTurn>>,
}

impl Service {
    /// Opens the database (migrating it), applies the configured sources and
    /// connections, loads the shipped and directory plugins.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        install_crypto_provider();
        let pool = store::open_with(&config.database_url, config.storage.wal_max_bytes).await?;
        let sealer = secrets::open_checked(
            &pool,
            &secrets::KeySource {
                hex_key: config.secret_key.as_deref(),
                key_file: &config.secret_key_file,
            },
        )
        .await?;
        let catalog = Arc::new(CatalogHandle::load(pool.clone(), sealer).await?);
        catalog
            .apply_config(&config)
            .await
            .context("cannot apply the sources and connections of the configuration")?;
        let flow = Arc::new(flow::FlowControl::new(&config.queue));
        queue_setup(&pool, &config, &flow).await?;
        // Connections marked removed by the setup.
        catalog.reload().await?;
        let wake = Arc::new(Notify::new());
        let outbound = OutboundClient::new(&config.outbound)?;
        let services = Arc::new(HostServices {
            pool: pool.clone(),
            outbound: outbound.clone(),
            source_api: SourceApi::new(outbound),
            max_attempts: config.queue.max_attempts,
            wake: wake.clone(),
            flow: flow.clone(),
        });
        let runtime = Arc::new(Runtime::new(&config.runtime, services)?);
        runtime.set_connection_limits(connection_limits(&catalog.get()));
        let cache = open_plugin_cache(&config, &runtime);
        let registry =
            Arc::new(Registry::new(runtime.clone(), pool.clone(), wake.clone(), cache).await?);
        registry.load_shipped().await?;
        registry
            .load_dir(&config.plugins_dir)
            .await
            .with_context(|| {
                format!(
                    "cannot read the plugins directory {}",
                    config.plugins_dir.display()
                )
            })?;
        let pacing = Arc::new(pacing::Pacing::from_config(&config.intake));
        let service = Self {
            config,
            pool,
            catalog,
            registry,
            runtime,
            wake,
            shutdown: CancellationToken::new(),
            flow,
            pacing,
            workers: Arc::default(),
            write_turn: std::sync::OnceLock::new(),
        };
        service.check_connections();
        // Jobs parked for a config fixed in the file since the last run.
        connection_check::wake_fixed(&service.pool, &service.catalog.get(), &service.registry)
            .await;
        Ok(service)
    }

    /// Warns about connections that cannot run as configured.
    fn check_connections(&self) {
        for c in self.catalog.get().connections() {
            match self.registry.get(&c.plugin) {
                None => {
                    tracing::warn!(connection = %c.name, plugin = %c.plugin, "plugin not loaded: the connection's jobs will wait for it")
                }
                Some(p) => {
                    if let Err(problem) = p.validate_config(&c.config) {
                        let reason =
                            connection_check::described(c, &p.manifest.config_schema, &problem);
                        tracing::error!(connection = %c.name, "connection invalid: {reason}; its jobs wait until the config is fixed");
                    }
                }
            }
        }
    }

    /// Intake, admin API and page, health check.
    pub fn router(&self, sink: EventSink) -> Router {
        let health = health::router(
            self.catalog.clone(),
            self.registry.clone(),
            self.pool.clone(),
            sink.clone(),
            self.workers.clone(),
        );
        let intake = intake::router(IntakeState {
            catalog: self.catalog.clone(),
            registry: self.registry.clone(),
            sink,
            pacing: self.pacing.clone(),
            config: self.config.intake.clone(),
            max_attempts: self.config.queue.max_attempts,
        });
        let admin = admin::router(admin::AdminState {
            pool: self.pool.clone(),
            catalog: self.catalog.clone(),
            registry: self.registry.clone(),
            wake: self.wake.clone(),
            token: self.config.admin_token.clone(),
            max_attempts: self.config.queue.max_attempts,
            flow: self.flow.clone(),
            runtime: self.runtime.clone(),
            admin: self.config.admin.clone(),
        });
        Router::new()
            .merge(health)
            .merge(intake.layer(axum::middleware::from_fn(metrics::track_intake)))
            .merge(metrics::router(self.pool.clone()))
            .merge(admin.layer(axum::middleware::from_fn(telemetry::access_log)))
            // No route answers this service's own connectors (issue 10).
            .layer(axum::middleware::from_fn_with_state(
                self.runtime.outbound().guard().clone(),
                outbound::guard::refuse_own_requests,
            ))
            .layer(tower_http::trace::TraceLayer::new_for_http())
    }

    /// The SQLite connection intake's writer and the queue's thread share.
    pub fn write_turn(&self) -> anyhow::Result<Arc<store::write_turn::WriteTurn>> {
        if let Some(turn) = self.write_turn.get() {
            return Ok(turn.clone());
        }
        let database = self
            .config
            .sqlite_path()
            .context("the intake writer and the queue need a SQLite file")?;
        let turn = Arc::new(store::write_turn::WriteTurn::open(&database)?);
        Ok(self.write_turn.get_or_init(|| turn).clone())
    }

    /// The durable event sink (the group-commit writer thread).
    pub fn event_writer(&self) -> anyhow::Result<EventSink> {
        if let store::Pool::Postgres(_) = &self.pool {
            return Ok(EventSink::Store(EventWriter::start_postgres(
                self.pool.clone(),
                self.config.intake.max_batch,
                self.wake.clone(),
            )));
        }
        let database = self
            .config
            .sqlite_path()
            .context("the intake writer needs a SQLite file")?;
        Ok(EventSink::Store(EventWriter::start(
            &database,
            self.config.intake.max_batch,
            self.config.storage.wal_max_bytes,
            self.wake.clone(),
            self.write_turn()?,
        )?))
    }

    /// Starts the workers, the plugins directory watcher and background loops.
    pub fn spawn_background(&self) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
        self.spawn_background_at(None)
    }

    /// [`Self::spawn_background`], this replica's heartbeat giving `listen`.
    pub fn spawn_background_at(
        &self,
        listen: Option<SocketAddr>,
    ) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
        let db = match &self.pool {
            store::Pool::Postgres(_) => {
                queue::db::QueueDb::start_postgres(self.pool.clone(), self.flow.clone())
            }
            store::Pool::Sqlite(_) => {
                let database = self
                    .config
                    .sqlite_path()
                    .context("the queue needs a SQLite file")?;
                queue::db::QueueDb::start(
                    &database,
                    self.config.storage.wal_max_bytes,
                    self.flow.clone(),
                    self.write_turn()?,
                )?
            }
        };
        let workers = Arc::new(queue::worker::Workers {
            pool: self.pool.clone(),
            catalog: self.catalog.clone(),
            registry: self.registry.clone(),
            runtime: self.runtime.clone(),
            queue: self.config.queue.clone(),
            limits: self.config.runtime.clone(),
            wake: self.wake.clone(),
            shutdown: self.shutdown.clone(),
            flow: self.flow.clone(),
            pacing: self.pacing.clone(),
            db,
        });
        let mut handles = workers.spawn();
        self.workers.watch(&handles);
        handles.push(queue::schedules::spawn(
            self.pool.clone(),
            self.wake.clone(),
            self.config.queue.max_attempts,
            self.shutdown.clone(),
        ));
        handles.extend(store::maintenance::spawn(
            self.pool.clone(),
            store::maintenance::Limits {
                database: self.config.sqlite_path(),
                wal_max_bytes: self.config.storage.wal_max_bytes,
                retention: Some(self.config.storage.retention).filter(|r| !r.is_zero()),
            },
            self.shutdown.clone(),
        ));
        handles.push(alerts::spawn(
            self.pool.clone(),
            self.flow.clone(),
            self.config.alerts.clone(),
            self.shutdown.clone(),
        ));
        handles.push(registry::watch::spawn(
            self.registry.clone(),
            self.config.plugins_dir.clone(),
            self.shutdown.clone(),
        ));
        if let store::Pool::Postgres(pg) = &self.pool {
            handles.push(tokio::spawn(store::postgres::listen_for_jobs(
                pg.clone(),
                self.wake.clone(),
                self.shutdown.clone(),
            )));
        }
        handles.push(replicas::spawn(
            self.pool.clone(),
            self.registry.clone(),
            listen.map(|a| a.to_string()),
            self.config.queue.replica_timeout,
            self.shutdown.clone(),
        ));
        let (catalog, shutdown) = (self.catalog.clone(), self.shutdown.clone());
        let (runtime, flow, wake, registry) = (
            self.runtime.clone(),
            self.flow.clone(),
            self.wake.clone(),
            self.registry.clone(),
        );
        handles.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(CATALOG_REFRESH) => {}
                    _ = shutdown.cancelled() => return,
                }
                match catalog.refresh_if_changed().await {
                    Ok(true) => follow_catalog(&catalog, &registry, &runtime, &flow, &wake).await,
                    Ok(false) => {}
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot refresh sources and connections")
                    }
                }
            }
        }));
        Ok(handles)
    }

    /// Serves on `listener` until the shutdown token fires, then waits for
    /// running jobs (up to their lease) to finish.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> anyhow::Result<()> {
        let addr = listener.local_addr()?;
        self.runtime.outbound().guard().add_listen_address(addr);
        let router = self.router(self.event_writer()?);
        let background = self.spawn_background_at(Some(addr))?;
        tracing::info!(%addr, "recoco-sync listening");
        let shutdown = self.shutdown.clone();
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .context("HTTP server failed")?;
        // Running jobs get a grace period; one still running after it is stopped
        // and runs again after its lease expires (nothing is lost).
        let deadline = tokio::time::Instant::now() + self.config.queue.shutdown_grace;
        for handle in background {
            let abort = handle.abort_handle();
            if tokio::time::timeout_at(deadline, handle).await.is_err() {
                abort.abort();
            }
        }
        // Jobs cut by the grace period are queued again now, not after their lease.
        match queue::recovery::release_own(&self.pool).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(jobs = n, "jobs still running at shutdown are queued again"),
            Err(err) => tracing::warn!(error = %err, "cannot requeue the jobs still running"),
        }
        self.pool.close().await;
        Ok(())
    }
}

/// The queue's part of the start: connections no longer declared are marked
/// removed, delivery policies and schedules stored, pending jobs brought in
/// line with the connections, and a dead predecessor's leases released.
async fn queue_setup(
    pool: &store::Pool,
    config: &Config,
    flow: &flow::FlowControl,
) -> anyhow::Result<()> {
    let declared: Vec<String> = config.connections.iter().map(|c| c.name.clone()).collect();
    for name in store::connections::mark_removed(pool, &declared).await? {
        tracing::warn!(connection = %name, "connection no longer declared: it receives no new events and its pending jobs pause");
    }
    queue::policy::apply(pool, &config.connections).await?;
    queue::schedules::apply(pool, &config.connections).await?;
    flow.set_policies(queue::policy::load(pool).await?);
    queue::jobs::reconcile(pool).await?;
    queue::recovery::release_predecessors(pool).await?;
    Ok(())
}

/// The quotas of each connection, from the catalog (file and database ones).
fn connection_limits(
    catalog: &catalog::Catalog,
) -> std::collections::HashMap<String, config::ConnectionLimits> {
    catalog
        .connections()
        .map(|c| (c.name.clone(), c.limits.clone()))
        .collect()
}

/// After the catalog's snapshot changed (a change made here, reloaded by the
/// caller, or one by another process): its quotas, paused or resumed jobs,
/// delivery policies, and the jobs parked for a config now fixed.
pub async fn follow_catalog(
    catalog: &CatalogHandle,
    registry: &Registry,
    runtime: &Runtime,
    flow: &flow::FlowControl,
    wake: &Notify,
) {
    let snapshot = catalog.get();
    runtime.set_connection_limits(connection_limits(&snapshot));
    queue_follow_catalog(catalog.pool(), flow, wake).await;
    connection_check::wake_fixed(catalog.pool(), &snapshot, registry).await;
}

/// After sources or connections changed: pause or resume their jobs, reload
/// their delivery policies.
pub async fn queue_follow_catalog(pool: &store::Pool, flow: &flow::FlowControl, wake: &Notify) {
    match queue::jobs::reconcile(pool).await {
        Ok(0) => {}
        Ok(n) => {
            tracing::info!(jobs = n, "paused jobs resume");
            wake.notify_waiters();
        }
        Err(err) => tracing::warn!(error = %err, "cannot pause or resume jobs"),
    }
    match queue::policy::load(pool).await {
        Ok(policies) => flow.set_policies(policies),
        Err(err) => tracing::warn!(error = %format!("{err:#}"), "cannot load delivery policies"),
    }
}

/// The compiled-plugin cache, or none (with a warning) when its directory is
/// unusable: the service then compiles every plugin, slower but correct.
fn open_plugin_cache(config: &Config, runtime: &Runtime) -> Option<registry::cache::Cache> {
    let dir = config.plugin_cache_path()?;
    match registry::cache::Cache::open(&dir, runtime.engine()) {
        Ok(cache) => Some(cache),
        Err(err) => {
            tracing::warn!(error = %format!("{err:#}"), "plugin cache disabled");
            None
        }
    }
}

/// Runs the service on its configured address until SIGINT or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let listen = config.listen;
    let service = Service::start(config).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let shutdown = service.shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: finishing running jobs");
        shutdown.cancel();
    });
    service.serve(listener).await
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
