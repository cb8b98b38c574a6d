//! The connectors shipped inside the binary, built by `build.rs`.

include!(concat!(env!("OUT_DIR"), "/shipped.rs"));
