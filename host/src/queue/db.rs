//! The queue's hot path off the pool: claims and outcomes are sent to one
//! thread that writes on a plain SQLite connection (intake's writer's, in
//! turns: see [`WriteTurn`]) and serves whatever has piled up in one
//! transaction — every finished run of the batch, then every waiting claim —
//! like intake's writer does for webhooks.
//!
//! Why: through the async pool each statement is a round trip to one of
//! sqlx's per-connection threads, and a job took about ten of them (claim,
//! event, begin, update, attempt, event status, commit…). Context switches
//! between those threads and tokio's were where the delivery CPU went. Here a
//! job costs two channel hops and a handful of cached statements.
//!
//! Claims keep their one-at-a-time meaning inside the batch: each runs the
//! same `UPDATE … RETURNING` in turn, asking flow control which connections
//! to leave alone just before, so per-connection limits and the circuit
//! breaker hold exactly as before. Outcomes are written with `synchronous =
//! NORMAL` and no flush: a crash can forget the last ones, and those jobs run
//! again (at least once), which is the queue's promise.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use rusqlite::{params, OptionalExtension as _, Row, Transaction, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::jobs::{JobKind, JobState};
use super::lease::{Claimed, Finish, CLAIM};
use crate::flow::{FlowControl, Outcome, Slot};
use crate::ids::{now_ms, ConnectionId, JobId};
use crate::store::write_turn::WriteTurn;
use crate::store::{attempts, attempts::Attempt, events, maintenance};

/// Requests the channel holds before workers wait for room (there are never
/// more than two per worker).
const CHANNEL_CAPACITY: usize = 1024;
/// Most requests served by one transaction.
pub(super) const MAX_BATCH: usize = 256;

/// The event a claimed job delivers, read in the claim's transaction so the
/// worker needs no query of its own.
#[derive(Debug, Clone)]
pub struct EventToDeliver {
    pub id: String,
    pub source: String,
    pub topic: String,
    pub object_type: String,
    pub action: String,
    pub object_id: Option<String>,
    pub body: Vec<u8>,
    pub received_at: i64,
}

pub(super) struct ClaimRequest {
    pub(super) owner: String,
    pub(super) lease_ms: i64,
    /// Connections whose plugin declares `coalesce`.
    pub(super) coalescing: Vec<ConnectionId>,
    pub(super) reply: oneshot::Sender<Result<Option<Claimed>, String>>,
}

pub(super) struct FinishRequest {
    pub(super) id: JobId,
    pub(super) owner: String,
    /// The job's own event, whose status follows the outcome.
    pub(super) event_id: Option<String>,
    pub(super) finish: Finish,
    pub(super) attempt: Attempt,
    pub(super) reply: oneshot::Sender<Result<bool, String>>,
    /// The run's place in flow control, given back once the outcome is
    /// written (see [`Slot`]).
    pub(super) slot: Option<Slot>,
    /// The worker's next claim, served after the outcome (one round trip).
    pub(super) next: Option<ClaimRequest>,
}

impl FinishRequest {
    /// The request recording `finish` for `job`.
    fn of(
        job: &Claimed,
        finish: &Finish,
        attempt: Attempt,
        reply: oneshot::Sender<Result<bool, String>>,
        slot: Option<Slot>,
        next: Option<ClaimRequest>,
    ) -> Request {
        Request::Finish(Box::new(FinishRequest {
            id: job.id.clone(),
            owner: job.owner.clone(),
            event_id: job.own_event_id(),
            finish: finish.clone(),
            attempt,
            reply,
            slot,
            next,
        }))
    }

    /// Drops the slots of `batch` (their outcomes are written, or failed to
    /// be: either way the runs are over).
    pub(super) fn release_slots(batch: &mut [FinishRequest]) {
        for r in batch {
            r.slot = None;
        }
    }
}

/// A worker's request for its next job, sent with its last outcome.
pub struct NextClaim {
    pub owner: String,
    pub lease_ms: i64,
    pub coalescing: Vec<ConnectionId>,
}

/// What [`QueueDb::finish_and_claim`] answers: whether the outcome was
/// recorded (see [`QueueDb::finish`]), and the next job, if one was asked for.
pub struct FinishedAndNext {
    pub finished: anyhow::Result<bool>,
    pub next: anyhow::Result<Option<Claimed>>,
}

