//! A fake Grist document API (`/api/docs/...`), following `grist-api.md` and the
//! answers of a real grist-core 1.7.17 (`grist-real/`): tables and columns with
//! Grist's id sanitising and case-insensitive deduplication (and `colRef`s that
//! survive renames), records with `PUT` + `require` upserts (`onmany`, `noadd`,
//! `noupdate`), atomic writes, `400 Invalid column "x"`, `404 Table not found`,
//! cells stored per column type (`["L", …]` lists, Bool `null` → `false`), the
//! 1 MiB body limit (413), Bearer auth, a switch answering 429 or 500 for a
//! while, formula columns (writes refused, like the data engine), the paged
//! `POST …/sql` reads the connector makes, and a log of every request.

mod cells;
mod ident;
mod sql;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

pub const API_KEY: &str = "grist-test-key-5f1c0d9a";
/// grist-core's JSON body limit.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub id: String,
    pub col_ref: u64,
    pub label: String,
    pub col_type: String,
    pub widget_options: String,
    pub untied: bool,
    pub hidden: bool,
    /// The formula of a computed column (`""` for a data column).
    pub formula: String,
    /// Added through `POST …/columns` and never written: Grist reports such a
    /// column as an *empty* formula column (`isFormula`, no formula).
    pub empty: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Table {
    pub id: String,
    pub table_ref: u64,
    pub columns: Vec<Column>,
    /// Row id → every column's cell.
    pub rows: BTreeMap<u64, Map<String, Value>>,
    next_row: u64,
}

