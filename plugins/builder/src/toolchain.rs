//! Makes sure the Rust toolchain can compile for `wasm32-wasip2`. A fresh CI
//! machine has rustup and the pinned toolchain, but rustup does not always add
//! the targets listed in `rust-toolchain.toml` to an already installed toolchain.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

use crate::TARGET;

/// Installs the `wasm32-wasip2` standard library with rustup when the sysroot of
/// `rustc` lacks it.
pub fn ensure_target(rustc: &OsStr, root: &Path, target_dir: &Path) -> anyhow::Result<()> {
    let sysroot = sysroot(rustc, root)?;
    if has_target(&sysroot) {
        return Ok(());
    }

    // Two build scripts (host and tests) may get here at once; rustup has no lock
    // of its own, so take one before installing.
    std::fs::create_dir_all(target_dir)
        .with_context(|| format!("cannot create {}", target_dir.display()))?;
    let lock_path = target_dir.join(".rustup-target-add.lock");
    let lock = std::fs::File::create(&lock_path)
        .with_context(|| format!("cannot create {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("cannot lock {}", lock_path.display()))?;
    if has_target(&sysroot) {
        return Ok(());
    }

    println!("cargo:warning=installing the {TARGET} target with rustup");
    let mut command = Command::new("rustup");
    command.current_dir(root).args(["target", "add", TARGET]);
    // A rustup toolchain's sysroot is `…/toolchains/<name>`: name it, so the target
    // goes to the toolchain that compiles, whatever rustup would pick by default.
    if let Some(name) = rustup_toolchain_name(&sysroot) {
        command.arg("--toolchain").arg(name);
    }
    command.stdout(std::io::stderr()).stderr(std::io::stderr());
    let shown = crate::env::describe(&command);
    let status = command.status().with_context(|| {
        format!(
            "the {TARGET} target is missing from {} and `{shown}` could not be started; \
             install it by hand",
            sysroot.display()
        )
    })?;
    if !status.success() || !has_target(&sysroot) {
        bail!(
            "the {TARGET} target is missing from {} and `{shown}` failed ({status})",
            sysroot.display()
        );
    }
    Ok(())
}

fn sysroot(rustc: &OsStr, root: &Path) -> anyhow::Result<PathBuf> {
    let output = Command::new(rustc)
        .current_dir(root)
        .args(["--print", "sysroot"])
        .output()
        .with_context(|| format!("could not run `{} --print sysroot`", rustc.display()))?;
    if !output.status.success() {
        bail!(
            "`{} --print sysroot` failed: {}",
            rustc.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let text = String::from_utf8(output.stdout).context("sysroot path is not UTF-8")?;
    Ok(PathBuf::from(text.trim()))
}

fn has_target(sysroot: &Path) -> bool {
    sysroot.join("lib/rustlib").join(TARGET).is_dir()
}

fn rustup_toolchain_name(sysroot: &Path) -> Option<&OsStr> {
    let parent = sysroot.parent()?;
    (parent.file_name()? == "toolchains").then(|| sysroot.file_name())?
}
