//! The queue's hot path on PostgreSQL: the requests [`super::db::QueueDb`]
//! sends, served by a task through the pool, each loop's outcomes in one
//! transaction and its claims in another.
//!
//! Several replicas claim from one table: the claim locks its job with `FOR
//! UPDATE SKIP LOCKED`, so two replicas never take the same job and neither
//! waits for the other's. Per-key order holds across replicas because a job
//! keeps its `job_keys` row until it is done: the next job of its key is not
//! at the head of the key for any replica until that commit. (A job being
//! claimed is locked, not done, so the one after it stays behind it.)

use std::sync::Arc;

use tokio::sync::mpsc;

use super::db::{
    answer_finishes, push_request, ClaimRequest, EventToDeliver, FinishColumns, FinishRequest,
    Request, FINISH, MAX_BATCH,
};
use super::jobs::JobKind;
use super::lease::Claimed;
use crate::flow::{FlowControl, Outcome};
use crate::ids::{now_ms, ConnectionId, JobId};
use crate::store::sql::{self, Row, Tx};
use crate::store::{attempts, events, Pool};

/// [`super::lease::CLAIM`] for PostgreSQL: `seq` is the arrival order, and
/// the chosen row is locked, skipping rows another replica is claiming.
const CLAIM: &str = "UPDATE jobs SET state = 'running', lease_owner = ?1, lease_until = ?2, attempts = attempts + 1, updated_at = ?3
 WHERE id = (
   SELECT j.id FROM jobs j
   WHERE j.state = 'queued' AND j.run_at <= ?3
     AND j.connection_id NOT IN (SELECT CAST(value AS BIGINT) FROM json_array_elements_text(CAST(?4 AS JSON)))
     AND NOT EXISTS (
       SELECT 1 FROM job_keys mine JOIN job_keys other
         ON other.connection_id = mine.connection_id AND other.key = mine.key AND other.seq < mine.seq
       WHERE mine.job_id = j.id)
   ORDER BY j.run_at, j.seq LIMIT 1
   FOR UPDATE SKIP LOCKED)
   AND state = 'queued'
 RETURNING seq, id, connection_id, plugin, kind, event_id, task_name, payload, attempts, max_attempts,
           ordering_key, coalesced_event_id, coalesced, throttles, time_kills";

/// The coalescing fold of [`super::db`], in PostgreSQL's words.
const FOLD: &str = "UPDATE jobs SET state = 'coalesced', coalesced_into = ?1, updated_at = ?2, finished_at = ?2,
     summary = 'coalesced into ' || ?1
 WHERE connection_id = ?3 AND ordering_key = ?4 AND kind = 'event' AND state = 'queued'
   AND run_at <= ?2 AND seq > ?5
   AND seq < COALESCE((
       SELECT MIN(other.seq) FROM job_keys mine
         JOIN job_keys other ON other.connection_id = mine.connection_id AND other.key = mine.key AND other.seq > mine.seq
         JOIN jobs o ON o.id = other.job_id
       WHERE mine.job_id = ?1
         AND (o.ordering_key IS DISTINCT FROM ?4 OR o.kind != 'event' OR o.state != 'queued' OR o.run_at > ?2)
     ), 9223372036854775807)
 RETURNING seq, event_id";

/// Serves requests until every [`super::db::QueueDb`] handle is dropped.
pub(super) async fn run(pool: Pool, mut rx: mpsc::Receiver<Request>, flow: Arc<FlowControl>) {
    while let Some(first) = rx.recv().await {
        let mut claims = Vec::new();
        let mut finishes = Vec::new();
        let mut push = |request| push_request(&mut claims, &mut finishes, request);
        push(first);
        for _ in 1..MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => push(next),
                Err(_) => break,
            }
        }
        // Outcomes first: they free the keys and slots the claims may take.
        if !finishes.is_empty() {
            finish_batch(&pool, finishes).await;
        }
        if !claims.is_empty() {
            claim_batch(&pool, &flow, claims).await;
        }
    }
}

