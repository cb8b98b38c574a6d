//! `plugins list | show NAME | check FILE | test PATH | new NAME`: the
//! connectors a service runs (or last ran, on the database), their manifest
//! and config schema, the check of a component file exactly as the hot-swap
//! loader makes it, the test kit's scenarios, and a new connector project.

use anyhow::Context as _;
use clap::Subcommand;
use serde_json::{json, Value};

use recoco_sync::config::Config;
use recoco_sync::replicas;
use recoco_sync::store::replicas::Replica;

use super::backend::Backend;
use super::exit;
use super::output::{cell, fields, table, Out};

#[derive(Subcommand)]
pub enum PluginsCmd {
    /// The loaded plugins (through `--url`), or those the database knows.
    List,
    /// One plugin's manifest: subscriptions, tasks, default hosts, config schema.
    Show { name: String },
    /// Load FILE as the plugins directory's loader does (compile, world,
    /// manifest, schema) without installing it; print what it declares.
    /// Exit 1 with the loader's reason when it would be refused.
    Check { file: std::path::PathBuf },
    /// Run a connector against scenario files, with the host imports faked
    /// from them (no service, no network): PATH is a project directory (its
    /// `tests/*.toml`), a scenario file, or a component with `--scenario`.
    /// Exit 1 when a step fails.
    Test {
        path: std::path::PathBuf,
        /// The scenario to run the component PATH against.
        #[arg(long)]
        scenario: Option<std::path::PathBuf>,
    },
    /// Write a new connector project (handler, WIT, build script, README,
    /// test scenario) in DIR, by default ./NAME.
    New {
        name: String,
        #[arg(long, value_enum, default_value = "rust")]
        lang: recoco_sync::scaffold::Lang,
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        /// Rust: depend on the SDK at this path instead of crates.io.
        #[arg(long)]
        sdk_path: Option<std::path::PathBuf>,
    },
}

/// The plugins as the API lists them; on the database, from the stored
/// manifests. Each says which version every up replica serves
/// (`served_by`, and `replicas`: `{id, version, hash}`).
async fn listed(backend: &Backend) -> anyhow::Result<Vec<Value>> {
    let (mut plugins, replicas) = match backend {
        Backend::Api(api) => {
            let answer = api.get(&["plugins"], &[]).await?;
            let plugins = answer["plugins"].as_array().cloned().unwrap_or_default();
            let replicas: Vec<Replica> = answer["replicas"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| serde_json::from_value(r.clone()).ok())
                .collect();
            (plugins, replicas)
        }
        Backend::Db(db) => {
            let rows: Vec<(String, String, String, String)> = crate::store::sql::query_as(
                "SELECT name, version, hash, manifest FROM plugins ORDER BY name",
            )
            .fetch_all(&db.pool)
            .await?;
            let plugins = rows
                .into_iter()
                .map(|(name, version, hash, manifest)| {
                    let mut v: Value = serde_json::from_str(&manifest).unwrap_or_else(
                        |e| json!({"problem": format!("stored manifest does not parse: {e}")}),
                    );
                    v["name"] = json!(name);
                    v["version"] = json!(version);
                    v["hash"] = json!(hash);
                    v["origin"] = json!({"kind": "last seen by the service"});
                    v
                })
                .collect();
            let replicas = recoco_sync::store::replicas::list(&db.pool).await?;
            (plugins, replicas)
        }
    };
    let now = recoco_sync::ids::now_ms();
    for p in &mut plugins {
        let name = p["name"].as_str().unwrap_or_default().to_string();
        p["served_by"] = json!(replicas::served_by(&name, &replicas, now));
        p["replicas"] = Value::Array(
            replicas
                .iter()
                .filter(|r| replicas::state(r, now) == replicas::State::Up)
                .filter_map(|r| {
                    let served = r.plugins.iter().find(|s| s.name == name)?;
                    Some(json!({"id": r.id, "version": served.version, "hash": served.hash}))
                })
                .collect(),
        );
    }
    Ok(plugins)
}

