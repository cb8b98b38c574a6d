//! The seam between the host and its two engines: [`Pool`] is either sqlx
//! pool, and [`Query`] runs one SQL text on whichever it is given.
//!
//! Queries are written once, with `?` placeholders; for PostgreSQL they become
//! `$1, $2, …` before they are sent. Rows come back as [`Row`]s of plain
//! [`Value`]s, so a row is read the same way whatever the engine. sqlx's own
//! `Any` driver was the obvious candidate and is not used: it refuses to read
//! SQLite's 0/1 integers as booleans, which every flag column of the SQLite
//! schema is, and it has no typed NULL, which PostgreSQL needs for an untyped
//! parameter.
//!
//! What the two dialects write differently (a function name, an upsert on a
//! partial index) a caller picks with [`Pool::engine`]. The paths that carry
//! the load on SQLite (intake's writer, the queue's thread) talk to SQLite
//! directly, through rusqlite, and are not here.

use std::borrow::Cow;
use std::sync::Arc;

use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Column as _, PgConnection, PgPool, Row as _, SqliteConnection, SqlitePool};
use sqlx::{TypeInfo as _, ValueRef as _};

/// The database of the service: SQLite (the embedded default) or PostgreSQL.
#[derive(Debug, Clone)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Which engine a [`Pool`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    /// A subquery of the texts of the JSON array bound to `param` (`?2`).
    pub fn json_texts(self, param: &str) -> String {
        match self {
            Self::Sqlite => format!("(SELECT value FROM json_each({param}))"),
            Self::Postgres => format!("(SELECT json_array_elements_text(CAST({param} AS JSON)))"),
        }
    }

    /// A bytes column read as text for a search (invalid UTF-8 included).
    pub fn bytes_as_text(self, column: &str) -> String {
        match self {
            Self::Sqlite => format!("CAST({column} AS TEXT)"),
            Self::Postgres => format!("encode({column}, 'escape')"),
        }
    }

    /// The function making a character of a code point.
    pub fn char_fn(self) -> &'static str {
        match self {
            Self::Sqlite => "char",
            Self::Postgres => "chr",
        }
    }
}

impl Pool {
    pub fn engine(&self) -> Engine {
        match self {
            Self::Sqlite(_) => Engine::Sqlite,
            Self::Postgres(_) => Engine::Postgres,
        }
    }

    /// The SQLite pool, for what only exists on SQLite (its file, its WAL).
    pub fn as_sqlite(&self) -> Option<&SqlitePool> {
        match self {
            Self::Sqlite(p) => Some(p),
            Self::Postgres(_) => None,
        }
    }

    /// A write transaction. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so a transaction that reads then writes cannot
    /// fail half-way on a busy database.
    pub async fn begin(&self) -> sqlx::Result<Tx> {
        Ok(match self {
            Self::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Self::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    pub async fn close(&self) {
        match self {
            Self::Sqlite(p) => p.close().await,
            Self::Postgres(p) => p.close().await,
        }
    }
}

impl From<SqlitePool> for Pool {
    fn from(p: SqlitePool) -> Self {
        Self::Sqlite(p)
    }
}

impl From<PgPool> for Pool {
    fn from(p: PgPool) -> Self {
        Self::Postgres(p)
    }
}

/// A transaction on either engine; rolled back when dropped uncommitted.
pub enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Tx {
    pub async fn commit(self) -> sqlx::Result<()> {
        match self {
            Self::Sqlite(t) => t.commit().await,
            Self::Postgres(t) => t.commit().await,
        }
    }

    pub async fn rollback(self) -> sqlx::Result<()> {
        match self {
            Self::Sqlite(t) => t.rollback().await,
            Self::Postgres(t) => t.rollback().await,
        }
    }

    pub fn engine(&self) -> Engine {
        match self {
            Self::Sqlite(_) => Engine::Sqlite,
            Self::Postgres(_) => Engine::Postgres,
        }
    }
}

/// Where a query runs: a pool, or a transaction's connection.
pub enum Target<'e> {
    SqlitePool(&'e SqlitePool),
    PgPool(&'e PgPool),
    Sqlite(&'e mut SqliteConnection),
    Postgres(&'e mut PgConnection),
}

/// What a [`Query`] can run on: `&Pool` or `&mut Tx`.
pub trait Executor<'e>: Send {
    fn target(self) -> Target<'e>;
}

impl<'e> Executor<'e> for &'e Pool {
    fn target(self) -> Target<'e> {
        match self {
            Pool::Sqlite(p) => Target::SqlitePool(p),
            Pool::Postgres(p) => Target::PgPool(p),
        }
    }
}

impl<'e> Executor<'e> for &'e mut Tx {
    fn target(self) -> Target<'e> {
        match self {
            Tx::Sqlite(t) => Target::Sqlite(t),
            Tx::Postgres(t) => Target::Postgres(t),
        }
    }
}

/// The type of a value, which PostgreSQL needs even for a NULL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Real,
    Text,
    Bytes,
    Bool,
}