impl Table {
    fn column(&self, id: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.id == id)
    }

    /// What `GET …/records` shows of a row: the visible columns.
    pub fn visible(&self, row: &Map<String, Value>) -> Map<String, Value> {
        self.columns
            .iter()
            .filter(|c| !c.hidden)
            .map(|c| (c.id.clone(), row.get(&c.id).cloned().unwrap_or(Value::Null)))
            .collect()
    }

    fn add_row(&mut self) -> u64 {
        self.next_row += 1;
        let id = self.next_row;
        let row = self.columns.iter().map(|c| {
            let v = if c.col_type == "ManualSortPos" {
                json!(id)
            } else {
                cells::default_of(&c.col_type)
            };
            (c.id.clone(), v)
        });
        self.rows.insert(id, row.collect());
        id
    }

    fn write(&mut self, row: u64, fields: &Map<String, Value>) {
        let types: HashMap<String, String> = self
            .columns
            .iter()
            .map(|c| (c.id.clone(), c.col_type.clone()))
            .collect();
        let cells = self.rows.get_mut(&row).expect("row exists");
        for (k, v) in fields {
            if let Some(t) = types.get(k) {
                cells.insert(k.clone(), cells::store(v, t));
            }
        }
        for c in self.columns.iter_mut() {
            if fields.contains_key(&c.id) {
                c.empty = false;
            }
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Doc {
    pub tables: Vec<Table>,
    next_col_ref: u64,
    next_table_ref: u64,
}

#[derive(Debug, Clone)]
pub struct Fault {
    pub status: u16,
    pub remaining: u32,
    pub retry_after: Option<u64>,
    /// Only requests of this method fail; others pass.
    pub method: Option<String>,
    /// Matching requests let through before failing.
    pub skip: u32,
}

#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    /// Path and query.
    pub path: String,
    pub status: u16,
    pub body: Value,
}

#[derive(Default)]
pub struct Inner {
    pub docs: HashMap<String, Doc>,
    pub fault: Option<Fault>,
    /// (doc, table, column) deleted right after the next `GET …/columns` of that
    /// table, as if a user deleted it while a sync was running.
    pub drop_after_read: Option<(String, String, String)>,
    pub log: Vec<Logged>,
    /// A write holding this text in a cell is refused as the data engine
    /// refuses a value (a 400 for the whole request).
    pub refuse_value: Option<String>,
    next_doc: u32,
}

#[derive(Clone)]
pub struct FakeGrist {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// `http://127.0.0.1:PORT/api`: a connection's `api_url`.
    pub api_url: String,
    pub inner: Arc<Mutex<Inner>>,
}

type Answer = (u16, Value);

fn error(status: u16, message: impl Into<String>) -> Answer {
    (status, json!({"error": message.into()}))
}

fn invalid_payload(detail: String) -> Answer {
    (
        400,
        json!({"error": "Invalid payload", "details": {"userError": format!("Error: {detail}")}}),
    )
}

fn flag(query: &HashMap<String, String>, name: &str) -> bool {
    query
        .get(name)
        .is_some_and(|v| ["1", "true", "yes", "on"].contains(&v.to_ascii_lowercase().as_str()))
}

impl Doc {
    fn new_table(&mut self, wanted: &str, columns: &[Value]) -> String {
        let taken: Vec<String> = self.tables.iter().map(|t| t.id.clone()).collect();
        let id = ident::table(
            wanted,
            &taken.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        self.next_table_ref += 1;
        let mut table = Table {
            id: id.clone(),
            table_ref: self.next_table_ref,
            ..Table::default()
        };
        self.next_col_ref += 1;
        table.columns.push(Column {
            id: "manualSort".into(),
            col_ref: self.next_col_ref,
            label: "manualSort".into(),
            col_type: "ManualSortPos".into(),
            widget_options: String::new(),
            untied: false,
            hidden: true,
            formula: String::new(),
            empty: false,
        });
        self.tables.push(table);
        let index = self.tables.len() - 1;
        for c in columns {
            self.add_column(index, c["id"].as_str().unwrap_or(""), &c["fields"]);
        }
        id
    }

    /// Adds a column as `POST …/columns` does; returns its id.
    pub fn add_column(&mut self, table: usize, wanted: &str, fields: &Value) -> String {
        let t = &mut self.tables[table];
        let mut taken: Vec<&str> = t.columns.iter().map(|c| c.id.as_str()).collect();
        taken.push("id");
        let id = ident::column(wanted, &taken);
        self.next_col_ref += 1;
        let col_type = fields["type"].as_str().unwrap_or("Any").to_string();
        t.columns.push(Column {
            id: id.clone(),
            col_ref: self.next_col_ref,
            label: fields["label"]
                .as_str()
                .map_or_else(|| id.clone(), str::to_string),
            col_type: col_type.clone(),
            widget_options: fields["widgetOptions"].as_str().unwrap_or("").to_string(),
            untied: fields["untieColIdFromLabel"].as_bool().unwrap_or(false),
            hidden: false,
            formula: fields["formula"].as_str().unwrap_or("").to_string(),
            empty: false,
        });
        for row in t.rows.values_mut() {
            row.insert(id.clone(), cells::default_of(&col_type));
        }
        id
    }

    fn table_index(&self, id: &str) -> Result<usize, Answer> {
        self.tables
            .iter()
            .position(|t| t.id == id || id.parse::<u64>().is_ok_and(|r| r == t.table_ref))
            .ok_or_else(|| error(404, format!("Table not found \"{id}\"")))
    }

    /// Updates a column as `PATCH …/columns` does (rename by `colId` or by a
    /// tied label, retype converting cells).
    pub fn patch_column(&mut self, table: usize, id: &str, fields: &Value) -> Result<(), Answer> {
        let t = &mut self.tables[table];
        let index = t
            .columns
            .iter()
            .position(|c| c.id == id)
            .ok_or_else(|| error(404, format!("Column not found \"{id}\"")))?;
        if let Some(untied) = fields["untieColIdFromLabel"].as_bool() {
            t.columns[index].untied = untied;
        }
        if let Some(label) = fields["label"].as_str() {
            t.columns[index].label = label.to_string();
        }
        let wanted = fields["colId"].as_str().map(str::to_string).or_else(|| {
            let c = &t.columns[index];
            fields["label"]
                .as_str()
                .filter(|_| !c.untied)
                .map(str::to_string)
        });
        if let Some(wanted) = wanted {
            let mut taken: Vec<&str> = t
                .columns
                .iter()
                .filter(|c| c.id != id)
                .map(|c| c.id.as_str())
                .collect();
            taken.push("id");
            let new_id = ident::column(&wanted, &taken);
            if new_id != id {
                for row in t.rows.values_mut() {
                    if let Some(v) = row.remove(id) {
                        row.insert(new_id.clone(), v);
                    }
                }
                t.columns[index].id = new_id;
            }
        }
        if let Some(new_type) = fields["type"].as_str() {
            let col_id = t.columns[index].id.clone();
            t.columns[index].col_type = new_type.to_string();
            for row in t.rows.values_mut() {
                let old = row.get(&col_id).cloned().unwrap_or(Value::Null);
                row.insert(col_id.clone(), cells::store(&old, new_type));
            }
        }
        if let Some(w) = fields["widgetOptions"].as_str() {
            t.columns[index].widget_options = w.to_string();
        }
        if let Some(formula) = fields["formula"].as_str() {
            let is_formula = fields["isFormula"].as_bool().unwrap_or(true);
            t.columns[index].formula = if is_formula {
                formula.to_string()
            } else {
                String::new()
            };
            t.columns[index].empty = false;
        }
        Ok(())
    }
}

impl FakeGrist {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let router = Router::new()
            .fallback(handle)
            // Bodies over Grist's limit must reach us to be answered 413.
            .layer(DefaultBodyLimit::max(16 * MAX_BODY_BYTES))
            .with_state(inner.clone());
        let url = super::serve(router).await;
        Self {
            api_url: format!("{url}/api"),
            url,
            inner,
        }
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap())
    }

    /// A new document holding `Table1` (columns A, B, C), like Grist's; returns its id.
    pub fn create_doc(&self) -> String {
        self.with(|s| {
            s.next_doc += 1;
            let id = format!("fakeDoc{:04}xYz", s.next_doc);
            let mut doc = Doc::default();
            let abc: Vec<Value> = ["A", "B", "C"]
                .iter()
                .map(|c| json!({"id": c, "fields": {"type": "Any"}}))
                .collect();
            doc.new_table("Table1", &abc);
            s.docs.insert(id.clone(), doc);
            id
        })
    }

    /// A copy of table `table` of `doc`.
    pub fn table(&self, doc: &str, table: &str) -> Option<Table> {
        self.with(|s| {
            s.docs
                .get(doc)?
                .tables
                .iter()
                .find(|t| t.id == table)
                .cloned()
        })
    }

    /// Table ids of `doc`.
    pub fn table_ids(&self, doc: &str) -> Vec<String> {
        self.with(|s| {
            s.docs
                .get(doc)
                .map(|d| d.tables.iter().map(|t| t.id.clone()).collect())
                .unwrap_or_default()
        })
    }

    /// Visible cells of every row of a table, by row id.
    pub fn rows(&self, doc: &str, table: &str) -> BTreeMap<u64, Map<String, Value>> {
        self.table(doc, table)
            .map(|t| t.rows.iter().map(|(id, r)| (*id, t.visible(r))).collect())
            .unwrap_or_default()
    }

    /// Rows whose column `col` holds `value`.
    pub fn rows_where(
        &self,
        doc: &str,
        table: &str,
        col: &str,
        value: &Value,
    ) -> Vec<Map<String, Value>> {
        self.rows(doc, table)
            .into_values()
            .filter(|r| r.get(col) == Some(value))
            .collect()
    }

    /// Answers `status` (429, 500, …) to the next `times` API requests.
    pub fn fail(&self, status: u16, times: u32, retry_after: Option<u64>) {
        self.with(|s| {
            s.fault = Some(Fault {
                status,
                remaining: times,
                retry_after,
                method: None,
                skip: 0,
            })
        });
    }

    /// Answers `status` to `times` requests of `method`, after letting `skip` of them through.
    pub fn fail_method(&self, method: &str, skip: u32, status: u16, times: u32) {
        self.with(|s| {
            s.fault = Some(Fault {
                status,
                remaining: times,
                retry_after: None,
                method: Some(method.into()),
                skip,
            })
        });
    }

    /// Deletes column `col` right after the next read of the table's columns, as
    /// a user deleting it while a sync runs.
    pub fn drop_column_after_next_read(&self, doc: &str, table: &str, col: &str) {
        self.with(|s| s.drop_after_read = Some((doc.into(), table.into(), col.into())));
    }

    /// Acts as a user: updates column `col` with `fields` (`label`, `type`, `colId`).
    pub fn user_patch_column(&self, doc: &str, table: &str, col: &str, fields: Value) {
        self.with(|s| {
            let d = s.docs.get_mut(doc).expect("doc");
            let i = d.table_index(table).expect("table");
            d.patch_column(i, col, &fields).expect("column");
        });
    }

    /// Acts as a user: adds a column; returns its id.
    pub fn user_add_column(&self, doc: &str, table: &str, id: &str, col_type: &str) -> String {
        self.with(|s| {
            let d = s.docs.get_mut(doc).expect("doc");
            let i = d.table_index(table).expect("table");
            d.add_column(i, id, &json!({"type": col_type}))
        })
    }

    pub fn log(&self) -> Vec<Logged> {
        self.with(|s| s.log.clone())
    }

    /// Acts as a user: turns column `col` into a formula column.
    pub fn user_make_formula(&self, doc: &str, table: &str, col: &str, formula: &str) {
        self.user_patch_column(
            doc,
            table,
            col,
            json!({"isFormula": true, "formula": formula}),
        );
    }

    /// Acts as a user: deletes row `row`.
    pub fn user_delete_row(&self, doc: &str, table: &str, row: u64) {
        self.with(|s| {
            let d = s.docs.get_mut(doc).expect("doc");
            let i = d.table_index(table).expect("table");
            d.tables[i].rows.remove(&row);
        });
    }
}

