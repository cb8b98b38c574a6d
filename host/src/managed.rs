//! Managed configuration: sources and connections created, edited, paused and
//! deleted at run time, from the admin API (and so the page) or the CLI, and
//! `config apply`, which makes the database match a file.
//!
//! One ownership rule: an entry the service's configuration file declares is
//! owned by the file (`owner = "file"`). Each start applies the file again, so
//! such an entry is read-only elsewhere: editing or deleting it answers a
//! conflict naming the file. Pausing (enable/disable) is allowed on every
//! entry and survives restarts, unless the file itself changes `enabled`.
//! Entries created at run time are owned by the database (`owner =
//! "database"`) and never touched by a start. An entry the file stops
//! declaring is marked removed (its jobs pause); creating or applying an entry
//! of that name takes it over for the database.
//!
//! Every change is checked the way a start checks the file (the plugin's
//! config schema, filters, schedules, delivery settings, secrets) and takes
//! effect without restart: the caller reloads its catalog
//! ([`crate::Service::follow_catalog`]); other processes notice within
//! seconds by polling the catalog's version.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{ConnectionDecl, ConnectionLimits, SecretDecl, SourceDecl};
use crate::filter::Filter;
use crate::ids::{now_ms, rfc3339};
use crate::queue::policy::{DeliveryDecl, ScheduleDecl};
use crate::queue::schedules::Spec;
use crate::secrets::{redact_config, secret_paths, Sealer, REDACTED};
use crate::store::connections::{self, Connection};
use crate::store::sources::{self, Source};
use crate::store::{Owner, Pool, Write};

/// Why a change was refused.
#[derive(Debug)]
pub enum Refusal {
    NotFound(String),
    /// Owned by the file, already exists, or still in use.
    Conflict(String),
    /// Bad input; `field` names it when one is to blame.
    Invalid {
        field: Option<String>,
        message: String,
    },
    Internal(anyhow::Error),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotFound(m) | Self::Conflict(m) => f.write_str(m),
            Self::Invalid { field, message } => match field {
                Some(field) => write!(f, "{field}: {message}"),
                None => f.write_str(message),
            },
            Self::Internal(e) => write!(f, "{e:#}"),
        }
    }
}

impl std::error::Error for Refusal {}

impl From<anyhow::Error> for Refusal {
    fn from(e: anyhow::Error) -> Self {
        // Two creates of one name at once both pass the check; the store
        // refuses the second.
        match e.downcast::<crate::store::AlreadyExists>() {
            Ok(taken) => Self::Conflict(taken.to_string()),
            Err(e) => Self::Internal(e),
        }
    }
}

impl From<sqlx::Error> for Refusal {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

fn invalid(field: &str, message: impl Into<String>) -> Refusal {
    Refusal::Invalid {
        field: Some(field.into()),
        message: message.into(),
    }
}

/// What a plugin known here says of a config: its schema and the check.
pub struct PluginFacts {
    pub config_schema: Value,
    /// `Err(reason)` when the config fails the schema.
    pub verdict: Result<(), String>,
}

/// Answers, for a plugin name and a config, what the plugin says; `None` when
/// the plugin is not known here (the connection is stored, its jobs wait).
pub type PluginCheck<'a> = &'a (dyn Fn(&str, &Value) -> Option<PluginFacts> + Sync);

/// Where changes are made: the database, its sealer, and the plugin checks.
pub struct Editor<'a> {
    pub pool: &'a Pool,
    pub sealer: &'a Sealer,
    pub check: PluginCheck<'a>,
}

/// A change to a source; absent fields stay. Secrets are changed by
/// rotation only ([`Editor::rotate_source_secret`]).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourcePatch {
    /// `null` clears it.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub api_url: Option<Option<String>>,
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub api_username: Option<Option<String>>,
    /// Write-only; `null` clears it.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub api_password: Option<Option<String>>,
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<f64>)]
    pub rate_limit_per_second: Option<Option<f64>>,
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<u32>)]
    pub rate_limit_burst: Option<Option<u32>>,
    pub enabled: Option<bool>,
}

