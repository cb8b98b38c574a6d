//! The Grist REST API calls the connector makes (tables, columns, upserts), and
//! what their failures mean: 429 and 5xx are retryable (honouring Retry-After),
//! an unknown table says to run `setup`, a refused record says which column and
//! why. Requests carry the API key in a header only, never in a URL or message.

use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use recoco_connector_sdk::http::{Request, Response};
use recoco_connector_sdk::Error;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::columns::ColumnSpec;
use crate::config::Config;
use crate::table::TableColumn;

/// Reads are small; writes of 100 records may take Grist a while. A write that
/// times out after being applied is harmless: upserts are idempotent.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
const WRITE_TIMEOUT: Duration = Duration::from_secs(120);

/// Characters kept as they are in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A write Grist did not apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// Grist refused what we sent (400, 413): another split of the records may pass.
    Refused(String),
    /// Anything else (unknown table, auth, 429, 5xx, network): stop.
    Failed(Error),
}

/// What an upsert did (grist-core ≥ 1.7.13 says it; older ones answer `null`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Upserted {
    /// Rows added.
    pub added: Vec<u64>,
    pub updated: usize,
    /// Rows touched by each entry, in order, when Grist says.
    pub rows: Vec<Vec<u64>>,
}

/// The Grist API of one connection's document.
pub struct Grist<'a> {
    config: &'a Config,
}

#[derive(Deserialize)]
struct ColumnsBody {
    columns: Vec<ColumnEntry>,
}

#[derive(Deserialize)]
struct ColumnEntry {
    id: String,
    #[serde(default)]
    fields: ColumnFields,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ColumnFields {
    col_ref: u64,
    label: String,
    #[serde(rename = "type")]
    col_type: String,
    is_formula: bool,
    formula: String,
}

#[derive(Deserialize)]
struct IdsBody<K> {
    #[serde(alias = "columns")]
    tables: Vec<IdEntry<K>>,
}

#[derive(Deserialize)]
struct IdEntry<K> {
    id: K,
}

impl<'a> Grist<'a> {
    pub fn new(config: &'a Config) -> Self {
        Self { config }
    }

    fn doc_url(&self) -> String {
        format!(
            "{}/docs/{}",
            self.config.api_base(),
            utf8_percent_encode(&self.config.doc_id, SEGMENT)
        )
    }

    fn table_url(&self, rest: &str) -> String {
        format!(
            "{}/tables/{}/{rest}",
            self.doc_url(),
            utf8_percent_encode(&self.config.table_id, SEGMENT)
        )
    }

    fn send(&self, request: Request, timeout: Duration) -> Result<Response, Error> {
        request
            .bearer_auth(&self.config.api_key)
            .header("accept", "application/json")
            .timeout(timeout)
            .send()
    }

    /// Ids of the document's tables.
    pub fn tables(&self) -> Result<Vec<String>, Error> {
        let request = Request::get(format!("{}/tables", self.doc_url()));
        let what = request.describe();
        let response = self.send(request, READ_TIMEOUT)?;
        let body: IdsBody<String> = self
            .success(&what, response)?
            .json()
            .map_err(|e| e.context(&what))?;
        Ok(body.tables.into_iter().map(|t| t.id).collect())
    }

    /// Creates the table with `columns` (ids asked, labels, types); returns the id
    /// Grist gave it.
    pub fn create_table(&self, columns: &[ColumnSpec]) -> Result<String, Error> {
        let columns: Vec<Value> = columns.iter().map(column_body).collect();
        let body = json!({"tables": [{"id": self.config.table_id, "columns": columns}]});
        let request = Request::post(format!("{}/tables", self.doc_url())).json(&body);
        let what = request.describe();
        let response = self.send(request, WRITE_TIMEOUT)?;
        let body: IdsBody<String> = self
            .success(&what, response)?
            .json()
            .map_err(|e| e.context(&what))?;
        body.tables
            .into_iter()
            .next()
            .map(|t| t.id)
            .ok_or_else(|| Error::permanent(format!("{what}: Grist answered no table id")))
    }