pub(super) enum Request {
    Claim(ClaimRequest),
    // Boxed: an outcome carries its attempt and error text.
    Finish(Box<FinishRequest>),
}

/// Handle to the queue thread.
#[derive(Clone)]
pub struct QueueDb {
    tx: mpsc::Sender<Request>,
}

impl QueueDb {
    /// Opens `database` (a migrated SQLite file) and starts the thread. It
    /// stops when every handle is dropped. `wal_max_bytes` bounds the log
    /// (see [`maintenance::bound_wal`]).
    pub fn start(
        database: &Path,
        wal_max_bytes: u64,
        flow: Arc<FlowControl>,
        turn: Arc<WriteTurn>,
    ) -> anyhow::Result<Self> {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        std::thread::Builder::new()
            .name("queue-db".into())
            .spawn({
                let file = database.to_path_buf();
                move || {
                    run(rx, &flow, &turn, |conn| {
                        maintenance::bound_wal(conn, &file, wal_max_bytes)
                    })
                }
            })
            .context("cannot start the queue thread")?;
        Ok(Self { tx })
    }

    /// The same queue on PostgreSQL: a task serving the requests through
    /// `pool` (see [`super::db_postgres`]).
    pub fn start_postgres(pool: crate::store::Pool, flow: Arc<FlowControl>) -> Self {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        tokio::spawn(super::db_postgres::run(pool, rx, flow));
        Self { tx }
    }

    /// Takes the oldest due job that may run now, if any, for `lease_ms`
    /// (see [`super::lease`]); folds the later pending jobs of its key into
    /// it when its connection is in `coalescing`. Flow control has counted
    /// the job as started when it is returned.
    pub async fn claim(
        &self,
        owner: &str,
        lease_ms: i64,
        coalescing: Vec<ConnectionId>,
    ) -> anyhow::Result<Option<Claimed>> {
        self.ask(|reply| {
            Request::Claim(ClaimRequest {
                owner: owner.to_string(),
                lease_ms,
                coalescing,
                reply,
            })
        })
        .await
    }

    /// Records the attempt and moves the job on, then refreshes its event's
    /// status, all in one transaction. `Ok(false)`: the lease is no longer
    /// ours (another worker took the job over); nothing was recorded.
    pub async fn finish(
        &self,
        job: &Claimed,
        finish: &Finish,
        attempt: Attempt,
    ) -> anyhow::Result<bool> {
        self.ask(|reply| FinishRequest::of(job, finish, attempt, reply, None, None))
            .await
    }

    /// [`Self::finish`] and [`Self::claim`] in one round trip: the queue
    /// serves the claim right after writing the outcome, in the same
    /// transaction when it can, and gives the run's `slot` back in between,
    /// so a worker goes from one job to the next with one wait.
    pub async fn finish_and_claim(
        &self,
        job: &Claimed,
        finish: &Finish,
        attempt: Attempt,
        slot: Slot,
        next: Option<NextClaim>,
    ) -> FinishedAndNext {
        let (reply, finished) = oneshot::channel();
        let (next, claimed) = match next {
            Some(n) => {
                let (reply, answer) = oneshot::channel();
                let claim = ClaimRequest {
                    owner: n.owner,
                    lease_ms: n.lease_ms,
                    coalescing: n.coalescing,
                    reply,
                };
                (Some(claim), Some(answer))
            }
            None => (None, None),
        };
        let request = FinishRequest::of(job, finish, attempt, reply, Some(slot), next);
        if self.tx.send(request).await.is_err() {
            let stopped = || anyhow::anyhow!("the queue thread stopped");
            return FinishedAndNext {
                finished: Err(stopped()),
                next: Err(stopped()),
            };
        }
        let finished = answer(finished.await);
        let next = match claimed {
            Some(claimed) => answer(claimed.await),
            None => Ok(None),
        };
        FinishedAndNext { finished, next }
    }

    /// Sends the request `make` builds around its reply channel, and waits
    /// for the thread's answer.
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, String>>) -> Request,
    ) -> anyhow::Result<T> {
        let (reply, reply_to) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| anyhow::anyhow!("the queue thread stopped"))?;
        answer(reply_to.await)
    }
}

/// A reply of the queue thread, or why there is none.
fn answer<T>(reply: Result<Result<T, String>, oneshot::error::RecvError>) -> anyhow::Result<T> {
    reply
        .context("the queue thread stopped")?
        .map_err(anyhow::Error::msg)
}

