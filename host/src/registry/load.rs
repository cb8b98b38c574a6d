//! From bytes to a ready [`Plugin`], or a [`LoadError`] saying what is wrong:
//! compile (or take the compiled code from the disk [`cache`](super::cache)) off
//! the async threads, check it is a component of a supported `recoco:connector`
//! world, read and check its manifest, compile its config schema. Nothing here
//! swaps anything in; [`Registry::install`] does. The one-shot loads at start
//! (shipped connectors, the plugins directory) are here too.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::{Manifest, Origin, Plugin, Registry};
use crate::ids::now_ms;
use crate::runtime::Label;

/// Why a component was refused; the message says what to fix.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct LoadError(pub String);

/// SHA-256 of `bytes`, hex: the identity of a plugin version.
pub fn content_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Registry {
    /// Compiles and validates a component; does not install it.
    pub async fn prepare(&self, bytes: Vec<u8>, origin: Origin) -> Result<Arc<Plugin>, LoadError> {
        let hash = content_hash(&bytes);
        let clock = Instant::now();
        let runtime = self.runtime.clone();
        let cache = self.cache.clone();
        let key = hash.clone();
        // Compilation takes CPU for up to seconds: keep it off the async threads.
        let (pre, from_cache) = tokio::task::spawn_blocking(move || {
            let (component, from_cache) = match &cache {
                Some(cache) => cache.load_or_compile(runtime.engine(), &bytes, &key),
                None => runtime.compile(&bytes).map(|c| (c, false)),
            }
            .map_err(|e| describe_compile_error(&bytes, &e))?;
            let pre = runtime.pre_instantiate(&component).map_err(|e| {
                format!(
                    "not a component of a supported recoco:connector world ({}): {e:#}",
                    crate::runtime::bindings::SUPPORTED_VERSIONS.join(", ")
                )
            })?;
            Ok::<_, String>((pre, from_cache))
        })
        .await
        .map_err(|e| LoadError(format!("compilation task failed: {e}")))?
        .map_err(LoadError)?;
        let label = Label {
            plugin: format!("<{}>", &hash[..12]),
            connection: String::new(),
        };
        let raw = self
            .runtime
            .read_manifest(&pre, &label)
            .await
            .map_err(|e| LoadError(format!("manifest() failed: {e}")))?;
        let mut manifest = Manifest::try_from(raw).map_err(LoadError)?;
        manifest.wit_version = pre.wit_version().to_string();
        let validator = jsonschema::validator_for(&manifest.config_schema).map_err(|e| {
            LoadError(format!(
                "plugin {}: config schema is not a valid JSON Schema: {e}",
                manifest.name
            ))
        })?;
        tracing::debug!(plugin = %manifest.name, hash = %&hash[..12], from_cache, elapsed_ms = clock.elapsed().as_millis() as u64, "plugin prepared");
        Ok(Arc::new(Plugin {
            manifest,
            hash,
            origin,
            loaded_at: now_ms(),
            from_cache,
            pre,
            validator,
        }))
    }

    /// Loads the connectors compiled into the binary.
    pub async fn load_shipped(&self) -> anyhow::Result<()> {
        for (file, bytes) in crate::shipped::COMPONENTS {
            let plugin = self
                .prepare(bytes.to_vec(), Origin::Shipped)
                .await
                .map_err(|e| anyhow::anyhow!("shipped connector {file} is broken: {e}"))?;
            self.install(plugin).await;
        }
        Ok(())
    }

    /// Loads every plugin file of `dir` once (a refused file is logged and
    /// listed, not fatal); [`super::watch`] takes over from there.
    pub async fn load_dir(&self, dir: &Path) -> anyhow::Result<()> {
        if !dir.exists() {
            std::fs::create_dir_all(dir)?;
        }
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| super::watch::is_plugin_file(p))
            .collect();
        paths.sort();
        for path in paths {
            self.load_file(&path).await;
        }
        Ok(())
    }

    /// Loads one file, recording a failure instead of returning it.
    pub async fn load_file(&self, path: &Path) {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => return self.record_failure(path, None, &format!("cannot read: {e}")),
        };
        let hash = content_hash(&bytes);
        match self.prepare(bytes, Origin::File(path.to_path_buf())).await {
            Ok(plugin) => self.install(plugin).await,
            Err(e) => self.record_failure(path, Some(hash), &e.0),
        }
    }
}

/// Says what kind of wrong file it is, which wasmtime's message leaves implicit.
fn describe_compile_error(bytes: &[u8], err: &anyhow::Error) -> String {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return "not a WebAssembly file (bad magic number)".into();
    }
    if bytes[4..8] == [1, 0, 0, 0] {
        return "a core WebAssembly module, not a component: build it for wasm32-wasip2 (or wrap it with `wasm-tools component new`)".into();
    }
    format!("invalid component: {err:#}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_files_are_named_for_what_they_are() {
        let err = anyhow::anyhow!("unexpected end-of-file");
        assert!(describe_compile_error(b"hello world", &err).contains("not a WebAssembly file"));
        assert!(
            describe_compile_error(b"\0asm\x01\0\0\0", &err).contains("core WebAssembly module")
        );
        let truncated = describe_compile_error(b"\0asm\x0d\0\x01\0\x01", &err);
        assert!(
            truncated.starts_with("invalid component: unexpected end-of-file"),
            "{truncated}"
        );
    }

    #[test]
    fn content_hash_is_hex_sha256() {
        assert_eq!(
            content_hash(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
