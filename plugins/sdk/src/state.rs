//! Key-value state private to the connection, kept by the host across
//! invocations, restarts and upgrades (a cursor, a mapping of Recoco ids to
//! remote ids). A write is stored at once: it is not rolled back when the
//! invocation fails afterwards. Keys are at most 256 bytes, values at most 1 MiB.
//! A connection's state is bounded too (by default 10,000 entries and 64 MiB,
//! `max_state_keys` / `max_state_bytes`): past that, [`set`] fails with a
//! permanent error saying which quota, and nothing is written.
//!
//! ```no_run
//! use recoco_connector_sdk::state;
//!
//! # fn main() -> Result<(), recoco_connector_sdk::Error> {
//! let seen: u64 = state::get_json("events-seen")?.unwrap_or(0);
//! state::set_json("events-seen", &(seen + 1))?;
//! # Ok(()) }
//! ```

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::Error;

/// The value stored under `key`, if any.
pub fn get(key: &str) -> Option<String> {
    crate::host::state_get(key)
}

/// Stores `value` under `key`.
pub fn set(key: &str, value: &str) -> Result<(), Error> {
    crate::host::state_set(key, value)
        .map_err(|err| Error::from(err).context(format_args!("state `{key}`")))
}

/// Removes `key`; removing a missing key is not an error.
pub fn delete(key: &str) {
    crate::host::state_delete(key)
}

/// Keys starting with `prefix`, sorted.
pub fn keys(prefix: &str) -> Vec<String> {
    crate::host::state_keys(prefix)
}

/// The value under `key` parsed as JSON; a value that does not parse is a
/// permanent error naming the key.
pub fn get_json<T: DeserializeOwned>(key: &str) -> Result<Option<T>, Error> {
    get(key).map(|value| parse(key, &value)).transpose()
}

/// Stores `value` as JSON under `key`.
pub fn set_json<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), Error> {
    let json = serde_json::to_string(value)
        .map_err(|err| Error::permanent(format!("state `{key}`: cannot serialize: {err}")))?;
    set(key, &json)
}

fn parse<T: DeserializeOwned>(key: &str, value: &str) -> Result<T, Error> {
    serde_json::from_str(value)
        .map_err(|err| Error::permanent(format!("state `{key}` is not the expected JSON: {err}")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn bad_stored_json_names_the_key() {
        let err = super::parse::<u64>("cursor", "\"x\"").unwrap_err();
        assert!(err.message().starts_with("state `cursor`"), "{err}");
        assert_eq!(super::parse::<u64>("cursor", "7").unwrap(), 7);
    }
}