fn run(
    mut rx: mpsc::Receiver<Request>,
    flow: &FlowControl,
    turn: &WriteTurn,
    after_commit: impl Fn(&rusqlite::Connection),
) {
    let mut claims = Vec::new();
    let mut finishes = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut push = |request| push_request(&mut claims, &mut finishes, request);
        push(first);
        // What arrived while the turn was intake's joins this batch.
        let mut conn = turn.take();
        for _ in 1..MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => push(next),
                Err(_) => break,
            }
        }
        serve(
            &mut conn,
            flow,
            std::mem::take(&mut finishes),
            std::mem::take(&mut claims),
        );
        after_commit(&conn);
        drop(conn);
    }
}

/// Sorts a request into the loop's outcomes and claims (an outcome's next
/// claim among the claims).
pub(super) fn push_request(
    claims: &mut Vec<ClaimRequest>,
    finishes: &mut Vec<FinishRequest>,
    request: Request,
) {
    match request {
        Request::Claim(c) => claims.push(c),
        Request::Finish(mut f) => {
            claims.extend(f.next.take());
            finishes.push(*f);
        }
    }
}

/// Serves a loop's outcomes, then its claims (outcomes free keys and slots
/// the claims may then take), in one transaction: a commit writes each page
/// it dirtied once, and the jobs of a batch share most of their index pages.
/// When that transaction fails, outcomes and claims are served apart, the
/// outcomes one by one if need be.
fn serve(
    conn: &mut rusqlite::Connection,
    flow: &FlowControl,
    mut finishes: Vec<FinishRequest>,
    claims: Vec<ClaimRequest>,
) {
    if finishes.is_empty() || claims.is_empty() {
        if !finishes.is_empty() {
            let results = finish_batch(conn, &mut finishes);
            answer_finishes(finishes, results);
        }
        if !claims.is_empty() {
            claim_batch(conn, flow, claims);
        }
        return;
    }
    let mut claimed = Vec::with_capacity(claims.len());
    let mut folded = Vec::new();
    let result = (|| {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let done = write_finishes(&tx, &finishes);
        FinishRequest::release_slots(&mut finishes);
        let done = done?;
        claim_in(&tx, flow, &claims, &mut claimed, &mut folded)?;
        tx.commit()?;
        Ok::<_, rusqlite::Error>(done)
    })();
    match result {
        Ok(done) => {
            answer_finishes(finishes, done.into_iter().map(Ok).collect());
            answer_claims(conn, claims, claimed, folded);
        }
        Err(err) => {
            tracing::warn!(error = %err, "serving outcomes and claims together failed; serving them apart");
            for job in claimed.into_iter().flatten() {
                flow.finished(job.connection_id, Outcome::Neutral);
            }
            let results = finish_batch(conn, &mut finishes);
            claim_batch(conn, flow, claims);
            answer_finishes(finishes, results);
        }
    }
}

// ---- outcomes ----------------------------------------------------------------

/// Writes a batch of outcomes in one transaction; when it fails, each alone,
/// so one bad row cannot fail the others. Gives the slots back; the results
/// are for [`answer_finishes`].
fn finish_batch(
    conn: &mut rusqlite::Connection,
    batch: &mut [FinishRequest],
) -> Vec<Result<bool, String>> {
    let all = (|| {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let done = write_finishes(&tx, batch)?;
        tx.commit()?;
        Ok::<_, rusqlite::Error>(done)
    })();
    let results = match all {
        Ok(done) => done.into_iter().map(Ok).collect(),
        Err(err) => {
            tracing::warn!(error = %err, size = batch.len(), "recording a batch of outcomes failed; recording one by one");
            batch
                .iter()
                .map(|r| {
                    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                    let ours = write_finish(&tx, r)?;
                    tx.commit()?;
                    Ok::<_, rusqlite::Error>(ours)
                })
                .map(|one| one.map_err(|e| e.to_string()))
                .collect()
        }
    };
    FinishRequest::release_slots(batch);
    results
}

/// Writes each outcome of `batch` in `tx`; whether each lease was ours.
fn write_finishes(tx: &Transaction, batch: &[FinishRequest]) -> rusqlite::Result<Vec<bool>> {
    batch.iter().map(|r| write_finish(tx, r)).collect()
}