/// One value, bound to a query or read from a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null(Kind),
    Int(i64),
    Real(f64),
    Text(String),
    Bytes(Vec<u8>),
    Bool(bool),
}

/// What can be bound to a query.
pub trait Bind {
    const KIND: Kind;
    fn into_value(self) -> Value;
}

macro_rules! bind_int {
    ($($t:ty),*) => {$(
        impl Bind for $t {
            const KIND: Kind = Kind::Int;
            fn into_value(self) -> Value {
                // Every integer we store fits in 63 bits (times, counts, sizes).
                Value::Int(self as i64)
            }
        }
    )*};
}
bind_int!(i64, i32, i16, u32, u16, u8, u64, usize);

impl Bind for f64 {
    const KIND: Kind = Kind::Real;
    fn into_value(self) -> Value {
        Value::Real(self)
    }
}

impl Bind for bool {
    const KIND: Kind = Kind::Bool;
    fn into_value(self) -> Value {
        Value::Bool(self)
    }
}

impl Bind for String {
    const KIND: Kind = Kind::Text;
    fn into_value(self) -> Value {
        Value::Text(self)
    }
}

impl Bind for &str {
    const KIND: Kind = Kind::Text;
    fn into_value(self) -> Value {
        Value::Text(self.to_string())
    }
}

impl Bind for Cow<'_, str> {
    const KIND: Kind = Kind::Text;
    fn into_value(self) -> Value {
        Value::Text(self.into_owned())
    }
}

impl Bind for Vec<u8> {
    const KIND: Kind = Kind::Bytes;
    fn into_value(self) -> Value {
        Value::Bytes(self)
    }
}

impl Bind for &[u8] {
    const KIND: Kind = Kind::Bytes;
    fn into_value(self) -> Value {
        Value::Bytes(self.to_vec())
    }
}

impl<T: Bind> Bind for Option<T> {
    const KIND: Kind = T::KIND;
    fn into_value(self) -> Value {
        match self {
            Some(v) => v.into_value(),
            None => Value::Null(T::KIND),
        }
    }
}

impl<T: Bind + Clone> Bind for &T {
    const KIND: Kind = T::KIND;
    fn into_value(self) -> Value {
        self.clone().into_value()
    }
}

impl Bind for Value {
    // Only used for a NULL's type, which a Value carries itself.
    const KIND: Kind = Kind::Text;
    fn into_value(self) -> Value {
        self
    }
}

/// What a [`Value`] can be read as.
pub trait Decode<'r>: Sized {
    fn decode(v: &'r Value) -> Result<Self, String>;
}

fn unexpected<T>(want: &str, got: &Value) -> Result<T, String> {
    let got = match got {
        Value::Null(_) => "NULL",
        Value::Int(_) => "an integer",
        Value::Real(_) => "a real",
        Value::Text(_) => "text",
        Value::Bytes(_) => "bytes",
        Value::Bool(_) => "a boolean",
    };
    Err(format!("expected {want}, found {got}"))
}

impl Decode<'_> for i64 {
    fn decode(v: &Value) -> Result<Self, String> {
        match v {
            Value::Int(i) => Ok(*i),
            Value::Bool(b) => Ok(*b as i64),
            other => unexpected("an integer", other),
        }
    }
}

macro_rules! decode_int {
    ($($t:ty),*) => {$(
        impl Decode<'_> for $t {
            fn decode(v: &Value) -> Result<Self, String> {
                let i = i64::decode(v)?;
                <$t>::try_from(i).map_err(|_| format!("{i} does not fit in {}", stringify!($t)))
            }
        }
    )*};
}
decode_int!(i32, i16, u32, u16, u8, u64, usize);

