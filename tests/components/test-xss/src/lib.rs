//! `test-xss`: a connector that tries to run script in the admin page through
//! every value it controls and that passes manifest validation: its description,
//! a task's description, a job's summary, error and progress message. Task
//! `show` succeeds with the payload as summary; task `fail` fails with it.

use recoco_connector_sdk::{progress, Connector, Context, Error, Event, Manifest};

/// Would count its runs in `window.__xss` if it ever ran.
pub const PAYLOAD: &str = r#"x"><img src=x onerror="window.__xss=(window.__xss||0)+1">"#;

/// The connector.
pub struct Xss;

impl Connector for Xss {
    fn manifest() -> Manifest {
        Manifest::new("test-xss", env!("CARGO_PKG_VERSION"))
            .description(PAYLOAD)
            .task("show", PAYLOAD)
            .task("fail", PAYLOAD)
    }

    fn handle_event(_ctx: &Context, _event: &Event) -> Result<String, Error> {
        Ok(PAYLOAD.to_owned())
    }

    fn run_task(_ctx: &Context, name: &str, _payload: &str) -> Result<String, Error> {
        progress::report(1, Some(2), PAYLOAD);
        match name {
            "fail" => Err(Error::permanent(PAYLOAD)),
            _ => Ok(PAYLOAD.to_owned()),
        }
    }
}

recoco_connector_sdk::export_connector!(Xss);
