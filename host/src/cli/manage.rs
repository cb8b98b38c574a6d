//! `sources`, `connections` and `config apply`: the managed configuration
//! (see `recoco_sync::managed`) from the command line, through the running
//! service's admin API (`--url`) or on the database directly. A change made on
//! the database reaches a running service within seconds.

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use recoco_sync::admin::ops::KnownPlugins;
use recoco_sync::config::ConnectionDecl;
use recoco_sync::managed::{
    ConnectionPatch, Declarations, Editor, PluginFacts, Refusal, SourcePatch,
};

use super::backend::{Backend, Db};
use super::exit;
use super::output::{cell, fields, table, Out};

#[derive(Subcommand)]
pub enum SourcesCmd {
    /// Every source: code, owner, enabled, secrets.
    List,
    /// One source (never its secrets: how many, and until when).
    Show { code: String },
    /// Create a source (owned by the database). Without `--secret`, a
    /// secret is generated and printed once.
    Create(SourceCreate),
    /// Change a database-owned source.
    Edit(SourceEdit),
    /// Accept its webhooks again.
    Enable { code: String },
    /// Answer its webhooks `skipped` (stored, replayable).
    Disable { code: String },
    /// Delete a database-owned source no connection uses (its events stay).
    Delete { code: String },
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

#[derive(Args)]
pub struct SourceCreate {
    code: String,
    /// The portal's API base, e.g. `https://portal.example/api`.
    #[arg(long)]
    api_url: Option<String>,
    #[arg(long, value_parser = ["recoco", "standard-webhooks"], default_value = "recoco")]
    scheme: String,
    /// Signing secret (default: generated and printed once).
    #[arg(long, env = "RECOCO_NEW_SOURCE_SECRET", hide_env_values = true)]
    secret: Option<String>,
    #[arg(long)]
    api_username: Option<String>,
    #[arg(long, env = "RECOCO_SOURCE_API_PASSWORD", hide_env_values = true)]
    api_password: Option<String>,
    /// Create it disabled.
    #[arg(long)]
    disabled: bool,
}

#[derive(Args)]
pub struct SourceEdit {
    code: String,
    #[arg(long, conflicts_with = "clear_api_url")]
    api_url: Option<String>,
    #[arg(long)]
    clear_api_url: bool,
    #[arg(long)]
    api_username: Option<String>,
    #[arg(long, env = "RECOCO_SOURCE_API_PASSWORD", hide_env_values = true)]
    api_password: Option<String>,
    /// Webhooks per second for this source (0: no limit).
    #[arg(long)]
    rate_limit: Option<f64>,
    #[arg(long)]
    rate_burst: Option<u32>,
}

#[derive(Subcommand)]
pub enum ConnectionsCmd {
    /// Every connection: source, plugin, owner, status.
    List,
    /// One connection: its declaration, secrets redacted.
    Show { name: String },
    /// Create a connection (owned by the database).
    Create(ConnectionCreate),
    /// Change a database-owned connection.
    Edit(ConnectionEdit),
    /// Resume it: its paused jobs run.
    Enable { name: String },
    /// Pause it: its jobs wait, new events still make jobs.
    Disable { name: String },
    /// Delete a database-owned connection: its pending jobs are cancelled,
    /// its events kept.
    Delete { name: String },
    /// Set a secret (`writeOnly`) field of its config, e.g. `/api_key`;
    /// the value comes from `--value`, `RECOCO_SECRET_VALUE` or stdin.
    SetSecret {
        name: String,
        /// JSON pointer of the field.
        field: String,
        #[arg(long, env = "RECOCO_SECRET_VALUE", hide_env_values = true)]
        value: Option<String>,
    },
}

#[derive(Args)]
pub struct ConnectionCreate {
    name: String,
    /// Source code.
    #[arg(long, required_unless_present = "from")]
    source: Option<String>,
    /// Plugin name.
    #[arg(long, required_unless_present = "from")]
    plugin: Option<String>,
    /// The plugin's config as JSON, or `@FILE` holding it.
    #[arg(long, value_name = "JSON")]
    plugin_config: Option<String>,
    /// CEL routing filter.
    #[arg(long)]
    filter: Option<String>,
    /// A host the plugin may call (repeatable; default: the plugin's).
    #[arg(long = "allowed-host")]
    allowed_hosts: Vec<String>,
    /// Create it disabled (paused).
    #[arg(long)]
    disabled: bool,
    /// A TOML or JSON file holding the whole connection table (as under
    /// `[[connections]]`: delivery, schedule, limits…); flags given win.
    #[arg(long)]
    from: Option<std::path::PathBuf>,
}

#[derive(Args)]
pub struct ConnectionEdit {
    name: String,
    #[arg(long)]
    source: Option<String>,
    #[arg(long)]
    plugin: Option<String>,
    /// The plugin's whole config as JSON, or `@FILE`; secret fields given
    /// as `"[redacted]"` keep their value.
    #[arg(long, value_name = "JSON")]
    plugin_config: Option<String>,
    #[arg(long, conflicts_with = "clear_filter")]
    filter: Option<String>,
    #[arg(long)]
    clear_filter: bool,
    /// Replaces the allowed hosts (repeatable).
    #[arg(long = "allowed-host", conflicts_with = "default_hosts")]
    allowed_hosts: Vec<String>,
    /// Back to the plugin's default hosts.
    #[arg(long)]
    default_hosts: bool,
    /// Any other change, as the API's JSON patch (or `@FILE`): `delivery`,
    /// `schedule`, `limits`…
    #[arg(long)]
    patch: Option<String>,
}

/// `--config '{…}'` or `--config @file.json`.
fn json_arg(flag: &str, text: &str) -> anyhow::Result<Value> {
    let text = match text.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("{flag}: cannot read {path}"))?
        }
        None => text.to_string(),
    };
    serde_json::from_str(&text).map_err(|e| exit::usage(format!("{flag}: not JSON: {e}")))
}