impl Decode<'_> for f64 {
    fn decode(v: &Value) -> Result<Self, String> {
        match v {
            Value::Real(r) => Ok(*r),
            Value::Int(i) => Ok(*i as f64),
            other => unexpected("a real", other),
        }
    }
}

impl Decode<'_> for bool {
    fn decode(v: &Value) -> Result<Self, String> {
        match v {
            Value::Bool(b) => Ok(*b),
            // SQLite has no boolean: flags are 0 and 1.
            Value::Int(i) => Ok(*i != 0),
            other => unexpected("a boolean", other),
        }
    }
}

impl<'r> Decode<'r> for &'r str {
    fn decode(v: &'r Value) -> Result<Self, String> {
        match v {
            Value::Text(s) => Ok(s),
            other => unexpected("text", other),
        }
    }
}

impl<'r> Decode<'r> for &'r [u8] {
    fn decode(v: &'r Value) -> Result<Self, String> {
        match v {
            Value::Bytes(b) => Ok(b),
            Value::Text(s) => Ok(s.as_bytes()),
            other => unexpected("bytes", other),
        }
    }
}

impl Decode<'_> for String {
    fn decode(v: &Value) -> Result<Self, String> {
        match v {
            Value::Text(s) => Ok(s.clone()),
            other => unexpected("text", other),
        }
    }
}

impl Decode<'_> for Vec<u8> {
    fn decode(v: &Value) -> Result<Self, String> {
        match v {
            Value::Bytes(b) => Ok(b.clone()),
            // SQLite keeps whatever was written: a body written as text.
            Value::Text(s) => Ok(s.as_bytes().to_vec()),
            other => unexpected("bytes", other),
        }
    }
}

impl<'r, T: Decode<'r>> Decode<'r> for Option<T> {
    fn decode(v: &'r Value) -> Result<Self, String> {
        match v {
            Value::Null(_) => Ok(None),
            other => T::decode(other).map(Some),
        }
    }
}

impl Decode<'_> for Value {
    fn decode(v: &Value) -> Result<Self, String> {
        Ok(v.clone())
    }
}

/// A column named or numbered.
pub trait ColumnIndex: std::fmt::Display + Copy {
    fn position(self, names: &[String]) -> Option<usize>;
}

impl ColumnIndex for usize {
    fn position(self, names: &[String]) -> Option<usize> {
        (self < names.len()).then_some(self)
    }
}

impl ColumnIndex for &str {
    fn position(self, names: &[String]) -> Option<usize> {
        names.iter().position(|n| n == self)
    }
}

/// One row of a result, the same whatever the engine.
#[derive(Debug, Clone)]
pub struct Row {
    names: Arc<[String]>,
    values: Vec<Value>,
}

impl Row {
    /// The column's value; panics when it is missing or of another type,
    /// which is a bug in the query (as sqlx's `Row::get`).
    #[track_caller]
    pub fn get<'r, T: Decode<'r>, I: ColumnIndex>(&'r self, index: I) -> T {
        match self.try_get(index) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    pub fn try_get<'r, T: Decode<'r>, I: ColumnIndex>(&'r self, index: I) -> sqlx::Result<T> {
        let Some(i) = index.position(&self.names) else {
            return Err(sqlx::Error::ColumnNotFound(index.to_string()));
        };
        T::decode(&self.values[i]).map_err(|e| sqlx::Error::ColumnDecode {
            index: self.names[i].clone(),
            source: e.into(),
        })
    }
}

/// A row read as a tuple (`query_as`).
pub trait FromRow: Sized {
    fn from_row(row: &Row) -> sqlx::Result<Self>;
}

macro_rules! tuple_from_row {
    ($($t:ident $i:tt),*) => {
        impl<$($t: for<'r> Decode<'r>),*> FromRow for ($($t,)*) {
            fn from_row(row: &Row) -> sqlx::Result<Self> {
                Ok(($(row.try_get::<$t, usize>($i)?,)*))
            }
        }
    };
}
tuple_from_row!(A 0);
tuple_from_row!(A 0, B 1);
tuple_from_row!(A 0, B 1, C 2);
tuple_from_row!(A 0, B 1, C 2, D 3);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4);
tuple_from_row!(A 0, B 1, C 2, D 3, E 4, F 5);

