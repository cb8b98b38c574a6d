//! The one SQLite connection that intake's writer and the queue's thread
//! write on, each in its turn.
//!
//! Why one connection: SQLite drops a connection's whole page cache when
//! another connection has committed since its last transaction, so two
//! writers taking turns each re-read every page they touch (indexes, the
//! jobs' and events' leaves) from the log. Sharing the connection keeps the
//! cache warm for both.
//!
//! Why a fair lock: with a connection each, SQLite let one writer in at a
//! time and made the other poll with sleeps that grow to 100 ms; under a
//! sustained intake load the writer thread, always ready with its next
//! batch, took the lock again before the queue's next poll, and delivery fell
//! to a few hundred events/s while webhooks poured in. Here a thread that
//! lets go of the connection while the other waits hands it over: under load
//! they alternate batch for batch and neither sleeps. Other writers (the
//! pool's) still meet SQLite's own busy handling.

use std::path::Path;

use parking_lot::{FairMutex, FairMutexGuard};

/// The shared writing connection; one per SQLite database.
pub struct WriteTurn(FairMutex<rusqlite::Connection>);

impl WriteTurn {
    /// Opens the writing connection of `database` (migrated already).
    pub fn open(database: &Path) -> anyhow::Result<Self> {
        let conn = super::open_own_connection(database, "writer")?;
        Ok(Self(FairMutex::new(conn)))
    }

    /// Waits for this thread's turn: the connection, until the guard is
    /// dropped, when it goes to a waiting thread, if any.
    pub fn take(&self) -> FairMutexGuard<'_, rusqlite::Connection> {
        self.0.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// A write transaction that takes `work` (a batch's statements).
    fn insert(conn: &mut rusqlite::Connection, work: Duration) {
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .unwrap();
        tx.execute("INSERT INTO t (v) VALUES (randomblob(64))", [])
            .unwrap();
        std::thread::sleep(work);
        tx.commit().unwrap();
    }

    #[test]
    fn a_writer_waiting_for_its_turn_goes_next() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("turns.db");
        let turn = Arc::new(WriteTurn::open(&path).unwrap());
        turn.take()
            .execute_batch("CREATE TABLE t (v BLOB)")
            .unwrap();
        // One thread commits transaction after transaction with no pause, as
        // intake's writer does under load; another wants one transaction.
        let commits = Arc::new(AtomicUsize::new(0));
        let busy = std::thread::spawn({
            let (turn, commits) = (turn.clone(), commits.clone());
            move || {
                for _ in 0..3000 {
                    insert(&mut turn.take(), Duration::from_micros(300));
                    commits.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        while commits.load(Ordering::SeqCst) < 10 {
            std::thread::yield_now();
        }
        let asked_at = commits.load(Ordering::SeqCst);
        let waited = {
            let mut conn = turn.take();
            insert(&mut conn, Duration::ZERO);
            commits.load(Ordering::SeqCst) - asked_at
        };
        busy.join().unwrap();
        // Not 1: a stalled vCPU can delay the waiter's wake-up by a few
        // milliseconds. (With a connection each and no turns, the waiter
        // went after about 3,000: it slept in SQLite's busy handler until
        // the other thread was done.)
        assert!(
            waited <= 50,
            "the waiter went after {waited} of the other's commits"
        );
        let rows: i64 = turn
            .take()
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 3001, "every transaction of both committed");
    }
}
