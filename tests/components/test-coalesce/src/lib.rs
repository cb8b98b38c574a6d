//! `test-coalesce`: a connector that reloads the whole object anyway, so it
//! declares `coalesce`: POSTs the webhook body of each event it receives to the
//! config's `url` (header `x-event-id`). Its ordering key for `test.Item`
//! events is `/object/group`, to test connector-declared keys.

use recoco_connector_sdk::http::Request;
use recoco_connector_sdk::{Connector, Context, Error, Event, Manifest};

/// The connector.
pub struct Coalesce;

impl Connector for Coalesce {
    fn manifest() -> Manifest {
        Manifest::new("test-coalesce", env!("CARGO_PKG_VERSION"))
            .description("Test component: POSTs each event; declares coalesce.")
            .subscribe("*")
            .allow_host("config:/url")
            .coalesce()
            .ordering_key("test.Item", "/object/group")
    }

    fn handle_event(ctx: &Context, event: &Event) -> Result<String, Error> {
        let config: recoco_connector_sdk::serde_json::Value = ctx.config()?;
        let url = config["url"]
            .as_str()
            .ok_or_else(|| Error::permanent("config needs a url"))?;
        let response = Request::post(url)
            .header("content-type", "application/json")
            .header("x-event-id", &event.id)
            .body(event.payload.clone().into_bytes())
            .send()?
            .ensure_success("the target")?;
        Ok(format!("posted: HTTP {}", response.status))
    }
}

recoco_connector_sdk::export_connector!(Coalesce);
