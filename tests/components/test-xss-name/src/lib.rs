//! `test-xss-name`: a task named `x"><img src=x onerror=…>`. The host refuses
//! the component at load (task names are kebab-case); the refusal, which quotes
//! the name, is shown on the admin page and must stay text.

use recoco_connector_sdk::{Connector, Context, Error, Event, Manifest};

/// The connector.
pub struct XssName;

impl Connector for XssName {
    fn manifest() -> Manifest {
        Manifest::new("test-xss-name", env!("CARGO_PKG_VERSION"))
            .description("Test component with a task name made of markup.")
            .task(
                r#"x"><img src=x onerror="window.__xss=(window.__xss||0)+1">"#,
                "Refused at load.",
            )
    }

    fn handle_event(_ctx: &Context, _event: &Event) -> Result<String, Error> {
        Ok(String::new())
    }
}

recoco_connector_sdk::export_connector!(XssName);
