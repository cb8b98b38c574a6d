//! Host implementations of the WIT imports, one file per interface. Policy
//! refusals and remote failures come back to the guest as WIT error values;
//! only host failures trap.

mod http;
mod log;
mod progress;
mod scheduler;
mod source_api;
mod state;

pub(crate) use scheduler::check_task;
pub(crate) use state::check_entry;

use super::bindings::types;
use super::state::StoreState;

impl types::Host for StoreState {}

// Components built against 0.1.0 call these same implementations.
super::bindings::compat::serve_v0_1_0!(StoreState);
