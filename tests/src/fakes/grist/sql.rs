//! `POST /api/docs/{doc}/sql` (and `GET …/sql?q=`), for the one statement shape
//! the connector sends: `SELECT "id", "<col>", … FROM "<table>" WHERE "id" > ?
//! ORDER BY "id" LIMIT ?` (identifiers quoted or not). Cells come back as
//! SQLite stores them (Bool as 0/1, lists as JSON text without `"L"`), unknown
//! tables and columns as grist-core's `SQLITE_ERROR` 400s; any other statement
//! is refused, so a change of the connector's query cannot pass unnoticed.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::{error, Answer, Doc};

/// A parsed statement: columns, table, then whether `WHERE id > ?` and `LIMIT ?`.
struct Select {
    columns: Vec<String>,
    table: String,
}

fn unquote(token: &str) -> String {
    let t = token.trim();
    match t.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => t.to_string(),
    }
}

fn parse(sql: &str) -> Option<Select> {
    let lower = sql.to_ascii_lowercase();
    let rest = lower.strip_prefix("select ")?;
    let from = rest.find(" from ")?;
    let columns_text = &sql["select ".len().."select ".len() + from];
    let after_from = &sql["select ".len() + from + " from ".len()..];
    let where_at = after_from.to_ascii_lowercase().find(" where ")?;
    let table = unquote(&after_from[..where_at]);
    let tail = after_from[where_at..].to_ascii_lowercase().replace('"', "");
    let tail: Vec<&str> = tail.split_whitespace().collect();
    if tail != ["where", "id", ">", "?", "order", "by", "id", "limit", "?"] {
        return None;
    }
    Some(Select {
        columns: columns_text.split(',').map(unquote).collect(),
        table,
    })
}

/// As SQLite holds the cell.
fn stored(cell: &Value, col_type: &str) -> Value {
    match (col_type, cell) {
        ("Bool", Value::Bool(b)) => json!(u8::from(*b)),
        ("ChoiceList", Value::Array(items)) => {
            json!(serde_json::to_string(&items[1..]).unwrap_or_default())
        }
        _ => cell.clone(),
    }
}

pub fn answer(
    doc: &Doc,
    method: &str,
    query: &HashMap<String, String>,
    body: &Value,
) -> Result<Answer, Answer> {
    let (sql, args) = match method {
        "POST" => (
            body["sql"].as_str().unwrap_or("").to_string(),
            body["args"].as_array().cloned().unwrap_or_default(),
        ),
        "GET" => (query.get("q").cloned().unwrap_or_default(), vec![]),
        _ => return Err(error(404, "not found")),
    };
    let select = parse(&sql).ok_or_else(|| {
        error(
            400,
            format!("the fake Grist only runs the connector's paged select, not: {sql}"),
        )
    })?;
    let (Some(after), Some(limit)) = (
        args.first().and_then(Value::as_u64),
        args.get(1).and_then(Value::as_u64),
    ) else {
        return Err(error(
            400,
            "SQLITE_RANGE: column index out of range".to_string(),
        ));
    };
    let table = doc
        .tables
        .iter()
        .find(|t| t.id.eq_ignore_ascii_case(&select.table))
        .ok_or_else(|| {
            error(
                400,
                format!("SQLITE_ERROR: no such table: {}", select.table),
            )
        })?;
    let mut types = Vec::new();
    for c in &select.columns {
        if c == "id" {
            types.push("Int".to_string());
            continue;
        }
        let column = table
            .columns
            .iter()
            .find(|col| col.id.eq_ignore_ascii_case(c))
            .ok_or_else(|| error(400, format!("SQLITE_ERROR: no such column: {c}")))?;
        types.push(column.col_type.split(':').next().unwrap_or("").to_string());
    }
    let records: Vec<Value> = table
        .rows
        .iter()
        .filter(|(id, _)| **id > after)
        .take(limit as usize)
        .map(|(id, row)| {
            let fields: serde_json::Map<String, Value> = select
                .columns
                .iter()
                .zip(&types)
                .map(|(c, t)| {
                    let cell = if c == "id" {
                        json!(id)
                    } else {
                        stored(row.get(c).unwrap_or(&Value::Null), t)
                    };
                    (c.clone(), cell)
                })
                .collect();
            json!({"fields": fields})
        })
        .collect();
    Ok((200, json!({"statement": sql, "records": records})))
}
