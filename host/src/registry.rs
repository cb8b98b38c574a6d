//! The plugins this process can run, by name: the connectors shipped inside the
//! binary and the `.wasm` files of the plugins directory (a file overrides a
//! shipped connector of the same name). This module owns those layers and the
//! atomic swap: [`Registry::install`] replaces an `Arc<Plugin>`, so invocations
//! that hold the old one finish on it. Building a plugin from bytes is in
//! [`load`], watching the directory in [`watch`], compiled code on disk in
//! [`cache`].

pub mod cache;
mod load;
pub mod manifest;
mod plugin;
pub mod watch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::Serialize;

use crate::ids::now_ms;
use crate::queue::jobs::{self, Claimed};
use crate::routing::Routing;
use crate::runtime::Runtime;
use crate::store::{self, Pool};
use cache::Cache;
pub use load::LoadError;
pub use manifest::Manifest;
pub use plugin::{check_config, Origin, Plugin};

/// What the listing shows for one plugin.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub hash: String,
    pub origin: Origin,
    pub loaded_at: i64,
    pub from_cache: bool,
    pub description: String,
    pub subscriptions: Vec<String>,
    pub tasks: Vec<manifest::Task>,
    /// The JSON Schema of a connection's config.
    pub config_schema: serde_json::Value,
    pub default_allowed_hosts: Vec<String>,
    pub coalesce: bool,
    /// The `recoco:connector` version it was built against (`0.2.0`, `0.1.0`).
    pub wit_version: String,
    pub authors: Vec<String>,
    pub homepage: Option<String>,
    pub license: Option<String>,
    /// Why the latest content of this plugin's file was refused, while this
    /// version keeps serving.
    pub last_error: Option<String>,
}

/// A refused file, for the listing.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = RefusedPlugin)]
pub struct Failure {
    #[schema(value_type = String)]
    pub path: PathBuf,
    /// SHA-256 of the refused bytes, when they could be read.
    pub hash: Option<String>,
    pub error: String,
    pub at: i64,
}

#[derive(Default)]
struct Layers {
    shipped: HashMap<String, Arc<Plugin>>,
    /// By file path.
    files: HashMap<PathBuf, Arc<Plugin>>,
    /// Effective plugin per name (file over shipped).
    by_name: HashMap<String, Arc<Plugin>>,
    failures: HashMap<PathBuf, Failure>,
}

impl Layers {
    fn rebuild(&mut self) {
        let mut by_name: HashMap<String, Arc<Plugin>> = self.shipped.clone();
        // Files in path order, so two files declaring one name resolve the same way every time.
        let mut files: Vec<_> = self.files.iter().collect();
        files.sort_by(|a, b| a.0.cmp(b.0));
        for (_, plugin) in files {
            by_name.insert(plugin.name().to_string(), plugin.clone());
        }
        self.by_name = by_name;
    }
}

pub struct Registry {
    runtime: Arc<Runtime>,
    pool: Pool,
    /// Compiled code on disk; `None` when no directory is usable.
    cache: Option<Cache>,
    layers: RwLock<Layers>,
    /// Routing of plugins seen before, for routing while one is absent.
    known: RwLock<HashMap<String, Routing>>,
    /// Woken when a plugin (re)appears, so waiting jobs resume.
    wake: Arc<tokio::sync::Notify>,
}

impl Registry {
    pub async fn new(
        runtime: Arc<Runtime>,
        pool: Pool,
        wake: Arc<tokio::sync::Notify>,
        cache: Option<Cache>,
    ) -> anyhow::Result<Self> {
        let mut known = HashMap::new();
        for (name, manifest) in store::plugins::known(&pool).await? {
            if let Ok(m) = serde_json::from_value::<Manifest>(manifest) {
                known.insert(name, Routing::of(&m));
            }
        }
        Ok(Self {
            runtime,
            pool,
            cache,
            layers: Default::default(),
            known: RwLock::new(known),
            wake,
        })
    }

    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// The plugin that runs under `name` now.
    pub fn get(&self, name: &str) -> Option<Arc<Plugin>> {
        self.layers
            .read()
            .expect("registry lock")
            .by_name
            .get(name)
            .cloned()
    }

    /// Subscriptions of `name`, loaded or last seen.
    pub fn subscriptions(&self, name: &str) -> Option<Vec<String>> {
        self.routing(name).map(|r| r.subscriptions)
    }

    /// Routing of `name` (subscriptions, ordering rules), loaded or last seen.
    pub fn routing(&self, name: &str) -> Option<Routing> {
        if let Some(p) = self.get(name) {
            return Some(Routing::of(&p.manifest));
        }
        self.known.read().expect("known lock").get(name).cloned()
    }

    /// Makes `plugin` the current version of its name (and of its file), then
    /// requeues the jobs that were waiting for it.
    pub async fn install(&self, plugin: Arc<Plugin>) {
        let name = plugin.name().to_string();
        {
            let mut layers = self.layers.write().expect("registry lock");
            match &plugin.origin {
                Origin::Shipped => {
                    layers.shipped.insert(name.clone(), plugin.clone());
                }
                Origin::File(path) => {
                    layers.failures.remove(path);
                    layers.files.insert(path.clone(), plugin.clone());
                }
            }
            layers.rebuild();
        }
        self.known
            .write()
            .expect("known lock")
            .insert(name.clone(), Routing::of(&plugin.manifest));
        let manifest = serde_json::to_value(&plugin.manifest).unwrap_or_default();
        if let Err(err) = store::plugins::remember(
            &self.pool,
            &name,
            &plugin.manifest.version,
            &plugin.hash,
            &manifest,
        )
        .await
        {
            tracing::warn!(plugin = %name, error = %err, "cannot remember the plugin's manifest");
        }
        tracing::info!(plugin = %name, version = %plugin.manifest.version, hash = %plugin.short_hash(), origin = ?plugin.origin, from_cache = plugin.from_cache, "plugin loaded");
        self.wake_waiting(&name).await;
    }

