//! The table as Grist reports it, and which of its columns holds each logical
//! column. The connector remembers the columns it created by their Grist row
//! ref (`colRef`), which survives a rename in Grist (a label change renames the
//! id too); columns it never created are found by the id Grist would give them,
//! never taking a column that belongs to another key. Pure functions: the map is
//! loaded and saved by the callers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::columns::{is_project_column, is_survey_key, wanted_id, ColumnSpec, KEY_COLUMN};
use crate::config::Config;
use crate::ids;
use crate::record::Record;

/// A column as `GET …/columns` lists it (also kept in the connection's state
/// as the cached column list, see [`crate::sync`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableColumn {
    pub id: String,
    #[serde(rename = "ref")]
    pub col_ref: u64,
    pub label: String,
    #[serde(rename = "type")]
    pub col_type: String,
    /// A computed column (a user turned it into a formula): Grist refuses any
    /// value written to it, so it is never written.
    #[serde(default)]
    pub formula: bool,
}

/// A column the connector created: its id when last seen and its ref.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Known {
    pub id: String,
    #[serde(rename = "ref")]
    pub col_ref: u64,
}

/// Logical key → the column created for it, kept in the connection's state.
pub type ColumnMap = BTreeMap<String, Known>;

/// State key of the column map of a document's table.
pub fn map_key(config: &Config) -> String {
    format!("columns/{}/{}", config.doc_id, config.table_id)
}

/// Where a logical column is in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found<'a> {
    /// This column holds it.
    Column(&'a TableColumn),
    /// The connector created it and someone deleted it since: leave it deleted.
    Removed,
    /// No column holds it yet.
    Absent,
}

/// The table's columns with the connector's memory of them.
#[derive(Debug, Clone, Copy)]
pub struct Table<'a> {
    pub columns: &'a [TableColumn],
    pub map: &'a ColumnMap,
}

impl<'a> Table<'a> {
    /// The column of logical key `key`.
    pub fn find(&self, key: &str) -> Found<'a> {
        if let Some(known) = self.map.get(key) {
            return match self.columns.iter().find(|c| c.col_ref == known.col_ref) {
                Some(column) => Found::Column(column),
                None => Found::Removed,
            };
        }
        let id = ids::sanitize(&wanted_id(key), "c", false);
        let Some(column) = self.columns.iter().find(|c| c.id.eq_ignore_ascii_case(&id)) else {
            return Found::Absent;
        };
        let claimed = self.map.values().any(|k| k.col_ref == column.col_ref);
        // A question whose slug is `name` must not write into the project name.
        let foreign = is_survey_key(key) && is_project_column(&column.id);
        if claimed || foreign {
            Found::Absent
        } else {
            Found::Column(column)
        }
    }
}

static NULL: Value = Value::Null;

/// A record matched to the table: the body of one `PUT …/records` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub project_id: u64,
    /// `{"require": {<key column>: id}, "fields": {…}}`.
    pub body: Value,
    /// Only update existing rows (a project Recoco no longer has).
    pub update_only: bool,
    /// Ids of the columns the record has values for but the table lacks.
    pub skipped: Vec<String>,
    /// Ids of the formula columns that would have been written.
    pub formula: Vec<String>,
}

/// Why a record cannot be matched to the table at all.
pub fn key_column<'a>(table: &Table<'a>) -> Result<&'a TableColumn, String> {
    match table.find(KEY_COLUMN) {
        Found::Column(c) => Ok(c),
        _ => Err(format!(
            "the table has no `{KEY_COLUMN}` column (the project id, the key of every row); \
             run the `setup` task to create it"
        )),
    }
}

/// Whether the config selects the column of `key`, known by its wanted id and,
/// when it exists, its actual id. A question's wanted id that is also a project
/// column's (`name`) would be ambiguous: only the actual id selects it then.
pub fn selected(config: &Config, key: &str, actual: Option<&str>) -> bool {
    let wanted = wanted_id(key);
    let mut ids: Vec<&str> = actual.into_iter().collect();
    if !(is_survey_key(key) && is_project_column(&wanted)) {
        ids.push(&wanted);
    }
    config.selects(&ids)
}

