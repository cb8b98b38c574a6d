//! Finds the workspace root and its members. Owns no policy about what to build.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};
use serde::Deserialize;

/// A workspace member, as far as building it into a component is concerned.
pub struct Member {
    pub name: String,
    pub manifest_dir: PathBuf,
    pub is_cdylib: bool,
}

/// The directory of the first `Cargo.toml` holding a `[workspace]` table, walking
/// up from the crate whose build script runs (or from the current directory).
pub fn root() -> anyhow::Result<PathBuf> {
    let start = match std::env::var_os("CARGO_MANIFEST_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => std::env::current_dir().context("no current directory")?,
    };
    for dir in start.ancestors() {
        let manifest = dir.join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        if text.lines().any(|line| line.trim() == "[workspace]") {
            return Ok(dir.to_path_buf());
        }
    }
    bail!(
        "no Cargo.toml with a [workspace] table in {} or its parents",
        start.display()
    )
}

/// The workspace members, from `cargo metadata --no-deps` (which neither resolves
/// nor downloads, so it takes no lock the outer build holds).
pub fn members(cargo: &OsStr, root: &Path) -> anyhow::Result<Vec<Member>> {
    let mut command = Command::new(cargo);
    command
        .current_dir(root)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(root.join("Cargo.toml"));
    crate::env::clean(&mut command);
    let shown = crate::env::describe(&command);
    let output = command
        .output()
        .with_context(|| format!("could not start `{shown}`"))?;
    if !output.status.success() {
        bail!(
            "`{shown}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let metadata: Metadata = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("unexpected output of `{shown}`"))?;
    Ok(metadata
        .packages
        .into_iter()
        .map(|package| Member {
            is_cdylib: package
                .targets
                .iter()
                .any(|target| target.crate_types.iter().any(|t| t == "cdylib")),
            manifest_dir: package
                .manifest_path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            name: package.name,
        })
        .collect())
}

#[derive(Deserialize)]
struct Metadata {
    packages: Vec<Package>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    manifest_path: PathBuf,
    targets: Vec<Target>,
}

#[derive(Deserialize)]
struct Target {
    #[serde(default)]
    crate_types: Vec<String>,
}
