//! The durable job queue: the `jobs` table is the transport ([`jobs`]), the
//! retry schedule is policy ([`backoff`]), and [`worker`] gives jobs their
//! meaning by running connectors. SQL stays behind [`jobs`] so another database
//! can take SQLite's place.

pub mod backoff;
pub mod jobs;
pub mod worker;

pub use jobs::{JobKind, JobState, NewJob};
