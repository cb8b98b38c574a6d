//! The `setup` task: makes the table hold every column the connector writes.
//! Creates the table when missing; otherwise adds only the missing columns.
//! Never drops, renames or retypes a column (a user's changes stay), so running
//! it twice changes nothing. Remembers which Grist column each key got.

use recoco_connector_sdk::{info, Error};

use crate::columns::{all_columns, ColumnSpec, KEY_COLUMN};
use crate::config::Config;
use crate::grist::Grist;
use crate::ids::Taken;
use crate::recoco;
use crate::sync::{load_map, refresh_columns, save_map};
use crate::table::{remember, selected, ColumnMap, Found, Known, Table, TableColumn};

/// What to do with an existing table.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Columns to add.
    pub add: Vec<ColumnSpec>,
    /// Columns found by their id that the map does not know yet: adopt them.
    pub adopt: Vec<(String, Known)>,
    /// Columns whose type differs from what setup would create, left as they are.
    pub differences: Vec<String>,
    /// Columns a user turned into formulas: never written.
    pub formula: Vec<String>,
}

/// Compares the wanted columns with the table.
pub fn plan(specs: &[ColumnSpec], table: &Table) -> Plan {
    let mut plan = Plan::default();
    for spec in specs {
        match table.find(&spec.key) {
            Found::Column(column) => {
                if column.formula {
                    plan.formula.push(column.id.clone());
                }
                if !table.map.contains_key(&spec.key) {
                    let known = Known {
                        id: column.id.clone(),
                        col_ref: column.col_ref,
                    };
                    plan.adopt.push((spec.key.clone(), known));
                }
                if column.col_type != spec.col_type.grist() {
                    plan.differences.push(format!(
                        "{} is {} (setup would create {})",
                        column.id,
                        column.col_type,
                        spec.col_type.grist()
                    ));
                }
            }
            Found::Removed | Found::Absent => plan.add.push(spec.clone()),
        }
    }
    plan
}

/// The columns the config selects, each known by its wanted id and the id Grist
/// gives it in a new table (`name2` for a question `name`).
pub fn selected_columns(config: &Config, specs: Vec<ColumnSpec>) -> Vec<ColumnSpec> {
    let mut taken = Taken::with_columns([]);
    specs
        .into_iter()
        .filter(|s| {
            let predicted = taken.pick_column(&s.wanted);
            s.key == KEY_COLUMN || selected(config, &s.key, Some(&predicted))
        })
        .collect()
}

/// The map of a table just created with `specs`: Grist lists its columns in the
/// order asked, whatever ids it gave them.
fn created_map(specs: &[ColumnSpec], columns: &[TableColumn]) -> Result<ColumnMap, Error> {
    if columns.len() != specs.len() {
        return Err(Error::permanent(format!(
            "Grist created the table with {} columns instead of {}",
            columns.len(),
            specs.len()
        )));
    }
    Ok(specs
        .iter()
        .zip(columns)
        .map(|(s, c)| {
            (
                s.key.clone(),
                Known {
                    id: c.id.clone(),
                    col_ref: c.col_ref,
                },
            )
        })
        .collect())
}

