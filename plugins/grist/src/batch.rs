//! Upserting many records: batches of at most 100 records and under Grist's
//! request size limit, and when Grist refuses a batch (a 400 is atomic: nothing
//! of it was applied), the records one by one, so one bad record costs only
//! itself, with its reason. The sending is passed in, so this is tested natively.

use std::collections::BTreeMap;

use recoco_connector_sdk::Error;
use serde_json::Value;

use crate::grist::{Upserted, WriteError};
use crate::table::Prepared;

/// Records per `PUT …/records`.
pub const MAX_BATCH_RECORDS: usize = 100;
/// Grist refuses JSON bodies over 1 MiB (413); keep a margin for the envelope.
pub const MAX_BODY_BYTES: usize = 1_000_000;

/// What a write did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// Projects whose record Grist accepted.
    pub synced: Vec<u64>,
    /// Projects whose record Grist refused, with why.
    pub failed: Vec<(u64, String)>,
    /// Rows added.
    pub added: Vec<u64>,
    /// Rows updated.
    pub updated: usize,
    /// Rows each accepted project touched, when Grist says.
    pub rows: BTreeMap<u64, Vec<u64>>,
}

impl Written {
    fn accept(&mut self, records: &[&Prepared], upserted: Upserted) {
        self.added.extend(upserted.added);
        self.updated += upserted.updated;
        for (i, record) in records.iter().enumerate() {
            self.synced.push(record.project_id);
            if let Some(rows) = upserted.rows.get(i) {
                self.rows.insert(record.project_id, rows.clone());
            }
        }
    }
}

/// Splits `records` into batches of at most [`MAX_BATCH_RECORDS`] and
/// [`MAX_BODY_BYTES`]; a record too large on its own is returned apart.
fn batches(records: &[&Prepared]) -> (Vec<Vec<usize>>, Vec<(usize, usize)>) {
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut too_large = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    let mut size = 0;
    for (i, record) in records.iter().enumerate() {
        // `{"records":[…]}` plus a comma per record.
        let len = record.body.to_string().len() + 1;
        if len + 16 > MAX_BODY_BYTES {
            too_large.push((i, len));
            continue;
        }
        if !current.is_empty()
            && (current.len() == MAX_BATCH_RECORDS || size + len + 16 > MAX_BODY_BYTES)
        {
            batches.push(std::mem::take(&mut current));
            size = 0;
        }
        current.push(i);
        size += len;
    }
    if !current.is_empty() {
        batches.push(current);
    }
    (batches, too_large)
}

/// Upserts `records` through `send(entries, update_only)`. Refused batches are
/// retried record by record; any other failure stops everything (the caller's
/// job is retried or fails as the error says; upserts make a rerun harmless).
pub fn write(
    records: &[Prepared],
    mut send: impl FnMut(&[Value], bool) -> Result<Upserted, WriteError>,
) -> Result<Written, Error> {
    let mut written = Written::default();
    for update_only in [false, true] {
        let group: Vec<&Prepared> = records
            .iter()
            .filter(|r| r.update_only == update_only)
            .collect();
        let (batches, too_large) = batches(&group);
        for (i, len) in too_large {
            written.failed.push((
                group[i].project_id,
                format!(
                    "its record is {len} bytes, more than Grist accepts in one request (1 MiB)"
                ),
            ));
        }
        for batch in batches {
            let members: Vec<&Prepared> = batch.iter().map(|i| group[*i]).collect();
            let entries: Vec<Value> = members.iter().map(|r| r.body.clone()).collect();
            match send(&entries, update_only) {
                Ok(upserted) => written.accept(&members, upserted),
                Err(WriteError::Failed(err)) => return Err(err),
                Err(WriteError::Refused(reason)) if members.len() == 1 => {
                    written.failed.push((members[0].project_id, reason));
                }
                Err(WriteError::Refused(_)) => {
                    for member in members {
                        match send(std::slice::from_ref(&member.body), update_only) {
                            Ok(upserted) => written.accept(&[member], upserted),
                            Err(WriteError::Refused(reason)) => {
                                written.failed.push((member.project_id, reason))
                            }
                            Err(WriteError::Failed(err)) => return Err(err),
                        }
                    }
                }
            }
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn prepared(id: u64, extra: &str, update_only: bool) -> Prepared {
        Prepared {
            project_id: id,
            body: json!({"require": {"object_id": id}, "fields": {"name": extra}}),
            update_only,
            skipped: vec![],
        }
    }

    #[test]
    fn batches_of_a_hundred_and_one_by_one_after_a_refusal() {
        let records: Vec<Prepared> = (1..=250)
            .map(|i| prepared(i, if i == 142 { "bad" } else { "ok" }, false))
            .collect();
        let mut calls = Vec::new();
        let written = write(&records, |entries, _| {
            calls.push(entries.len());
            if entries.iter().any(|e| e["fields"]["name"] == "bad") {
                Err(WriteError::Refused("column \"x\" does not exist".into()))
            } else {
                Ok(Upserted {
                    added: (0..entries.len() as u64).collect(),
                    updated: 0,
                    rows: (0..entries.len() as u64).map(|i| vec![i]).collect(),
                })
            }
        })
        .unwrap();
        // 100, then 100 refused and retried one by one, then 50.
        assert_eq!(calls.len(), 3 + 100);
        assert_eq!(&calls[..3], &[100, 100, 1]);
        assert_eq!(*calls.last().unwrap(), 50);
        assert_eq!(written.synced.len(), 249);
        assert_eq!(
            written.failed,
            vec![(142, "column \"x\" does not exist".to_string())]
        );
        assert_eq!(written.added.len(), 249);
    }

    #[test]
    fn other_failures_stop_the_write() {
        let records: Vec<Prepared> = (1..=3).map(|i| prepared(i, "ok", false)).collect();
        let err = write(&records, |_, _| {
            Err(WriteError::Failed(Error::retryable("HTTP 429")))
        })
        .unwrap_err();
        assert!(err.is_retryable());
    }

    #[test]
    fn update_only_records_are_sent_apart() {
        let records = vec![
            prepared(1, "a", false),
            prepared(2, "b", true),
            prepared(3, "c", false),
        ];
        let mut sent = Vec::new();
        write(&records, |entries, update_only| {
            sent.push((entries.len(), update_only));
            Ok(Upserted::default())
        })
        .unwrap();
        assert_eq!(sent, vec![(2, false), (1, true)]);
    }

    #[test]
    fn large_records_split_batches_and_oversized_ones_fail_alone() {
        let big = "x".repeat(400_000);
        let huge = "y".repeat(1_100_000);
        let records = vec![
            prepared(1, &big, false),
            prepared(2, &big, false),
            prepared(3, &big, false),
            prepared(4, &huge, false),
        ];
        let mut sizes = Vec::new();
        let written = write(&records, |entries, _| {
            sizes.push(entries.len());
            Ok(Upserted::default())
        })
        .unwrap();
        assert_eq!(sizes, vec![2, 1]);
        assert_eq!(written.failed.len(), 1);
        assert_eq!(written.failed[0].0, 4);
        assert!(
            written.failed[0].1.contains("more than Grist accepts"),
            "{:?}",
            written.failed
        );
    }
}
