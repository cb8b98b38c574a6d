//! Rebuilds the connectors shipped inside the service and copies them into
//! `host/components/` with the digest of their inputs, which the host embeds at
//! compile time. Run it after changing a shipped connector, the SDK or the WIT:
//!
//! ```text
//! cargo run -p recoco-plugin-builder --bin ship-components
//! ```
//!
//! A test of the host (`host/tests/cli_packaging.rs`) fails while the checked-in
//! components are older than their sources.

use anyhow::Context as _;

/// The connectors compiled into the service.
const SHIPPED: &[&str] = &["http-forward", "grist", "lescommuns"];

fn main() -> anyhow::Result<()> {
    let root = recoco_plugin_builder::workspace_root()?;
    let out = root.join("host/components");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let built = recoco_plugin_builder::build_components_quietly(SHIPPED)?;
    // Files of connectors no longer shipped go.
    for entry in std::fs::read_dir(&out)? {
        let path = entry?.path();
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        if path.extension().is_some_and(|e| e == "wasm") && !SHIPPED.contains(&stem) {
            std::fs::remove_file(&path)?;
        }
    }
    for component in &built {
        let target = out.join(format!("{}.wasm", component.package));
        std::fs::copy(&component.path, &target).with_context(|| {
            format!(
                "cannot copy {} to {}",
                component.path.display(),
                target.display()
            )
        })?;
        let size = std::fs::metadata(&target)?.len();
        println!("{} ({size} bytes)", target.display());
    }
    let digest = recoco_plugin_builder::inputs_digest(&root, SHIPPED)?;
    std::fs::write(out.join("inputs.sha256"), format!("{digest}\n"))?;
    println!("inputs digest {digest}");
    Ok(())
}