/// What a statement changed.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    rows: u64,
}

impl Done {
    pub fn rows_affected(&self) -> u64 {
        self.rows
    }
}

/// A SQL text and its arguments; also a builder (`push`, `push_bind`).
#[derive(Debug, Clone, Default)]
pub struct Query {
    sql: String,
    args: Vec<Value>,
}

/// A query with `?` placeholders.
pub fn query(sql: impl Into<String>) -> Query {
    Query::new(sql)
}

/// A query whose rows are read as one column.
pub fn query_scalar<T: for<'r> Decode<'r>>(sql: impl Into<String>) -> Scalar<T> {
    Query::new(sql).scalar()
}

/// A query whose rows are read as tuples.
pub fn query_as<T: FromRow>(sql: impl Into<String>) -> As<T> {
    Query::new(sql).rows_as()
}

impl Query {
    pub fn new(sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            args: Vec::new(),
        }
    }

    pub fn bind(mut self, value: impl Bind) -> Self {
        self.args.push(value.into_value());
        self
    }

    /// Appends SQL text.
    pub fn push(&mut self, sql: impl AsRef<str>) -> &mut Self {
        self.sql.push_str(sql.as_ref());
        self
    }

    /// Appends a placeholder bound to `value`.
    pub fn push_bind(&mut self, value: impl Bind) -> &mut Self {
        self.sql.push('?');
        self.args.push(value.into_value());
        self
    }

    /// The query as built so far (builder style).
    pub fn build(&self) -> Self {
        self.clone()
    }

    pub fn build_query_scalar<T: for<'r> Decode<'r>>(&self) -> Scalar<T> {
        self.clone().scalar()
    }

    pub fn scalar<T: for<'r> Decode<'r>>(self) -> Scalar<T> {
        Typed {
            query: self,
            read: |row| row.try_get(0usize),
        }
    }

    pub fn rows_as<T: FromRow>(self) -> As<T> {
        Typed {
            query: self,
            read: T::from_row,
        }
    }

    pub async fn execute<'e>(self, on: impl Executor<'e>) -> sqlx::Result<Done> {
        let rows = match on.target() {
            Target::SqlitePool(p) => self.sqlite().execute(p).await?.rows_affected(),
            Target::Sqlite(c) => self.sqlite().execute(c).await?.rows_affected(),
            Target::PgPool(p) => {
                let sql = numbered(&self.sql);
                pg_bind(sqlx::query(&sql), self.args)
                    .execute(p)
                    .await?
                    .rows_affected()
            }
            Target::Postgres(c) => {
                let sql = numbered(&self.sql);
                pg_bind(sqlx::query(&sql), self.args)
                    .execute(c)
                    .await?
                    .rows_affected()
            }
        };
        Ok(Done { rows })
    }

    pub async fn fetch_all<'e>(self, on: impl Executor<'e>) -> sqlx::Result<Vec<Row>> {
        match on.target() {
            Target::SqlitePool(p) => rows_of(self.sqlite().fetch_all(p).await?, sqlite_value),
            Target::Sqlite(c) => rows_of(self.sqlite().fetch_all(c).await?, sqlite_value),
            Target::PgPool(p) => {
                let sql = numbered(&self.sql);
                let rows = pg_bind(sqlx::query(&sql), self.args).fetch_all(p).await?;
                rows_of(rows, pg_value)
            }
            Target::Postgres(c) => {
                let sql = numbered(&self.sql);
                let rows = pg_bind(sqlx::query(&sql), self.args).fetch_all(c).await?;
                rows_of(rows, pg_value)
            }
        }
    }

    pub async fn fetch_optional<'e>(self, on: impl Executor<'e>) -> sqlx::Result<Option<Row>> {
        // Queries that expect at most one row say so in their SQL (a key,
        // a LIMIT); reading them all keeps one code path per engine.
        Ok(self.fetch_all(on).await?.into_iter().next())
    }

    pub async fn fetch_one<'e>(self, on: impl Executor<'e>) -> sqlx::Result<Row> {
        self.fetch_optional(on)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }

    fn sqlite(&self) -> sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'_>> {
        let mut q = sqlx::query(&self.sql);
        for v in &self.args {
            q = match v {
                Value::Null(_) => q.bind(None::<i64>),
                Value::Int(i) => q.bind(*i),
                Value::Real(r) => q.bind(*r),
                Value::Text(s) => q.bind(s.as_str()),
                Value::Bytes(b) => q.bind(b.as_slice()),
                Value::Bool(b) => q.bind(*b),
            };
        }
        q
    }
}

