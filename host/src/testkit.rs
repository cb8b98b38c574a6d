//! `recoco-sync plugin test`: runs a connector component against a scenario
//! without a service. The component is compiled, linked and its manifest
//! checked exactly as the loader does (same engine settings, both WIT
//! versions); the host imports are faked from the scenario ([`fake`]); each
//! step's outcome, requests, state and scheduled tasks are compared with what
//! the scenario expects.

pub mod fake;
pub mod scenario;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use serde::Serialize;
use wasmtime::component::{Component, Linker};
use wasmtime::{Store, StoreLimitsBuilder};

use crate::config::RuntimeConfig;
use crate::outbound::allow::{resolve_defaults, AllowList};
use crate::registry::Manifest;
use crate::runtime::bindings::{types, ConnectorPre};
use crate::runtime::engine;
use fake::KitState;
use scenario::{contains, EventSpec, Expect, Scenario, Step};

/// What one scenario gave.
#[derive(Debug, Serialize)]
pub struct ScenarioReport {
    pub scenario: String,
    pub component: String,
    pub plugin: String,
    pub wit_version: String,
    /// Size of the component file.
    pub size_bytes: u64,
    /// Compiling the component to native code (Cranelift, no cache).
    pub compile_ms: f64,
    /// Instantiating it and reading its manifest: the fixed cost of every
    /// invocation (the host instantiates afresh each time).
    pub manifest_us: u64,
    pub steps: Vec<StepReport>,
}

impl ScenarioReport {
    pub fn passed(&self) -> bool {
        self.steps.iter().all(|s| s.passed)
    }
}

#[derive(Debug, Serialize)]
pub struct StepReport {
    pub name: String,
    pub passed: bool,
    /// `ok`, `retry` or `fail`.
    pub outcome: String,
    /// The summary, or the error message.
    pub message: String,
    pub elapsed_us: u64,
    pub problems: Vec<String>,
    /// What the connector logged (shown when the step fails).
    pub log: Vec<String>,
}

