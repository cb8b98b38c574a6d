//! The sources and connections in memory, with their secrets opened, so intake
//! and workers do not query them per request. Reloaded when this process changes
//! them and, by polling, when another process (CLI, another replica) does.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::config::Config;
use crate::ids::{ConnectionId, SourceId};
use crate::secrets::Sealer;
use crate::store::connections::{self, Connection};
use crate::store::sources::{self, Source};
use crate::store::{Owner, Pool, Write};

/// One consistent snapshot.
#[derive(Debug, Default)]
pub struct Catalog {
    sources_by_code: HashMap<String, Arc<Source>>,
    sources_by_id: HashMap<SourceId, Arc<Source>>,
    connections: HashMap<ConnectionId, Arc<Connection>>,
    by_name: HashMap<String, Arc<Connection>>,
    by_source: HashMap<SourceId, Vec<Arc<Connection>>>,
    version: (i64, i64),
}

impl Catalog {
    pub fn source_by_code(&self, code: &str) -> Option<&Arc<Source>> {
        self.sources_by_code.get(code)
    }

    pub fn source(&self, id: SourceId) -> Option<&Arc<Source>> {
        self.sources_by_id.get(&id)
    }

    pub fn connection(&self, id: ConnectionId) -> Option<&Arc<Connection>> {
        self.connections.get(&id)
    }

    pub fn connection_by_name(&self, name: &str) -> Option<&Arc<Connection>> {
        self.by_name.get(name)
    }

    /// Enabled connections of a source.
    pub fn enabled_connections(&self, source: SourceId) -> impl Iterator<Item = &Arc<Connection>> {
        self.by_source
            .get(&source)
            .into_iter()
            .flatten()
            .filter(|c| c.enabled)
    }

    /// Every connection of a source, enabled or not (routing decides).
    pub fn connections_of(&self, source: SourceId) -> impl Iterator<Item = &Arc<Connection>> {
        self.by_source.get(&source).into_iter().flatten()
    }

    pub fn sources(&self) -> impl Iterator<Item = &Arc<Source>> {
        self.sources_by_id.values()
    }

    pub fn connections(&self) -> impl Iterator<Item = &Arc<Connection>> {
        self.connections.values()
    }
}

/// Shared handle to the current snapshot.
pub struct CatalogHandle {
    pool: Pool,
    sealer: Sealer,
    current: RwLock<Arc<Catalog>>,
}

impl CatalogHandle {
    pub async fn load(pool: Pool, sealer: Sealer) -> anyhow::Result<Self> {
        let handle = Self {
            pool,
            sealer,
            current: RwLock::new(Arc::default()),
        };
        handle.reload().await?;
        Ok(handle)
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    pub fn get(&self) -> Arc<Catalog> {
        self.current.read().expect("catalog lock").clone()
    }

    /// Reads everything again.
    pub async fn reload(&self) -> anyhow::Result<()> {
        let version = connections::catalog_version(&self.pool).await?;
        let sources = sources::list(&self.pool, &self.sealer).await?;
        let conns = connections::list(&self.pool, &self.sealer).await?;
        let mut catalog = Catalog {
            version,
            ..Default::default()
        };
        for s in sources {
            let s = Arc::new(s);
            catalog.sources_by_code.insert(s.code.clone(), s.clone());
            catalog.sources_by_id.insert(s.id, s);
        }
        for c in conns {
            let c = Arc::new(c);
            catalog
                .by_source
                .entry(c.source_id)
                .or_default()
                .push(c.clone());
            catalog.by_name.insert(c.name.clone(), c.clone());
            catalog.connections.insert(c.id, c);
        }
        *self.current.write().expect("catalog lock") = Arc::new(catalog);
        Ok(())
    }

    /// Reloads when the tables changed since the snapshot; true if it did.
    pub async fn refresh_if_changed(&self) -> anyhow::Result<bool> {
        let version = connections::catalog_version(&self.pool).await?;
        if version == self.get().version {
            return Ok(false);
        }
        self.reload().await?;
        Ok(true)
    }

    /// Applies the sources and connections declared in the configuration file
    /// (idempotent; they become file-owned), then reloads.
    pub async fn apply_config(&self, config: &Config) -> anyhow::Result<()> {
        let mut ids = HashMap::new();
        for decl in &config.sources {
            ids.insert(
                decl.code.clone(),
                sources::upsert(
                    &self.pool,
                    &self.sealer,
                    decl,
                    Owner::File,
                    Write::CreateOrUpdate,
                )
                .await?,
            );
        }
        for decl in &config.connections {
            let source_id = match ids.get(&decl.source) {
                Some(id) => *id,
                None => self
                    .get()
                    .source_by_code(&decl.source)
                    .map(|s| s.id)
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "connection {:?}: unknown source {:?}",
                            decl.name,
                            decl.source
                        )
                    })?,
            };
            connections::upsert(
                &self.pool,
                &self.sealer,
                decl,
                source_id,
                Owner::File,
                Write::CreateOrUpdate,
            )
            .await?;
        }
        self.reload().await
    }
}

/// Whether a manifest subscription entry matches an event: `*`, a topic
/// (`tasks.Task/update`), an object type (`projects.Project`), or a prefix
/// ending in `*` (`projects.*`).
pub fn subscription_matches(entry: &str, object_type: &str, topic: &str) -> bool {
    if entry == "*" {
        return true;
    }
    if let Some(prefix) = entry.strip_suffix('*') {
        return object_type.starts_with(prefix) || topic.starts_with(prefix);
    }
    if entry.contains('/') {
        entry == topic
    } else {
        entry == object_type
    }
}

#[cfg(test)]
mod tests {
    use super::subscription_matches as m;

    #[test]
    fn subscription_forms() {
        assert!(m("*", "tasks.Task", "tasks.Task/update"));
        assert!(m(
            "projects.Project",
            "projects.Project",
            "projects.Project/delete"
        ));
        assert!(!m(
            "projects.Project",
            "survey.Answer",
            "survey.Answer/update"
        ));
        assert!(m("tasks.Task/update", "tasks.Task", "tasks.Task/update"));
        assert!(!m("tasks.Task/update", "tasks.Task", "tasks.Task/create"));
        assert!(m("survey.*", "survey.Answer", "survey.Answer/create"));
        assert!(!m(
            "survey.*",
            "projects.Project",
            "projects.Project/create"
        ));
    }
}
