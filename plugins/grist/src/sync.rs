//! Writing projects into the table, shared by events and `sync-all`: reads the
//! table's columns (an unknown table stops here, saying to run `setup`), adds
//! the attachment columns answers need, matches each record to the columns and
//! upserts the records in batches. Also reads and writes the column map.

use std::collections::BTreeSet;

use recoco_connector_sdk::{state, Error};

use crate::batch::{self, Written};
use crate::config::Config;
use crate::grist::Grist;
use crate::recoco;
use crate::record::{self, Record};
use crate::table::{self, map_key, ColumnMap, Table};

/// What writing a set of records did.
#[derive(Debug, Clone, Default)]
pub struct Synced {
    pub written: Written,
    /// Ids of columns some record had values for and the table lacks.
    pub skipped: BTreeSet<String>,
    /// Attachment columns created on the way.
    pub new_columns: Vec<String>,
}

/// The column map of the configured table (empty before the first `setup`).
pub fn load_map(config: &Config) -> Result<ColumnMap, Error> {
    Ok(state::get_json(&map_key(config))?.unwrap_or_default())
}

/// Stores the column map of the configured table.
pub fn save_map(config: &Config, map: &ColumnMap) -> Result<(), Error> {
    state::set_json(&map_key(config), map)
}

/// The record of project `id` read from Recoco now, or `None` when Recoco
/// no longer has it.
pub fn fetch_record(id: u64, config: &Config) -> Result<Option<Record>, Error> {
    let Some(project) = recoco::project(id)? else {
        return Ok(None);
    };
    let answers = recoco::answers(id)?;
    Ok(Some(record::build(
        &(&project).into(),
        &answers,
        config.label_max_length(),
    )))
}

/// Upserts `records` into the configured table.
pub fn write_records(config: &Config, records: &[Record]) -> Result<Synced, Error> {
    let grist = Grist::new(config);
    let mut columns = grist.columns()?;
    let mut map = load_map(config)?;
    let missing = table::missing_attachment_columns(
        records,
        &Table {
            columns: &columns,
            map: &map,
        },
        config,
    );
    let mut new_columns = Vec::new();
    if !missing.is_empty() {
        new_columns = grist.add_columns(&missing)?;
        columns = grist.columns()?;
        table::remember(&mut map, &missing, &new_columns, &columns);
        save_map(config, &map)?;
    }
    let table = Table {
        columns: &columns,
        map: &map,
    };
    let prepared = records
        .iter()
        .map(|r| table::prepare(r, &table, config))
        .collect::<Result<Vec<_>, String>>()
        .map_err(|why| Error::permanent(format!("table {:?}: {why}", config.table_id)))?;
    let skipped = prepared
        .iter()
        .flat_map(|p| p.skipped.iter().cloned())
        .collect();
    let written = batch::write(&prepared, |entries, update_only| {
        grist.upsert(entries, update_only)
    })?;
    Ok(Synced {
        written,
        skipped,
        new_columns,
    })
}

/// `"; not written, the table has no column for: a, b (run `setup`)"`, or nothing.
pub fn skipped_note(skipped: &BTreeSet<String>) -> String {
    if skipped.is_empty() {
        return String::new();
    }
    let list: Vec<&str> = skipped.iter().map(String::as_str).collect();
    format!(
        "; not written, the table has no column for: {} (run the `setup` task to add them)",
        list.join(", ")
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn skipped_note_lists_ids() {
        let skipped = ["b".to_string(), "a".to_string()].into_iter().collect();
        assert_eq!(
            super::skipped_note(&skipped),
            "; not written, the table has no column for: a, b (run the `setup` task to add them)"
        );
        assert_eq!(super::skipped_note(&Default::default()), "");
    }
}
