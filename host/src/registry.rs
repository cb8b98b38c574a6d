//! The plugins this process can run, by name: the connectors shipped inside the
//! binary and the `.wasm` files of the plugins directory (a file overrides a
//! shipped connector of the same name). Loading compiles off the async threads,
//! validates the component and its manifest, and swaps the new version in
//! atomically: invocations that hold the old `Arc<Plugin>` finish on it.

pub mod manifest;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::ids::now_ms;
use crate::runtime::{ConnectorPre, Label, Runtime, StoreState};
use crate::store::{self, Pool};
pub use manifest::Manifest;

/// Where a plugin came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "path")]
pub enum Origin {
    /// Compiled into the service binary.
    Shipped,
    /// A file of the plugins directory.
    File(PathBuf),
}

/// A loaded, ready-to-run plugin version.
pub struct Plugin {
    pub manifest: Manifest,
    /// SHA-256 of the component bytes, hex: the exact version that runs.
    pub hash: String,
    pub origin: Origin,
    pub loaded_at: i64,
    pub pre: ConnectorPre<StoreState>,
    validator: jsonschema::Validator,
}

impl Plugin {
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// Short hash shown next to the version.
    pub fn short_hash(&self) -> &str {
        &self.hash[..12]
    }

    /// Checks a connection config against the plugin's schema; the error lists
    /// each failing place.
    pub fn validate_config(&self, config: &serde_json::Value) -> Result<(), String> {
        let problems: Vec<String> = self
            .validator
            .iter_errors(config)
            .map(|e| {
                let at = e.instance_path().to_string();
                format!(
                    "{}: {}",
                    if at.is_empty() { "/" } else { &at },
                    without_values(&e.to_string(), e.instance())
                )
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "config does not match the schema of plugin {}: {}",
                self.name(),
                problems.join("; ")
            ))
        }
    }
}