fn pg_bind(
    mut q: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    args: Vec<Value>,
) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
    for v in args {
        q = match v {
            Value::Null(Kind::Int) => q.bind(None::<i64>),
            Value::Null(Kind::Real) => q.bind(None::<f64>),
            Value::Null(Kind::Text) => q.bind(None::<String>),
            Value::Null(Kind::Bytes) => q.bind(None::<Vec<u8>>),
            Value::Null(Kind::Bool) => q.bind(None::<bool>),
            Value::Int(i) => q.bind(i),
            Value::Real(r) => q.bind(r),
            Value::Text(s) => q.bind(s),
            Value::Bytes(b) => q.bind(b),
            Value::Bool(b) => q.bind(b),
        };
    }
    q
}

/// `?` and `?N` placeholders as PostgreSQL's `$N`, outside quotes. A bare `?`
/// takes the number after the largest so far, as in SQLite.
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut largest = 0u32;
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '\'' | '"') => {
                quote = Some(c);
                out.push(c);
            }
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (None, '?') => {
                let mut digits = String::new();
                while let Some(d) = chars.next_if(char::is_ascii_digit) {
                    digits.push(d);
                }
                let n = digits.parse().unwrap_or(largest + 1);
                largest = largest.max(n);
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

fn rows_of<R: sqlx::Row>(
    rows: Vec<R>,
    value: fn(&R, usize) -> sqlx::Result<Value>,
) -> sqlx::Result<Vec<Row>> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let names: Arc<[String]> = first
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    rows.iter()
        .map(|r| {
            let values = (0..names.len())
                .map(|i| value(r, i))
                .collect::<sqlx::Result<Vec<_>>>()?;
            Ok(Row {
                names: names.clone(),
                values,
            })
        })
        .collect()
}

fn sqlite_value(row: &SqliteRow, i: usize) -> sqlx::Result<Value> {
    let raw = row.try_get_raw(i)?;
    if raw.is_null() {
        return Ok(Value::Null(Kind::Text));
    }
    // The value's own storage class, not its column's declared type.
    Ok(match raw.type_info().name() {
        "REAL" => Value::Real(row.try_get_unchecked(i)?),
        "TEXT" => Value::Text(row.try_get_unchecked(i)?),
        "BLOB" => Value::Bytes(row.try_get_unchecked(i)?),
        _ => Value::Int(row.try_get_unchecked(i)?),
    })
}

fn pg_value(row: &PgRow, i: usize) -> sqlx::Result<Value> {
    let raw = row.try_get_raw(i)?;
    let kind = raw.type_info().name().to_string();
    let null = raw.is_null();
    let (k, v) = match kind.as_str() {
        "INT8" => (
            Kind::Int,
            (!null).then(|| row.try_get::<i64, _>(i).map(Value::Int)),
        ),
        "INT4" => (
            Kind::Int,
            (!null).then(|| row.try_get::<i32, _>(i).map(|v| Value::Int(v.into()))),
        ),
        "INT2" => (
            Kind::Int,
            (!null).then(|| row.try_get::<i16, _>(i).map(|v| Value::Int(v.into()))),
        ),
        "BOOL" => (Kind::Bool, (!null).then(|| row.try_get(i).map(Value::Bool))),
        "FLOAT8" => (Kind::Real, (!null).then(|| row.try_get(i).map(Value::Real))),
        "FLOAT4" => (
            Kind::Real,
            (!null).then(|| row.try_get::<f32, _>(i).map(|v| Value::Real(v.into()))),
        ),
        "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => {
            (Kind::Text, (!null).then(|| row.try_get(i).map(Value::Text)))
        }
        "BYTEA" => (
            Kind::Bytes,
            (!null).then(|| row.try_get(i).map(Value::Bytes)),
        ),
        other => {
            return Err(sqlx::Error::ColumnDecode {
                index: row.columns()[i].name().to_string(),
                source: format!(
                    "PostgreSQL type {other} is not read by the host: cast it in the query \
                     (CAST(… AS BIGINT) for a sum)"
                )
                .into(),
            })
        }
    };
    match v {
        None => Ok(Value::Null(k)),
        Some(v) => v,
    }
}