/// Runs `setup`; the summary says what changed.
pub fn run(config: &Config) -> Result<String, Error> {
    let grist = Grist::new(config);
    let questions = recoco::questions()?;
    let specs = selected_columns(config, all_columns(&questions, config.label_max_length()));
    let table_id = &config.table_id;
    let tables = grist.tables()?;
    if !tables.contains(table_id) {
        // Grist compares table ids without case: it would create `Projets2`.
        if let Some(other) = tables.iter().find(|t| t.eq_ignore_ascii_case(table_id)) {
            return Err(Error::permanent(format!(
                "the document has a table {other:?}, which Grist considers the same id as {table_id:?}: \
                 set table_id to {other:?} (or rename that table)"
            )));
        }
        let created = grist.create_table(&specs)?;
        if &created != table_id {
            return Err(Error::permanent(format!(
                "Grist created the table as {created:?} instead of {table_id:?}: set table_id to {created:?}"
            )));
        }
        let map = created_map(&specs, &refresh_columns(&grist, config)?)?;
        save_map(config, &map)?;
        info!("created table {table_id} with {} columns", specs.len());
        return Ok(format!(
            "created table {table_id} with {} columns ({} for {} survey questions)",
            specs.len(),
            specs
                .iter()
                .filter(|s| crate::columns::is_survey_key(&s.key))
                .count(),
            questions.len()
        ));
    }
    let columns = refresh_columns(&grist, config)?;
    let mut map = load_map(config)?;
    let plan = plan(
        &specs,
        &Table {
            columns: &columns,
            map: &map,
        },
    );
    let changed = !plan.adopt.is_empty() || !plan.add.is_empty();
    map.extend(plan.adopt.iter().cloned());
    let mut added = Vec::new();
    if !plan.add.is_empty() {
        added = grist.add_columns(&plan.add)?;
        let columns = refresh_columns(&grist, config)?;
        remember(&mut map, &plan.add, &added, &columns);
    }
    if changed {
        save_map(config, &map)?;
    }
    let mut summary = if added.is_empty() {
        format!(
            "table {table_id} already has its {} columns: nothing to add",
            specs.len()
        )
    } else {
        info!("added {} columns to {table_id}", added.len());
        format!(
            "table {table_id}: added {} columns ({})",
            added.len(),
            added.join(", ")
        )
    };
    if !plan.differences.is_empty() {
        summary.push_str(&format!(
            "; left as they are: {}",
            plan.differences.join(", ")
        ));
    }
    if !plan.formula.is_empty() {
        summary.push_str(&format!(
            "; formula columns, computed by Grist and never written: {}",
            plan.formula.join(", ")
        ));
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::columns::project_columns;

    fn col(id: &str, col_ref: u64, t: &str) -> TableColumn {
        TableColumn {
            id: id.into(),
            col_ref,
            label: id.into(),
            col_type: t.into(),
            formula: false,
        }
    }

    #[test]
    fn plans_only_missing_columns_and_keeps_user_changes() {
        let specs = project_columns(80);
        let mut columns: Vec<TableColumn> = specs
            .iter()
            .enumerate()
            .map(|(i, s)| col(&s.wanted, i as u64 + 1, s.col_type.grist()))
            .collect();
        columns[3].col_type = "Text".into(); // a user retyped `tags`
        columns[4].formula = true; // and computed `city`
        columns.remove(5); // and deleted `postal_code`
        columns.push(col("my_notes", 99, "Text")); // and added a column
        let map = ColumnMap::new();
        let plan = plan(
            &specs,
            &Table {
                columns: &columns,
                map: &map,
            },
        );
        assert_eq!(
            plan.add
                .iter()
                .map(|s| s.wanted.as_str())
                .collect::<Vec<_>>(),
            ["postal_code"]
        );
        assert_eq!(plan.adopt.len(), specs.len() - 1);
        assert_eq!(
            plan.differences,
            ["tags is Text (setup would create ChoiceList)"]
        );
        assert_eq!(plan.formula, ["city"]);

        // Once adopted, a second plan has nothing to do.
        let map: ColumnMap = plan.adopt.into_iter().collect();
        let columns: Vec<TableColumn> = columns
            .into_iter()
            .chain([col("postal_code", 100, "Text")])
            .collect();
        let mut map = map;
        map.insert(
            "postal_code".into(),
            Known {
                id: "postal_code".into(),
                col_ref: 100,
            },
        );
        let again = super::plan(
            &specs,
            &Table {
                columns: &columns,
                map: &map,
            },
        );
        assert!(again.add.is_empty() && again.adopt.is_empty());
    }

    #[test]
    fn a_subset_selects_by_the_ids_grist_gives() {
        let name_question = recoco_connector_sdk::recoco::Question {
            slug: "name".into(),
            text_short: "Référent".into(),
            ..Default::default()
        };
        let specs = all_columns(&[name_question], 80);
        let config = |cols: &[&str]| Config {
            api_url: "https://g.example.org/api".into(),
            api_key: "k".into(),
            doc_id: "d".into(),
            table_id: "Projets".into(),
            columns: Some(cols.iter().map(|c| c.to_string()).collect()),
            label_max_length: None,
        };
        let keys = |cols: &[&str]| -> Vec<String> {
            selected_columns(&config(cols), specs.clone())
                .into_iter()
                .map(|s| s.key)
                .collect()
        };
        assert_eq!(keys(&["name"]), ["object_id", "name"]);
        assert_eq!(keys(&["name2"]), ["object_id", "survey:name"]);
    }

    #[test]
    fn a_created_table_maps_columns_by_position() {
        let specs = project_columns(80);
        let columns: Vec<TableColumn> = specs
            .iter()
            .enumerate()
            .map(|(i, s)| col(&s.wanted, i as u64 + 10, "Text"))
            .collect();
        let map = created_map(&specs, &columns).unwrap();
        assert_eq!(
            map["name"],
            Known {
                id: "name".into(),
                col_ref: 11
            }
        );
        assert!(created_map(&specs, &columns[1..]).is_err());
    }
}