/// Answers outcomes: whether each lease was ours, or why it was not recorded.
pub(super) fn answer_finishes(batch: Vec<FinishRequest>, results: Vec<Result<bool, String>>) {
    for (r, result) in batch.into_iter().zip(results) {
        let _ = r.reply.send(result);
    }
}

pub(super) const FINISH: &str = "UPDATE jobs SET state = ?1, run_at = COALESCE(?2, run_at), last_error = ?3, summary = COALESCE(?4, summary),
     lease_owner = NULL, lease_until = NULL, updated_at = ?5, finished_at = ?6,
     attempts = attempts - ?7, throttles = throttles + ?7, time_kills = time_kills + ?8
 WHERE id = ?9 AND lease_owner = ?10 AND state = 'running'";

/// The columns [`FINISH`] writes for an outcome, in its parameter order.
pub(super) struct FinishColumns<'a> {
    pub state: JobState,
    pub run_at: Option<i64>,
    pub error: Option<&'a String>,
    pub summary: Option<&'a String>,
    pub now: i64,
    pub finished: Option<i64>,
    pub throttled: i64,
    pub time_kill: i64,
}

impl<'a> FinishColumns<'a> {
    pub(super) fn of(finish: &'a Finish) -> Self {
        let now = now_ms();
        let (state, run_at, error, summary, finished) = match finish {
            Finish::Succeeded { summary } => {
                (JobState::Succeeded, None, None, Some(summary), Some(now))
            }
            Finish::Retry { error, run_at, .. } => {
                (JobState::Queued, Some(*run_at), Some(error), None, None)
            }
            Finish::Failed { error } => (JobState::Failed, None, Some(error), None, Some(now)),
            Finish::Dead { error } => (JobState::Dead, None, Some(error), None, Some(now)),
        };
        let (throttled, time_kill) = match finish {
            Finish::Retry {
                throttled,
                time_kill,
                ..
            } => (*throttled as i64, *time_kill as i64),
            _ => (0, 0),
        };
        Self {
            state,
            run_at,
            error,
            summary,
            now,
            finished,
            throttled,
            time_kill,
        }
    }
}

/// One outcome; false (and nothing written) when the lease is not ours.
fn write_finish(tx: &Transaction, r: &FinishRequest) -> rusqlite::Result<bool> {
    let c = FinishColumns::of(&r.finish);
    let now = c.now;
    let updated = tx.prepare_cached(FINISH)?.execute(params![
        c.state.as_str(),
        c.run_at,
        c.error,
        c.summary,
        now,
        c.finished,
        c.throttled,
        c.time_kill,
        r.id.as_str(),
        r.owner,
    ])?;
    if updated == 0 {
        return Ok(false);
    }
    let a = &r.attempt;
    tx.prepare_cached(attempts::INSERT)?.execute(params![
        a.job_id,
        a.number,
        a.plugin,
        a.plugin_version,
        a.plugin_hash,
        a.started_at,
        a.duration_ms,
        a.outcome,
        a.error,
        a.summary,
    ])?;
    if let Some(event_id) = &r.event_id {
        tx.prepare_cached(events::REFRESH_STATUS)?
            .execute(params![event_id, now])?;
    }
    Ok(true)
}

// ---- claims ------------------------------------------------------------------

