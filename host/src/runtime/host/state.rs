//! `recoco:connector/state`: the connection's key-value store, within the
//! connection's quotas of entries and bytes.

use std::time::Instant;

use crate::runtime::bindings::recoco::connector::state::Host;
use crate::runtime::bindings::types::Error;
use crate::runtime::state::{HostFailure, StoreState};
use crate::store;

const MAX_KEY_BYTES: usize = 256;
const MAX_VALUE_BYTES: usize = 1024 * 1024;

/// The bounds of one state entry (shared with the `plugin test` kit, so a
/// scenario passes only where the host would).
pub(crate) fn check_entry(key: &str, value: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES || value.len() > MAX_VALUE_BYTES {
        return Err(format!(
            "state entries need a key of 1 to {MAX_KEY_BYTES} bytes and a value of at most {MAX_VALUE_BYTES} bytes (key {} bytes, value {} bytes)",
            key.len(),
            value.len()
        ));
    }
    Ok(())
}

fn failure(err: sqlx::Error) -> wasmtime::Error {
    wasmtime::Error::new(HostFailure(format!("state store: {err}")))
}

fn refused(message: String) -> Result<(), Error> {
    Err(Error {
        retryable: false,
        message,
        retry_after_ms: None,
    })
}

impl StoreState {
    /// Whether writing `key` = `value` keeps the connection within its state
    /// quotas; the usage is read once per invocation and kept up to date.
    async fn state_room(&mut self, key: &str, value: &str) -> wasmtime::Result<Result<(), Error>> {
        let scope = self.scope()?;
        let pool = &self.services.pool;
        let (keys, bytes) = match self.state_usage {
            Some(usage) => usage,
            None => store::state::usage(pool, scope.connection_id)
                .await
                .map_err(failure)?,
        };
        let old = store::state::entry_bytes(pool, scope.connection_id, key)
            .await
            .map_err(failure)?;
        let new_keys = keys + u64::from(old.is_none());
        // The usage is this invocation's view: another invocation of the same
        // connection may have grown `key` since, so never go below zero.
        let new_bytes = bytes.saturating_sub(old.unwrap_or(0)) + (key.len() + value.len()) as u64;
        let quotas = &self.quotas;
        if new_keys > quotas.max_state_keys {
            return Ok(refused(format!(
                "state quota exceeded: a connection may keep {} entries (it has {keys}); delete some first",
                quotas.max_state_keys
            )));
        }
        if new_bytes > quotas.max_state_bytes {
            return Ok(refused(format!(
                "state quota exceeded: a connection may keep {} bytes of state (it has {bytes}, this write needs {})",
                quotas.max_state_bytes,
                new_bytes - bytes.min(new_bytes)
            )));
        }
        self.state_usage = Some((new_keys, new_bytes));
        Ok(Ok(()))
    }
}

impl Host for StoreState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        let scope = self.enter()?;
        let started = Instant::now();
        let value = store::state::get(&self.services.pool, scope.connection_id, &key)
            .await
            .map_err(failure);
        self.charge(started);
        value
    }

    async fn set(&mut self, key: String, value: String) -> wasmtime::Result<Result<(), Error>> {
        let scope = self.enter()?;
        if let Err(why) = check_entry(&key, &value) {
            return Ok(refused(why));
        }
        let started = Instant::now();
        let room = self.state_room(&key, &value).await;
        let done = match room {
            Ok(Ok(())) => store::state::set(&self.services.pool, scope.connection_id, &key, &value)
                .await
                .map(Ok)
                .map_err(failure),
            other => other,
        };
        if done.is_err() {
            self.state_usage = None;
        }
        self.charge(started);
        done
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<()> {
        let scope = self.enter()?;
        let started = Instant::now();
        let done = store::state::delete(&self.services.pool, scope.connection_id, &key)
            .await
            .map_err(failure);
        // Read again at the next write.
        self.state_usage = None;
        self.charge(started);
        done
    }

    async fn keys(&mut self, prefix: String) -> wasmtime::Result<Vec<String>> {
        let scope = self.enter()?;
        let started = Instant::now();
        let keys = store::state::keys(&self.services.pool, scope.connection_id, &prefix)
            .await
            .map_err(failure);
        self.charge(started);
        keys
    }
}
