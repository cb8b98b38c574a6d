//! Builds the purpose-built test components (`tests/components/*`) and exposes
//! their paths as `COMPONENT_<crate_name>` environment variables at compile time.

const TEST_COMPONENTS: &[&str] = &[
    "test-noop",
    "test-looper",
    "test-hog",
    "test-trapper",
    "test-echo",
    "http-forward",
    "grist",
    "lescommuns",
    "test-swap-v1",
    "test-swap-v2",
    "test-swap-trap",
    "test-swap-bad-schema",
    "test-other-world",
    "test-coalesce",
    "test-xss",
    "test-xss-name",
    "test-malicious",
    "test-wit-v0-1",
];

fn main() -> anyhow::Result<()> {
    for component in recoco_plugin_builder::build_components(TEST_COMPONENTS)? {
        println!(
            "cargo:rustc-env=COMPONENT_{}={}",
            component.package.replace('-', "_"),
            component.path.display()
        );
    }
    Ok(())
}
