//! One page of a Recoco list endpoint, in either form: the limit/offset object
//! `{count, next, previous, results}`, or the bare array that list endpoints
//! returned before November 2025 (read as one page with no `next`).

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

/// A page of `T`s.
///
/// ```
/// use recoco_connector_sdk::recoco::Page;
///
/// let page: Page<u32> = serde_json::from_str(r#"{"count": 3, "next": "https://x/?offset=2", "previous": null, "results": [1, 2]}"#).unwrap();
/// assert_eq!((page.count, page.results.len()), (Some(3), 2));
/// let bare: Page<u32> = serde_json::from_str("[1, 2, 3]").unwrap();
/// assert_eq!((bare.count, bare.next), (None, None));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    /// Total number of items (absent in the bare form).
    pub count: Option<u64>,
    /// Absolute URL of the next page, `None` on the last one.
    pub next: Option<String>,
    /// Absolute URL of the previous page.
    pub previous: Option<String>,
    /// The items of this page.
    pub results: Vec<T>,
}

impl<T> Default for Page<T> {
    fn default() -> Self {
        Self {
            count: None,
            next: None,
            previous: None,
            results: Vec::new(),
        }
    }
}

// Hand-written rather than `#[serde(untagged)]`, whose error ("data did not
// match any variant") would hide which item failed and why.
impl<'de, T: Deserialize<'de>> Deserialize<'de> for Page<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PageVisitor(PhantomData))
    }
}

struct PageVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for PageVisitor<T> {
    type Value = Page<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a page object with `results`, or an array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut results = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element()? {
            results.push(item);
        }
        Ok(Page {
            results,
            ..Page::default()
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut page = Page::default();
        let mut has_results = false;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "count" => page.count = map.next_value()?,
                "next" => page.next = map.next_value()?,
                "previous" => page.previous = map.next_value()?,
                "results" => {
                    page.results = map.next_value::<Option<Vec<T>>>()?.unwrap_or_default();
                    has_results = true;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !has_results {
            return Err(de::Error::missing_field("results"));
        }
        Ok(page)
    }
}