/// Serves a batch of claims in one transaction. Flow control's count of
/// started jobs is given back when the transaction does not commit.
fn claim_batch(conn: &mut rusqlite::Connection, flow: &FlowControl, batch: Vec<ClaimRequest>) {
    let mut claimed: Vec<Option<Claimed>> = Vec::with_capacity(batch.len());
    let mut folded: Vec<(ConnectionId, u64)> = Vec::new();
    let result = (|| {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        claim_in(&tx, flow, &batch, &mut claimed, &mut folded)?;
        tx.commit()
    })();
    match result {
        Ok(()) => answer_claims(conn, batch, claimed, folded),
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

/// Claims a job for each request in turn, inside `tx`.
fn claim_in(
    tx: &Transaction,
    flow: &FlowControl,
    batch: &[ClaimRequest],
    claimed: &mut Vec<Option<Claimed>>,
    folded: &mut Vec<(ConnectionId, u64)>,
) -> rusqlite::Result<()> {
    for request in batch {
        let job = claim_one(tx, flow, request, folded)?;
        let empty = job.is_none();
        claimed.push(job);
        // Nothing claimable now: the others would find nothing either.
        if empty {
            break;
        }
    }
    Ok(())
}

/// Answers committed claims (requests past the first empty one get none).
fn answer_claims(
    conn: &rusqlite::Connection,
    batch: Vec<ClaimRequest>,
    claimed: Vec<Option<Claimed>>,
    folded: Vec<(ConnectionId, u64)>,
) {
    for (connection, n) in folded {
        let name = connection_name(conn, connection).unwrap_or_else(|| "-".into());
        crate::metrics::coalesced(&name, n);
    }
    let mut claimed = claimed.into_iter();
    for request in batch {
        let _ = request.reply.send(Ok(claimed.next().flatten()));
    }
}

fn claim_one(
    tx: &Transaction,
    flow: &FlowControl,
    request: &ClaimRequest,
    folded: &mut Vec<(ConnectionId, u64)>,
) -> rusqlite::Result<Option<Claimed>> {
    let now = now_ms();
    let excluded = serde_json::to_string(&flow.excluded()).unwrap_or_else(|_| "[]".into());
    let Some((mut job, seq)) = tx
        .prepare_cached(CLAIM)?
        .query_row(
            params![request.owner, now + request.lease_ms, now, excluded],
            |row| claimed_from(row, &request.owner),
        )
        .optional()?
    else {
        return Ok(None);
    };
    flow.started(job.connection_id);
    if request.coalescing.contains(&job.connection_id) && job.ordering_key.is_some() {
        if let JobKind::Event { .. } = job.kind {
            let n = coalesce(tx, &mut job, seq)?;
            if n > 0 {
                folded.push((job.connection_id, n));
            }
        }
    }
    if let Some(event_id) = job.event_to_deliver() {
        job.event = load_event(tx, event_id)?;
    }
    Ok(Some(job))
}

fn claimed_from(row: &Row, owner: &str) -> rusqlite::Result<(Claimed, i64)> {
    let kind = if row.get::<_, String>("kind")? == "event" {
        JobKind::Event {
            event_id: row.get("event_id")?,
        }
    } else {
        JobKind::Task {
            name: row.get("task_name")?,
            payload: row
                .get::<_, Option<String>>("payload")?
                .unwrap_or_else(|| "{}".into()),
        }
    };
    let job = Claimed {
        id: JobId::from(row.get::<_, String>("id")?),
        connection_id: row.get("connection_id")?,
        plugin: row.get("plugin")?,
        kind,
        attempt: row.get::<_, i64>("attempts")? as u32,
        max_attempts: row.get::<_, i64>("max_attempts")? as u32,
        owner: owner.to_string(),
        ordering_key: row.get("ordering_key")?,
        coalesced_event_id: row.get("coalesced_event_id")?,
        coalesced: row.get("coalesced")?,
        throttles: row.get::<_, i64>("throttles")? as u32,
        time_kills: row.get::<_, i64>("time_kills")? as u32,
        event: None,
    };
    Ok((job, row.get("seq")?))
}

/// Folds everything before the first later job on one of the job's keys that
/// cannot be folded in (another kind, other keys, not due): those jobs end as
/// `coalesced`, and `job` delivers the latest of their events. Returns how
/// many were folded.
const FOLD: &str = "UPDATE jobs SET state = 'coalesced', coalesced_into = ?1, updated_at = ?2, finished_at = ?2,
     summary = 'coalesced into ' || ?1
 WHERE connection_id = ?3 AND ordering_key = ?4 AND kind = 'event' AND state = 'queued'
   AND run_at <= ?2 AND rowid > ?5
   AND rowid < COALESCE((
       SELECT MIN(other.seq) FROM job_keys mine
         JOIN job_keys other ON other.connection_id = mine.connection_id AND other.key = mine.key AND other.seq > mine.seq
         JOIN jobs o ON o.id = other.job_id
       WHERE mine.job_id = ?1
         AND (o.ordering_key IS NOT ?4 OR o.kind != 'event' OR o.state != 'queued' OR o.run_at > ?2)
     ), 9223372036854775807)
 RETURNING rowid AS seq, event_id";

fn coalesce(tx: &Transaction, job: &mut Claimed, seq: i64) -> rusqlite::Result<u64> {
    let now = now_ms();
    let folded: Vec<(i64, String)> = tx
        .prepare_cached(FOLD)?
        .query_map(
            params![
                job.id.as_str(),
                now,
                job.connection_id,
                job.ordering_key,
                seq
            ],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?
        .collect::<rusqlite::Result<_>>()?;
    if folded.is_empty() {
        return Ok(0);
    }
    let latest = folded
        .iter()
        .max_by_key(|(seq, _)| *seq)
        .map(|(_, id)| id.clone());
    for (_, event_id) in &folded {
        tx.prepare_cached(events::REFRESH_STATUS)?
            .execute(params![event_id, now])?;
    }
    tx.prepare_cached(
        "UPDATE jobs SET coalesced = coalesced + ?1, coalesced_event_id = ?2 WHERE id = ?3 AND lease_owner = ?4",
    )?
    .execute(params![folded.len() as i64, latest, job.id.as_str(), job.owner])?;
    job.coalesced += folded.len() as i64;
    job.coalesced_event_id = latest;
    Ok(folded.len() as u64)
}

fn load_event(tx: &Transaction, id: &str) -> rusqlite::Result<Option<EventToDeliver>> {
    tx.prepare_cached(
        "SELECT e.id, s.code, e.topic, e.object_type, e.action, e.object_id, e.body, e.received_at
         FROM events e JOIN sources s ON s.id = e.source_id WHERE e.id = ?",
    )?
    .query_row([id], |row| {
        Ok(EventToDeliver {
            id: row.get(0)?,
            source: row.get(1)?,
            topic: row.get::<_, Option<String>>(2)?.unwrap_or_default(),
            object_type: row.get::<_, Option<String>>(3)?.unwrap_or_default(),
            action: row.get::<_, Option<String>>(4)?.unwrap_or_default(),
            object_id: row.get(5)?,
            body: row.get(6)?,
            received_at: row.get(7)?,
        })
    })
    .optional()
}

fn connection_name(conn: &rusqlite::Connection, id: ConnectionId) -> Option<String> {
    conn.prepare_cached("SELECT name FROM connections WHERE id = ?")
        .ok()?
        .query_row([id], |row| row.get(0))
        .optional()
        .ok()
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::QueueConfig;
    use crate::queue::{jobs, NewJob};
    use crate::store::Pool;

    struct Db {
        _dir: tempfile::TempDir,
        path: std::path::PathBuf,
        pool: Pool,
        queue: QueueDb,
        flow: Arc<FlowControl>,
    }

    /// A migrated database with one source and connection (id 1), and the
    /// queue thread on it with at most `concurrency` jobs of a connection.
    async fn open(concurrency: usize) -> Db {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queue.db");
        let pool = crate::store::open(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        crate::store::sql::query("INSERT INTO sources (id, code, secrets, created_at, updated_at) VALUES (1, 'portal', '[]', 0, 0)")
            .execute(&pool)
            .await
            .unwrap();
        crate::store::sql::query("INSERT INTO connections (id, name, source_id, plugin, config, created_at, updated_at) VALUES (1, 'crm', 1, 'p', '{}', 0, 0)")
            .execute(&pool)
            .await
            .unwrap();
        let flow = Arc::new(FlowControl::new(&QueueConfig {
            workers: 8,
            max_concurrency: Some(concurrency),
            ..Default::default()
        }));
        let queue = QueueDb::start(
            &path,
            crate::store::DEFAULT_WAL_MAX_BYTES,
            flow.clone(),
            Arc::new(WriteTurn::open(&path).unwrap()),
        )
        .unwrap();
        Db {
            _dir: dir,
            path,
            pool,
            queue,
            flow,
        }
    }

    async fn task(pool: &Pool, id: &str, key: Option<&str>) {
        let job = NewJob {
            id: JobId::from(id.to_string()),
            connection_id: 1,
            plugin: "p".into(),
            kind: JobKind::Task {
                name: "t".into(),
                payload: "{}".into(),
            },
            dedup_key: None,
            max_attempts: 3,
            run_at: 0,
            ordering_key: key.map(|k| format!("[{k:?}]")),
        };
        let mut tx = pool.begin().await.unwrap();
        jobs::insert(&mut tx, &job).await.unwrap();
        tx.commit().await.unwrap();
    }

    fn attempt(job: &Claimed) -> Attempt {
        Attempt {
            job_id: job.id.to_string(),
            number: job.attempt as i64,
            plugin: "p".into(),
            plugin_version: None,
            plugin_hash: None,
            started_at: 0,
            duration_ms: 1,
            outcome: "succeeded".into(),
            error: None,
            summary: Some("ok".into()),
        }
    }

    fn done() -> Finish {
        Finish::Succeeded {
            summary: "ok".into(),
        }
    }

    #[tokio::test]
    async fn concurrent_claims_take_distinct_jobs_and_a_stolen_lease_records_nothing() {
        let db = open(8).await;
        for id in ["job_a", "job_b", "job_c"] {
            task(&db.pool, id, None).await;
        }
        let q = &db.queue;
        let (a, b, c, d) = tokio::join!(
            q.claim("me:w0", 60_000, vec![]),
            q.claim("me:w1", 60_000, vec![]),
            q.claim("me:w2", 60_000, vec![]),
            q.claim("me:w3", 60_000, vec![]),
        );
        let claimed: Vec<Claimed> = [a, b, c, d]
            .into_iter()
            .filter_map(|r| r.unwrap())
            .collect();
        let mut ids: Vec<&str> = claimed.iter().map(|j| j.id.as_str()).collect();
        ids.sort();
        assert_eq!(ids, ["job_a", "job_b", "job_c"], "three jobs, each once");

        let stolen = &claimed[1];
        crate::store::sql::query("UPDATE jobs SET lease_owner = 'thief:w9' WHERE id = ?")
            .bind(stolen.id.as_str())
            .execute(&db.pool)
            .await
            .unwrap();
        let ok = done();
        let (x, y, z) = tokio::join!(
            q.finish(&claimed[0], &ok, attempt(&claimed[0])),
            q.finish(&claimed[1], &ok, attempt(&claimed[1])),
            q.finish(&claimed[2], &ok, attempt(&claimed[2])),
        );
        assert_eq!(
            [x.unwrap(), y.unwrap(), z.unwrap()],
            [true, false, true],
            "the stolen lease is refused, the others recorded"
        );
        let states: Vec<(String, String)> =
            crate::store::sql::query_as("SELECT id, state FROM jobs ORDER BY id")
                .fetch_all(&db.pool)
                .await
                .unwrap();
        for (id, state) in &states {
            let expected = if id == stolen.id.as_str() {
                "running"
            } else {
                "succeeded"
            };
            assert_eq!(state, expected, "{id}");
        }
        let attempts: i64 = crate::store::sql::query_scalar("SELECT COUNT(*) FROM attempts")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(attempts, 2, "no attempt for the stolen run");
    }

    #[tokio::test]
    async fn a_batch_of_claims_keeps_key_order_and_the_concurrency_limit() {
        // Ordering: of two jobs on one key only the first runs, then the second.
        let db = open(8).await;
        task(&db.pool, "job_1", Some("project:7")).await;
        task(&db.pool, "job_2", Some("project:7")).await;
        let q = &db.queue;
        let (a, b) = tokio::join!(
            q.claim("me:w0", 60_000, vec![]),
            q.claim("me:w1", 60_000, vec![])
        );
        let got: Vec<Claimed> = [a, b].into_iter().filter_map(|r| r.unwrap()).collect();
        assert_eq!(got.len(), 1, "the key's second job waits");
        assert_eq!(got[0].id.as_str(), "job_1");
        assert!(q.finish(&got[0], &done(), attempt(&got[0])).await.unwrap());
        let next = q.claim("me:w0", 60_000, vec![]).await.unwrap().unwrap();
        assert_eq!(next.id.as_str(), "job_2");

        // Concurrency: with one slot per connection a batch claims one job.
        let db = open(1).await;
        task(&db.pool, "job_x", None).await;
        task(&db.pool, "job_y", None).await;
        let q = &db.queue;
        let (a, b) = tokio::join!(
            q.claim("me:w0", 60_000, vec![]),
            q.claim("me:w1", 60_000, vec![])
        );
        let got: Vec<Claimed> = [a, b].into_iter().filter_map(|r| r.unwrap()).collect();
        assert_eq!(got.len(), 1, "one slot, one claim");
    }

    #[tokio::test]
    async fn an_outcome_gives_its_slot_back_to_the_claim_sent_with_it() {
        // One job of the connection at a time: the claim sent with the first
        // job's outcome can only get the second if the outcome's slot is
        // given back before the claim is served.
        let db = open(1).await;
        task(&db.pool, "job_x", None).await;
        task(&db.pool, "job_y", None).await;
        let q = &db.queue;
        let first = q.claim("me:w0", 60_000, vec![]).await.unwrap().unwrap();
        assert!(
            q.claim("me:w1", 60_000, vec![]).await.unwrap().is_none(),
            "the connection's one slot is taken"
        );
        let slot = Slot::of_started(db.flow.clone(), first.connection_id);
        let next = NextClaim {
            owner: "me:w0".into(),
            lease_ms: 60_000,
            coalescing: vec![],
        };
        let answer = q
            .finish_and_claim(&first, &done(), attempt(&first), slot, Some(next))
            .await;
        assert!(answer.finished.unwrap(), "the outcome is recorded");
        let second = answer
            .next
            .unwrap()
            .expect("the next job, in the same round trip");
        assert_eq!((first.id.as_str(), second.id.as_str()), ("job_x", "job_y"));
        // The second run holds the slot now.
        assert!(q.claim("me:w1", 60_000, vec![]).await.unwrap().is_none());
    }

    type Answer<T> = oneshot::Receiver<Result<T, String>>;

    /// One loop's outcome and claim, as the queue thread would get them.
    fn loop_requests(
        job: &Claimed,
        attempt: Attempt,
    ) -> (
        FinishRequest,
        Answer<bool>,
        ClaimRequest,
        Answer<Option<Claimed>>,
    ) {
        let (finish_reply, finished) = oneshot::channel();
        let (claim_reply, claimed) = oneshot::channel();
        let finish = FinishRequest {
            id: job.id.clone(),
            owner: job.owner.clone(),
            event_id: None,
            finish: done(),
            attempt,
            reply: finish_reply,
            slot: None,
            next: None,
        };
        let claim = ClaimRequest {
            owner: "me:w1".into(),
            lease_ms: 60_000,
            coalescing: vec![],
            reply: claim_reply,
        };
        (finish, finished, claim, claimed)
    }

    #[tokio::test]
    async fn one_loop_writes_outcomes_then_claims_and_falls_back_apart() {
        // Together: the outcome frees the key, so the claim of the same loop
        // takes the key's next job.
        let db = open(8).await;
        task(&db.pool, "job_1", Some("project:7")).await;
        task(&db.pool, "job_2", Some("project:7")).await;
        let first = db
            .queue
            .claim("me:w0", 60_000, vec![])
            .await
            .unwrap()
            .unwrap();
        let mut conn = crate::store::open_own_connection(&db.path, "test").unwrap();
        let (finish, finished, claim, claimed) = loop_requests(&first, attempt(&first));
        serve(&mut conn, &db.flow, vec![finish], vec![claim]);
        assert_eq!(finished.await.unwrap(), Ok(true));
        let next = claimed.await.unwrap().unwrap().expect("the key's next job");
        assert_eq!(next.id.as_str(), "job_2");

        // Apart: an outcome whose attempt cannot be written (it names no job)
        // fails the shared transaction; that outcome alone gets the error,
        // nothing of it is written, and the claim is still served (it finds
        // the key busy, since job_2 is still running).
        task(&db.pool, "job_3", Some("project:7")).await;
        let mut broken = attempt(&next);
        broken.job_id = "no_such_job".into();
        let (finish, finished, claim, claimed) = loop_requests(&next, broken);
        serve(&mut conn, &db.flow, vec![finish], vec![claim]);
        assert!(
            finished.await.unwrap().is_err(),
            "the failed outcome says so"
        );
        assert!(
            matches!(claimed.await.unwrap(), Ok(None)),
            "key busy: nothing to claim"
        );
        let states: Vec<(String, String)> =
            crate::store::sql::query_as("SELECT id, state FROM jobs ORDER BY id")
                .fetch_all(&db.pool)
                .await
                .unwrap();
        let states: Vec<(&str, &str)> = states
            .iter()
            .map(|(i, s)| (i.as_str(), s.as_str()))
            .collect();
        assert_eq!(
            states,
            [
                ("job_1", "succeeded"),
                ("job_2", "running"),
                ("job_3", "queued")
            ]
        );
    }
}