/// The validator's message with the offending strings removed: they may be secrets.
fn without_values(message: &str, instance: &serde_json::Value) -> String {
    fn strings<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
        match v {
            serde_json::Value::String(s) => out.push(s),
            serde_json::Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
            serde_json::Value::Object(map) => map.values().for_each(|i| strings(i, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    strings(instance, &mut found);
    let mut out = message.to_string();
    for s in found.into_iter().filter(|s| !s.is_empty()) {
        out = out.replace(
            &serde_json::Value::String(s.to_string()).to_string(),
            "\"…\"",
        );
    }
    out
}

/// Why a component was refused.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct LoadError(pub String);

/// What the listing shows for one plugin.
#[derive(Debug, Clone, Serialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub hash: String,
    pub origin: Origin,
    pub loaded_at: i64,
    pub description: String,
    pub subscriptions: Vec<String>,
    pub tasks: Vec<manifest::Task>,
    pub last_error: Option<String>,
}

/// A refused file, for the listing.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub path: PathBuf,
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
    layers: RwLock<Layers>,
    /// Subscriptions of plugins seen before, for routing while one is absent.
    known: RwLock<HashMap<String, Vec<String>>>,
    /// Woken when a plugin (re)appears, so waiting jobs resume.
    wake: Arc<tokio::sync::Notify>,
}

impl Registry {
    pub async fn new(
        runtime: Arc<Runtime>,
        pool: Pool,
        wake: Arc<tokio::sync::Notify>,
    ) -> anyhow::Result<Self> {
        let mut known = HashMap::new();
        for (name, manifest) in store::plugins::known(&pool).await? {
            if let Ok(m) = serde_json::from_value::<Manifest>(manifest) {
                known.insert(name, m.subscriptions);
            }
        }
        Ok(Self {
            runtime,
            pool,
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
        if let Some(p) = self.get(name) {
            return Some(p.manifest.subscriptions.clone());
        }
        self.known.read().expect("known lock").get(name).cloned()
    }

    /// Compiles and validates a component; does not install it.
    pub async fn prepare(&self, bytes: Vec<u8>, origin: Origin) -> Result<Arc<Plugin>, LoadError> {
        let hash = hex::encode(Sha256::digest(&bytes));
        let runtime = self.runtime.clone();
        // Compilation takes CPU for up to seconds: keep it off the async threads.
        let pre = tokio::task::spawn_blocking(move || {
            let component = runtime
                .compile(&bytes)
                .map_err(|e| describe_compile_error(&bytes, &e))?;
            runtime
                .pre_instantiate(&component)
                .map_err(|e| format!("not a component of the recoco:connector@0.1.0 world: {e:#}"))
        })
        .await
        .map_err(|e| LoadError(format!("compilation task failed: {e}")))?
        .map_err(LoadError)?;
        let label = Label {
            plugin: format!("<{}>", &hash[..12]),
            connection: String::new(),
        };
        let raw = self
            .runtime
            .read_manifest(&pre, &label)
            .await
            .map_err(|e| LoadError(format!("manifest() failed: {e}")))?;
        let manifest = Manifest::try_from(raw).map_err(LoadError)?;
        let validator = jsonschema::validator_for(&manifest.config_schema).map_err(|e| {
            LoadError(format!(
                "plugin {}: config schema is not a valid JSON Schema: {e}",
                manifest.name
            ))
        })?;
        Ok(Arc::new(Plugin {
            manifest,
            hash,
            origin,
            loaded_at: now_ms(),
            pre,
            validator,
        }))
    }

    /// Makes `plugin` the current version of its name (and of its file).
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
            .insert(name.clone(), plugin.manifest.subscriptions.clone());
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
        match crate::queue::jobs::wake_waiting(&self.pool, &name).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(plugin = %name, jobs = n, "plugin is back; waiting jobs resume");
                self.wake.notify_waiters();
            }
            Err(err) => tracing::warn!(plugin = %name, error = %err, "cannot resume waiting jobs"),
        }
        tracing::info!(plugin = %name, version = %plugin.manifest.version, hash = %plugin.short_hash(), origin = ?plugin.origin, "plugin loaded");
    }

    /// Forgets the plugin loaded from `path`; returns its name.
    pub fn remove_file(&self, path: &Path) -> Option<String> {
        let mut layers = self.layers.write().expect("registry lock");
        layers.failures.remove(path);
        let removed = layers.files.remove(path)?;
        layers.rebuild();
        tracing::info!(plugin = %removed.name(), path = %path.display(), "plugin file removed");
        Some(removed.name().to_string())
    }

    /// Records that `path` was refused; any previous version keeps serving.
    pub fn record_failure(&self, path: &Path, error: &str) {
        tracing::error!(path = %path.display(), error, "plugin refused");
        let mut layers = self.layers.write().expect("registry lock");
        layers.failures.insert(
            path.to_path_buf(),
            Failure {
                path: path.to_path_buf(),
                error: error.to_string(),
                at: now_ms(),
            },
        );
    }

    /// Loads the connectors compiled into the binary.
    pub async fn load_shipped(&self) -> anyhow::Result<()> {
        for (file, bytes) in crate::shipped::COMPONENTS {
            let plugin = self
                .prepare(bytes.to_vec(), Origin::Shipped)
                .await
                .map_err(|e| anyhow::anyhow!("shipped connector {file} is broken: {e}"))?;
            self.install(plugin).await;
        }
        Ok(())
    }

    /// Loads every `*.wasm` of `dir` (a refused file is logged and listed, not fatal).
    pub async fn load_dir(&self, dir: &Path) -> anyhow::Result<()> {
        if !dir.exists() {
            std::fs::create_dir_all(dir)?;
        }
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
            .collect();
        paths.sort();
        for path in paths {
            self.load_file(&path).await;
        }
        Ok(())
    }

    /// Loads one file, recording a failure instead of returning it.
    pub async fn load_file(&self, path: &Path) {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => return self.record_failure(path, &format!("cannot read: {e}")),
        };
        match self.prepare(bytes, Origin::File(path.to_path_buf())).await {
            Ok(plugin) => self.install(plugin).await,
            Err(e) => self.record_failure(path, &e.0),
        }
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
                description: p.manifest.description.clone(),
                subscriptions: p.manifest.subscriptions.clone(),
                tasks: p.manifest.tasks.clone(),
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

/// Says what kind of wrong file it is, which wasmtime's message leaves implicit.
fn describe_compile_error(bytes: &[u8], err: &anyhow::Error) -> String {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return "not a WebAssembly file (bad magic number)".into();
    }
    if bytes[4..8] == [1, 0, 0, 0] {
        return "a core WebAssembly module, not a component: build it for wasm32-wasip2 (or wrap it with `wasm-tools component new`)".into();
    }
    format!("invalid component: {err:#}")
}
