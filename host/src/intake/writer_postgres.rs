//! Group commit on PostgreSQL: the webhooks waiting when a batch starts are
//! written in one transaction, and each is answered once that commit returns
//! (PostgreSQL's commit is durable: `synchronous_commit` is the server's). A
//! batch that fails is written again row by row, as on SQLite, so one bad
//! event cannot fail the others.

use std::sync::Arc;

use tokio::sync::{mpsc, Notify};

use super::dedup;
use super::writer::{Outcome, Request, Stored, Write, PRUNE_EVERY};
use crate::ids::now_ms;
use crate::queue::jobs;
use crate::store::events;
use crate::store::sql::{self, Tx};
use crate::store::Pool;

pub(super) async fn run(
    pool: Pool,
    mut rx: mpsc::Receiver<Request>,
    max_batch: usize,
    wake: Arc<Notify>,
) {
    let mut batch: Vec<Request> = Vec::with_capacity(max_batch);
    let mut pruned = std::time::Instant::now();
    while let Some(first) = rx.recv().await {
        super::writer::fill(&mut batch, first, &mut rx, max_batch);
        if pruned.elapsed() >= PRUNE_EVERY {
            pruned = std::time::Instant::now();
            if let Err(err) = dedup::prune_in(&pool, batch[0].0.claim.expired_before).await {
                tracing::warn!(error = %err, "cannot prune expired dedup keys");
            }
        }
        let results: Vec<Outcome> = match write_all(&pool, batch.iter().map(|(w, _)| w)).await {
            Ok(stored) => stored.into_iter().map(Ok).collect(),
            Err(err) => {
                tracing::warn!(error = %err, size = batch.len(), "batch write failed; writing one by one");
                let mut results = Vec::with_capacity(batch.len());
                for (write, _) in &batch {
                    results.push(
                        write_all(&pool, std::iter::once(write))
                            .await
                            .map(|mut one| one.remove(0))
                            .map_err(|e| {
                                tracing::error!(event = %write.event.id, error = %e, "cannot store event");
                                "storage failed".to_string()
                            }),
                    );
                }
                results
            }
        };
        let queued_jobs = batch
            .iter()
            .zip(&results)
            .any(|((w, _), r)| !w.jobs.is_empty() && r == &Ok(Stored::New));
        for ((_, reply), result) in batch.drain(..).zip(results) {
            let _ = reply.send(result);
        }
        if queued_jobs {
            wake.notify_waiters();
        }
    }
}

async fn write_all<'a>(
    pool: &Pool,
    writes: impl Iterator<Item = &'a Write>,
) -> sqlx::Result<Vec<Stored>> {
    let mut tx = pool.begin().await?;
    let mut stored = Vec::new();
    let mut queued = false;
    let now = now_ms();
    for write in writes {
        let s = write_one(&mut tx, write, now).await?;
        queued |= s == Stored::New && !write.jobs.is_empty();
        stored.push(s);
    }
    if queued {
        jobs::announce(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(stored)
}

async fn write_one(tx: &mut Tx, write: &Write, now: i64) -> sqlx::Result<Stored> {
    let Write {
        event: e,
        jobs,
        claim,
    } = write;
    if !claim.keys.is_empty() {
        if let Some(original) = dedup::claim_in(tx, e.source_id, e.id.as_str(), now, claim).await? {
            return Ok(Stored::Duplicate(original));
        }
    }
    sql::query(events::INSERT)
        .bind(e.id.as_str())
        .bind(e.source_id)
        .bind(e.status.as_str())
        .bind(&e.topic)
        .bind(&e.object_type)
        .bind(&e.object_id)
        .bind(&e.action)
        .bind(&e.webhook_uuid)
        .bind(e.body.as_ref())
        .bind(e.headers.to_string())
        .bind(&e.remote_addr)
        .bind(&e.error)
        .bind(e.received_at)
        .bind(&e.filtered)
        .execute(&mut *tx)
        .await?;
    for job in jobs {
        jobs::insert(tx, job).await?;
    }
    Ok(Stored::New)
}
