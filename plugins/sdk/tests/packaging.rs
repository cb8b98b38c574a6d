//! The SDK builds outside this repository: it binds its own copy of the WIT
//! (`wit/connector.wit`), which must stay the repository's current version, and
//! its package (what `cargo publish` uploads) must carry that copy.

use std::path::Path;
use std::process::Command;

const OWN_COPY: &str = "wit/connector.wit";
/// The repository's current WIT, seen from this crate (absent in a published crate).
const REPOSITORY_WIT: &str = "../../wit/v0.2.0/connector.wit";

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_wit_copy_is_the_repositorys_current_wit() {
    let repository = manifest_dir().join(REPOSITORY_WIT);
    if !repository.exists() {
        eprintln!(
            "{} not found: not inside the repository, nothing to compare",
            repository.display()
        );
        return;
    }
    let ours = std::fs::read_to_string(manifest_dir().join(OWN_COPY)).unwrap();
    let theirs = std::fs::read_to_string(&repository).unwrap();
    assert!(
        ours == theirs,
        "plugins/sdk/{OWN_COPY} differs from wit/v0.2.0/connector.wit: copy it again \
         (cp wit/v0.2.0/connector.wit plugins/sdk/wit/connector.wit)"
    );
}

#[test]
fn the_wit_copy_declares_the_sdk_version() {
    let ours = std::fs::read_to_string(manifest_dir().join(OWN_COPY)).unwrap();
    let package = format!("package recoco:connector@{};", env!("CARGO_PKG_VERSION"));
    assert!(
        ours.lines().any(|line| line == package),
        "{OWN_COPY} should declare `{package}`: the SDK's version is the WIT's"
    );
}

/// `cargo package --list` is what `cargo publish` would upload; it needs no
/// network with `--offline` (the dependencies are in cargo's cache once built).
#[test]
fn the_package_contains_the_wit_and_the_readme() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "package",
            "--list",
            "--allow-dirty",
            "--offline",
            "--manifest-path",
        ])
        .arg(manifest_dir().join("Cargo.toml"))
        .output()
        .expect("run cargo package --list");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cargo package --list failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let files: Vec<&str> = stdout.lines().collect();
    for wanted in [
        OWN_COPY,
        "README.md",
        "src/lib.rs",
        "src/bindings.rs",
        "Cargo.toml",
    ] {
        assert!(
            files.contains(&wanted),
            "{wanted} is not packaged; the package lists:\n{stdout}"
        );
    }
    assert!(
        !files.iter().any(|file| file.starts_with("tests/")),
        "tests compare against the repository and should stay out of the package:\n{stdout}"
    );
}