/// Matches `record` to the table: values go to their column's actual id, those
/// of columns the config leaves out are dropped, those without a column are
/// listed in `skipped` (unless `null`: nothing is lost then), formula columns
/// are never written (listed in `formula`). A project's record also empties
/// every other column the connector owns (those of its column map: questions it
/// no longer answers, attachments removed), so that whatever event was missed,
/// the next write of the project makes its row equal to Recoco.
pub fn prepare(record: &Record, table: &Table, config: &Config) -> Result<Prepared, String> {
    let key = key_column(table)?;
    let mut fields = Map::new();
    let mut skipped = Vec::new();
    let mut formula = Vec::new();
    let mut values: Vec<(&str, &Value)> =
        record.values.iter().map(|(k, v)| (k.as_str(), v)).collect();
    if !record.gone {
        values.extend(
            table
                .map
                .keys()
                .filter(|k| k.as_str() != KEY_COLUMN && !record.values.contains_key(*k))
                .map(|k| (k.as_str(), &NULL)),
        );
    }
    for (logical, value) in values {
        match table.find(logical) {
            Found::Column(c) if c.formula && selected(config, logical, Some(&c.id)) => {
                formula.push(c.id.clone());
            }
            Found::Column(c) if c.formula => {}
            Found::Column(c) if selected(config, logical, Some(&c.id)) => {
                fields.insert(c.id.clone(), value.clone());
            }
            Found::Absent if !value.is_null() && selected(config, logical, None) => {
                skipped.push(wanted_id(logical));
            }
            _ => {}
        }
    }
    let mut require = Map::new();
    require.insert(key.id.clone(), Value::from(record.project_id));
    Ok(Prepared {
        project_id: record.project_id,
        body: serde_json::json!({"require": require, "fields": fields}),
        update_only: record.gone,
        skipped,
        formula,
    })
}

/// Records in `map` the columns just added for `specs`, which Grist named `ids`
/// (in order): each key now follows the column of that id in `columns`.
pub fn remember(
    map: &mut ColumnMap,
    specs: &[ColumnSpec],
    ids: &[String],
    columns: &[TableColumn],
) {
    for (spec, id) in specs.iter().zip(ids) {
        if let Some(column) = columns.iter().find(|c| &c.id == id) {
            map.insert(
                spec.key.clone(),
                Known {
                    id: id.clone(),
                    col_ref: column.col_ref,
                },
            );
        }
    }
}