async fn handle(
    State(st): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = st.lock().unwrap();
    let path = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_string(), |p| p.to_string());
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (status, answer, retry_after) = answer(&mut s, &method, &uri, &headers, &body);
    s.log.push(Logged {
        method: method.to_string(),
        path,
        status,
        body: parsed,
    });
    let mut response = (StatusCode::from_u16(status).unwrap(), Json(answer)).into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", secs.to_string().parse().unwrap());
    }
    response
}

fn answer(
    s: &mut Inner,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> (u16, Value, Option<u64>) {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
    let refused = match auth {
        None => Some(error(403, "No view access")),
        Some(a) if a.starts_with("Bearer ") && a["Bearer ".len()..] == *API_KEY => None,
        Some(a) if a.starts_with("Bearer") => Some(error(401, "Bad request: invalid API key")),
        Some(_) => Some(error(
            401,
            "Bad request: unsupported Authorization scheme, expected 'Bearer'",
        )),
    };
    if let Some((status, body)) = refused {
        return (status, body, None);
    }
    let segments: Vec<&str> = uri.path().split('/').filter(|p| !p.is_empty()).collect();
    let mut faulty = None;
    if let Some(f) = s.fault.as_mut() {
        if f.remaining > 0 && f.method.as_deref().is_none_or(|m| m == method.as_str()) {
            if f.skip > 0 {
                f.skip -= 1;
            } else {
                faulty = Some(f);
            }
        }
    }
    if let Some(fault) = faulty {
        fault.remaining -= 1;
        let (status, retry_after) = (fault.status, fault.retry_after);
        let doc = segments.get(2).copied().unwrap_or("");
        let message = if status == 429 {
            format!("Too many backlogged requests for document {doc} - try again later?")
        } else {
            "Internal error (injected)".into()
        };
        return (status, json!({"error": message}), retry_after);
    }
    if body.len() > MAX_BODY_BYTES {
        let (status, body) = error(413, "request entity too large");
        return (status, body, None);
    }
    let query: HashMap<String, String> = uri.query().map(url_decode_pairs).unwrap_or_default();
    let json_body = || -> Result<Value, Answer> {
        let is_json = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !is_json {
            return Ok(json!({}));
        }
        serde_json::from_slice(body)
            .map_err(|e| error(400, format!("Unexpected token in JSON: {e}")))
    };
    let (status, body) = route(s, method, &segments, &query, json_body).unwrap_or_else(|e| e);
    (status, body, None)
}

fn url_decode_pairs(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.replace('+', " ").into_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(
                std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                16,
            ) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn route(
    s: &mut Inner,
    method: &Method,
    segments: &[&str],
    query: &HashMap<String, String>,
    body: impl Fn() -> Result<Value, Answer>,
) -> Result<Answer, Answer> {
    let not_found = || error(404, format!("not found: /{}", segments.join("/")));
    if let ["api", "docs", doc_id, "sql"] = segments {
        let doc = s
            .docs
            .get(*doc_id)
            .ok_or_else(|| error(404, "document not found"))?;
        return sql::answer(doc, method.as_str(), query, &body()?);
    }
    let ["api", "docs", doc_id, "tables", rest @ ..] = segments else {
        return Err(not_found());
    };
    let refuse_value = s.refuse_value.clone();
    let drop_after_read = s.drop_after_read.clone();
    let doc = s
        .docs
        .get_mut(*doc_id)
        .ok_or_else(|| error(404, "document not found"))?;
    match (method.as_str(), rest) {
        ("GET", []) => Ok((
            200,
            json!({"tables": doc.tables.iter().map(|t| json!({"id": t.id, "fields": {
            "tableRef": t.table_ref, "primaryViewId": t.table_ref, "summarySourceTable": 0, "onDemand": false,
            "rawViewSectionRef": t.table_ref * 3, "recordCardViewSectionRef": t.table_ref * 3 + 1}})).collect::<Vec<_>>()}),
        )),
        ("POST", []) => {
            let body = body()?;
            let tables = body["tables"]
                .as_array()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| invalid_payload("body.tables is missing".into()))?;
            let ids: Vec<Value> = tables
                .iter()
                .map(|t| json!({"id": doc.new_table(t["id"].as_str().unwrap_or(""), t["columns"].as_array().map(Vec::as_slice).unwrap_or(&[]))}))
                .collect();
            Ok((200, json!({"tables": ids})))
        }
        (_, [table, "columns"]) => {
            let index = doc.table_index(table)?;
            let answer = columns(doc, index, method.as_str(), query, body)?;
            if method == Method::GET {
                if let Some((_, _, c)) =
                    drop_after_read.filter(|(d, t, _)| d == doc_id && t == table)
                {
                    let tab = &mut doc.tables[index];
                    tab.columns.retain(|col| col.id != c);
                    for row in tab.rows.values_mut() {
                        row.remove(&c);
                    }
                    s.drop_after_read = None;
                }
            }
            Ok(answer)
        }
        ("DELETE", [table, "columns", col]) => {
            let index = doc.table_index(table)?;
            let t = &mut doc.tables[index];
            let before = t.columns.len();
            t.columns.retain(|c| c.id != *col || c.hidden);
            if t.columns.len() == before {
                return Err(error(
                    404,
                    format!("Table or column not found \"{table}.{col}\""),
                ));
            }
            for row in t.rows.values_mut() {
                row.remove(*col);
            }
            Ok((200, Value::Null))
        }
        (_, [table, "records"]) => {
            let index = doc.table_index(table)?;
            records(
                &mut doc.tables[index],
                method.as_str(),
                query,
                body,
                refuse_value.as_deref(),
            )
        }
        ("POST", [table, "records" | "data", "delete"]) => {
            let index = doc.table_index(table)?;
            let ids = body()?;
            for id in ids
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_u64)
            {
                doc.tables[index].rows.remove(&id);
            }
            Ok((200, Value::Null))
        }
        _ => Err(not_found()),
    }
}