/// A connection table from a TOML or JSON file.
fn connection_file(path: &std::path::Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if let Ok(v) = serde_json::from_str::<Value>(&text) {
        return Ok(v);
    }
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| exit::usage(format!("{}: {e}", path.display())))?;
    Ok(serde_json::to_value(table)?)
}

/// The changes as the database side makes them.
async fn on_db<T>(
    db: &Db,
    change: impl AsyncFnOnce(&Editor<'_>) -> Result<T, Refusal>,
) -> anyhow::Result<T> {
    let known = KnownPlugins::load(&db.pool).await?;
    let check =
        |plugin: &str, config: &Value| -> Option<PluginFacts> { known.check(plugin, config) };
    let editor = Editor {
        pool: &db.pool,
        sealer: db.catalog.sealer(),
        check: &check,
    };
    change(&editor).await.map_err(exit::refused)
}

fn to_value<T: serde::Serialize>(v: T) -> anyhow::Result<Value> {
    Ok(serde_json::to_value(v)?)
}

pub async fn sources(backend: &Backend, cmd: SourcesCmd, out: Out) -> anyhow::Result<()> {
    match cmd {
        SourcesCmd::List => {
            let list = match backend {
                Backend::Api(api) => api.get(&["sources"], &[]).await?["sources"].take(),
                Backend::Db(db) => {
                    let mut list = Vec::new();
                    for s in db.catalog.get().sources() {
                        list.push(
                            on_db(db, async |e| e.source_view(&s.code).await)
                                .await
                                .and_then(to_value)?,
                        );
                    }
                    list.sort_by(|a, b| a["code"].as_str().cmp(&b["code"].as_str()));
                    Value::Array(list)
                }
            };
            out.print(&list, || {
                let rows = list
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| {
                        let secrets = match &s["secrets"] {
                            Value::Array(items) => items.len().to_string(),
                            other => other.to_string(),
                        };
                        vec![
                            cell(s, "code"),
                            cell(s, "owner"),
                            cell(s, "enabled"),
                            cell(s, "scheme"),
                            secrets,
                            cell(s, "api_url"),
                        ]
                    })
                    .collect();
                table(
                    &["code", "owner", "enabled", "scheme", "secrets", "api url"],
                    rows,
                    "sources",
                )
            })
        }
        SourcesCmd::Show { code } => {
            let view = match backend {
                Backend::Api(api) => api.get(&["sources", &code], &[]).await?,
                Backend::Db(db) => {
                    to_value(on_db(db, async |e| e.source_view(&code).await).await?)?
                }
            };
            out.print(&view, || {
                let secrets: Vec<String> = view["secrets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| {
                        format!(
                            "{} ({}{})",
                            cell(s, "origin"),
                            if s["live"] == true { "live" } else { "expired" },
                            match cell(s, "expires_at").as_str() {
                                "-" => String::new(),
                                t => format!(", until {t}"),
                            }
                        )
                    })
                    .collect();
                fields(&[
                    ("code", cell(&view, "code")),
                    ("webhook", cell(&view, "webhook_path")),
                    ("owner", cell(&view, "owner")),
                    ("enabled", cell(&view, "enabled")),
                    ("scheme", cell(&view, "scheme")),
                    ("secrets", secrets.join("; ")),
                    ("api url", cell(&view, "api_url")),
                    ("api username", cell(&view, "api_username")),
                    (
                        "api password",
                        if view["has_api_password"] == true {
                            "set".into()
                        } else {
                            "-".into()
                        },
                    ),
                    ("rate limit", cell(&view, "rate_limit_per_second")),
                    ("updated", cell(&view, "updated_at")),
                ])
            })
        }
        SourcesCmd::Create(c) => {
            let mut body = json!({
                "code": c.code,
                "api_url": c.api_url,
                "scheme": c.scheme,
                "api_username": c.api_username,
                "api_password": c.api_password,
                "enabled": !c.disabled,
            });
            if let Some(secret) = c.secret {
                body["secrets"] = json!([secret]);
            }
            let created = match backend {
                Backend::Api(api) => api.post(&["sources"], &[], Some(&body)).await?,
                Backend::Db(db) => {
                    body.as_object_mut()
                        .expect("an object")
                        .entry("secrets")
                        .or_insert_with(|| json!([]));
                    let decl = serde_json::from_value(body)
                        .map_err(|e| exit::usage(format!("invalid source: {e}")))?;
                    to_value(on_db(db, async |e| e.create_source(decl).await).await?)?
                }
            };
            if let Some(secret) = created["generated_secret"].as_str() {
                println!("{secret}");
                eprintln!(
                    "source {} created; its signing secret is printed above, shown only now: configure the sender with it",
                    c.code
                );
            } else {
                eprintln!("source {} created", c.code);
            }
            if out.is_json() {
                let mut shown = created.clone();
                shown["generated_secret"] = Value::Null;
                out.json(&shown)?;
            }
            Ok(())
        }
        SourcesCmd::Edit(e) => {
            let mut patch = serde_json::Map::new();
            if let Some(v) = e.api_url {
                patch.insert("api_url".into(), json!(v));
            }
            if e.clear_api_url {
                patch.insert("api_url".into(), Value::Null);
            }
            if let Some(v) = e.api_username {
                patch.insert("api_username".into(), json!(v));
            }
            if let Some(v) = e.api_password {
                patch.insert("api_password".into(), json!(v));
            }
            if let Some(v) = e.rate_limit {
                patch.insert("rate_limit_per_second".into(), json!(v));
            }
            if let Some(v) = e.rate_burst {
                patch.insert("rate_limit_burst".into(), json!(v));
            }
            if patch.is_empty() {
                return Err(exit::usage("nothing to change: give at least one flag"));
            }
            let patch = Value::Object(patch);
            match backend {
                Backend::Api(api) => drop(api.patch(&["sources", &e.code], &patch).await?),
                Backend::Db(db) => {
                    let patch: SourcePatch = serde_json::from_value(patch)?;
                    on_db(db, async |ed| ed.update_source(&e.code, patch).await).await?
                }
            }
            println!("source {} changed", e.code);
            Ok(())
        }
        SourcesCmd::Enable { code } => toggle(backend, "sources", &code, true).await,
        SourcesCmd::Disable { code } => toggle(backend, "sources", &code, false).await,
        SourcesCmd::Delete { code } => {
            match backend {
                Backend::Api(api) => drop(api.delete(&["sources", &code]).await?),
                Backend::Db(db) => on_db(db, async |e| e.delete_source(&code).await).await?,
            }
            println!("source {code} deleted (its events are kept)");
            Ok(())
        }
        SourcesCmd::RotateSecret {
            code,
            secret,
            grace,
        } => {
            let answer = match backend {
                Backend::Api(api) => {
                    let body = json!({"secret": secret, "grace": humantime::format_duration(grace).to_string()});
                    api.post(&["sources", &code, "rotate-secret"], &[], Some(&body))
                        .await?
                }
                Backend::Db(db) => {
                    let (rotation, generated) = on_db(db, async |e| {
                        e.rotate_source_secret(&code, secret, grace.as_millis() as i64)
                            .await
                    })
                    .await?;
                    json!({
                        "source": code,
                        "previous": rotation.previous,
                        "previous_expire_at": recoco_sync::ids::rfc3339(rotation.previous_expire_at),
                        "generated_secret": generated,
                    })
                }
            };
            let generated = answer["generated_secret"].as_str();
            if let Some(secret) = generated {
                println!("{secret}");
            }
            eprintln!(
                "source {code}: new secret added{}; its {} previous secret(s) validate until {}. Configure the sender with the new secret before then.",
                if generated.is_some() { " (printed above, shown only once)" } else { "" },
                answer["previous"],
                cell(&answer, "previous_expire_at"),
            );
            Ok(())
        }
    }
}

