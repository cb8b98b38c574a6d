//! Typed, prefixed identifiers (`evt_…`, `job_…`) and the clock the rest of the
//! host reads. Ids are UUIDv7, so they sort by creation time.

use std::fmt;

macro_rules! prefixed_id {
    ($name:ident, $prefix:literal) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            /// A new, time-ordered id.
            pub fn new() -> Self {
                Self(format!("{}{}", $prefix, uuid::Uuid::now_v7().simple()))
            }

            /// Accepts an id read from the database or typed by an operator.
            pub fn parse(s: &str) -> Option<Self> {
                (s.starts_with($prefix) && s.len() > $prefix.len()).then(|| Self(s.to_string()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            /// For values read back from our own database.
            fn from(s: String) -> Self {
                Self(s)
            }
        }
    };
}

prefixed_id!(EventId, "evt_");
prefixed_id!(JobId, "job_");

/// Database row id of a source.
pub type SourceId = i64;
/// Database row id of a connection.
pub type ConnectionId = i64;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// RFC 3339 rendering of a stored timestamp.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_and_ordered() {
        let a = EventId::new();
        let b = EventId::new();
        assert!(a.as_str().starts_with("evt_"));
        assert!(a < b);
        assert_eq!(EventId::parse(a.as_str()), Some(a));
        assert_eq!(EventId::parse("job_123"), None);
        assert_eq!(JobId::parse("job_"), None);
    }

    #[test]
    fn renders_rfc3339() {
        assert_eq!(rfc3339(1_767_261_600_000), "2026-01-01T10:00:00.000Z");
    }
}