fn columns(
    doc: &mut Doc,
    index: usize,
    method: &str,
    query: &HashMap<String, String>,
    body: impl Fn() -> Result<Value, Answer>,
) -> Result<Answer, Answer> {
    match method {
        "GET" => {
            let t = &doc.tables[index];
            let hidden = flag(query, "hidden");
            let list: Vec<Value> = t
                .columns
                .iter()
                .enumerate()
                .filter(|(_, c)| hidden || !c.hidden)
                .map(|(pos, c)| json!({"id": c.id, "fields": {
                    "colRef": c.col_ref, "parentId": t.table_ref, "parentPos": pos as u64 + 1, "type": c.col_type,
                    "widgetOptions": c.widget_options, "isFormula": c.empty || !c.formula.is_empty(), "formula": c.formula, "label": c.label,
                    "description": "", "untieColIdFromLabel": c.untied, "summarySourceCol": 0, "displayCol": 0,
                    "visibleCol": 0, "rules": null, "reverseCol": 0, "recalcWhen": 0, "recalcDeps": null}}))
                .collect();
            Ok((200, json!({"columns": list})))
        }
        "POST" => {
            let body = body()?;
            let cols = body["columns"]
                .as_array()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| invalid_payload("body.columns is missing".into()))?;
            let ids: Vec<Value> = cols.iter().map(|c| json!({"id": doc.add_column(index, c["id"].as_str().unwrap_or(""), &c["fields"])})).collect();
            let t = &mut doc.tables[index];
            for id in &ids {
                if let Some(c) = t.columns.iter_mut().find(|c| c.id == id["id"]) {
                    c.empty = c.formula.is_empty();
                }
            }
            Ok((200, json!({"columns": ids})))
        }
        "PATCH" | "PUT" => {
            let body = body()?;
            let cols = body["columns"]
                .as_array()
                .cloned()
                .ok_or_else(|| invalid_payload("body.columns is missing".into()))?;
            let exists =
                |doc: &Doc, id: &str| doc.tables[index].column(id).is_some_and(|c| !c.hidden);
            if method == "PATCH" {
                if let Some(missing) = cols
                    .iter()
                    .filter_map(|c| c["id"].as_str())
                    .find(|id| !exists(doc, id))
                {
                    return Err(error(404, format!("Column not found \"{missing}\"")));
                }
            }
            let mut named = Vec::new();
            for c in &cols {
                let id = c["id"].as_str().unwrap_or("");
                if exists(doc, id) {
                    if !flag(query, "noupdate") {
                        doc.patch_column(index, id, &c["fields"])?;
                    }
                    named.push(
                        doc.tables[index]
                            .columns
                            .iter()
                            .find(|x| x.id == id || x.label == c["fields"]["label"])
                            .map(|x| x.id.clone())
                            .unwrap_or(id.to_string()),
                    );
                } else if method == "PUT" && !flag(query, "noadd") {
                    named.push(doc.add_column(index, id, &c["fields"]));
                }
            }
            if method == "PUT" && flag(query, "replaceall") {
                let t = &mut doc.tables[index];
                let dropped: Vec<String> = t
                    .columns
                    .iter()
                    .filter(|c| !c.hidden && !named.contains(&c.id))
                    .map(|c| c.id.clone())
                    .collect();
                t.columns.retain(|c| !dropped.contains(&c.id));
                for row in t.rows.values_mut() {
                    for d in &dropped {
                        row.remove(d);
                    }
                }
            }
            Ok((200, Value::Null))
        }
        _ => Err(error(404, "not found")),
    }
}