/// A change to a connection; absent fields stay.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionPatch {
    pub source: Option<String>,
    pub plugin: Option<String>,
    pub enabled: Option<bool>,
    /// `null`: the plugin's default hosts.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed_hosts: Option<Option<Vec<String>>>,
    /// The whole config. Secret fields given as `"[redacted]"` (as shown)
    /// keep their stored value.
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    /// CEL routing filter; `null` removes it.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub filter: Option<Option<String>>,
    #[schema(value_type = Option<Object>)]
    pub delivery: Option<DeliveryDecl>,
    #[schema(value_type = Option<Vec<Object>>)]
    pub schedule: Option<Vec<ScheduleDecl>>,
    #[schema(value_type = Option<Object>)]
    pub limits: Option<ConnectionLimits>,
}

/// `Option<Option<T>>` fields: absent = keep, `null` = clear.
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// A created source, with the secret when one was generated (shown once).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedSource {
    pub code: String,
    pub webhook_path: String,
    /// The generated signing secret: give it to the sender; never shown again.
    pub generated_secret: Option<String>,
}

/// One line of a `config apply` plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PlannedChange {
    /// `source` or `connection`.
    pub kind: String,
    pub name: String,
    /// `create`, `update`, `delete`, `unchanged`, or `conflict`.
    pub action: String,
    /// Why, for a conflict; which fields, for an update.
    pub detail: Option<String>,
}

/// What `config apply` did (or would do, with `dry_run`).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApplyReport {
    pub changes: Vec<PlannedChange>,
    /// False for a dry run, and when a conflict stopped everything.
    pub applied: bool,
}

/// The sources and connections of a file, for `config apply`.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct Declarations {
    #[serde(default)]
    pub sources: Vec<SourceDecl>,
    #[serde(default)]
    pub connections: Vec<ConnectionDecl>,
}

fn check_source(decl: &SourceDecl) -> Result<(), Refusal> {
    check_name("code", &decl.code)?;
    if let Some(url) = &decl.api_url {
        let parsed = url::Url::parse(url).map_err(|e| invalid("api_url", e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(invalid("api_url", "must be an http or https URL"));
        }
    }
    for (i, s) in decl.secrets.iter().enumerate() {
        crate::config::check_secret(decl.scheme, s.value(), &format!("secrets[{i}]"))
            .map_err(|e| invalid("secrets", format!("{e:#}")))?;
    }
    if decl.secrets.is_empty() {
        return Err(invalid("secrets", "a source needs at least one secret"));
    }
    if let Some(rate) = decl.rate_limit_per_second {
        if !(rate.is_finite() && rate >= 0.0) {
            return Err(invalid(
                "rate_limit_per_second",
                "must be a number of webhooks per second, 0 or more",
            ));
        }
    }
    Ok(())
}

/// Codes and names end up in URLs and logs: keep them plain.
fn check_name(field: &str, name: &str) -> Result<(), Refusal> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("{name:?}: use 1 to 64 letters, digits, '-', '_' or '.'"),
        ))
    }
}

