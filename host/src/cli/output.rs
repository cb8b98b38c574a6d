//! How the CLI prints: tables with headers for people (`-o table`, the
//! default), JSON for scripts (`-o json` or `--json`), times in RFC 3339 in
//! both. Other command modules reuse these helpers.

use std::io::Write as _;

use comfy_table::{presets, CellAlignment, ColumnConstraint, ContentArrangement, Table, Width};
use serde_json::Value;

/// `-o table|json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

/// The chosen format (`--json` wins over `-o`).
#[derive(Debug, Clone, Copy)]
pub struct Out {
    pub format: OutputFormat,
}

impl Out {
    pub fn new(format: OutputFormat, json: bool) -> Self {
        Self {
            format: if json { OutputFormat::Json } else { format },
        }
    }

    pub fn is_json(self) -> bool {
        self.format == OutputFormat::Json
    }

    /// Prints `value` as pretty JSON, its times in RFC 3339.
    pub fn json(self, value: &Value) -> anyhow::Result<()> {
        let mut value = value.clone();
        times_to_rfc3339(&mut value);
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &value)?;
        writeln!(out)?;
        Ok(())
    }

    /// In JSON: `value`; as a table: `table()`.
    pub fn print(self, value: &Value, table: impl FnOnce() -> String) -> anyhow::Result<()> {
        if self.is_json() {
            self.json(value)
        } else {
            print!("{}", table());
            Ok(())
        }
    }
}

/// A list as a table: upper-case headers, no borders, one row a line (the
/// first column first, so `awk '{print $1}'` picks ids), cells on one line.
/// An empty list prints nothing (`what` goes to stderr instead).
pub fn table(headers: &[&str], rows: Vec<Vec<String>>, what: &str) -> String {
    if rows.is_empty() {
        eprintln!("no {what}");
        return String::new();
    }
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(headers.iter().map(|h| h.to_uppercase()));
    for row in rows {
        t.add_row(row.into_iter().map(|c| one_line(&c)));
    }
    for column in t.column_iter_mut() {
        column.set_padding((0, 2));
        column.set_cell_alignment(CellAlignment::Left);
    }
    if let Some(last) = t.column_iter_mut().last() {
        last.set_padding((0, 0));
        last.set_constraint(ColumnConstraint::UpperBoundary(Width::Fixed(200)));
    }
    let mut text: String = t
        .lines()
        .map(|l| l.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n");
    text.push('\n');
    text
}

/// Field/value pairs (a `show` command), then nothing else.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (key, value) in pairs {
        let value = if value.contains('\n') {
            value.replace('\n', &format!("\n{:width$}  ", ""))
        } else {
            value.clone()
        };
        out.push_str(&format!("{key:<width$}  {value}\n"));
    }
    out
}

/// A cell on one line, cut at 120 characters.
fn one_line(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() > 120 {
        let cut: String = flat.chars().take(119).collect();
        format!("{cut}…")
    } else {
        flat
    }
}

/// Keys holding a time: `*_at`, `open_until`, `run_at`.
fn is_time_key(key: &str) -> bool {
    key.ends_with("_at") || key == "open_until" || key == "until"
}

/// Replaces every time stored as milliseconds since the epoch (an integer
/// under a time key) by its RFC 3339 text, at any depth.
pub fn times_to_rfc3339(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if is_time_key(key) {
                    if let Some(ms) = v.as_i64() {
                        *v = Value::String(recoco_sync::ids::rfc3339(ms));
                        continue;
                    }
                }
                times_to_rfc3339(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(times_to_rfc3339),
        _ => {}
    }
}

/// A field as text for a cell: strings as they are, `null` as `-`, numbers
/// and times (milliseconds under a time key) readable.
pub fn cell(value: &Value, key: &str) -> String {
    match value.get(key) {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) if is_time_key(key) => n
            .as_i64()
            .map(recoco_sync::ids::rfc3339)
            .unwrap_or_else(|| n.to_string()),
        Some(other) => other.to_string(),
    }
}

/// The first of `keys` that is a non-empty string, else `-`.
pub fn first_text(value: &Value, keys: &[&str]) -> String {
    keys.iter()
        .filter_map(|k| value.get(k).and_then(Value::as_str))
        .find(|s| !s.is_empty())
        .unwrap_or("-")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_become_rfc3339_at_any_depth() {
        let mut v = serde_json::json!({
            "created_at": 0, "run_at": 1_700_000_000_123i64, "attempts": 3,
            "attempts_log": [{"started_at": 1000, "duration_ms": 5}],
            "received_at": "2026-01-01T00:00:00.000Z", "revoked_at": null
        });
        times_to_rfc3339(&mut v);
        assert_eq!(v["created_at"], "1970-01-01T00:00:00.000Z");
        assert_eq!(v["run_at"], "2023-11-14T22:13:20.123Z");
        assert_eq!(v["attempts"], 3);
        assert_eq!(
            v["attempts_log"][0]["started_at"],
            "1970-01-01T00:00:01.000Z"
        );
        assert_eq!(v["attempts_log"][0]["duration_ms"], 5);
        assert_eq!(v["received_at"], "2026-01-01T00:00:00.000Z");
        assert!(v["revoked_at"].is_null());
    }

    #[test]
    fn tables_have_headers_and_one_line_rows() {
        let text = table(
            &["id", "state"],
            vec![
                vec!["j1".into(), "dead".into()],
                vec!["j22".into(), "two\nlines".into()],
            ],
            "jobs",
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines, ["ID   STATE", "j1   dead", "j22  two lines"]);
        assert_eq!(table(&["id"], vec![], "jobs"), "");
    }
}
