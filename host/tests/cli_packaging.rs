//! The shipped connectors are checked into `host/components/` (so that
//! `cargo install --path host` builds nothing but the host). This test fails
//! while they are older than their sources: then run
//! `cargo run -p recoco-plugin-builder --bin ship-components`.

use std::path::Path;

#[test]
fn the_checked_in_components_match_their_sources() {
    let host = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = host.parent().unwrap();
    let dir = host.join("components");
    let mut shipped: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wasm"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    shipped.sort();
    assert_eq!(shipped, ["grist", "http-forward", "lescommuns"]);
    for name in &shipped {
        let bytes = std::fs::read(dir.join(format!("{name}.wasm"))).unwrap();
        assert!(
            bytes.starts_with(b"\0asm\x0d\x00\x01\x00"),
            "{name}.wasm is not a component"
        );
    }
    let names: Vec<&str> = shipped.iter().map(String::as_str).collect();
    let digest = recoco_plugin_builder::inputs_digest(root, &names).unwrap();
    let recorded = std::fs::read_to_string(dir.join("inputs.sha256")).unwrap();
    assert_eq!(
        recorded.trim(),
        digest,
        "host/components/*.wasm are older than their sources (WIT, SDK, connectors, \
         Cargo.lock): run `cargo run -p recoco-plugin-builder --bin ship-components` \
         and commit host/components/"
    );
}

#[test]
fn the_binary_embeds_exactly_the_checked_in_components() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("components");
    for (name, bytes) in recoco_sync::shipped::COMPONENTS {
        let file = std::fs::read(dir.join(format!("{name}.wasm"))).unwrap();
        assert!(
            file == *bytes,
            "{name} differs from host/components/{name}.wasm"
        );
    }
    assert_eq!(recoco_sync::shipped::COMPONENTS.len(), 3);
}
