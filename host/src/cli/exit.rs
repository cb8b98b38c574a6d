//! Exit codes scripts can rely on (README, "Exit codes"):
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | done |
//! | 1 | an error (refused, unreachable, invalid configuration, …) |
//! | 2 | bad usage: unknown flag, invalid value (clap) |
//! | 3 | not found: no such event, job, connection, key |
//! | 4 | a followed job ended failed or dead (`task --follow`, `jobs watch`) |
//! | 5 | a followed job was still unfinished at `--timeout` |
//! | 6 | conflict: owned by the configuration file, already exists, still in use |
//!
//! Errors carry their code as an [`Exit`] in the `anyhow` chain.

/// An error with its exit code.
#[derive(Debug)]
pub struct Exit {
    pub code: u8,
    pub message: String,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Exit {}

pub const ERROR: u8 = 1;
pub const USAGE: u8 = 2;
pub const NOT_FOUND: u8 = 3;
pub const JOB_FAILED: u8 = 4;
pub const TIMEOUT: u8 = 5;
pub const CONFLICT: u8 = 6;

pub fn conflict(message: impl Into<String>) -> anyhow::Error {
    Exit {
        code: CONFLICT,
        message: message.into(),
    }
    .into()
}

/// A refusal of the managed configuration, with its exit code.
pub fn refused(r: recoco_sync::managed::Refusal) -> anyhow::Error {
    use recoco_sync::managed::Refusal;
    match r {
        Refusal::NotFound(m) => not_found(m),
        Refusal::Conflict(m) => conflict(m),
        Refusal::Internal(e) => e,
        invalid => anyhow::anyhow!("{invalid}"),
    }
}

pub fn not_found(message: impl Into<String>) -> anyhow::Error {
    Exit {
        code: NOT_FOUND,
        message: message.into(),
    }
    .into()
}

pub fn usage(message: impl Into<String>) -> anyhow::Error {
    Exit {
        code: USAGE,
        message: message.into(),
    }
    .into()
}

pub fn job_failed(message: impl Into<String>) -> anyhow::Error {
    Exit {
        code: JOB_FAILED,
        message: message.into(),
    }
    .into()
}

pub fn timeout(message: impl Into<String>) -> anyhow::Error {
    Exit {
        code: TIMEOUT,
        message: message.into(),
    }
    .into()
}

/// The code of `err`: the first [`Exit`] of its chain, else 1.
pub fn code_of(err: &anyhow::Error) -> u8 {
    err.chain()
        .find_map(|e| e.downcast_ref::<Exit>())
        .map_or(ERROR, |e| e.code)
}
