//! Grist's identifier rules, applied locally so that we know in advance the id
//! Grist will give a column or a table (grist-core `sandbox/grist/identifiers.py`):
//! accents stripped (NFKD), runs of other characters turned into `_`, leading `_`
//! dropped, a prefix before a leading digit or a Python keyword, and a numeric
//! suffix on a case-insensitive collision. Pure functions; no I/O.

use std::collections::HashSet;

use unicode_normalization::char::canonical_combining_class;
use unicode_normalization::UnicodeNormalization;

/// Python 3 keywords (`keyword.kwlist`): Grist prefixes ids equal to one.
const PYTHON_KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield",
];

/// Ids every table already has: the row id and the hidden sort column.
pub const RESERVED_COLUMN_IDS: &[&str] = &["id", "manualSort"];

/// `_sanitize_ident`: the id Grist derives from `wanted` before deduplication;
/// empty when nothing usable is left.
pub fn sanitize(wanted: &str, prefix: &str, capitalize: bool) -> String {
    let stripped: String = wanted
        .nfkd()
        .filter(|c| canonical_combining_class(*c) == 0)
        .collect();
    let mut ident = String::with_capacity(stripped.len());
    let mut in_run = false;
    for c in stripped.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            ident.push(c);
            in_run = false;
        } else if !in_run {
            ident.push('_');
            in_run = true;
        }
    }
    let mut ident = ident.trim_start_matches('_').to_owned();
    if ident.starts_with(|c: char| c.is_ascii_digit()) {
        ident.insert_str(0, prefix);
    }
    if ident.is_empty() {
        return ident;
    }
    if capitalize {
        ident[..1].make_ascii_uppercase();
    }
    while PYTHON_KEYWORDS.contains(&ident.as_str()) {
        ident.insert_str(0, prefix);
    }
    ident
}

/// The ids already taken in a table, compared case-insensitively as Grist does.
#[derive(Debug, Clone, Default)]
pub struct Taken(HashSet<String>);

impl Taken {
    /// A table's taken ids: `existing` plus the reserved ones.
    pub fn with_columns<'a>(existing: impl IntoIterator<Item = &'a str>) -> Self {
        let mut taken = Self::default();
        for id in RESERVED_COLUMN_IDS.iter().copied().chain(existing) {
            taken.insert(id);
        }
        taken
    }

    /// Whether `id` collides with a taken id.
    pub fn contains(&self, id: &str) -> bool {
        self.0.contains(&id.to_ascii_uppercase())
    }

    /// Marks `id` as taken.
    pub fn insert(&mut self, id: &str) {
        self.0.insert(id.to_ascii_uppercase());
    }

    /// `pick_col_ident`: the id Grist gives a new column asked as `wanted`, which
    /// is then taken.
    pub fn pick_column(&mut self, wanted: &str) -> String {
        let ident = sanitize(wanted, "c", false);
        let picked = if ident.is_empty() {
            self.letters()
        } else {
            self.with_suffix(&ident)
        };
        self.insert(&picked);
        picked
    }

    fn with_suffix(&self, ident: &str) -> String {
        if !self.contains(ident) {
            return ident.to_owned();
        }
        // `name` → `name2`; `col4` → `col4_2`, so the number stays readable.
        let base = if ident.ends_with(|c: char| c.is_ascii_digit()) {
            format!("{ident}_")
        } else {
            ident.to_owned()
        };
        (2u64..)
            .map(|n| format!("{base}{n}"))
            .find(|candidate| !self.contains(candidate))
            .expect("an unbounded range always finds a free suffix")
    }

    /// Spreadsheet letters `A`, `B`, … `Z`, `AA`, … for ids with nothing usable.
    fn letters(&self) -> String {
        (0u64..)
            .map(|mut n| {
                let mut name = Vec::new();
                loop {
                    name.push(b'A' + (n % 26) as u8);
                    if n < 26 {
                        break;
                    }
                    n = n / 26 - 1;
                }
                name.reverse();
                String::from_utf8(name).expect("ASCII letters")
            })
            .find(|candidate| !self.contains(candidate))
            .expect("an unbounded range always finds a free name")
    }
}

/// The id Grist gives a table asked as `wanted` in a document without a
/// colliding table (`pick_table_ident` without suffix).
pub fn table_id(wanted: &str) -> String {
    let ident = sanitize(wanted, "T", true);
    if ident.is_empty() {
        "Table1".to_owned()
    } else {
        ident
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_like_grist() {
        // Every case observed on grist-core 1.7.17 (POST /tables, then GET /columns).
        let cases = [
            ("object_id", "object_id"),
            ("2e tranche", "c2e_tranche"),
            ("class", "cclass"),
            ("Élan", "Elan"),
            ("œuvre", "uvre"),
            ("__x", "x"),
            ("etat-du-bati", "etat_du_bati"),
            ("Thématiques !", "Thematiques_"),
            ("a  --  b", "a_b"),
        ];
        for (wanted, expected) in cases {
            assert_eq!(sanitize(wanted, "c", false), expected, "{wanted}");
        }
        assert_eq!(sanitize("---", "c", false), "");
        assert_eq!(sanitize("ﬁn", "c", false), "fin", "NFKD splits ligatures");
    }

    #[test]
    fn picks_ids_with_case_insensitive_suffixes() {
        let mut taken = Taken::with_columns(["name"]);
        assert_eq!(taken.pick_column("Name"), "Name2");
        assert_eq!(taken.pick_column("name"), "name3");
        assert_eq!(taken.pick_column("col4"), "col4");
        assert_eq!(taken.pick_column("col4"), "col4_2");
        assert_eq!(taken.pick_column("id"), "id2");
        assert_eq!(taken.pick_column("---"), "A");
        assert_eq!(taken.pick_column("!"), "B");
        assert_eq!(taken.pick_column("manualsort"), "manualsort2");
    }

    #[test]
    fn letters_go_past_z() {
        let mut taken = Taken::default();
        let names: Vec<String> = (0..28).map(|_| taken.pick_column("")).collect();
        assert_eq!(names[25], "Z");
        assert_eq!(names[26], "AA");
        assert_eq!(names[27], "AB");
    }

    #[test]
    fn table_ids_are_capitalized() {
        assert_eq!(table_id("projets"), "Projets");
        assert_eq!(table_id("Projets"), "Projets");
        assert_eq!(table_id("2025"), "T2025");
        assert_eq!(table_id("mes projets"), "Mes_projets");
        assert_eq!(table_id(""), "Table1");
    }
}