/// Checks each record is an object with (for PUT) a `require`, and every cell a CellValue.
fn check_records(body: &Value, kind: &str, needs_require: bool) -> Result<Vec<Value>, Answer> {
    let records = body
        .get("records")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid_payload("body.records is missing".into()))?;
    if records.is_empty() {
        return Err(invalid_payload(format!(
            "body.records[0] is not a {kind}; body.records[0] is not an object"
        )));
    }
    for (i, r) in records.iter().enumerate() {
        let at = format!("body.records[{i}]");
        if !r.is_object() {
            return Err(invalid_payload(format!(
                "{at} is not a {kind}; {at} is not an object"
            )));
        }
        if needs_require && !r["require"].is_object() {
            return Err(invalid_payload(format!(
                "{at} is not a {kind}; {at}.require is missing"
            )));
        }
        for part in ["require", "fields"] {
            for (k, v) in r[part].as_object().into_iter().flatten() {
                cells::check(v, &format!("{at}.{part}.{k}"))
                    .map_err(|why| invalid_payload(format!("{at} is not a {kind}; {why}")))?;
            }
        }
    }
    Ok(records.clone())
}

/// `400 Invalid column "x"` for the first unknown column of any record.
fn check_columns(table: &Table, records: &[Value]) -> Result<(), Answer> {
    for r in records {
        for part in ["require", "fields"] {
            for k in r[part].as_object().into_iter().flatten().map(|(k, _)| k) {
                if !(part == "require" && k == "id") && table.column(k).is_none() {
                    return Err(error(400, format!("Invalid column \"{k}\"")));
                }
            }
        }
    }
    Ok(())
}