/// The scenario files `target` names: a directory's `tests/*.toml` (or its own
/// `*.toml` when it has no `tests/`), or one file.
pub fn scenario_files(target: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !target.is_dir() {
        return Ok(vec![target.to_path_buf()]);
    }
    let dir = if target.join("tests").is_dir() {
        target.join("tests")
    } else {
        target.to_path_buf()
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    anyhow::ensure!(
        !files.is_empty(),
        "no scenario (*.toml) in {}",
        dir.display()
    );
    Ok(files)
}

/// Compiles the component once per scenario (scenarios are few; a test kit
/// favours the loader's exact path over speed).
pub struct Kit {
    engine: wasmtime::Engine,
    linker: Linker<KitState>,
    config: RuntimeConfig,
}

impl Kit {
    pub fn new(config: &RuntimeConfig) -> anyhow::Result<Self> {
        let (engine, linker) = crate::runtime::engine_and_linker(config)?;
        Ok(Self {
            engine,
            linker,
            config: config.clone(),
        })
    }

    fn store(&self, state: KitState) -> Store<KitState> {
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(engine::ticks(self.config.deadline));
        store
    }

    fn limits(&self) -> wasmtime::StoreLimits {
        StoreLimitsBuilder::new()
            .memory_size(self.config.memory_limit)
            .build()
    }

    /// Runs the scenario at `path`, with `component` instead of the one it names.
    pub async fn run(
        &self,
        path: &Path,
        component: Option<&Path>,
    ) -> anyhow::Result<ScenarioReport> {
        let scenario = Scenario::load(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        let wasm = match (component, &scenario.component) {
            (Some(c), _) => c.to_path_buf(),
            (None, Some(c)) => base.join(c),
            (None, None) => anyhow::bail!(
                "{} names no `component` (give the .wasm file on the command line)",
                path.display()
            ),
        };
        let bytes = std::fs::read(&wasm).with_context(|| {
            format!(
                "cannot read the component {} (is it built?)",
                wasm.display()
            )
        })?;
        let size_bytes = bytes.len() as u64;
        let compiling = Instant::now();
        let compiled = Component::from_binary(&self.engine, &bytes)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("{} is not a WebAssembly component", wasm.display()))?;
        let pre = self
            .linker
            .instantiate_pre(&compiled)
            .map_err(anyhow::Error::from)
            .and_then(ConnectorPre::new)
            .with_context(|| format!("{} cannot be linked", wasm.display()))?;
        let compile_ms = compiling.elapsed().as_secs_f64() * 1000.0;

        // The manifest, checked as the loader checks it; no imports allowed.
        let mut store = self.store(KitState::new(
            self.limits(),
            AllowList::default(),
            BTreeMap::new(),
        ));
        let reading = Instant::now();
        let raw = pre
            .manifest(&mut store)
            .await
            .map_err(|e| anyhow::anyhow!("manifest() failed: {e:#}"))?;
        let manifest_us = reading.elapsed().as_micros() as u64;
        let mut manifest = Manifest::try_from(raw).map_err(anyhow::Error::msg)?;
        manifest.wit_version = pre.wit_version().to_string();
        let validator = jsonschema::validator_for(&manifest.config_schema).map_err(|e| {
            anyhow::anyhow!(
                "plugin {}: config schema is not a valid JSON Schema: {e}",
                manifest.name
            )
        })?;
        let config = scenario
            .connection
            .config
            .clone()
            .unwrap_or_else(|| serde_json::json!({}));
        crate::registry::check_config(&manifest.name, &validator, &manifest.config_schema, &config)
            .map_err(|e| anyhow::anyhow!("{}: [connection] {e}", path.display()))?;
        let hosts = scenario
            .connection
            .allowed_hosts
            .clone()
            .unwrap_or_else(|| resolve_defaults(&manifest.default_allowed_hosts, &config));
        let allow = AllowList::parse(&hosts)
            .map_err(|e| anyhow::anyhow!("{}: allowed hosts: {e}", path.display()))?;

        let connection = scenario
            .connection
            .name
            .clone()
            .unwrap_or_else(|| "test".into());
        let source = scenario
            .connection
            .source
            .clone()
            .unwrap_or_else(|| "test".into());
        let mut state = scenario.state.clone();
        let mut steps = Vec::new();
        for (i, step) in scenario.steps.iter().enumerate() {
            let ctx = types::Context {
                config: config.to_string(),
                connection: connection.clone(),
                source: source.clone(),
                job_id: format!("job_test_{}", i + 1),
                attempt: step.attempt.unwrap_or(1),
            };
            let mut kit = KitState::new(self.limits(), allow.clone(), std::mem::take(&mut state));
            kit.in_step = true;
            kit.http = step.http.iter().cloned().collect();
            kit.source_api = step.source_api.iter().cloned().collect();
            let mut store = self.store(kit);
            let started = Instant::now();
            let result = match (&step.event, &step.task) {
                (Some(spec), _) => {
                    let event = event_of(spec, base, &source, i + 1)?;
                    pre.handle_event(&mut store, &ctx, &event).await
                }
                (None, Some(task)) => {
                    let payload = step
                        .payload
                        .as_ref()
                        .map(|p| p.to_string())
                        .unwrap_or_else(|| "{}".into());
                    pre.run_task(&mut store, &ctx, task, &payload).await
                }
                (None, None) => unreachable!("checked by Scenario::load"),
            };
            let elapsed_us = started.elapsed().as_micros() as u64;
            let kit = store.into_data();
            let report = judge(step, i, result, kit, elapsed_us, &mut state);
            steps.push(report);
        }
        Ok(ScenarioReport {
            scenario: path.display().to_string(),
            component: wasm.display().to_string(),
            plugin: format!("{} {}", manifest.name, manifest.version),
            wit_version: manifest.wit_version,
            size_bytes,
            compile_ms,
            manifest_us,
            steps,
        })
    }
}

/// The event a step sends, as the host would store and route it.
fn event_of(spec: &EventSpec, base: &Path, source: &str, n: usize) -> anyhow::Result<types::Event> {
    let payload = match spec {
        EventSpec::File(file) => {
            let path = base.join(file);
            std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read the event {}", path.display()))?
        }
        EventSpec::Inline { topic, object } => serde_json::json!({
            "topic": topic,
            "object": object,
            "object_type": topic.split('/').next().unwrap_or(topic),
            "webhook_uuid": uuid::Uuid::new_v4().to_string(),
        })
        .to_string(),
    };
    // Indexed as intake indexes a received webhook.
    let envelope = crate::intake::envelope::parse(payload.as_bytes())
        .map_err(|e| anyhow::anyhow!("the event is not a Recoco webhook body: {e}"))?;
    Ok(types::Event {
        id: format!("evt_test_{n}"),
        source: source.to_string(),
        object_type: envelope.object_type,
        action: envelope.action.unwrap_or_default(),
        topic: envelope.topic,
        object_id: envelope.object_id,
        payload,
        received_at: crate::ids::rfc3339(crate::ids::now_ms()),
    })
}

/// Compares what a step did with what the scenario expects; hands the state on.
fn judge(
    step: &Step,
    index: usize,
    result: wasmtime::Result<Result<String, types::Error>>,
    kit: KitState,
    elapsed_us: u64,
    state: &mut BTreeMap<String, String>,
) -> StepReport {
    let mut problems = kit.problems;
    let (outcome, message) = match result {
        Ok(Ok(summary)) => (Expect::Ok, summary),
        Ok(Err(e)) if e.retryable => (Expect::Retry, e.message),
        Ok(Err(e)) => (Expect::Fail, e.message),
        // The host fails a job whose connector traps, without retry.
        Err(trap) => (Expect::Fail, format!("trapped: {trap:#}")),
    };
    if outcome != step.expect {
        problems.push(format!(
            "expected outcome {}, got {}: {message}",
            step.expect.word(),
            outcome.word()
        ));
    }
    if let Some(part) = &step.summary {
        if !message.contains(part.as_str()) {
            problems.push(format!("the message {message:?} does not contain {part:?}"));
        }
    }
    for left in kit.http.iter() {
        problems.push(format!(
            "expected http request {} {} was not sent",
            left.method.to_ascii_uppercase(),
            left.target()
        ));
    }
    for left in kit.source_api.iter() {
        problems.push(format!(
            "expected source_api request {} {} was not sent",
            left.method.to_ascii_uppercase(),
            left.target()
        ));
    }
    if let Some(expected) = &step.state {
        for (key, want) in expected {
            let got = kit.state.get(key);
            let same = match (got, want) {
                (None, _) => false,
                (Some(g), serde_json::Value::String(w)) => g == w,
                (Some(g), w) => serde_json::from_str::<serde_json::Value>(g)
                    .is_ok_and(|g| contains(&g, w) && contains(w, &g)),
            };
            if !same {
                problems.push(format!(
                    "state {key:?} is {}, expected {want}",
                    got.map(|g| format!("{g:?}"))
                        .unwrap_or_else(|| "absent".into())
                ));
            }
        }
    }
    if let Some(expected) = &step.scheduled {
        let got: Vec<String> = kit.scheduled.iter().map(|t| t.name.clone()).collect();
        let matches = expected.len() == kit.scheduled.len()
            && expected.iter().zip(&kit.scheduled).all(|(e, t)| {
                e.name == t.name
                    && e.dedup_key
                        .as_ref()
                        .is_none_or(|k| t.dedup_key.as_ref() == Some(k))
                    && e.payload.as_ref().is_none_or(|p| {
                        serde_json::from_str::<serde_json::Value>(&t.payload)
                            .is_ok_and(|got| contains(&got, p))
                    })
            });
        if !matches {
            problems.push(format!(
                "scheduled {got:?}, expected {:?}",
                expected.iter().map(|e| e.name.as_str()).collect::<Vec<_>>()
            ));
        }
    }
    *state = kit.state;
    StepReport {
        name: step
            .name
            .clone()
            .unwrap_or_else(|| format!("step {}", index + 1)),
        passed: problems.is_empty(),
        outcome: outcome.word().to_string(),
        message,
        elapsed_us,
        problems,
        log: kit.log,
    }
}