impl Editor<'_> {
    async fn sources(&self) -> Result<Vec<Source>, Refusal> {
        Ok(sources::list(self.pool, self.sealer).await?)
    }

    async fn connections(&self) -> Result<Vec<Connection>, Refusal> {
        Ok(connections::list(self.pool, self.sealer).await?)
    }

    async fn source(&self, code: &str) -> Result<Source, Refusal> {
        self.sources()
            .await?
            .into_iter()
            .find(|s| s.code == code)
            .ok_or_else(|| Refusal::NotFound(format!("no source {code:?}")))
    }

    async fn connection(&self, name: &str) -> Result<Connection, Refusal> {
        self.connections()
            .await?
            .into_iter()
            .find(|c| c.name == name)
            .ok_or_else(|| Refusal::NotFound(format!("no connection {name:?}")))
    }

    /// Creates a database-owned source. Without secrets, one is generated
    /// and returned once.
    pub async fn create_source(&self, mut decl: SourceDecl) -> Result<CreatedSource, Refusal> {
        let mut generated = None;
        if decl.secrets.is_empty() {
            let secret = sources::generate_secret(decl.scheme);
            decl.secrets.push(SecretDecl::Plain(secret.clone()));
            generated = Some(secret);
        }
        check_source(&decl)?;
        if let Some(existing) = self.sources().await?.iter().find(|s| s.code == decl.code) {
            return Err(Refusal::Conflict(format!(
                "source {:?} already exists ({}-owned)",
                existing.code,
                existing.owner.as_str()
            )));
        }
        sources::upsert(
            self.pool,
            self.sealer,
            &decl,
            Owner::Database,
            Write::CreateOnly,
        )
        .await?;
        Ok(CreatedSource {
            webhook_path: format!("/api/webhook/{}", decl.code),
            code: decl.code,
            generated_secret: generated,
        })
    }

    fn refuse_file_owned(kind: &str, name: &str, owner: Owner) -> Result<(), Refusal> {
        if owner == Owner::File {
            return Err(Refusal::Conflict(format!(
                "{kind} {name:?} is declared in the configuration file, which is applied at each start: \
                 change it there (or remove it from the file to manage it here)"
            )));
        }
        Ok(())
    }

    pub async fn update_source(&self, code: &str, patch: SourcePatch) -> Result<(), Refusal> {
        let source = self.source(code).await?;
        let only_enabled = patch.api_url.is_none()
            && patch.api_username.is_none()
            && patch.api_password.is_none()
            && patch.rate_limit_per_second.is_none()
            && patch.rate_limit_burst.is_none();
        if only_enabled {
            if let Some(enabled) = patch.enabled {
                sources::set_enabled(self.pool, code, enabled).await?;
            }
            return Ok(());
        }
        Self::refuse_file_owned("source", code, source.owner)?;
        let mut decl = sources::declaration_of(&source);
        if let Some(v) = patch.api_url {
            decl.api_url = v;
        }
        if let Some(v) = patch.api_username {
            decl.api_username = v;
        }
        if let Some(v) = patch.api_password {
            decl.api_password = v;
        }
        if let Some(v) = patch.rate_limit_per_second {
            decl.rate_limit_per_second = v;
        }
        if let Some(v) = patch.rate_limit_burst {
            decl.rate_limit_burst = v;
        }
        if let Some(v) = patch.enabled {
            decl.enabled = v;
        }
        check_source(&decl)?;
        sources::upsert(
            self.pool,
            self.sealer,
            &decl,
            Owner::Database,
            Write::CreateOrUpdate,
        )
        .await?;
        Ok(())
    }

    /// Deletes a database-owned source no connection uses.
    pub async fn delete_source(&self, code: &str) -> Result<(), Refusal> {
        let source = self.source(code).await?;
        Self::refuse_file_owned("source", code, source.owner)?;
        let users: Vec<String> = self
            .connections()
            .await?
            .into_iter()
            .filter(|c| c.source_id == source.id)
            .map(|c| c.name)
            .collect();
        if !users.is_empty() {
            return Err(Refusal::Conflict(format!(
                "source {code:?} is used by connection(s) {}: delete them first",
                users.join(", ")
            )));
        }
        sources::delete(self.pool, source.id).await?;
        Ok(())
    }

    /// Adds a secret (generated when `secret` is `None`) and retires the
    /// others `grace_ms` from now; file-owned sources too (a rotation is
    /// kept across restarts). Returns the rotation and the generated secret.
    pub async fn rotate_source_secret(
        &self,
        code: &str,
        secret: Option<String>,
        grace_ms: i64,
    ) -> Result<(sources::Rotation, Option<String>), Refusal> {
        let source = self.source(code).await?;
        let generated = secret.is_none();
        let secret = secret.unwrap_or_else(|| sources::generate_secret(source.scheme));
        crate::config::check_secret(source.scheme, &secret, "secret")
            .map_err(|e| invalid("secret", format!("{e:#}")))?;
        let rotation =
            sources::rotate_secret(self.pool, self.sealer, code, &secret, now_ms() + grace_ms)
                .await
                .map_err(|e| invalid("secret", format!("{e:#}")))?;
        Ok((rotation, generated.then_some(secret)))
    }

    /// The declaration as stored, secrets included (never shown as is: see
    /// [`Self::connection_view`]).
    async fn declaration(&self, c: &Connection) -> Result<ConnectionDecl, Refusal> {
        let source = self
            .sources()
            .await?
            .into_iter()
            .find(|s| s.id == c.source_id)
            .map(|s| s.code)
            .unwrap_or_default();
        let delivery = crate::queue::policy::load(self.pool)
            .await?
            .remove(&c.id)
            .unwrap_or_default();
        let schedule = stored_schedules(self.pool, c.id).await?;
        Ok(ConnectionDecl {
            name: c.name.clone(),
            source,
            plugin: c.plugin.clone(),
            enabled: c.enabled,
            allowed_hosts: c.allowed_hosts.clone(),
            config: c.config.clone(),
            delivery,
            schedule,
            filter: c.filter.as_ref().map(|f| f.source().to_string()),
            limits: c.limits.clone(),
        })
    }

    /// Everything a checked connection must satisfy; returns the source id.
    async fn check_connection(&self, decl: &ConnectionDecl) -> Result<i64, Refusal> {
        let source = self
            .sources()
            .await?
            .into_iter()
            .find(|s| s.code == decl.source)
            .ok_or_else(|| invalid("source", format!("no source {:?}", decl.source)))?;
        self.check_connection_fields(decl)?;
        Ok(source.id)
    }

    /// What a connection must satisfy, its source aside.
    fn check_connection_fields(&self, decl: &ConnectionDecl) -> Result<(), Refusal> {
        check_name("name", &decl.name)?;
        if decl.plugin.is_empty() {
            return Err(invalid("plugin", "a connection needs a plugin"));
        }
        if !decl.config.is_object() {
            return Err(invalid("config", "must be an object"));
        }
        if let Some(filter) = &decl.filter {
            Filter::compile(filter).map_err(|e| invalid("filter", e.to_string()))?;
        }
        for s in &decl.schedule {
            Spec::of(s).map_err(|e| invalid("schedule", format!("{e:#}")))?;
        }
        decl.delivery
            .validate(&decl.name)
            .map_err(|e| invalid("delivery", format!("{e:#}")))?;
        if let Some(hosts) = &decl.allowed_hosts {
            crate::outbound::allow::AllowList::parse(hosts)
                .map_err(|e| invalid("allowed_hosts", format!("{e:#}")))?;
        }
        if let Some(facts) = (self.check)(&decl.plugin, &decl.config) {
            facts.verdict.map_err(|e| invalid("config", e))?;
        }
        Ok(())
    }

    /// Stores `decl` as a database-owned connection, its delivery settings
    /// and schedules with it.
    async fn store_connection(
        &self,
        decl: &ConnectionDecl,
        source_id: i64,
        write: Write,
    ) -> Result<(), Refusal> {
        connections::upsert(
            self.pool,
            self.sealer,
            decl,
            source_id,
            Owner::Database,
            write,
        )
        .await?;
        crate::queue::policy::apply(self.pool, std::slice::from_ref(decl)).await?;
        crate::queue::schedules::apply(self.pool, std::slice::from_ref(decl)).await?;
        Ok(())
    }

    /// Creates a database-owned connection (or takes over one the file no
    /// longer declares).
    pub async fn create_connection(&self, decl: ConnectionDecl) -> Result<(), Refusal> {
        let mut existing_removed = false;
        if let Some(existing) = self
            .connections()
            .await?
            .into_iter()
            .find(|c| c.name == decl.name)
        {
            if !(existing.owner == Owner::File && existing.removed) {
                return Err(Refusal::Conflict(format!(
                    "connection {:?} already exists ({}-owned)",
                    decl.name,
                    existing.owner.as_str()
                )));
            }
            existing_removed = true;
        }
        let source_id = self.check_connection(&decl).await?;
        // Taking over a removed entry updates it; else the name must be free.
        let write = if existing_removed {
            Write::CreateOrUpdate
        } else {
            Write::CreateOnly
        };
        self.store_connection(&decl, source_id, write).await
    }

    pub async fn update_connection(
        &self,
        name: &str,
        patch: ConnectionPatch,
    ) -> Result<(), Refusal> {
        let c = self.connection(name).await?;
        let only_enabled = patch.source.is_none()
            && patch.plugin.is_none()
            && patch.allowed_hosts.is_none()
            && patch.config.is_none()
            && patch.filter.is_none()
            && patch.delivery.is_none()
            && patch.schedule.is_none()
            && patch.limits.is_none();
        if only_enabled {
            if let Some(enabled) = patch.enabled {
                connections::set_enabled(self.pool, name, enabled).await?;
            }
            return Ok(());
        }
        Self::refuse_file_owned("connection", name, c.owner)?;
        let mut decl = self.declaration(&c).await?;
        if let Some(v) = patch.source {
            decl.source = v;
        }
        if let Some(v) = patch.plugin {
            decl.plugin = v;
        }
        if let Some(v) = patch.enabled {
            decl.enabled = v;
        }
        if let Some(v) = patch.allowed_hosts {
            decl.allowed_hosts = v;
        }
        if let Some(mut config) = patch.config {
            let schema = (self.check)(&decl.plugin, &config).map(|f| f.config_schema);
            keep_redacted_secrets(&mut config, &c.config, schema.as_ref());
            decl.config = config;
        }
        if let Some(v) = patch.filter {
            decl.filter = v;
        }
        if let Some(v) = patch.delivery {
            decl.delivery = v;
        }
        if let Some(v) = patch.schedule {
            decl.schedule = v;
        }
        if let Some(v) = patch.limits {
            decl.limits = v;
        }
        let source_id = self.check_connection(&decl).await?;
        self.store_connection(&decl, source_id, Write::CreateOrUpdate)
            .await
    }

    /// Sets one secret field of a database-owned connection's config (a JSON
    /// pointer such as `/api_key`), without ever showing it.
    pub async fn set_connection_secret(
        &self,
        name: &str,
        pointer: &str,
        value: &str,
    ) -> Result<(), Refusal> {
        let c = self.connection(name).await?;
        Self::refuse_file_owned("connection", name, c.owner)?;
        let facts = (self.check)(&c.plugin, &c.config).ok_or_else(|| {
            invalid(
                "field",
                format!(
                    "plugin {:?} is not loaded: which fields are secret is unknown",
                    c.plugin
                ),
            )
        })?;
        let path: Vec<String> = pointer
            .strip_prefix('/')
            .ok_or_else(|| invalid("field", "a JSON pointer such as /api_key"))?
            .split('/')
            .map(|p| p.replace("~1", "/").replace("~0", "~"))
            .collect();
        if !secret_paths(&facts.config_schema).contains(&path) {
            return Err(invalid(
                "field",
                format!(
                    "{pointer} is not a secret (writeOnly) field of plugin {}",
                    c.plugin
                ),
            ));
        }
        let mut config = c.config.clone();
        let mut cursor = &mut config;
        for key in &path {
            if !cursor.is_object() {
                *cursor = Value::Object(Default::default());
            }
            cursor = cursor
                .as_object_mut()
                .expect("made an object above")
                .entry(key.clone())
                .or_insert(Value::Null);
        }
        *cursor = Value::String(value.to_string());
        let mut decl = self.declaration(&c).await?;
        decl.config = config;
        let source_id = self.check_connection(&decl).await?;
        self.store_connection(&decl, source_id, Write::CreateOrUpdate)
            .await
    }

    /// Deletes a database-owned connection, or one the file no longer
    /// declares; the ids of its cancelled jobs.
    pub async fn delete_connection(&self, name: &str) -> Result<Vec<String>, Refusal> {
        let c = self.connection(name).await?;
        if !c.removed {
            Self::refuse_file_owned("connection", name, c.owner)?;
        }
        Ok(connections::delete(self.pool, c.id).await?)
    }

    /// A connection as shown: its declaration with secrets redacted, and
    /// who owns it.
    pub async fn connection_view(&self, name: &str) -> Result<ConnectionView, Refusal> {
        let c = self.connection(name).await?;
        let decl = self.declaration(&c).await?;
        let facts = (self.check)(&c.plugin, &c.config);
        Ok(ConnectionView {
            name: decl.name,
            source: decl.source,
            plugin: decl.plugin,
            plugin_loaded: facts.is_some(),
            enabled: decl.enabled,
            owner: c.owner,
            removed: c.removed,
            allowed_hosts: decl.allowed_hosts,
            config: redact_config(&decl.config, facts.as_ref().map(|f| &f.config_schema)),
            config_problem: facts.and_then(|f| f.verdict.err()),
            filter: decl.filter,
            delivery: set_fields(&decl.delivery),
            schedule: serde_json::to_value(&decl.schedule).unwrap_or_default(),
            limits: set_fields(&decl.limits),
            updated_at: rfc3339(c.updated_at),
        })
    }

    /// A source as shown: no secret, only how many and until when.
    pub async fn source_view(&self, code: &str) -> Result<SourceView, Refusal> {
        let s = self.source(code).await?;
        let now = now_ms();
        Ok(SourceView {
            webhook_path: format!("/api/webhook/{}", s.code),
            code: s.code,
            owner: s.owner,
            scheme: s.scheme.as_str().to_string(),
            api_url: s.api_url,
            api_username: s.api_username,
            has_api_password: s.api_password.is_some(),
            secrets: s
                .secret_entries
                .iter()
                .map(|e| SecretView {
                    origin: match e.origin {
                        sources::SecretOrigin::Config => "config".into(),
                        sources::SecretOrigin::Rotation => "rotation".into(),
                    },
                    live: e.is_live(now),
                    expires_at: e.effective_expiry().map(rfc3339),
                })
                .collect(),
            rate_limit_per_second: s.rate_per_second,
            rate_limit_burst: s.rate_burst,
            enabled: s.enabled,
            updated_at: rfc3339(s.updated_at),
        })
    }

    /// Makes the database-owned entries match `file`: creates and updates
    /// what it declares and, with `prune`, deletes database-owned entries it
    /// does not. Entries owned by the service's own file are left alone (a
    /// differing declaration of one is a conflict). All or nothing: any
    /// conflict or invalid entry stops it before a change.
    pub async fn apply(
        &self,
        file: &Declarations,
        prune: bool,
        dry_run: bool,
    ) -> Result<ApplyReport, Refusal> {
        let sources_now: HashMap<String, Source> = self
            .sources()
            .await?
            .into_iter()
            .map(|s| (s.code.clone(), s))
            .collect();
        let conns_now: HashMap<String, Connection> = self
            .connections()
            .await?
            .into_iter()
            .map(|c| (c.name.clone(), c))
            .collect();
        let mut changes = Vec::new();
        let mut seen = BTreeSet::new();
        for d in &file.sources {
            if !seen.insert(&d.code) {
                return Err(invalid(
                    "sources",
                    format!("source {:?} declared twice", d.code),
                ));
            }
            check_source(d).map_err(|e| in_entry("source", &d.code, e))?;
            let change = match sources_now.get(&d.code) {
                None => planned("source", &d.code, "create", None),
                Some(s) => {
                    let differs = source_differences(&sources::declaration_of(s), d);
                    match (s.owner, differs.is_empty()) {
                        (_, true) => planned("source", &d.code, "unchanged", None),
                        (Owner::File, false) => planned(
                            "source",
                            &d.code,
                            "conflict",
                            Some(format!(
                                "owned by the service's configuration file; differs in {}",
                                differs.join(", ")
                            )),
                        ),
                        (Owner::Database, false) => {
                            planned("source", &d.code, "update", Some(differs.join(", ")))
                        }
                    }
                }
            };
            changes.push(change);
        }
        let mut seen = BTreeSet::new();
        for d in &file.connections {
            if !seen.insert(&d.name) {
                return Err(invalid(
                    "connections",
                    format!("connection {:?} declared twice", d.name),
                ));
            }
            let known_source = file.sources.iter().any(|s| s.code == d.source)
                || sources_now.contains_key(&d.source);
            if !known_source {
                return Err(in_entry(
                    "connection",
                    &d.name,
                    invalid("source", format!("no source {:?}", d.source)),
                ));
            }
            self.check_connection_fields(d)
                .map_err(|e| in_entry("connection", &d.name, e))?;
            let change = match conns_now.get(&d.name) {
                None => planned("connection", &d.name, "create", None),
                Some(c) => {
                    let stored = self.declaration(c).await?;
                    let differs = connection_differences(&stored, d);
                    match (c.owner, c.removed, differs.is_empty()) {
                        (_, false, true) => planned("connection", &d.name, "unchanged", None),
                        (Owner::File, false, false) => planned(
                            "connection",
                            &d.name,
                            "conflict",
                            Some(format!(
                                "owned by the service's configuration file; differs in {}",
                                differs.join(", ")
                            )),
                        ),
                        (Owner::File, true, _) => planned(
                            "connection",
                            &d.name,
                            "update",
                            Some(
                                "no longer in the service's file: the database takes it over"
                                    .into(),
                            ),
                        ),
                        (Owner::Database, _, _) => {
                            planned("connection", &d.name, "update", Some(differs.join(", ")))
                        }
                    }
                }
            };
            changes.push(change);
        }
        if prune {
            for c in conns_now.values() {
                if c.owner == Owner::Database && !file.connections.iter().any(|d| d.name == c.name)
                {
                    changes.push(planned("connection", &c.name, "delete", None));
                }
            }
            for s in sources_now.values() {
                if s.owner == Owner::Database && !file.sources.iter().any(|d| d.code == s.code) {
                    let used_by_kept = conns_now.values().any(|c| {
                        c.source_id == s.id
                            && (c.owner == Owner::File
                                || file.connections.iter().any(|d| d.name == c.name))
                    }) || file.connections.iter().any(|d| d.source == s.code);
                    changes.push(if used_by_kept {
                        planned(
                            "source",
                            &s.code,
                            "conflict",
                            Some("to be pruned but still used by a kept connection".into()),
                        )
                    } else {
                        planned("source", &s.code, "delete", None)
                    });
                }
            }
        }
        changes.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
        let conflict = changes.iter().any(|c| c.action == "conflict");
        if dry_run || conflict {
            return Ok(ApplyReport {
                changes,
                applied: false,
            });
        }
        // Sources first (connections need them), deletions last.
        for d in &file.sources {
            match sources_now.get(&d.code) {
                Some(s) if s.owner == Owner::File => {}
                _ => {
                    sources::upsert(
                        self.pool,
                        self.sealer,
                        d,
                        Owner::Database,
                        Write::CreateOrUpdate,
                    )
                    .await?;
                }
            }
        }
        for d in &file.connections {
            let action = changes
                .iter()
                .find(|c| c.kind == "connection" && c.name == d.name)
                .map(|c| c.action.as_str());
            if matches!(action, Some("create" | "update")) {
                let source_id = self
                    .check_connection(d)
                    .await
                    .map_err(|e| in_entry("connection", &d.name, e))?;
                self.store_connection(d, source_id, Write::CreateOrUpdate)
                    .await?;
            }
        }
        for change in changes.iter().filter(|c| c.action == "delete") {
            match change.kind.as_str() {
                "connection" => {
                    self.delete_connection(&change.name).await?;
                }
                _ => self.delete_source(&change.name).await?,
            }
        }
        Ok(ApplyReport {
            changes,
            applied: true,
        })
    }
}