/// Writing to a formula column, or a value the test told us to refuse: the data
/// engine's 400 for the whole request.
fn check_values(table: &Table, records: &[Value], refuse: Option<&str>) -> Result<(), Answer> {
    for r in records {
        for (k, v) in r["fields"].as_object().into_iter().flatten() {
            if table.column(k).is_some_and(|c| !c.formula.is_empty()) {
                return Err(error(
                    400,
                    format!("Error manipulating data: [Sandbox] ValueError Can't save value to formula column {k}"),
                ));
            }
            if refuse.is_some_and(|text| v.as_str() == Some(text)) {
                return Err(error(
                    400,
                    format!("Error manipulating data: [Sandbox] ValueError could not convert value in column {k}"),
                ));
            }
        }
    }
    Ok(())
}

fn records(
    table: &mut Table,
    method: &str,
    query: &HashMap<String, String>,
    body: impl Fn() -> Result<Value, Answer>,
    refuse: Option<&str>,
) -> Result<Answer, Answer> {
    match method {
        "GET" => {
            let filter: Map<String, Value> = match query.get("filter") {
                Some(f) => serde_json::from_str(f)
                    .map_err(|_| error(400, "Invalid query: filter must be a JSON object"))?,
                None => Map::new(),
            };
            for (col, values) in &filter {
                if table.column(col).is_none() {
                    return Err(error(
                        400,
                        format!("Error manipulating data: [Sandbox] KeyError '{col}'"),
                    ));
                }
                if !values.is_array() {
                    return Err(error(400, "Invalid query: filter values must be arrays"));
                }
            }
            let hidden = flag(query, "hidden");
            let mut rows: Vec<(u64, Map<String, Value>)> = table
                .rows
                .iter()
                .filter(|(_, r)| {
                    filter.iter().all(|(c, vs)| {
                        vs.as_array()
                            .unwrap()
                            .contains(r.get(c).unwrap_or(&Value::Null))
                    })
                })
                .map(|(id, r)| (*id, if hidden { r.clone() } else { table.visible(r) }))
                .collect();
            if let Some(limit) = query.get("limit").and_then(|l| l.parse::<usize>().ok()) {
                rows.truncate(limit);
            }
            Ok((
                200,
                json!({"records": rows.into_iter().map(|(id, f)| json!({"id": id, "fields": f})).collect::<Vec<_>>()}),
            ))
        }
        "POST" => {
            let records = check_records(&body()?, "NewRecord", false)?;
            check_columns(table, &records)?;
            check_values(table, &records, refuse)?;
            let ids: Vec<Value> = records
                .iter()
                .map(|r| {
                    let id = table.add_row();
                    table.write(id, r["fields"].as_object().unwrap_or(&Map::new()));
                    json!({"id": id})
                })
                .collect();
            Ok((200, json!({"records": ids})))
        }
        "PATCH" => {
            let records = check_records(&body()?, "Record", false)?;
            check_columns(table, &records)?;
            check_values(table, &records, refuse)?;
            let keys = |r: &Value| -> Vec<String> {
                r["fields"]
                    .as_object()
                    .map(|f| f.keys().cloned().collect())
                    .unwrap_or_default()
            };
            if records.iter().any(|r| keys(r) != keys(&records[0])) {
                return Err(error(400, "PATCH requires all records to have same fields"));
            }
            if let Some(bad) = records
                .iter()
                .filter_map(|r| r["id"].as_u64())
                .find(|id| !table.rows.contains_key(id))
            {
                return Err(error(400, format!("Invalid row id {bad}")));
            }
            for r in &records {
                table.write(
                    r["id"].as_u64().unwrap_or(0),
                    r["fields"].as_object().unwrap_or(&Map::new()),
                );
            }
            Ok((200, Value::Null))
        }
        "PUT" => upsert(table, query, &body()?, refuse),
        _ => Err(error(404, "not found")),
    }
}