    async fn wake_waiting(&self, name: &str) {
        match jobs::wake_waiting(&self.pool, name).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(plugin = %name, jobs = n, "plugin is back; waiting jobs resume");
                self.wake.notify_waiters();
            }
            Err(err) => tracing::warn!(plugin = %name, error = %err, "cannot resume waiting jobs"),
        }
    }

    /// Parks `job` until its plugin is loaded, without using an attempt.
    ///
    /// The plugin may be installed between the caller's failed [`Registry::get`]
    /// and the park; [`Registry::install`] swaps the layers before it wakes the
    /// waiting jobs, so looking again after parking closes that window: either
    /// this look sees the plugin, or install's wake-up sees the parked job.
    pub async fn park_until_loaded(&self, job: &Claimed) -> sqlx::Result<()> {
        jobs::park_waiting(&self.pool, job).await?;
        if self.get(&job.plugin).is_some() {
            self.wake_waiting(&job.plugin).await;
        }
        Ok(())
    }

    /// Forgets the plugin loaded from `path` (and any refusal of it); returns
    /// its name. A shipped connector it overrode serves again; otherwise the
    /// plugin's jobs wait for it.
    pub fn remove_file(&self, path: &Path) -> Option<String> {
        let mut layers = self.layers.write().expect("registry lock");
        layers.failures.remove(path);
        let removed = layers.files.remove(path)?;
        layers.rebuild();
        let name = removed.name().to_string();
        match layers.by_name.get(&name) {
            Some(now) => {
                tracing::info!(plugin = %name, path = %path.display(), now = ?now.origin, "plugin file removed; another version of it serves")
            }
            None => {
                tracing::info!(plugin = %name, path = %path.display(), "plugin file removed; its jobs wait until it comes back")
            }
        }
        Some(name)
    }

    /// Records that the content of `path` (with `hash`, when it could be read)
    /// was refused; any version already loaded from it keeps serving.
    pub fn record_failure(&self, path: &Path, hash: Option<String>, error: &str) {
        let mut layers = self.layers.write().expect("registry lock");
        match layers.files.get(path) {
            Some(serving) => tracing::error!(
                path = %path.display(), error,
                "plugin file refused; version {} ({}) of {} keeps serving",
                serving.manifest.version, serving.short_hash(), serving.name()
            ),
            None => tracing::error!(path = %path.display(), error, "plugin file refused"),
        }
        layers.failures.insert(
            path.to_path_buf(),
            Failure {
                path: path.to_path_buf(),
                hash,
                error: error.to_string(),
                at: now_ms(),
            },
        );
    }

    /// Hash of the latest content of `path` that was looked at: refused or loaded.
    pub fn file_hash(&self, path: &Path) -> Option<String> {
        let layers = self.layers.read().expect("registry lock");
        match layers.failures.get(path) {
            Some(failure) => failure.hash.clone(),
            None => layers.files.get(path).map(|p| p.hash.clone()),
        }
    }

    /// Every file path the registry holds a plugin or a refusal for.
    pub fn file_paths(&self) -> Vec<PathBuf> {
        let layers = self.layers.read().expect("registry lock");
        let mut paths: Vec<PathBuf> = layers.files.keys().cloned().collect();
        paths.extend(layers.failures.keys().cloned());
        paths.sort();
        paths.dedup();
        paths
    }

    /// Every loaded plugin and every refused file.
    pub fn list(&self) -> (Vec<PluginInfo>, Vec<Failure>) {
        let layers = self.layers.read().expect("registry lock");
        let mut plugins: Vec<PluginInfo> = layers
            .by_name
            .values()
            .map(|p| PluginInfo {
                name: p.name().to_string(),
                version: p.manifest.version.clone(),
                hash: p.hash.clone(),
                origin: p.origin.clone(),
                loaded_at: p.loaded_at,
                from_cache: p.from_cache,
                description: p.manifest.description.clone(),
                subscriptions: p.manifest.subscriptions.clone(),
                tasks: p.manifest.tasks.clone(),
                config_schema: p.manifest.config_schema.clone(),
                default_allowed_hosts: p.manifest.default_allowed_hosts.clone(),
                coalesce: p.manifest.coalesce,
                wit_version: p.manifest.wit_version.clone(),
                authors: p.manifest.authors.clone(),
                homepage: p.manifest.homepage.clone(),
                license: p.manifest.license.clone(),
                last_error: match &p.origin {
                    Origin::File(path) => layers.failures.get(path).map(|f| f.error.clone()),
                    Origin::Shipped => None,
                },
            })
            .collect();
        plugins.sort_by(|a, b| a.name.cmp(&b.name));
        let mut failures: Vec<Failure> = layers.failures.values().cloned().collect();
        failures.sort_by(|a, b| a.path.cmp(&b.path));
        (plugins, failures)
    }
}