/// Attachment columns that some record needs and that were never created.
pub fn missing_attachment_columns(
    records: &[Record],
    table: &Table,
    config: &Config,
) -> Vec<ColumnSpec> {
    let mut missing: Vec<ColumnSpec> = Vec::new();
    for spec in records.iter().flat_map(|r| &r.attachment_columns) {
        if table.find(&spec.key) == Found::Absent
            && selected(config, &spec.key, None)
            && !missing.iter().any(|m| m.key == spec.key)
        {
            missing.push(spec.clone());
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn col(id: &str, col_ref: u64) -> TableColumn {
        TableColumn {
            id: id.into(),
            col_ref,
            label: id.into(),
            col_type: "Text".into(),
            formula: false,
        }
    }

    fn config(columns: Option<&[&str]>) -> Config {
        Config {
            api_url: "https://g.example.org/api".into(),
            api_key: "k".into(),
            doc_id: "d".into(),
            table_id: "Projets".into(),
            columns: columns.map(|c| c.iter().map(|s| s.to_string()).collect()),
            label_max_length: None,
        }
    }

    fn record(values: &[(&str, Value)]) -> Record {
        Record {
            project_id: 7,
            values: values
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            attachment_columns: vec![],
            gone: false,
        }
    }

    #[test]
    fn known_columns_are_followed_through_renames() {
        let columns = [col("object_id", 1), col("Nom_du_projet", 2)];
        let map = ColumnMap::from([(
            "name".into(),
            Known {
                id: "name".into(),
                col_ref: 2,
            },
        )]);
        let table = Table {
            columns: &columns,
            map: &map,
        };
        assert_eq!(table.find("name"), Found::Column(&columns[1]));
        let map = ColumnMap::from([(
            "name".into(),
            Known {
                id: "name".into(),
                col_ref: 9,
            },
        )]);
        assert_eq!(
            Table {
                columns: &columns,
                map: &map
            }
            .find("name"),
            Found::Removed
        );
    }

    #[test]
    fn unknown_columns_are_found_by_grist_id_without_stealing() {
        let columns = [
            col("object_id", 1),
            col("name", 2),
            col("Etat_du_bati", 3),
            col("c2e_tranche", 4),
        ];
        let empty = ColumnMap::new();
        let table = Table {
            columns: &columns,
            map: &empty,
        };
        assert_eq!(
            table.find("survey:etat-du-bati"),
            Found::Column(&columns[2])
        );
        assert_eq!(table.find("survey:2e-tranche"), Found::Column(&columns[3]));
        assert_eq!(
            table.find("survey:name"),
            Found::Absent,
            "a question never takes a project column"
        );
        let map = ColumnMap::from([(
            "survey:other".into(),
            Known {
                id: "Etat_du_bati".into(),
                col_ref: 3,
            },
        )]);
        let table = Table {
            columns: &columns,
            map: &map,
        };
        assert_eq!(
            table.find("survey:etat-du-bati"),
            Found::Absent,
            "claimed by another key"
        );
    }

    #[test]
    fn prepares_the_upsert_entry() {
        let columns = [
            col("object_id", 1),
            col("name", 2),
            col("q", 3),
            col("q_comment", 4),
            col("old", 5),
        ];
        let map = ColumnMap::from([
            (
                "survey:q".into(),
                Known {
                    id: "q".into(),
                    col_ref: 3,
                },
            ),
            (
                "survey:q#comment".into(),
                Known {
                    id: "q_comment".into(),
                    col_ref: 4,
                },
            ),
            (
                "survey:gone".into(),
                Known {
                    id: "gone".into(),
                    col_ref: 99,
                },
            ),
        ]);
        let table = Table {
            columns: &columns,
            map: &map,
        };
        let r = record(&[
            ("name", json!("Halle")),
            ("survey:q", json!(true)),
            ("survey:new-q", json!("x")),
            ("survey:null-q", Value::Null),
            ("survey:gone", json!(1)),
        ]);
        let p = prepare(&r, &table, &config(None)).unwrap();
        // Every owned column is written: `q_comment`, unanswered, is emptied;
        // a null without column is not "skipped".
        assert_eq!(
            p.body,
            json!({"require": {"object_id": 7}, "fields": {"name": "Halle", "q": true, "q_comment": null}})
        );
        assert_eq!(p.skipped, ["new_q"]);
        assert!(!p.update_only);

        let only_name = prepare(&r, &table, &config(Some(&["name"]))).unwrap();
        assert_eq!(only_name.body["fields"], json!({"name": "Halle"}));
        assert!(only_name.skipped.is_empty());

        let gone = prepare(
            &Record::gone(7),
            &Table {
                columns: &[col("object_id", 1), col("active", 6)],
                map: &map,
            },
            &config(None),
        )
        .unwrap();
        assert_eq!(gone.body["fields"], json!({"active": false}));
        assert!(gone.update_only);
    }

    #[test]
    fn formula_columns_are_never_written() {
        let mut computed = col("q", 3);
        computed.formula = true;
        let columns = [col("object_id", 1), col("name", 2), computed];
        let map = ColumnMap::from([(
            "survey:q".into(),
            Known {
                id: "q".into(),
                col_ref: 3,
            },
        )]);
        let table = Table {
            columns: &columns,
            map: &map,
        };
        let p = prepare(
            &record(&[("name", json!("Halle")), ("survey:q", json!("x"))]),
            &table,
            &config(None),
        )
        .unwrap();
        assert_eq!(p.body["fields"], json!({"name": "Halle"}));
        assert_eq!(p.formula, ["q"]);
        // Nor emptied when unanswered.
        let p = prepare(&record(&[("name", json!("Halle"))]), &table, &config(None)).unwrap();
        assert_eq!(p.body["fields"], json!({"name": "Halle"}));
    }

    #[test]
    fn a_question_named_like_a_project_column_is_selected_by_its_actual_id() {
        let c = config(Some(&["name"]));
        assert!(selected(&c, "name", Some("name")));
        assert!(!selected(&c, "survey:name", None));
        assert!(!selected(&c, "survey:name", Some("name2")));
        assert!(selected(
            &config(Some(&["name2"])),
            "survey:name",
            Some("name2")
        ));
        assert!(selected(
            &config(Some(&["etat_du_bati"])),
            "survey:etat-du-bati",
            None
        ));
    }

    #[test]
    fn a_table_without_key_column_is_refused() {
        let columns = [col("name", 2)];
        let map = ColumnMap::new();
        let err = prepare(
            &record(&[]),
            &Table {
                columns: &columns,
                map: &map,
            },
            &config(None),
        )
        .unwrap_err();
        assert!(err.contains("run the `setup` task"), "{err}");
    }
}