/// `PUT …/records`: add when no row matches `require`, update the first match
/// (`onmany=first`), every match (`all`) or none (`none`). Atomic.
fn upsert(
    table: &mut Table,
    query: &HashMap<String, String>,
    body: &Value,
    refuse: Option<&str>,
) -> Result<Answer, Answer> {
    let onmany = query.get("onmany").map_or("first", String::as_str);
    if !["first", "none", "all"].contains(&onmany) {
        return Err(error(
            400,
            format!("onmany parameter {onmany} should be one of first,none,all"),
        ));
    }
    let records = check_records(body, "AddOrUpdateRecord", true)?;
    check_columns(table, &records)?;
    check_values(table, &records, refuse)?;
    let typed = |table: &Table, col: &str, v: &Value| match table.column(col) {
        Some(c) => cells::store(v, &c.col_type),
        None => v.clone(),
    };
    let mut seen = std::collections::HashSet::new();
    for r in &records {
        let require = r["require"].as_object().unwrap();
        if require.is_empty() && !flag(query, "allow_empty_require") {
            return Err(error(
                400,
                "Error manipulating data: [Sandbox] ValueError require is empty",
            ));
        }
        let shape = (
            require.keys().cloned().collect::<Vec<_>>(),
            r["fields"]
                .as_object()
                .map(|f| f.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default(),
        );
        let values: Vec<Value> = require.iter().map(|(k, v)| typed(table, k, v)).collect();
        if !seen.insert(serde_json::to_string(&(shape, values)).unwrap()) {
            return Err(error(
                400,
                "Error manipulating data: [Sandbox] ValueError require values must be unique",
            ));
        }
    }
    let mut work = table.clone();
    let (mut record_ids, mut added, mut updated) = (Vec::new(), Vec::new(), Vec::new());
    for r in &records {
        let require = r["require"].as_object().unwrap();
        let fields = r["fields"].as_object().cloned().unwrap_or_default();
        let matches: Vec<u64> = work
            .rows
            .iter()
            .filter(|(id, row)| {
                require.iter().all(|(k, v)| {
                    if k == "id" {
                        v.as_u64() == Some(**id)
                    } else {
                        row.get(k) == Some(&typed(&work, k, v))
                    }
                })
            })
            .map(|(id, _)| *id)
            .collect();
        if matches.is_empty() {
            if flag(query, "noadd") {
                record_ids.push(json!([]));
                continue;
            }
            let id = work.add_row();
            let mut all = require.clone();
            all.remove("id");
            all.extend(fields);
            work.write(id, &all);
            added.push(id);
            record_ids.push(json!([id]));
            continue;
        }
        let targets: Vec<u64> = match onmany {
            "all" => matches,
            "none" if matches.len() > 1 => vec![],
            _ => vec![matches[0]],
        };
        if !flag(query, "noupdate") {
            for id in &targets {
                work.write(*id, &fields);
            }
        }
        if !targets.is_empty() {
            updated.push(json!(targets));
        }
        record_ids.push(json!(targets));
    }
    *table = work;
    Ok((
        200,
        json!({"recordIds": record_ids, "addRecordIds": added, "updateRecordIds": updated}),
    ))
}
