//! `recoco:connector/state`: the connection's key-value store.

use std::time::Instant;

use crate::runtime::bindings::recoco::connector::state::Host;
use crate::runtime::bindings::types::Error;
use crate::runtime::state::{HostFailure, StoreState};
use crate::store;

const MAX_KEY_BYTES: usize = 256;
const MAX_VALUE_BYTES: usize = 1024 * 1024;

fn failure(err: sqlx::Error) -> wasmtime::Error {
    wasmtime::Error::new(HostFailure(format!("state store: {err}")))
}

impl Host for StoreState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        let scope = self.scope()?;
        let started = Instant::now();
        let value = store::state::get(&self.services.pool, scope.connection_id, &key)
            .await
            .map_err(failure);
        self.host_time += started.elapsed();
        value
    }

    async fn set(&mut self, key: String, value: String) -> wasmtime::Result<Result<(), Error>> {
        let scope = self.scope()?;
        if key.is_empty() || key.len() > MAX_KEY_BYTES || value.len() > MAX_VALUE_BYTES {
            return Ok(Err(Error {
                retryable: false,
                message: format!(
                    "state entries need a key of 1 to {MAX_KEY_BYTES} bytes and a value of at most {MAX_VALUE_BYTES} bytes (key {} bytes, value {} bytes)",
                    key.len(),
                    value.len()
                ),
                retry_after_ms: None,
            }));
        }
        let started = Instant::now();
        let done = store::state::set(&self.services.pool, scope.connection_id, &key, &value)
            .await
            .map_err(failure);
        self.host_time += started.elapsed();
        done.map(Ok)
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<()> {
        let scope = self.scope()?;
        let started = Instant::now();
        let done = store::state::delete(&self.services.pool, scope.connection_id, &key)
            .await
            .map_err(failure);
        self.host_time += started.elapsed();
        done
    }

    async fn keys(&mut self, prefix: String) -> wasmtime::Result<Vec<String>> {
        let scope = self.scope()?;
        let started = Instant::now();
        let keys = store::state::keys(&self.services.pool, scope.connection_id, &prefix)
            .await
            .map_err(failure);
        self.host_time += started.elapsed();
        keys
    }
}
