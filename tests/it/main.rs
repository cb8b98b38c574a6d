//! End-to-end tests: one binary (one link step), one module per concern. Each
//! test starts the real service in-process on 127.0.0.1 with its own SQLite
//! file and fakes of the third parties it talks to.

mod admin;
mod admin_browser;
mod admin_netns;
mod alerts;
mod console_api;
mod convergence;
mod convergence_config;
mod convergence_lescommuns;
mod disk;
mod faults;
mod filter;
mod forward;
mod grist;
mod grist_real;
mod host_imports;
mod hot_swap;
mod intake;
mod lescommuns;
mod managed;
mod openapi;
mod queue;
mod queue_crash;
mod queue_order;
mod sandbox;
mod security;
mod testkit;
mod wit_versions;