fn planned(kind: &str, name: &str, action: &str, detail: Option<String>) -> PlannedChange {
    PlannedChange {
        kind: kind.into(),
        name: name.into(),
        action: action.into(),
        detail,
    }
}

/// Names the entry an error is about.
fn in_entry(kind: &str, name: &str, refusal: Refusal) -> Refusal {
    match refusal {
        // The field goes into the message, after the entry it belongs to.
        Refusal::Invalid { field, message } => Refusal::Invalid {
            message: format!(
                "{kind} {name:?}: {}{message}",
                field
                    .as_deref()
                    .map(|f| format!("{f}: "))
                    .unwrap_or_default()
            ),
            field: None,
        },
        other => other,
    }
}

fn source_differences(a: &SourceDecl, b: &SourceDecl) -> Vec<&'static str> {
    let mut out = Vec::new();
    if a.api_url != b.api_url {
        out.push("api_url");
    }
    if a.secrets != b.secrets {
        out.push("secrets");
    }
    if a.scheme != b.scheme {
        out.push("scheme");
    }
    if a.rate_limit_per_second != b.rate_limit_per_second
        || a.rate_limit_burst != b.rate_limit_burst
    {
        out.push("rate limits");
    }
    if a.api_username != b.api_username || a.api_password != b.api_password {
        out.push("api account");
    }
    if a.enabled != b.enabled {
        out.push("enabled");
    }
    out
}

