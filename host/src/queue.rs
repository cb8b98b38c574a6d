//! The durable job queue: the `jobs` table is the transport ([`jobs`], claims
//! under a lease in [`lease`], written by the queue's own thread in [`db`]), retries are policy ([`policy`]), periodic tasks
//! are [`schedules`], restarts recover at once ([`recovery`]), and [`worker`]
//! gives jobs their meaning by running connectors. SQL stays behind these
//! modules so another database can take SQLite's place.

pub mod db;
pub mod db_postgres;
pub mod decide;
pub mod jobs;
pub mod lease;
pub mod policy;
pub mod recovery;
pub mod schedules;
pub mod worker;

pub use jobs::{JobKind, JobState, NewJob};
