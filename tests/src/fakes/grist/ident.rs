//! Grist's identifier rules (grist-core `identifiers.py`), written again for the
//! fake rather than borrowed from the connector, so the two can disagree and a
//! test can catch it: NFKD without combining marks, `[^A-Za-z0-9_]+` → `_`,
//! leading `_` dropped, prefix before a digit or a keyword, case-insensitive
//! numeric suffixes, spreadsheet letters for empty ids.

use std::collections::HashSet;

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

const KEYWORDS: [&str; 35] = [
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield",
];

fn sanitize(raw: &str, prefix: &str, capitalize: bool) -> String {
    let decomposed: String = raw.nfkd().filter(|c| !is_combining_mark(*c)).collect();
    let mut out = String::new();
    let mut previous_invalid = false;
    for c in decomposed.chars() {
        let valid = c.is_ascii_alphanumeric() || c == '_';
        if valid {
            out.push(c);
        } else if !previous_invalid {
            out.push('_');
        }
        previous_invalid = !valid;
    }
    let mut out: String = out.trim_start_matches('_').to_string();
    if out.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        out = format!("{prefix}{out}");
    }
    if out.is_empty() {
        return out;
    }
    if capitalize {
        let first = out[..1].to_ascii_uppercase();
        out.replace_range(..1, &first);
    }
    while KEYWORDS.contains(&out.as_str()) {
        out = format!("{prefix}{out}");
    }
    out
}

fn upper(set: &[&str]) -> HashSet<String> {
    set.iter().map(|s| s.to_ascii_uppercase()).collect()
}

fn suffixed(base: &str, avoid: &HashSet<String>, first: u32) -> String {
    let stem = if base.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{base}_")
    } else {
        base.to_string()
    };
    let mut n = first;
    loop {
        let candidate = format!("{stem}{n}");
        if !avoid.contains(&candidate.to_ascii_uppercase()) {
            return candidate;
        }
        n += 1;
    }
}

/// The id of a new column asked as `raw` among `avoid`.
pub fn column(raw: &str, avoid: &[&str]) -> String {
    let avoid = upper(avoid);
    let id = sanitize(raw, "c", false);
    if id.is_empty() {
        let mut n = 0usize;
        loop {
            let mut name = String::new();
            let mut k = n;
            loop {
                name.insert(0, (b'A' + (k % 26) as u8) as char);
                if k < 26 {
                    break;
                }
                k = k / 26 - 1;
            }
            if !avoid.contains(&name) {
                return name;
            }
            n += 1;
        }
    }
    if avoid.contains(&id.to_ascii_uppercase()) {
        suffixed(&id, &avoid, 2)
    } else {
        id
    }
}

/// The id of a new table asked as `raw` among `avoid`.
pub fn table(raw: &str, avoid: &[&str]) -> String {
    let avoid = upper(avoid);
    let id = sanitize(raw, "T", true);
    if id.is_empty() {
        return suffixed("Table", &avoid, 1);
    }
    if avoid.contains(&id.to_ascii_uppercase()) {
        suffixed(&id, &avoid, 2)
    } else {
        id
    }
}
