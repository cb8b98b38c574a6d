//! Upserting many records: batches of at most 100 records and under Grist's
//! request size limit, and when Grist refuses a batch (a 400 is atomic: nothing
//! of it was applied), its halves, then theirs, so one bad record costs only
//! itself, with its reason, for log₂ requests. The sending is passed in, so this is tested natively.

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
    /// Indexes (in the records given) of refused records not yet retried
    /// (only without bisection).
    pub refused: Vec<usize>,
}

impl Written {
    /// Adds what another write did.
    pub fn merge(&mut self, other: Written) {
        self.synced.extend(other.synced);
        self.failed.extend(other.failed);
        self.added.extend(other.added);
        self.updated += other.updated;
        self.rows.extend(other.rows);
        self.refused.extend(other.refused);
    }

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

/// Upserts `records` through `send(entries, update_only)`. A refused batch
/// (atomic: nothing of it was applied) is split in halves, and each half sent
/// again, down to the records Grist refuses on their own: one bad record among
/// n costs about 2·log₂(n) requests, and is reported with its reason. With
/// `bisect` false, refused batches are only listed (`refused`), for a caller
/// that first re-reads the columns. Any other failure stops everything (the
/// caller's job is retried or fails as the error says; upserts make a rerun
/// harmless).
pub fn write(
    records: &[Prepared],
    bisect: bool,
    mut send: impl FnMut(&[Value], bool) -> Result<Upserted, WriteError>,
) -> Result<Written, Error> {
    let mut written = Written::default();
    for update_only in [false, true] {
        let group: Vec<(usize, &Prepared)> = records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.update_only == update_only)
            .collect();
        let members: Vec<&Prepared> = group.iter().map(|(_, r)| *r).collect();
        let (batches, too_large) = batches(&members);
        for (i, len) in too_large {
            written.failed.push((
                group[i].1.project_id,
                format!(
                    "its record is {len} bytes, more than Grist accepts in one request (1 MiB)"
                ),
            ));
        }
        for batch in batches {
            let members: Vec<(usize, &Prepared)> = batch.iter().map(|i| group[*i]).collect();
            if bisect {
                send_halving(&members, update_only, &mut send, &mut written)?;
                continue;
            }
            let entries: Vec<Value> = members.iter().map(|(_, r)| r.body.clone()).collect();
            match send(&entries, update_only) {
                Ok(upserted) => {
                    let records: Vec<&Prepared> = members.iter().map(|(_, r)| *r).collect();
                    written.accept(&records, upserted);
                }
                Err(WriteError::Failed(err)) => return Err(err),
                Err(WriteError::Refused(_)) => {
                    written.refused.extend(members.iter().map(|(i, _)| *i));
                }
            }
        }
    }
    Ok(written)
}

/// Sends `members` as one request; when refused, each half apart.
fn send_halving(
    members: &[(usize, &Prepared)],
    update_only: bool,
    send: &mut impl FnMut(&[Value], bool) -> Result<Upserted, WriteError>,
    written: &mut Written,
) -> Result<(), Error> {
    let entries: Vec<Value> = members.iter().map(|(_, r)| r.body.clone()).collect();
    match send(&entries, update_only) {
        Ok(upserted) => {
            let records: Vec<&Prepared> = members.iter().map(|(_, r)| *r).collect();
            written.accept(&records, upserted);
            Ok(())
        }
        Err(WriteError::Failed(err)) => Err(err),
        Err(WriteError::Refused(reason)) if members.len() == 1 => {
            written.failed.push((members[0].1.project_id, reason));
            Ok(())
        }
        Err(WriteError::Refused(_)) => {
            let (first, second) = members.split_at(members.len() / 2);
            send_halving(first, update_only, send, written)?;
            send_halving(second, update_only, send, written)
        }
    }
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
            formula: vec![],
        }
    }

    fn answer(entries: &[Value]) -> Result<Upserted, WriteError> {
        if entries.iter().any(|e| e["fields"]["name"] == "bad") {
            Err(WriteError::Refused("column \"x\" does not exist".into()))
        } else {
            Ok(Upserted {
                added: (0..entries.len() as u64).collect(),
                updated: 0,
                rows: (0..entries.len() as u64).map(|i| vec![i]).collect(),
            })
        }
    }

    #[test]
    fn a_refused_batch_is_halved_down_to_the_bad_record() {
        let records: Vec<Prepared> = (1..=250)
            .map(|i| prepared(i, if i == 142 { "bad" } else { "ok" }, false))
            .collect();
        let mut calls = Vec::new();
        let written = write(&records, true, |entries, _| {
            calls.push(entries.len());
            answer(entries)
        })
        .unwrap();
        // 100, then 100 refused: 50+50, 25+25, 13+12, 7+6, 4+3, 2+2 (or 2+1), 1+1.
        assert_eq!(&calls[..3], &[100, 100, 50]);
        assert!(calls.len() <= 3 + 2 * 7, "log₂ requests: {calls:?}");
        assert_eq!(*calls.last().unwrap(), 50);
        assert_eq!(written.synced.len(), 249);
        assert_eq!(
            written.failed,
            vec![(142, "column \"x\" does not exist".to_string())]
        );
        assert_eq!(written.added.len(), 249);
        let mut synced = written.synced.clone();
        synced.sort();
        synced.dedup();
        assert_eq!(synced.len(), 249, "each record accepted once");
    }

    #[test]
    fn two_bad_records_each_cost_their_own_halvings() {
        let records: Vec<Prepared> = (1..=100)
            .map(|i| prepared(i, if i == 3 || i == 97 { "bad" } else { "ok" }, false))
            .collect();
        let mut calls = 0;
        let written = write(&records, true, |entries, _| {
            calls += 1;
            answer(entries)
        })
        .unwrap();
        let failed: Vec<u64> = written.failed.iter().map(|(id, _)| *id).collect();
        assert_eq!(failed, [3, 97]);
        assert_eq!(written.synced.len(), 98);
        assert!(calls <= 1 + 2 * 2 * 7, "{calls}");
    }

    #[test]
    fn without_bisection_refused_batches_are_listed() {
        let records: Vec<Prepared> = (1..=150)
            .map(|i| prepared(i, if i == 120 { "bad" } else { "ok" }, false))
            .collect();
        let mut calls = 0;
        let written = write(&records, false, |entries, _| {
            calls += 1;
            answer(entries)
        })
        .unwrap();
        assert_eq!(calls, 2);
        assert_eq!(written.synced.len(), 100);
        assert_eq!(written.refused, (100..150).collect::<Vec<usize>>());
        assert!(written.failed.is_empty());
    }

    #[test]
    fn other_failures_stop_the_write() {
        let records: Vec<Prepared> = (1..=3).map(|i| prepared(i, "ok", false)).collect();
        let err = write(&records, true, |_, _| {
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
        write(&records, true, |entries, update_only| {
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
        let written = write(&records, true, |entries, _| {
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