/// `enable` / `disable` of a source or a connection (`kind`: `sources` or
/// `connections`); allowed on the file's entries too.
async fn toggle(backend: &Backend, kind: &str, name: &str, enabled: bool) -> anyhow::Result<()> {
    let action = if enabled { "enable" } else { "disable" };
    match backend {
        Backend::Api(api) => drop(api.post(&[kind, name, action], &[], None).await?),
        Backend::Db(db) if kind == "sources" => {
            let patch = SourcePatch {
                enabled: Some(enabled),
                ..Default::default()
            };
            on_db(db, async |e| e.update_source(name, patch).await).await?
        }
        Backend::Db(db) => {
            let patch = ConnectionPatch {
                enabled: Some(enabled),
                ..Default::default()
            };
            on_db(db, async |e| e.update_connection(name, patch).await).await?
        }
    }
    println!("{} {name} {action}d", kind.trim_end_matches('s'));
    Ok(())
}

pub async fn connections(backend: &Backend, cmd: ConnectionsCmd, out: Out) -> anyhow::Result<()> {
    match cmd {
        ConnectionsCmd::List => {
            let list = match backend {
                Backend::Api(api) => api.get(&["connections"], &[]).await?["connections"].take(),
                Backend::Db(db) => {
                    let mut list = Vec::new();
                    for c in db.catalog.get().connections() {
                        let mut v =
                            to_value(on_db(db, async |e| e.connection_view(&c.name).await).await?)?;
                        v["status"] = json!(if !v["plugin_loaded"].as_bool().unwrap_or(false) {
                            "plugin_not_loaded"
                        } else if !v["config_problem"].is_null() {
                            "invalid"
                        } else if v["enabled"] == false {
                            "disabled"
                        } else {
                            "ok"
                        });
                        list.push(v);
                    }
                    list.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
                    Value::Array(list)
                }
            };
            out.print(&list, || {
                let rows = list
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| {
                        vec![
                            cell(c, "name"),
                            cell(c, "source"),
                            cell(c, "plugin"),
                            cell(c, "owner"),
                            cell(c, "enabled"),
                            cell(c, "status"),
                        ]
                    })
                    .collect();
                table(
                    &["name", "source", "plugin", "owner", "enabled", "status"],
                    rows,
                    "connections",
                )
            })
        }
        ConnectionsCmd::Show { name } => {
            let view = match backend {
                Backend::Api(api) => api.get(&["connections", &name], &[]).await?,
                Backend::Db(db) => {
                    to_value(on_db(db, async |e| e.connection_view(&name).await).await?)?
                }
            };
            out.print(&view, || {
                let compact = |key: &str| match &view[key] {
                    Value::Null => "-".to_string(),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                fields(&[
                    ("name", compact("name")),
                    ("source", compact("source")),
                    ("plugin", compact("plugin")),
                    ("plugin loaded", compact("plugin_loaded")),
                    ("owner", compact("owner")),
                    ("enabled", compact("enabled")),
                    ("allowed hosts", compact("allowed_hosts")),
                    ("config", compact("config")),
                    ("config problem", compact("config_problem")),
                    ("filter", compact("filter")),
                    ("delivery", compact("delivery")),
                    ("schedule", compact("schedule")),
                    ("limits", compact("limits")),
                    ("updated", compact("updated_at")),
                ])
            })
        }
        ConnectionsCmd::Create(c) => {
            let mut body = match &c.from {
                Some(path) => connection_file(path)?,
                None => json!({}),
            };
            let map = body
                .as_object_mut()
                .ok_or_else(|| exit::usage("--from: the file must hold one connection table"))?;
            map.insert("name".into(), json!(c.name));
            if let Some(v) = c.source {
                map.insert("source".into(), json!(v));
            }
            if let Some(v) = c.plugin {
                map.insert("plugin".into(), json!(v));
            }
            if let Some(v) = &c.plugin_config {
                map.insert("config".into(), json_arg("--plugin-config", v)?);
            }
            if let Some(v) = c.filter {
                map.insert("filter".into(), json!(v));
            }
            if !c.allowed_hosts.is_empty() {
                map.insert("allowed_hosts".into(), json!(c.allowed_hosts));
            }
            if c.disabled {
                map.insert("enabled".into(), json!(false));
            }
            let view = match backend {
                Backend::Api(api) => api.post(&["connections"], &[], Some(&body)).await?,
                Backend::Db(db) => {
                    let decl: ConnectionDecl = serde_json::from_value(body)
                        .map_err(|e| exit::usage(format!("invalid connection: {e}")))?;
                    on_db(db, async |e| e.create_connection(decl).await).await?;
                    to_value(on_db(db, async |e| e.connection_view(&c.name).await).await?)?
                }
            };
            if out.is_json() {
                return out.json(&view);
            }
            println!("connection {} created", c.name);
            if let Some(problem) = view["config_problem"].as_str() {
                eprintln!("warning: {problem}");
            }
            if view["plugin_loaded"] == false {
                eprintln!(
                    "warning: plugin {} is not loaded: its jobs wait for it",
                    cell(&view, "plugin")
                );
            }
            Ok(())
        }
        ConnectionsCmd::Edit(e) => {
            let mut patch = match &e.patch {
                Some(text) => json_arg("--patch", text)?,
                None => json!({}),
            };
            let map = patch
                .as_object_mut()
                .ok_or_else(|| exit::usage("--patch must be a JSON object"))?;
            if let Some(v) = e.source {
                map.insert("source".into(), json!(v));
            }
            if let Some(v) = e.plugin {
                map.insert("plugin".into(), json!(v));
            }
            if let Some(v) = &e.plugin_config {
                map.insert("config".into(), json_arg("--plugin-config", v)?);
            }
            if let Some(v) = e.filter {
                map.insert("filter".into(), json!(v));
            }
            if e.clear_filter {
                map.insert("filter".into(), Value::Null);
            }
            if !e.allowed_hosts.is_empty() {
                map.insert("allowed_hosts".into(), json!(e.allowed_hosts));
            }
            if e.default_hosts {
                map.insert("allowed_hosts".into(), Value::Null);
            }
            if map.is_empty() {
                return Err(exit::usage("nothing to change: give at least one flag"));
            }
            match backend {
                Backend::Api(api) => drop(api.patch(&["connections", &e.name], &patch).await?),
                Backend::Db(db) => {
                    let patch: ConnectionPatch = serde_json::from_value(patch)
                        .map_err(|err| exit::usage(format!("invalid change: {err}")))?;
                    on_db(db, async |ed| ed.update_connection(&e.name, patch).await).await?
                }
            }
            println!("connection {} changed", e.name);
            Ok(())
        }
        ConnectionsCmd::Enable { name } => toggle(backend, "connections", &name, true).await,
        ConnectionsCmd::Disable { name } => toggle(backend, "connections", &name, false).await,
        ConnectionsCmd::Delete { name } => {
            let answer = match backend {
                Backend::Api(api) => api.delete(&["connections", &name]).await?,
                Backend::Db(db) => {
                    let cancelled = on_db(db, async |e| e.delete_connection(&name).await).await?;
                    json!({"connection": name, "deleted": true, "cancelled_jobs": cancelled})
                }
            };
            if out.is_json() {
                return out.json(&answer);
            }
            println!(
                "connection {name} deleted; {} pending job(s) cancelled, its events kept",
                answer["cancelled_jobs"].as_array().map_or(0, Vec::len)
            );
            Ok(())
        }
        ConnectionsCmd::SetSecret { name, field, value } => {
            let value = match value {
                Some(v) => v,
                None => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line)?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            anyhow::ensure!(
                !value.is_empty(),
                "no value given (--value, RECOCO_SECRET_VALUE or stdin)"
            );
            match backend {
                Backend::Api(api) => drop(
                    api.post(
                        &["connections", &name, "secret"],
                        &[],
                        Some(&json!({"field": field, "value": value})),
                    )
                    .await?,
                ),
                Backend::Db(db) => {
                    on_db(db, async |e| {
                        e.set_connection_secret(&name, &field, &value).await
                    })
                    .await?
                }
            }
            println!("connection {name}: {field} set");
            Ok(())
        }
    }
}

