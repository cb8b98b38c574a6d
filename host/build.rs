//! Embeds the shipped connectors (and has cargo watch `templates/`, which
//! `plugin new` embeds): the components checked into `components/`
//! (built by `cargo run -p recoco-plugin-builder --bin ship-components`). No
//! nested cargo build runs here, so `cargo install --path host` needs neither
//! the network nor the wasm32-wasip2 target.

use std::fmt::Write as _;

fn main() -> anyhow::Result<()> {
    let dir = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("components");
    println!("cargo:rerun-if-changed={}", dir.display());
    // `plugin new` embeds the templates (include_dir): a file added there must
    // rebuild the binary, which include_dir cannot tell cargo on stable.
    println!("cargo:rerun-if-changed=templates");
    // `sqlx::migrate!` embeds migrations/: a file added there must rebuild too.
    println!("cargo:rerun-if-changed=../migrations");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "wasm"))
        .collect();
    files.sort();
    anyhow::ensure!(
        !files.is_empty(),
        "no component in {}: run `cargo run -p recoco-plugin-builder --bin ship-components`",
        dir.display()
    );
    let mut code = String::from(
        "/// Components compiled into the binary: (package, bytes).\npub const COMPONENTS: &[(&str, &[u8])] = &[\n",
    );
    for path in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        let header = std::fs::read(path)?;
        anyhow::ensure!(
            header.starts_with(b"\0asm\x0d\x00\x01\x00"),
            "{} is not a WebAssembly component",
            path.display()
        );
        let package = path
            .file_stem()
            .and_then(|s| s.to_str())
            .ok_or_else(|| anyhow::anyhow!("odd file name {}", path.display()))?;
        writeln!(code, "    ({package:?}, include_bytes!({path:?})),")?;
    }
    code.push_str("];\n");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("shipped.rs");
    std::fs::write(out, code)?;
    Ok(())
}
