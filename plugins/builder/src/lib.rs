//! Builds connector crates of this workspace into WebAssembly components, from a
//! build script, so that `cargo build` and `cargo test` need no manual step.
//!
//! It runs a nested `cargo build --target wasm32-wasip2 --profile wasm-release`
//! with its own target directory (`<workspace>/target/wasm-components`) and a
//! cleaned environment; see [`env`] for what is removed and why. It does not
//! install anything but the `wasm32-wasip2` target, through rustup, when missing.
//!
//! ```no_run
//! // build.rs
//! fn main() -> anyhow::Result<()> {
//!     let built = recoco_plugin_builder::build_components(&["http-forward"])?;
//!     for component in built {
//!         println!("cargo:rustc-env=COMPONENT_{}={}", component.package, component.path.display());
//!     }
//!     Ok(())
//! }
//! ```

mod digest;
mod env;
mod toolchain;
mod workspace;

pub use digest::inputs_digest;
/// Clears what describes an outer cargo build from a nested tool's environment
/// (also used by the tests that build connector projects outside the workspace).
pub use env::clean as clean_cargo_env;
pub use workspace::root as workspace_root;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

/// The target the connectors are compiled for; rustc links components for it.
pub const TARGET: &str = "wasm32-wasip2";
/// The Cargo profile used, defined in the workspace's root `Cargo.toml`.
pub const PROFILE: &str = "wasm-release";
/// Where the nested build writes, relative to the workspace root. It must differ
/// from the outer build's target directory: the outer cargo holds a lock on its
/// own directory while build scripts run, and the nested cargo would wait for it.
pub const TARGET_SUBDIR: &str = "target/wasm-components";

/// A built component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// The Cargo package name (`http-forward`).
    pub package: String,
    /// Absolute path of the `.wasm` file (`…/wasm-release/http_forward.wasm`).
    pub path: PathBuf,
}

/// Builds the given workspace packages for `wasm32-wasip2` with the `wasm-release`
/// profile into `<workspace>/target/wasm-components`, and returns each package's
/// `.wasm` path, in the order given.
///
/// Meant to be called from a build script: it prints `cargo:rerun-if-changed=`
/// lines for the WIT, the plugin sources and the built packages, and forwards
/// the nested cargo's output to stderr (shown by cargo when the build fails).
/// Every package must be a `cdylib`, which rustc links into a component.
pub fn build_components(packages: &[&str]) -> anyhow::Result<Vec<Component>> {
    build(packages, true)
}

/// [`build_components`] for a program rather than a build script: no
/// `cargo:` directives on standard output.
pub fn build_components_quietly(packages: &[&str]) -> anyhow::Result<Vec<Component>> {
    build(packages, false)
}

fn build(packages: &[&str], directives: bool) -> anyhow::Result<Vec<Component>> {
    if packages.is_empty() {
        return Ok(Vec::new());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = workspace::root()?;
    let members = workspace::members(&cargo, &root)?;
    let mut dirs = Vec::with_capacity(packages.len());
    for &package in packages {
        let member = members
            .iter()
            .find(|m| m.name == package)
            .with_context(|| {
                let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
                format!(
                    "`{package}` is not a package of the workspace at {} (members: {})",
                    root.display(),
                    names.join(", ")
                )
            })?;
        if !member.is_cdylib {
            bail!(
                "package `{package}` cannot become a component: add \
                 `[lib] crate-type = [\"cdylib\", \"rlib\"]` to {}",
                member.manifest_dir.join("Cargo.toml").display()
            );
        }
        dirs.push(member.manifest_dir.clone());
    }

    if directives {
        print_rerun_if_changed(&root, &dirs);
    }

    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target_dir = root.join(TARGET_SUBDIR);
    toolchain::ensure_target(&rustc, &root, &target_dir)?;

    let mut command = Command::new(&cargo);
    command
        .current_dir(&root)
        .arg("build")
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .args(["--target", TARGET, "--profile", PROFILE])
        .arg("--target-dir")
        .arg(&target_dir);
    for package in packages {
        command.args(["-p", package]);
    }
    env::clean(&mut command);
    command.env("RUSTC", &rustc);
    // Build scripts talk to cargo on stdout; the nested cargo must not.
    command.stdout(std::io::stderr()).stderr(std::io::stderr());

    let shown = env::describe(&command);
    eprintln!("recoco-plugin-builder: running {shown}");
    let status = command
        .status()
        .with_context(|| format!("could not start `{shown}`"))?;
    if !status.success() {
        bail!(
            "building the connector components failed ({status}): `{shown}`; its output is above"
        );
    }

    let out_dir = target_dir.join(TARGET).join(PROFILE);
    packages
        .iter()
        .map(|&package| {
            let path = out_dir.join(format!("{}.wasm", package.replace('-', "_")));
            check_component(&path)?;
            Ok(Component {
                package: package.to_owned(),
                path,
            })
        })
        .collect()
}

fn print_rerun_if_changed(root: &Path, package_dirs: &[PathBuf]) {
    let mut paths = vec![
        root.join("wit"),
        root.join("plugins"),
        root.join("Cargo.toml"),
        root.join("Cargo.lock"),
    ];
    paths.extend(package_dirs.iter().cloned());
    for path in paths {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// Component binaries start with the magic `\0asm` then the layer-1 version
/// `0d 00 01 00`; core modules have version 1 (`01 00 00 00`).
fn check_component(path: &Path) -> anyhow::Result<()> {
    use std::io::Read as _;

    let mut header = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut file| file.read_exact(&mut header))
        .with_context(|| format!("cannot read the built file {}", path.display()))?;
    match header {
        [0, b'a', b's', b'm', 0x0d, 0x00, 0x01, 0x00] => Ok(()),
        [0, b'a', b's', b'm', 0x01, 0x00, 0x00, 0x00] => bail!(
            "{} is a core wasm module, not a component: is the crate a `cdylib` \
             built for {TARGET} with a rustc that links components?",
            path.display()
        ),
        _ => bail!("{} is not a WebAssembly binary", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_components_and_modules() {
        let dir = std::env::temp_dir().join(format!("builder-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let component = dir.join("c.wasm");
        std::fs::write(&component, b"\0asm\x0d\x00\x01\x00rest").unwrap();
        check_component(&component).unwrap();
        let module = dir.join("m.wasm");
        std::fs::write(&module, b"\0asm\x01\x00\x00\x00rest").unwrap();
        let err = check_component(&module).unwrap_err().to_string();
        assert!(err.contains("core wasm module"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