    /// The table's visible columns, in table order. An unknown table is a
    /// permanent error saying to run `setup`.
    pub fn columns(&self) -> Result<Vec<TableColumn>, Error> {
        let request = Request::get(self.table_url("columns"));
        let what = request.describe();
        let response = self.send(request, READ_TIMEOUT)?;
        let body: ColumnsBody = self
            .success(&what, response)?
            .json()
            .map_err(|e| e.context(&what))?;
        Ok(body
            .columns
            .into_iter()
            .map(|c| TableColumn {
                id: c.id,
                col_ref: c.fields.col_ref,
                label: c.fields.label,
                col_type: c.fields.col_type,
                // A new column is an *empty* formula column (no formula) until
                // its first write: only a formula with text is computed.
                formula: c.fields.is_formula && !c.fields.formula.trim().is_empty(),
            })
            .collect())
    }

    /// One page of the table's rows, by row id after `after`: each row's id and
    /// the cells of `columns` (a `POST …/sql` reading only those columns, so a
    /// page of 1000 rows stays small; Bool cells read as 0/1).
    pub fn rows_page(
        &self,
        columns: &[&str],
        after: u64,
        limit: u32,
    ) -> Result<Vec<(u64, Vec<Value>)>, Error> {
        let quoted: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
        let sql = format!(
            "SELECT \"id\", {} FROM {} WHERE \"id\" > ? ORDER BY \"id\" LIMIT ?",
            quoted.join(", "),
            quote_ident(&self.config.table_id)
        );
        let body = json!({"sql": sql, "args": [after, limit]});
        let request = Request::post(format!("{}/sql", self.doc_url())).json(&body);
        let what = request.describe();
        let response = self.send(request, READ_TIMEOUT)?;
        let answer: SqlAnswer = self
            .success(&what, response)?
            .json()
            .map_err(|e| e.context(&what))?;
        Ok(answer
            .records
            .into_iter()
            .map(|r| {
                let id = r.fields.get("id").and_then(Value::as_u64).unwrap_or(0);
                let cells = columns
                    .iter()
                    .map(|c| r.fields.get(*c).cloned().unwrap_or(Value::Null))
                    .collect();
                (id, cells)
            })
            .collect())
    }

    /// Adds `columns` (ids asked, labels, types); returns the ids Grist gave them,
    /// in the same order.
    pub fn add_columns(&self, columns: &[ColumnSpec]) -> Result<Vec<String>, Error> {
        let body = json!({"columns": columns.iter().map(column_body).collect::<Vec<_>>()});
        let request = Request::post(self.table_url("columns")).json(&body);
        let what = request.describe();
        let response = self.send(request, WRITE_TIMEOUT)?;
        let body: IdsBody<String> = self
            .success(&what, response)?
            .json()
            .map_err(|e| e.context(&what))?;
        if body.tables.len() != columns.len() {
            return Err(Error::permanent(format!(
                "{what}: Grist answered {} ids for {} columns",
                body.tables.len(),
                columns.len()
            )));
        }
        Ok(body.tables.into_iter().map(|c| c.id).collect())
    }

    /// `PUT …/records` of `entries` (`{require, fields}`), updating every row that
    /// matches (`onmany=all`: rows a user duplicated stay in step); with
    /// `update_only`, rows are never added.
    pub fn upsert(&self, entries: &[Value], update_only: bool) -> Result<Upserted, WriteError> {
        let mut url = self.table_url("records?onmany=all");
        if update_only {
            url.push_str("&noadd=1");
        }
        let request = Request::put(url).json(&json!({"records": entries}));
        let what = request.describe();
        let response = self
            .send(request, WRITE_TIMEOUT)
            .map_err(WriteError::Failed)?;
        if response.is_success() {
            return Ok(upserted(&response.body));
        }
        if matches!(response.status, 400 | 413) {
            return Err(WriteError::Refused(refusal(
                response.status,
                &response.body,
            )));
        }
        Err(WriteError::Failed(self.failure(&what, &response)))
    }