/// A transaction of the queue. Its commit does not wait for the WAL flush,
/// which is the promise the SQLite queue thread makes with `synchronous =
/// NORMAL`: a crash may forget the last outcomes or claims, and those jobs
/// run again (at least once). Intake's commits stay durable.
async fn begin(pool: &Pool) -> sqlx::Result<Tx> {
    let mut tx = pool.begin().await?;
    sql::query("SET LOCAL synchronous_commit TO OFF")
        .execute(&mut tx)
        .await?;
    Ok(tx)
}

/// Writes a batch of outcomes in one transaction; when it fails, each alone.
/// Gives the slots back before answering.
async fn finish_batch(pool: &Pool, mut batch: Vec<FinishRequest>) {
    let all = async {
        let mut tx = begin(pool).await?;
        let mut done = Vec::with_capacity(batch.len());
        for r in &batch {
            done.push(write_finish(&mut tx, r).await?);
        }
        // A finished job may free the next of its key for another replica.
        crate::store::postgres::notify_jobs(&mut tx).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(done)
    }
    .await;
    let results = match all {
        Ok(done) => done.into_iter().map(Ok).collect(),
        Err(err) => {
            tracing::warn!(error = %err, size = batch.len(), "recording a batch of outcomes failed; recording one by one");
            let mut results = Vec::with_capacity(batch.len());
            for r in &batch {
                let one = async {
                    let mut tx = begin(pool).await?;
                    let ours = write_finish(&mut tx, r).await?;
                    tx.commit().await?;
                    Ok::<_, sqlx::Error>(ours)
                }
                .await;
                results.push(one.map_err(|e| e.to_string()));
            }
            results
        }
    };
    FinishRequest::release_slots(&mut batch);
    answer_finishes(batch, results);
}

async fn write_finish(tx: &mut Tx, r: &FinishRequest) -> sqlx::Result<bool> {
    let c = FinishColumns::of(&r.finish);
    let updated = sql::query(FINISH)
        .bind(c.state.as_str())
        .bind(c.run_at)
        .bind(c.error)
        .bind(c.summary)
        .bind(c.now)
        .bind(c.finished)
        .bind(c.throttled)
        .bind(c.time_kill)
        .bind(r.id.as_str())
        .bind(&r.owner)
        .execute(&mut *tx)
        .await?;
    if updated.rows_affected() == 0 {
        return Ok(false);
    }
    attempts::insert(tx, &r.attempt).await?;
    if let Some(event_id) = &r.event_id {
        events::refresh_status(tx, event_id).await?;
    }
    Ok(true)
}

/// Serves a batch of claims in one transaction; flow control's count of
/// started jobs is given back when it does not commit.
async fn claim_batch(pool: &Pool, flow: &FlowControl, batch: Vec<ClaimRequest>) {
    let mut claimed: Vec<Option<Claimed>> = Vec::with_capacity(batch.len());
    let mut folded: Vec<(ConnectionId, u64)> = Vec::new();
    let result = async {
        let mut tx = begin(pool).await?;
        for request in &batch {
            let job = claim_one(&mut tx, flow, request, &mut folded).await?;
            let empty = job.is_none();
            claimed.push(job);
            // Nothing claimable now: the others would find nothing either.
            if empty {
                break;
            }
        }
        tx.commit().await
    }
    .await;
    match result {
        Ok(()) => {
            for (connection, n) in folded {
                let name = connection_name(pool, connection).await;
                crate::metrics::coalesced(&name, n);
            }
            let mut claimed = claimed.into_iter();
            for request in batch {
                let _ = request.reply.send(Ok(claimed.next().flatten()));
            }
        }
        Err(err) => {
            for job in claimed.into_iter().flatten() {
                flow.finished(job.connection_id, Outcome::Neutral);
            }
            let error = format!("cannot claim a job: {err}");
            for request in batch {
                let _ = request.reply.send(Err(error.clone()));
            }
        }
    }
}

