//! Turns at SQLite's one write lock for the threads that write on
//! connections of their own (intake's writer, the queue's).
//!
//! Why: SQLite lets one writer in at a time and makes the others poll, with
//! sleeps that grow to 100 ms. Under a sustained intake load the writer
//! thread, always ready with its next batch, took the lock again before the
//! queue's next poll, and delivery fell to a few hundred events/s while
//! webhooks poured in. Both threads now take a fair in-process lock around
//! each write transaction: when one lets go while the other waits, the
//! waiter goes next, so under load they alternate batch for batch and
//! neither sleeps. Other writers (the pool's) still meet SQLite's own
//! busy handling, as before.

use parking_lot::{FairMutex, FairMutexGuard};

/// Shared by the threads that take turns; one per SQLite database.
#[derive(Default)]
pub struct WriteTurn(FairMutex<()>);

impl WriteTurn {
    /// Waits for this thread's turn; it lasts until the guard is dropped,
    /// and is handed to a waiting thread, if any, when it is.
    pub fn take(&self) -> FairMutexGuard<'_, ()> {
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
    fn a_writer_waiting_for_its_turn_goes_next_instead_of_sleeping_in_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("turns.db");
        let open = || crate::store::open_own_connection(&path, "test").unwrap();
        open().execute_batch("CREATE TABLE t (v BLOB)").unwrap();
        // One thread commits transaction after transaction with no pause, as
        // intake's writer does under load; another wants one transaction.
        let mut conn = open();
        insert(&mut conn, Duration::ZERO); // a connection's first transaction reads the log's index
        let turn = Arc::new(WriteTurn::default());
        let commits = Arc::new(AtomicUsize::new(0));
        let busy = std::thread::spawn({
            let (turn, commits, mut conn) = (turn.clone(), commits.clone(), open());
            move || {
                for _ in 0..3000 {
                    let _turn = turn.take();
                    insert(&mut conn, Duration::from_micros(300));
                    commits.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        while commits.load(Ordering::SeqCst) < 10 {
            std::thread::yield_now();
        }
        let asked_at = commits.load(Ordering::SeqCst);
        let waited = {
            let _turn = turn.take();
            insert(&mut conn, Duration::ZERO);
            commits.load(Ordering::SeqCst) - asked_at
        };
        busy.join().unwrap();
        // Without turns the waiter polls SQLite's lock with growing sleeps
        // while the other commits hundreds of times. (Not 1: a stalled vCPU
        // can delay the waiter's wake-up by a few milliseconds.)
        assert!(
            waited <= 50,
            "the waiter went after {waited} of the other's commits"
        );
    }
}