    fn success(&self, what: &str, response: Response) -> Result<Response, Error> {
        if response.is_success() {
            Ok(response)
        } else if response.status == 400 {
            Err(Error::permanent(format!(
                "{what}: {}",
                refusal(400, &response.body)
            )))
        } else {
            Err(self.failure(what, &response))
        }
    }

    /// The error of a failed call, with what to do about it when we know.
    fn failure(&self, what: &str, response: &Response) -> Error {
        let message = grist_message(&response.body);
        let (table, doc) = (&self.config.table_id, &self.config.doc_id);
        match response.status {
            404 if message.starts_with("Table not found") => Error::permanent(format!(
                "Grist has no table {table:?} in document {doc:?}: run the connection's `setup` task to create it (Grist: {message})"
            )),
            404 if message.contains("document not found") => Error::permanent(format!(
                "Grist has no document {doc:?} at {} (or the API key's user cannot see it): check doc_id (Grist: {message})",
                self.config.api_base()
            )),
            401 => Error::permanent(format!("{what}: Grist refused the API key (HTTP 401: {message}); check api_key")),
            403 => Error::permanent(format!(
                "{what}: the API key's user lacks access to document {doc:?} (HTTP 403: {message}); it needs write access"
            )),
            _ => Error::from_response(what, response),
        }
    }
}

#[derive(Deserialize)]
struct SqlAnswer {
    records: Vec<SqlRecord>,
}

#[derive(Deserialize)]
struct SqlRecord {
    fields: serde_json::Map<String, Value>,
}

/// An SQL identifier between double quotes (Grist ids hold none, but a config's
/// table id is the user's text).
fn quote_ident(id: &str) -> String {
    format!("\"{}\"", id.replace('"', "\"\""))
}

fn column_body(spec: &ColumnSpec) -> Value {
    json!({"id": spec.wanted, "fields": {"label": spec.label, "type": spec.col_type.grist()}})
}

/// The `error` of a Grist error body, else the start of the body.
fn grist_message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| {
            String::from_utf8_lossy(&body[..body.len().min(300)])
                .trim()
                .to_owned()
        })
}

/// Why Grist refused a write, naming the column when Grist does.
pub fn refusal(status: u16, body: &[u8]) -> String {
    let message = grist_message(body);
    if status == 413 {
        return format!("the request is larger than Grist accepts (HTTP 413: {message})");
    }
    if let Some(column) = message
        .split("formula column ")
        .nth(1)
        .map(|rest| rest.trim().trim_matches('"'))
    {
        return format!(
            "column {column:?} is a formula column in Grist, which accepts no value (Grist: {message}); the connector skips it once it re-reads the columns"
        );
    }
    if let Some(column) = message
        .strip_prefix("Invalid column \"")
        .and_then(|rest| rest.split('"').next())
    {
        return format!(
            "column {column:?} does not exist in the table (Grist: {message}); run the `setup` task to create missing columns"
        );
    }
    let detail = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        v.pointer("/details/userError")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    if let Some(detail) = detail {
        if let Some(column) = detail
            .split(".fields.")
            .nth(1)
            .and_then(|r| r.split([' ', '.', '[']).next())
        {
            return format!("Grist refused the value of column {column:?}: {detail}");
        }
        return format!("HTTP {status}: {message}: {detail}");
    }
    format!("HTTP {status}: {message}")
}