/// `config apply FILE`: prints the plan; exit 6 when a conflict stopped it.
pub async fn apply(
    backend: &Backend,
    file: &Declarations,
    prune: bool,
    dry_run: bool,
    out: Out,
) -> anyhow::Result<()> {
    let (conflict, report) = match backend {
        Backend::Api(api) => {
            let body = json!({
                "sources": file.sources,
                "connections": file.connections,
                "prune": prune,
                "dry_run": dry_run,
            });
            api.post_allowing_conflict(&["config", "apply"], &body)
                .await?
        }
        Backend::Db(db) => {
            let report = on_db(db, async |e| e.apply(file, prune, dry_run).await).await?;
            let conflict = report.changes.iter().any(|c| c.action == "conflict");
            (conflict, to_value(report)?)
        }
    };
    out.print(&report, || {
        let rows = report["changes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                vec![
                    cell(c, "action"),
                    cell(c, "kind"),
                    cell(c, "name"),
                    cell(c, "detail"),
                ]
            })
            .collect();
        format!(
            "{}{}\n",
            table(&["action", "kind", "name", "detail"], rows, "changes"),
            match (report["applied"].as_bool(), conflict) {
                (_, true) => "nothing applied: resolve the conflicts first",
                (Some(true), _) => "applied",
                _ => "dry run: nothing applied",
            }
        )
    })?;
    if conflict {
        return Err(exit::conflict("config apply stopped by a conflict"));
    }
    Ok(())
}
