//! How the fake stores what is written to a cell of each column type, as
//! grist-core 1.7.17 does (`grist-real/README.md`): strings parsed for numbers,
//! booleans, dates and lists; `null` becomes `false` in a Bool; `["L"]` becomes
//! `null`; what cannot be converted is kept as is ("alt text"). Also the check
//! that a value is a CellValue at all (a bare list is refused).

use serde_json::{json, Value};

/// Codes a list cell may start with (`GristObjCode`).
const OBJ_CODES: [&str; 13] = [
    "L", "l", "O", "D", "d", "S", "C", "R", "r", "E", "P", "U", "V",
];

/// `Err(reason)` when `value` is not a CellValue: objects, and lists not
/// starting with a code.
pub fn check(value: &Value, path: &str) -> Result<(), String> {
    match value {
        Value::Object(_) => Err(format!("{path} is not a CellValue; {path} is none of number, string, boolean, null, 1 more")),
        Value::Array(items) => match items.first() {
            Some(Value::String(code)) if OBJ_CODES.contains(&code.as_str()) => Ok(()),
            _ => Err(format!(
                "{path} is not a CellValue; {path} is none of number, string, boolean, null, 1 more; \
                 {path}[0] is not a GristObjCode; {path}[0] is not a valid enum value"
            )),
        },
        _ => Ok(()),
    }
}

/// The value a new row has in a column of `col_type`.
pub fn default_of(col_type: &str) -> Value {
    match col_type.split(':').next().unwrap_or("") {
        "Text" | "Choice" => json!(""),
        "Numeric" | "Int" | "Ref" | "ManualSortPos" => json!(0),
        "Bool" => json!(false),
        _ => Value::Null,
    }
}

fn date_midnight(text: &str) -> Option<i64> {
    let day = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    Some(day.and_hms_opt(0, 0, 0)?.and_utc().timestamp())
}

fn epoch(text: &str) -> Option<Value> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        let micros = at.timestamp_subsec_micros();
        return Some(if micros == 0 {
            json!(at.timestamp())
        } else {
            json!(format!("{}.{micros:06}", at.timestamp())
                .parse::<f64>()
                .ok()?)
        });
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"] {
        // The column's zone is ignored: the fake reads naive times as UTC.
        if let Ok(at) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return Some(json!(at.and_utc().timestamp()));
        }
    }
    date_midnight(text).map(|t| json!(t))
}

/// A CSV line as Grist reads a ChoiceList string: quotes respected, items trimmed,
/// empty ones dropped.
fn csv(text: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                current.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => items.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    items.push(current);
    items
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// What a column of `col_type` stores when `value` is written.
pub fn store(value: &Value, col_type: &str) -> Value {
    let base = col_type.split(':').next().unwrap_or("");
    match (base, value) {
        ("Bool", Value::Null) => json!(false),
        ("Bool", Value::Number(n)) if n.as_f64() == Some(0.0) => json!(false),
        ("Bool", Value::Number(n)) if n.as_f64() == Some(1.0) => json!(true),
        ("Bool", Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => json!(true),
            "false" | "no" | "0" => json!(false),
            _ => value.clone(),
        },
        ("Numeric", Value::String(s)) => {
            s.trim().parse::<f64>().map_or(value.clone(), |f| json!(f))
        }
        ("Int", Value::Number(n)) => n
            .as_f64()
            .map_or(value.clone(), |f| json!(f.trunc() as i64)),
        ("Int", Value::String(s)) => s.trim().parse::<i64>().map_or(value.clone(), |i| json!(i)),
        ("Text", Value::Number(n)) => json!(n.to_string()),
        ("Date", Value::String(s)) => date_midnight(s.trim()).map_or(value.clone(), |t| json!(t)),
        ("DateTime", Value::String(s)) => epoch(s.trim()).unwrap_or_else(|| value.clone()),
        ("ChoiceList", Value::Array(items)) if items.len() == 1 && items[0] == "L" => Value::Null,
        ("ChoiceList", Value::String(s)) if s.trim().is_empty() => Value::Null,
        ("ChoiceList", Value::String(s)) => {
            let items: Vec<String> = match serde_json::from_str::<Vec<String>>(s) {
                Ok(list) => list,
                Err(_) => csv(s),
            };
            let mut list = vec![json!("L")];
            list.extend(items.into_iter().map(Value::String));
            if list.len() == 1 {
                Value::Null
            } else {
                Value::Array(list)
            }
        }
        _ => value.clone(),
    }
}
