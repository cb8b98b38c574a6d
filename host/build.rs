//! Compiles the shipped connectors (`plugins/*`) to wasm32-wasip2 components and
//! embeds them, so `cargo run` needs no manual build step.

use std::fmt::Write as _;

/// Connectors compiled into the service.
const SHIPPED: &[&str] = &["http-forward", "grist", "lescommuns"];

fn main() -> anyhow::Result<()> {
    let built = recoco_plugin_builder::build_components(SHIPPED)?;
    let mut code = String::from("/// Components compiled into the binary: (package, bytes).\npub const COMPONENTS: &[(&str, &[u8])] = &[\n");
    for component in &built {
        writeln!(
            code,
            "    ({:?}, include_bytes!({:?})),",
            component.package, component.path
        )?;
    }
    code.push_str("];\n");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("shipped.rs");
    std::fs::write(out, code)?;
    Ok(())
}
