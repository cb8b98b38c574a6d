//! The digest of everything a set of components is built from: the WIT, the
//! sources of every path package they depend on (the connector crates and the
//! SDK), the exact registry packages of their dependency closure (from
//! `Cargo.lock`), the workspace's dependency declarations they use, the
//! `wasm-release` profile (and `release`, which it inherits) and
//! `rust-toolchain.toml`. Components checked into
//! the tree carry it (`host/components/inputs.sha256`), so a test can tell
//! whether they are older than their sources without building anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use sha2::{Digest as _, Sha256};

/// Hex SHA-256 of the inputs of `packages` in the workspace at `root`.
pub fn inputs_digest(root: &Path, packages: &[&str]) -> anyhow::Result<String> {
    let lock_path = root.join("Cargo.lock");
    let lock: toml::Table = read_toml(&lock_path)?;
    let manifest: toml::Table = read_toml(&root.join("Cargo.toml"))?;
    let locked = locked_packages(&lock)?;
    let closure = closure(&locked, packages)?;

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let members = crate::workspace::members(&cargo, root)?;
    let mut hasher = Sha256::new();
    let mut feed = |label: &str, bytes: &[u8]| {
        hasher.update((label.len() as u64).to_le_bytes());
        hasher.update(label.as_bytes());
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    for file in files_under(root, &root.join("wit"))? {
        feed(&rel(root, &file), &std::fs::read(&file)?);
    }
    feed(
        "rust-toolchain.toml",
        &std::fs::read(root.join("rust-toolchain.toml")).unwrap_or_default(),
    );
    // The wasm profile and the one it inherits from.
    for name in [crate::PROFILE, "release"] {
        let profile = manifest
            .get("profile")
            .and_then(|p| p.get(name))
            .map(|p| p.to_string())
            .unwrap_or_default();
        feed(&format!("profile.{name}"), profile.as_bytes());
    }
    let declared = manifest
        .get("workspace")
        .and_then(|w| w.get("dependencies"))
        .and_then(|d| d.as_table());
    for package in &closure {
        let underscored = package.name.replace('-', "_");
        let names: BTreeSet<&str> = [package.name.as_str(), underscored.as_str()]
            .into_iter()
            .collect();
        for name in names {
            if let Some(decl) = declared.and_then(|d| d.get(name)) {
                feed(
                    &format!("workspace.dependencies.{name}"),
                    decl.to_string().as_bytes(),
                );
            }
        }
        match &package.source {
            Some(source) => feed(
                &format!("{} {}", package.name, package.version),
                format!("{source} {}", package.checksum.as_deref().unwrap_or("")).as_bytes(),
            ),
            None => {
                let member = members
                    .iter()
                    .find(|m| m.name == package.name)
                    .with_context(|| {
                        format!("path package {} is not a workspace member", package.name)
                    })?;
                for file in files_under(root, &member.manifest_dir)? {
                    feed(&rel(root, &file), &std::fs::read(&file)?);
                }
            }
        }
    }
    Ok(hex(&hasher.finalize()))
}

fn read_toml(path: &Path) -> anyhow::Result<toml::Table> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Locked {
    name: String,
    version: String,
    source: Option<String>,
    checksum: Option<String>,
    dependencies: Vec<String>,
}

fn locked_packages(lock: &toml::Table) -> anyhow::Result<Vec<Locked>> {
    let Some(list) = lock.get("package").and_then(|p| p.as_array()) else {
        bail!("Cargo.lock has no [[package]] entries");
    };
    let text = |t: &toml::Value, key: &str| t.get(key).and_then(|v| v.as_str()).map(String::from);
    Ok(list
        .iter()
        .map(|p| Locked {
            name: text(p, "name").unwrap_or_default(),
            version: text(p, "version").unwrap_or_default(),
            source: text(p, "source"),
            checksum: text(p, "checksum"),
            dependencies: p
                .get("dependencies")
                .and_then(|d| d.as_array())
                .map(|d| {
                    d.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect())
}

/// Every locked package `roots` depend on, themselves included (for every
/// platform: a superset of what the wasm build uses, which only errs on the
/// side of asking for a rebuild).
fn closure(locked: &[Locked], roots: &[&str]) -> anyhow::Result<BTreeSet<Locked>> {
    let mut by_name: BTreeMap<&str, Vec<&Locked>> = BTreeMap::new();
    for p in locked {
        by_name.entry(&p.name).or_default().push(p);
    }
    let find = |spec: &str| -> anyhow::Result<&Locked> {
        // `name`, `name version` or `name version (source)`.
        let mut parts = spec.split_whitespace();
        let name = parts.next().unwrap_or_default();
        let version = parts.next();
        let candidates = by_name.get(name).map(Vec::as_slice).unwrap_or_default();
        candidates
            .iter()
            .copied()
            .find(|p| version.is_none_or(|v| p.version == v))
            .with_context(|| format!("Cargo.lock does not list {spec:?}"))
    };
    let mut seen = BTreeSet::new();
    let mut stack: Vec<&Locked> = roots.iter().map(|r| find(r)).collect::<Result<_, _>>()?;
    while let Some(p) = stack.pop() {
        if seen.insert(p.clone()) {
            for dep in &p.dependencies {
                stack.push(find(dep)?);
            }
        }
    }
    Ok(seen)
}

/// Files under `dir`, sorted, without build output or hidden entries.
fn files_under(root: &Path, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).with_context(|| format!("cannot list {}", d.display()))?;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || name == "target" {
                continue;
            }
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort_by_key(|p| rel(root, p));
    Ok(out)
}

fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, version: &str, deps: &[&str]) -> Locked {
        Locked {
            name: name.into(),
            version: version.into(),
            source: Some("registry+x".into()),
            checksum: None,
            dependencies: deps.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn the_closure_follows_names_and_versions() {
        let locked = vec![
            pkg("app", "0.1.0", &["serde", "syn 2.0.1"]),
            pkg("serde", "1.0.0", &[]),
            pkg("syn", "1.0.0", &[]),
            pkg("syn", "2.0.1", &["quote"]),
            pkg("quote", "1.0.0", &[]),
            pkg("unrelated", "1.0.0", &[]),
        ];
        let got: Vec<String> = closure(&locked, &["app"])
            .unwrap()
            .into_iter()
            .map(|p| format!("{} {}", p.name, p.version))
            .collect();
        assert_eq!(
            got,
            ["app 0.1.0", "quote 1.0.0", "serde 1.0.0", "syn 2.0.1"]
        );
        assert!(closure(&locked, &["missing"]).is_err());
    }
}