async fn claim_one(
    tx: &mut Tx,
    flow: &FlowControl,
    request: &ClaimRequest,
    folded: &mut Vec<(ConnectionId, u64)>,
) -> sqlx::Result<Option<Claimed>> {
    let now = now_ms();
    let excluded = serde_json::to_string(&flow.excluded()).unwrap_or_else(|_| "[]".into());
    let Some(row) = sql::query(CLAIM)
        .bind(&request.owner)
        .bind(now + request.lease_ms)
        .bind(now)
        .bind(excluded)
        .fetch_optional(&mut *tx)
        .await?
    else {
        return Ok(None);
    };
    let (mut job, seq) = claimed_from(&row, &request.owner)?;
    flow.started(job.connection_id);
    if request.coalescing.contains(&job.connection_id) && job.ordering_key.is_some() {
        if let JobKind::Event { .. } = job.kind {
            let n = coalesce(tx, &mut job, seq).await?;
            if n > 0 {
                folded.push((job.connection_id, n));
            }
        }
    }
    if let Some(event_id) = job.event_to_deliver() {
        job.event = load_event(tx, event_id).await?;
    }
    Ok(Some(job))
}

fn claimed_from(row: &Row, owner: &str) -> sqlx::Result<(Claimed, i64)> {
    let kind = if row.try_get::<&str, _>("kind")? == "event" {
        JobKind::Event {
            event_id: row.try_get("event_id")?,
        }
    } else {
        JobKind::Task {
            name: row.try_get("task_name")?,
            payload: row
                .try_get::<Option<String>, _>("payload")?
                .unwrap_or_else(|| "{}".into()),
        }
    };
    let job = Claimed {
        id: JobId::from(row.try_get::<String, _>("id")?),
        connection_id: row.try_get("connection_id")?,
        plugin: row.try_get("plugin")?,
        kind,
        attempt: row.try_get("attempts")?,
        max_attempts: row.try_get("max_attempts")?,
        owner: owner.to_string(),
        ordering_key: row.try_get("ordering_key")?,
        coalesced_event_id: row.try_get("coalesced_event_id")?,
        coalesced: row.try_get("coalesced")?,
        throttles: row.try_get("throttles")?,
        time_kills: row.try_get("time_kills")?,
        event: None,
    };
    Ok((job, row.try_get("seq")?))
}

async fn coalesce(tx: &mut Tx, job: &mut Claimed, seq: i64) -> sqlx::Result<u64> {
    let now = now_ms();
    let folded: Vec<(i64, String)> = sql::query_as(FOLD)
        .bind(job.id.as_str())
        .bind(now)
        .bind(job.connection_id)
        .bind(&job.ordering_key)
        .bind(seq)
        .fetch_all(&mut *tx)
        .await?;
    if folded.is_empty() {
        return Ok(0);
    }
    let latest = folded
        .iter()
        .max_by_key(|(seq, _)| *seq)
        .map(|(_, id)| id.clone());
    for (_, event_id) in &folded {
        events::refresh_status(tx, event_id).await?;
    }
    sql::query(
        "UPDATE jobs SET coalesced = coalesced + ?1, coalesced_event_id = ?2 WHERE id = ?3 AND lease_owner = ?4",
    )
    .bind(folded.len() as i64)
    .bind(&latest)
    .bind(job.id.as_str())
    .bind(&job.owner)
    .execute(&mut *tx)
    .await?;
    job.coalesced += folded.len() as i64;
    job.coalesced_event_id = latest;
    Ok(folded.len() as u64)
}

async fn load_event(tx: &mut Tx, id: &str) -> sqlx::Result<Option<EventToDeliver>> {
    let Some(row) = sql::query(
        "SELECT e.id, s.code, e.topic, e.object_type, e.action, e.object_id, e.body, e.received_at
         FROM events e JOIN sources s ON s.id = e.source_id WHERE e.id = ?",
    )
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(None);
    };
    Ok(Some(EventToDeliver {
        id: row.try_get(0usize)?,
        source: row.try_get(1usize)?,
        topic: row
            .try_get::<Option<String>, _>(2usize)?
            .unwrap_or_default(),
        object_type: row
            .try_get::<Option<String>, _>(3usize)?
            .unwrap_or_default(),
        action: row
            .try_get::<Option<String>, _>(4usize)?
            .unwrap_or_default(),
        object_id: row.try_get(5usize)?,
        body: row.try_get(6usize)?,
        received_at: row.try_get(7usize)?,
    }))
}

async fn connection_name(pool: &Pool, id: ConnectionId) -> String {
    sql::query_scalar::<String>("SELECT name FROM connections WHERE id = ?")
        .bind(id)
        .fetch_optional(pool)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| "-".into())
}