/// Reads an upsert answer; `null` (older grist-core) counts nothing.
fn upserted(body: &[u8]) -> Upserted {
    #[derive(Deserialize, Default)]
    #[serde(default, rename_all = "camelCase")]
    struct Answer {
        record_ids: Vec<Vec<u64>>,
        add_record_ids: Vec<u64>,
        update_record_ids: Vec<Vec<u64>>,
    }
    let answer: Answer = serde_json::from_slice::<Option<Answer>>(body)
        .ok()
        .flatten()
        .unwrap_or_default();
    Upserted {
        added: answer.add_record_ids,
        updated: answer.update_record_ids.iter().map(Vec::len).sum(),
        rows: answer.record_ids,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_column() {
        // Bodies exactly as grist-core 1.7.17 answers them.
        let invalid = br#"{"error":"Invalid column \"nope\""}"#;
        let r = refusal(400, invalid);
        assert!(
            r.starts_with("column \"nope\" does not exist in the table"),
            "{r}"
        );
        assert!(r.contains("run the `setup` task"));
        let bare_list = br#"{"error":"Invalid payload","details":{"userError":"Error: body.records[0] is not a NewRecord; body.records[0].fields.tags is not a CellValue; body.records[0].fields.tags is none of number, string, boolean, null, 1 more"}}"#;
        let r = refusal(400, bare_list);
        assert!(
            r.starts_with("Grist refused the value of column \"tags\""),
            "{r}"
        );
        let dup = br#"{"error":"Error manipulating data: [Sandbox] ValueError require values must be unique"}"#;
        assert_eq!(
            refusal(400, dup),
            "HTTP 400: Error manipulating data: [Sandbox] ValueError require values must be unique"
        );
        let formula = br#"{"error":"Error manipulating data: [Sandbox] ValueError Can't save value to formula column v"}"#;
        assert!(
            refusal(400, formula).starts_with("column \"v\" is a formula column"),
            "{}",
            refusal(400, formula)
        );
        let big = br#"{"error":"request entity too large"}"#;
        assert!(refusal(413, big).contains("larger than Grist accepts"));
        assert_eq!(
            refusal(400, b"<html>oops</html>"),
            "HTTP 400: <html>oops</html>"
        );
    }

    #[test]
    fn reads_both_upsert_answers() {
        let new = upserted(
            br#"{"recordIds":[[10],[11],[1]],"addRecordIds":[10,11],"updateRecordIds":[[1]]}"#,
        );
        assert_eq!((new.added, new.updated), (vec![10, 11], 1));
        assert_eq!(new.rows, vec![vec![10], vec![11], vec![1]]);
        let many =
            upserted(br#"{"recordIds":[[8,9]],"addRecordIds":[],"updateRecordIds":[[8,9]]}"#);
        assert_eq!((many.added.len(), many.updated), (0, 2));
        assert_eq!(upserted(b"null"), Upserted::default());
    }

    #[test]
    fn failures_say_what_to_do() {
        let config = Config {
            api_url: "https://g.example.org/api".into(),
            api_key: "secret-key".into(),
            doc_id: "doc1".into(),
            table_id: "Projets".into(),
            columns: None,
            label_max_length: None,
        };
        let grist = Grist::new(&config);
        let response = |status, body: &str| Response {
            status,
            headers: vec![],
            body: body.as_bytes().to_vec(),
        };
        let e = grist.failure(
            "PUT x",
            &response(404, r#"{"error":"Table not found \"Projets\""}"#),
        );
        assert!(!e.is_retryable());
        assert!(
            e.message().contains("run the connection's `setup` task"),
            "{e}"
        );
        let e = grist.failure("PUT x", &response(404, r#"{"error":"document not found"}"#));
        assert!(e.message().contains("check doc_id"), "{e}");
        let e = grist.failure(
            "PUT x",
            &response(
                429,
                r#"{"error":"Too many backlogged requests for document doc1 - try again later?"}"#,
            ),
        );
        assert!(e.is_retryable());
        let e = grist.failure("PUT x", &response(503, ""));
        assert!(e.is_retryable());
        let e = grist.failure(
            "PUT x",
            &response(401, r#"{"error":"Bad request: invalid API key"}"#),
        );
        assert!(
            !e.is_retryable()
                && e.message().contains("check api_key")
                && !e.message().contains("secret-key")
        );
        assert_eq!(
            grist.table_url("records"),
            "https://g.example.org/api/docs/doc1/tables/Projets/records"
        );
    }
}
