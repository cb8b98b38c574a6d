//! The operator commands of the `recoco-sync` binary. They act through the
//! running service's admin API when `--url` (or `RECOCO_SYNC_URL`) is given,
//! else on the database directly ([`backend`]); [`output`] prints tables or
//! JSON; [`exit`] defines the exit codes; [`manage`] holds `sources`,
//! `connections` and `config apply`.

pub mod backend;
pub mod client;
pub mod commands;
pub mod exit;
pub mod follow;
pub mod manage;
pub mod output;
pub mod plugins;