/// A query whose rows are each read as one `T` by `read`.
pub struct Typed<T> {
    query: Query,
    read: fn(&Row) -> sqlx::Result<T>,
}

/// A query whose rows are one column of type `T`.
pub type Scalar<T> = Typed<T>;
/// A query whose rows are tuples `T`.
pub type As<T> = Typed<T>;

impl<T> Typed<T> {
    pub fn bind(mut self, value: impl Bind) -> Self {
        self.query = self.query.bind(value);
        self
    }

    pub async fn fetch_all<'e>(self, on: impl Executor<'e>) -> sqlx::Result<Vec<T>> {
        self.query
            .fetch_all(on)
            .await?
            .iter()
            .map(self.read)
            .collect()
    }

    pub async fn fetch_optional<'e>(self, on: impl Executor<'e>) -> sqlx::Result<Option<T>> {
        self.query
            .fetch_optional(on)
            .await?
            .map(|r| (self.read)(&r))
            .transpose()
    }

    pub async fn fetch_one<'e>(self, on: impl Executor<'e>) -> sqlx::Result<T> {
        (self.read)(&self.query.fetch_one(on).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_outside_quotes() {
        assert_eq!(
            numbered("SELECT '?', \"a?\" FROM t WHERE a = ? AND b IN (?, ?)"),
            "SELECT '?', \"a?\" FROM t WHERE a = $1 AND b IN ($2, $3)"
        );
        assert_eq!(
            numbered("SELECT 'it''s ?' WHERE x = ?"),
            "SELECT 'it''s ?' WHERE x = $1"
        );
        assert_eq!(
            numbered("UPDATE t SET a = ?2, b = ?10 WHERE id = ?1 AND c = ?"),
            "UPDATE t SET a = $2, b = $10 WHERE id = $1 AND c = $11"
        );
    }

    #[tokio::test]
    async fn sqlite_rows_read_as_values() {
        let pool: Pool = sqlx::sqlite::SqlitePoolOptions::new()
            .connect("sqlite::memory:")
            .await
            .unwrap()
            .into();
        query("CREATE TABLE t (i INTEGER, flag INTEGER, s TEXT, b BLOB, r REAL)")
            .execute(&pool)
            .await
            .unwrap();
        let done = query("INSERT INTO t VALUES (?, ?, ?, ?, ?), (?, ?, ?, ?, ?)")
            .bind(7i64)
            .bind(true)
            .bind("x")
            .bind(vec![0u8, 255])
            .bind(1.5f64)
            .bind(None::<i64>)
            .bind(false)
            .bind(None::<&str>)
            .bind(None::<Vec<u8>>)
            .bind(None::<f64>)
            .execute(&pool)
            .await
            .unwrap();
        assert_eq!(done.rows_affected(), 2);
        let rows = query("SELECT * FROM t ORDER BY i IS NULL")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(rows[0].get::<i64, _>("i"), 7);
        assert!(rows[0].get::<bool, _>("flag"));
        assert_eq!(rows[0].get::<String, _>("s"), "x");
        assert_eq!(rows[0].get::<Vec<u8>, _>("b"), vec![0, 255]);
        assert_eq!(rows[0].get::<f64, _>("r"), 1.5);
        assert_eq!(rows[1].get::<Option<i64>, _>("i"), None);
        assert!(!rows[1].get::<bool, _>("flag"));
        assert_eq!(rows[1].get::<Option<String>, _>(2), None);
        let err = rows[0].try_get::<i64, _>("s").unwrap_err().to_string();
        assert!(err.contains("expected an integer, found text"), "{err}");
        assert!(matches!(
            rows[0].try_get::<i64, _>("nope"),
            Err(sqlx::Error::ColumnNotFound(_))
        ));
        let n: i64 = query_scalar("SELECT count(*) FROM t")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(n, 2);
        let mut tx = pool.begin().await.unwrap();
        query("DELETE FROM t WHERE i = ?")
            .bind(7)
            .execute(&mut tx)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        let pairs: Vec<(Option<i64>, bool)> = query_as("SELECT i, flag FROM t ORDER BY i")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(pairs, vec![(None, false), (Some(7), true)]);
    }
}