fn connection_differences(a: &ConnectionDecl, b: &ConnectionDecl) -> Vec<&'static str> {
    let mut out = Vec::new();
    let schedules = |d: &ConnectionDecl| -> Vec<(String, Option<String>, String)> {
        let mut v: Vec<_> = d
            .schedule
            .iter()
            .map(|s| {
                (
                    s.task.clone(),
                    Spec::of(s).ok().map(|p| p.text()),
                    s.payload
                        .clone()
                        .unwrap_or_else(|| serde_json::json!({}))
                        .to_string(),
                )
            })
            .collect();
        v.sort();
        v
    };
    for (field, differs) in [
        ("source", a.source != b.source),
        ("plugin", a.plugin != b.plugin),
        ("enabled", a.enabled != b.enabled),
        ("allowed_hosts", a.allowed_hosts != b.allowed_hosts),
        ("config", a.config != b.config),
        ("filter", a.filter != b.filter),
        ("delivery", a.delivery != b.delivery),
        ("schedule", schedules(a) != schedules(b)),
        ("limits", a.limits != b.limits),
    ] {
        if differs {
            out.push(field);
        }
    }
    out
}

/// Secret fields sent back as shown (`"[redacted]"`) keep the stored value,
/// so a form can send the whole config without knowing the secrets.
fn keep_redacted_secrets(config: &mut Value, stored: &Value, schema: Option<&Value>) {
    let paths = match schema {
        Some(schema) => secret_paths(schema),
        None => Vec::new(),
    };
    for path in paths {
        let mut new = Some(&mut *config);
        for key in &path {
            new = new.and_then(|v| v.get_mut(key));
        }
        let mut old = Some(stored);
        for key in &path {
            old = old.and_then(|v| v.get(key));
        }
        if let (Some(new), Some(old)) = (new, old) {
            if new.as_str() == Some(REDACTED) {
                *new = old.clone();
            }
        }
    }
}