fn names(list: &Value, key: &str) -> String {
    list[key]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| {
                    i.get("name")
                        .unwrap_or(i)
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn described(p: &Value) -> String {
    fields(&[
        ("name", cell(p, "name")),
        ("version", cell(p, "version")),
        ("hash", cell(p, "hash")),
        ("description", cell(p, "description")),
        ("subscriptions", names(p, "subscriptions")),
        ("tasks", names(p, "tasks")),
        ("default hosts", names(p, "default_allowed_hosts")),
        ("coalesce", cell(p, "coalesce")),
        ("wit", cell(p, "wit_version")),
        ("authors", names(p, "authors")),
        ("homepage", cell(p, "homepage")),
        ("license", cell(p, "license")),
        ("replicas", cell(p, "served_by")),
        (
            "config schema",
            serde_json::to_string_pretty(&p["config_schema"]).unwrap_or_default(),
        ),
    ])
}

pub async fn plugins(backend: &Backend, cmd: PluginsCmd, out: Out) -> anyhow::Result<()> {
    match cmd {
        PluginsCmd::List => {
            let list = listed(backend).await?;
            out.print(&Value::Array(list.clone()), || {
                let rows = list
                    .iter()
                    .map(|p| {
                        vec![
                            cell(p, "name"),
                            cell(p, "version"),
                            cell(p, "hash").chars().take(12).collect(),
                            p["origin"]["kind"].as_str().unwrap_or("-").to_string(),
                            names(p, "subscriptions"),
                            names(p, "tasks"),
                            cell(p, "served_by"),
                        ]
                    })
                    .collect();
                table(
                    &[
                        "name",
                        "version",
                        "hash",
                        "origin",
                        "subscriptions",
                        "tasks",
                        "replicas",
                    ],
                    rows,
                    "plugins",
                )
            })
        }
        PluginsCmd::Show { name } => {
            let list = listed(backend).await?;
            let p = list
                .into_iter()
                .find(|p| p["name"] == name.as_str())
                .ok_or_else(|| exit::not_found(format!("no plugin {name:?}")))?;
            out.print(&p, || described(&p))
        }
        PluginsCmd::Check { .. } | PluginsCmd::Test { .. } | PluginsCmd::New { .. } => {
            unreachable!("run without a backend: see check, test and new")
        }
    }
}

/// `plugins check FILE`: a scratch service (its own temporary database, the
/// configuration's runtime limits and plugin cache) prepares the file.
pub async fn check(config: &Config, file: &std::path::Path, out: Out) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let size = bytes.len();
    let scratch = tempfile::tempdir().context("cannot make a scratch directory")?;
    let mut trial = config.clone();
    trial.database_url = format!("sqlite://{}", scratch.path().join("check.db").display());
    trial.secret_key = None;
    trial.secret_key_file = scratch.path().join("secret.key");
    trial.plugins_dir = scratch.path().join("plugins");
    std::fs::create_dir_all(&trial.plugins_dir)?;
    trial.sources.clear();
    trial.connections.clear();
    let service = recoco_sync::Service::start(trial).await?;
    let clock = std::time::Instant::now();
    let plugin = service
        .registry
        .prepare(
            bytes,
            recoco_sync::registry::Origin::File(file.to_path_buf()),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{} would be refused: {e}", file.display()))?;
    let m = &plugin.manifest;
    let report = json!({
        "file": file.display().to_string(),
        "size_bytes": size,
        "hash": plugin.hash,
        "prepare_ms": clock.elapsed().as_millis() as u64,
        "name": m.name,
        "version": m.version,
        "description": m.description,
        "subscriptions": m.subscriptions,
        "tasks": m.tasks,
        "default_allowed_hosts": m.default_allowed_hosts,
        "coalesce": m.coalesce,
        "wit_version": m.wit_version,
        "authors": m.authors,
        "homepage": m.homepage,
        "license": m.license,
        "config_schema": m.config_schema,
    });
    out.print(&report, || {
        format!(
            "{} is a valid connector ({} bytes, prepared in {} ms)\n{}",
            file.display(),
            size,
            report["prepare_ms"],
            described(&report)
        )
    })
}

/// `plugins new`: the project, and what to do next.
pub fn new(cmd: &PluginsCmd, out: Out) -> anyhow::Result<()> {
    let PluginsCmd::New {
        name,
        lang,
        dir,
        sdk_path,
    } = cmd
    else {
        unreachable!("called for plugins new")
    };
    let dir = recoco_sync::scaffold::create(&recoco_sync::scaffold::NewConnector {
        name,
        lang: *lang,
        dir: dir.as_deref(),
        sdk_path: sdk_path.as_deref(),
    })?;
    let report = json!({
        "name": name,
        "dir": dir.display().to_string(),
        "build": lang.build_command(name),
        "component": dir.join(format!("{name}.wasm")).display().to_string(),
    });
    out.print(&report, || {
        format!(
            "created {name} in {dir}\n\nnext (see its README.md):\n  cd {dir}\n  {build}\n  recoco-sync plugin test .\n  recoco-sync plugin check {name}.wasm\n",
            dir = dir.display(),
            build = lang.build_command(name),
        )
    })
}

/// `plugins test`: every scenario, then exit 1 if a step failed.
pub async fn test(
    config: &Config,
    path: &std::path::Path,
    scenario: Option<&std::path::Path>,
    out: Out,
) -> anyhow::Result<()> {
    let (files, component) = match scenario {
        Some(s) => (vec![s.to_path_buf()], Some(path)),
        None if path.extension().is_some_and(|e| e == "wasm") => {
            anyhow::bail!(
                "give the scenario to run {} against with --scenario",
                path.display()
            )
        }
        None => (recoco_sync::testkit::scenario_files(path)?, None),
    };
    let kit = recoco_sync::testkit::Kit::new(&config.runtime)?;
    let mut reports = Vec::new();
    for file in &files {
        reports.push(kit.run(file, component).await?);
    }
    let steps: usize = reports.iter().map(|r| r.steps.len()).sum();
    let failed: usize = reports
        .iter()
        .map(|r| r.steps.iter().filter(|s| !s.passed).count())
        .sum();
    out.print(&serde_json::to_value(&reports)?, || {
        let mut text = String::new();
        for r in &reports {
            text.push_str(&format!(
                "{} — {} (recoco:connector@{})\n",
                r.scenario, r.plugin, r.wit_version
            ));
            for s in &r.steps {
                let mark = if s.passed { "ok  " } else { "FAIL" };
                text.push_str(&format!(
                    "  {mark} {} ({}: {}) {:.1} ms\n",
                    s.name,
                    s.outcome,
                    s.message,
                    s.elapsed_us as f64 / 1000.0
                ));
                if !s.passed {
                    for p in &s.problems {
                        text.push_str(&format!("       - {p}\n"));
                    }
                    for line in &s.log {
                        text.push_str(&format!("       log {line}\n"));
                    }
                }
            }
        }
        text.push_str(&format!("{} of {steps} steps passed\n", steps - failed));
        text
    })?;
    anyhow::ensure!(failed == 0, "{failed} of {steps} steps failed");
    Ok(())
}
