//! Which connections an event goes to: one job per enabled connection of the
//! event's source whose plugin subscribes to its object type or topic. Used by
//! intake and by replays.

use crate::catalog::{subscription_matches, Catalog};
use crate::filter;
use crate::ids::{now_ms, EventId, JobId, SourceId};
use crate::queue::{JobKind, NewJob};

/// `subscriptions` gives a plugin's subscriptions (loaded or last seen);
/// `filters` applies each connection's filter and remembers what it dropped.
#[allow(clippy::too_many_arguments)]
pub fn jobs_for(
    catalog: &Catalog,
    subscriptions: &(dyn Fn(&str) -> Option<Vec<String>> + Sync),
    source: SourceId,
    event: &EventId,
    object_type: &str,
    topic: &str,
    max_attempts: u32,
    filters: &mut filter::Check<'_>,
) -> Vec<NewJob> {
    let now = now_ms();
    catalog
        .enabled_connections(source)
        .filter(|c| {
            // A plugin never seen has no known subscriptions: nothing to route yet.
            subscriptions(&c.plugin).is_some_and(|subs| {
                subs.iter()
                    .any(|s| subscription_matches(s, object_type, topic))
            }) && filters.accepts(c)
        })
        .map(|c| NewJob {
            id: JobId::new(),
            connection_id: c.id,
            plugin: c.plugin.clone(),
            kind: JobKind::Event {
                event_id: event.to_string(),
            },
            dedup_key: None,
            max_attempts,
            run_at: now,
        })
        .collect()
}
