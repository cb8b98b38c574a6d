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
use crate::table::{self, map_key, ColumnMap, Prepared, Table, TableColumn};

/// What writing a set of records did.
#[derive(Debug, Clone, Default)]
pub struct Synced {
    pub written: Written,
    /// Ids of columns some record had values for and the table lacks.
    pub skipped: BTreeSet<String>,
    /// Ids of formula columns left as Grist computes them.
    pub formula: BTreeSet<String>,
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

/// State key of the cached column list of a document's table.
fn columns_key(config: &Config) -> String {
    format!("column-list/{}/{}", config.doc_id, config.table_id)
}

/// The table's columns as last read (`None` before the first read).
pub fn cached_columns(config: &Config) -> Result<Option<Vec<TableColumn>>, Error> {
    state::get_json(&columns_key(config))
}

/// Reads the table's columns from Grist and caches them: called by `setup`,
/// after adding columns, and when a write with the cached list is refused.
pub fn refresh_columns(grist: &Grist, config: &Config) -> Result<Vec<TableColumn>, Error> {
    let columns = grist.columns()?;
    state::set_json(&columns_key(config), &columns)?;
    Ok(columns)
}

fn prepare_all(
    records: &[Record],
    columns: &[TableColumn],
    map: &ColumnMap,
    config: &Config,
) -> Result<Vec<Prepared>, String> {
    let table = Table { columns, map };
    records
        .iter()
        .map(|r| table::prepare(r, &table, config))
        .collect()
}

/// Upserts `records` into the configured table. The columns come from the
/// connection's cache (one `GET …/columns` saved per write, which hosted
/// Grist counts against the document's daily quota); a refused write made
/// with the cached list re-reads the columns once (a user may have renamed,
/// deleted or computed one) and sends the refused records again.
pub fn write_records(config: &Config, records: &[Record]) -> Result<Synced, Error> {
    let grist = Grist::new(config);
    let (mut columns, mut fresh) = match cached_columns(config)? {
        Some(columns) => (columns, false),
        None => (refresh_columns(&grist, config)?, true),
    };
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
        columns = refresh_columns(&grist, config)?;
        fresh = true;
        table::remember(&mut map, &missing, &new_columns, &columns);
        save_map(config, &map)?;
    }
    let refused_table =
        |why: String| Error::permanent(format!("table {:?}: {why}", config.table_id));
    let prepared = match prepare_all(records, &columns, &map, config) {
        Ok(prepared) => prepared,
        Err(_) if !fresh => {
            columns = refresh_columns(&grist, config)?;
            fresh = true;
            prepare_all(records, &columns, &map, config).map_err(refused_table)?
        }
        Err(why) => return Err(refused_table(why)),
    };
    let mut send = |entries: &[serde_json::Value], update_only| grist.upsert(entries, update_only);
    let mut written = batch::write(&prepared, fresh, &mut send)?;
    let mut used: Vec<&Prepared> = prepared
        .iter()
        .enumerate()
        .filter(|(i, _)| !written.refused.contains(i))
        .map(|(_, p)| p)
        .collect();
    let again = if written.refused.is_empty() {
        Vec::new()
    } else {
        columns = refresh_columns(&grist, config)?;
        let retry: Vec<Record> = written
            .refused
            .iter()
            .map(|i| records[*i].clone())
            .collect();
        let again = prepare_all(&retry, &columns, &map, config).map_err(refused_table)?;
        let more = batch::write(&again, true, &mut send)?;
        written.refused.clear();
        written.merge(more);
        again
    };
    used.extend(again.iter());
    let skipped = used
        .iter()
        .flat_map(|p| p.skipped.iter().cloned())
        .collect();
    let formula = used
        .iter()
        .flat_map(|p| p.formula.iter().cloned())
        .collect();
    Ok(Synced {
        written,
        skipped,
        formula,
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

/// `"; not written, formula columns: a, b"`, or nothing.
pub fn formula_note(formula: &BTreeSet<String>) -> String {
    if formula.is_empty() {
        return String::new();
    }
    let list: Vec<&str> = formula.iter().map(String::as_str).collect();
    format!(
        "; not written, formula columns (computed by Grist): {}",
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