/// The schedules stored for a connection, as declared.
async fn stored_schedules(pool: &Pool, id: i64) -> Result<Vec<ScheduleDecl>, Refusal> {
    let rows: Vec<(String, String, String)> = crate::store::sql::query_as(
        "SELECT task, spec, payload FROM schedules WHERE connection_id = ? ORDER BY task, spec",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(task, spec, payload)| {
            let payload: Value = serde_json::from_str(&payload).unwrap_or_default();
            ScheduleDecl {
                task,
                every: spec
                    .strip_prefix("every ")
                    .and_then(|d| humantime::parse_duration(d).ok()),
                cron: spec.strip_prefix("cron ").map(str::to_string),
                payload: (payload != serde_json::json!({})).then_some(payload),
            }
        })
        .collect())
}

/// The fields of a settings table that are set (absent ones take the
/// defaults).
fn set_fields<T: Serialize>(settings: &T) -> Value {
    match serde_json::to_value(settings).unwrap_or_default() {
        Value::Object(map) => {
            Value::Object(map.into_iter().filter(|(_, v)| !v.is_null()).collect())
        }
        other => other,
    }
}

/// A connection as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConnectionView {
    pub name: String,
    pub source: String,
    pub plugin: String,
    pub plugin_loaded: bool,
    pub enabled: bool,
    pub owner: Owner,
    /// No longer declared by the file that owns it: receives nothing.
    pub removed: bool,
    /// `null`: the plugin's default hosts.
    pub allowed_hosts: Option<Vec<String>>,
    /// Secret fields shown as `"[redacted]"`.
    #[schema(value_type = Object)]
    pub config: Value,
    pub config_problem: Option<String>,
    pub filter: Option<String>,
    #[schema(value_type = Object)]
    pub delivery: Value,
    #[schema(value_type = Vec<Object>)]
    pub schedule: Value,
    #[schema(value_type = Object)]
    pub limits: Value,
    /// RFC 3339.
    pub updated_at: String,
}

/// A source as the API shows it: never a secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SourceView {
    pub code: String,
    pub webhook_path: String,
    pub owner: Owner,
    /// `recoco` or `standard-webhooks`.
    pub scheme: String,
    pub api_url: Option<String>,
    pub api_username: Option<String>,
    pub has_api_password: bool,
    pub secrets: Vec<SecretView>,
    pub rate_limit_per_second: Option<f64>,
    pub rate_limit_burst: Option<u32>,
    pub enabled: bool,
    pub updated_at: String,
}

/// One signing secret, without its value.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SecretView {
    /// `config` (declared) or `rotation`.
    pub origin: String,
    /// Whether it validates webhooks now.
    pub live: bool,
    /// When it stops validating (RFC 3339), if it does.
    pub expires_at: Option<String>,
}
