//! Compiled connectors on disk, so that a restart or a swap back to a version
//! seen before skips Cranelift (seconds) for a deserialisation (milliseconds).
//!
//! An entry is named `<component sha256>-<engine key>.cwasm`: the content hash
//! of the component and a hash of everything wasmtime says makes compiled code
//! compatible ([`Engine::precompile_compatibility_hash`]: target, CPU features,
//! compiler flags, wasm features). Wasmtime also checks its own version and
//! settings recorded inside the artefact when deserialising, so an entry made by
//! another wasmtime or for another CPU is a miss, never a crash. Entries are
//! written under a temporary name and renamed, and carry a SHA-256 of their
//! bytes, so a torn or corrupted entry is a miss too. A miss compiles and
//! rewrites the entry; the least recently used entries beyond
//! [`MAX_ENTRIES`] are deleted.
//!
//! Trust: the directory holds native code that the service runs outside the
//! sandbox. It is created private (0700) and must get the same protection as
//! the service binary.

use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::Engine;

/// First bytes of an entry: this format, version 1.
const MAGIC: &[u8; 8] = b"RSCWASM1";
const DIGEST_LEN: usize = 32;
const EXTENSION: &str = "cwasm";
/// Entries kept. The compiled code of a connector is a few MiB, so the
/// directory stays under a few hundred MiB even with many versions.
pub const MAX_ENTRIES: usize = 64;
/// Temporary files older than this were left by a crashed writer.
const STALE_TEMP: Duration = Duration::from_secs(600);

/// The disk cache of one engine configuration.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
    engine_key: String,
}

impl Cache {
    /// Opens (creating it, private) the cache directory `dir` for `engine`.
    pub fn open(dir: &Path, engine: &Engine) -> anyhow::Result<Self> {
        create_private_dir(dir)
            .with_context(|| format!("cannot create the plugin cache {}", dir.display()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            engine_key: engine_key(engine),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of the component whose bytes hash to `hash`.
    pub fn entry_path(&self, hash: &str) -> PathBuf {
        self.dir
            .join(format!("{hash}-{}.{EXTENSION}", self.engine_key))
    }

    /// The compiled component for `bytes` (whose SHA-256 is `hash`): from the
    /// cache when a valid entry exists (`true`), else compiled and stored.
    /// Compilation is CPU-heavy: call this off the async threads.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        hash: &str,
    ) -> anyhow::Result<(Component, bool)> {
        if let Some(component) = self.get(engine, hash) {
            return Ok((component, true));
        }
        let component = Component::from_binary(engine, bytes).map_err(anyhow::Error::from)?;
        if let Err(err) = self.put(hash, &component) {
            tracing::warn!(dir = %self.dir.display(), error = %format!("{err:#}"), "cannot store compiled plugin in the cache");
        }
        Ok((component, false))
    }

    /// The cached component for `hash`, if a valid entry exists.
    pub fn get(&self, engine: &Engine, hash: &str) -> Option<Component> {
        let path = self.entry_path(hash);
        let file = match std::fs::read(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return None,
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "cannot read plugin cache entry; compiling");
                return None;
            }
        };
        let Some(artefact) = unwrap_entry(&file) else {
            tracing::warn!(path = %path.display(), "plugin cache entry is corrupt; compiling again");
            return None;
        };
        // SAFETY: `Component::deserialize` must only see bytes produced by
        // wasmtime's `serialize`/`precompile`. Here they are: they come from
        // this private directory, which only recoco-sync writes (see the module
        // doc on trust); `unwrap_entry` checked them against the SHA-256 written
        // with them, so a torn write or corruption was refused above; and
        // wasmtime guarantees that artefacts of *any* wasmtime version or
        // configuration are either accepted or deterministically refused (its
        // version and settings are checked first). `deserialize` copies the
        // bytes into memory it owns, so later changes to the file cannot alter
        // the loaded code (the reason `deserialize_file`, which maps the file,
        // is not used).
        match unsafe { Component::deserialize(engine, artefact) } {
            Ok(component) => {
                // Recently used entries survive pruning.
                if let Ok(f) = std::fs::File::options().append(true).open(&path) {
                    let _ = f.set_modified(SystemTime::now());
                }
                Some(component)
            }
            Err(err) => {
                tracing::info!(path = %path.display(), error = %format!("{err:#}"), "plugin cache entry is from another wasmtime or CPU; compiling");
                None
            }
        }
    }

    /// Stores the compiled `component` for `hash` (atomically), then prunes.
    pub fn put(&self, hash: &str, component: &Component) -> anyhow::Result<()> {
        let artefact = component.serialize().map_err(anyhow::Error::from)?;
        write_entry(&self.entry_path(hash), &artefact)?;
        self.prune();
        Ok(())
    }

    /// Deletes the least recently used entries beyond [`MAX_ENTRIES`] and
    /// temporary files left by crashed writers.
    fn prune(&self) {
        let Ok(read) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let now = SystemTime::now();
        let mut entries: Vec<(SystemTime, PathBuf)> = Vec::new();
        for entry in read.flatten() {
            let path = entry.path();
            let modified = entry.metadata().and_then(|m| m.modified()).unwrap_or(now);
            match path.extension().and_then(|e| e.to_str()) {
                Some(EXTENSION) => entries.push((modified, path)),
                Some("tmp") if now.duration_since(modified).unwrap_or_default() > STALE_TEMP => {
                    let _ = std::fs::remove_file(&path);
                }
                _ => {}
            }
        }
        if entries.len() <= MAX_ENTRIES {
            return;
        }
        entries.sort();
        let excess = entries.len() - MAX_ENTRIES;
        for (_, path) in entries.into_iter().take(excess) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// A stable digest of the engine's compatibility hash. The standard library's
/// hashers may change between Rust releases; SHA-256 of the hashed data does
/// not, so a rebuilt binary keeps its cache when wasmtime and its settings stay.
pub fn engine_key(engine: &Engine) -> String {
    struct Sha(Sha256);
    impl Hasher for Sha {
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
        fn finish(&self) -> u64 {
            unreachable!("only the digest is read")
        }
    }
    let mut sha = Sha(Sha256::new());
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut sha);
    hex::encode(&sha.0.finalize()[..8])
}

/// The artefact inside an entry, if its digest matches.
fn unwrap_entry(file: &[u8]) -> Option<&[u8]> {
    let rest = file.strip_prefix(MAGIC.as_slice())?;
    if rest.len() < DIGEST_LEN {
        return None;
    }
    let (digest, artefact) = rest.split_at(DIGEST_LEN);
    (Sha256::digest(artefact).as_slice() == digest).then_some(artefact)
}

/// Writes an entry under a unique temporary name in the same directory, then
/// renames it over `path`: readers see the old entry or the new, never a part.
fn write_entry(path: &Path, artefact: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let temp = path.with_extension(format!(
        "{}.{}.tmp",
        std::process::id(),
        rand::random::<u32>()
    ));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(MAGIC)?;
        file.write_all(&Sha256::digest(artefact))?;
        file.write_all(artefact)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(opt: wasmtime::OptLevel) -> Engine {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true).cranelift_opt_level(opt);
        Engine::new(&config).unwrap()
    }

    fn component_bytes() -> &'static [u8] {
        crate::shipped::COMPONENTS[0].1
    }

    #[test]
    fn a_second_load_comes_from_the_cache_and_survives_a_new_process() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(wasmtime::OptLevel::Speed);
        let hash = "a".repeat(64);
        let cache = Cache::open(dir.path(), &engine).unwrap();
        let (_, cached) = cache
            .load_or_compile(&engine, component_bytes(), &hash)
            .unwrap();
        assert!(!cached);
        assert!(cache.entry_path(&hash).exists());
        // Another Cache (as after a restart) with an equal engine finds it.
        let again = Cache::open(dir.path(), &engine).unwrap();
        let (component, cached) = again
            .load_or_compile(&engine, component_bytes(), &hash)
            .unwrap();
        assert!(cached);
        assert!(component.component_type().exports(&engine).count() > 0);
    }

    #[test]
    fn another_engine_configuration_uses_another_entry() {
        let speed = engine(wasmtime::OptLevel::Speed);
        let none = engine(wasmtime::OptLevel::None);
        assert_eq!(
            engine_key(&speed),
            engine_key(&engine(wasmtime::OptLevel::Speed))
        );
        assert_ne!(engine_key(&speed), engine_key(&none));
    }

    #[test]
    fn an_artefact_of_another_cpu_or_wasmtime_version_is_a_miss() {
        let dir = tempfile::tempdir().unwrap();
        let hash = "b".repeat(64);
        let ours = engine(wasmtime::OptLevel::Speed);
        let cache = Cache::open(dir.path(), &ours).unwrap();
        // Code generated under other settings (here: epoch interruption) stands
        // for another CPU: wasmtime checks the CPU features recorded in an
        // artefact the same way. The artefact is put under our own entry name,
        // as a cache directory shared by two machines could have it.
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true).epoch_interruption(true);
        let other_settings = Engine::new(&config).unwrap();
        // Wasmtime records its major version; 47 stands for an older wasmtime.
        let mut config = wasmtime::Config::new();
        config
            .wasm_component_model(true)
            .module_version(wasmtime::ModuleVersionStrategy::Custom("47".into()))
            .unwrap();
        let older_wasmtime = Engine::new(&config).unwrap();
        for (other, why) in [
            (&other_settings, "epoch interruption"),
            (&older_wasmtime, "incompatible version '47'"),
        ] {
            let artefact = Component::from_binary(other, component_bytes())
                .unwrap()
                .serialize()
                .unwrap();
            // SAFETY: the bytes were just produced by `serialize`.
            let refusal = unsafe { Component::deserialize(&ours, &artefact) }.unwrap_err();
            assert!(format!("{refusal:#}").contains(why), "{refusal:#}");
            write_entry(&cache.entry_path(&hash), &artefact).unwrap();
            assert!(cache.get(&ours, &hash).is_none());
            // A miss is repaired: compiled again, and the entry is now ours.
            let (_, cached) = cache
                .load_or_compile(&ours, component_bytes(), &hash)
                .unwrap();
            assert!(!cached);
            assert!(cache.get(&ours, &hash).is_some());
        }
    }

    #[test]
    fn torn_or_corrupted_entries_are_misses() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(wasmtime::OptLevel::Speed);
        let hash = "c".repeat(64);
        let cache = Cache::open(dir.path(), &engine).unwrap();
        cache
            .load_or_compile(&engine, component_bytes(), &hash)
            .unwrap();
        let path = cache.entry_path(&hash);
        let full = std::fs::read(&path).unwrap();
        std::fs::write(&path, &full[..full.len() / 2]).unwrap();
        assert!(cache.get(&engine, &hash).is_none());
        let mut flipped = full.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        std::fs::write(&path, &flipped).unwrap();
        assert!(cache.get(&engine, &hash).is_none());
        std::fs::write(&path, b"RSCWASM1").unwrap();
        assert!(cache.get(&engine, &hash).is_none());
        std::fs::write(&path, &full).unwrap();
        assert!(cache.get(&engine, &hash).is_some());
    }

    #[test]
    fn pruning_keeps_the_most_recently_used_entries() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(wasmtime::OptLevel::Speed);
        let cache = Cache::open(dir.path(), &engine).unwrap();
        let old = SystemTime::now() - Duration::from_secs(3600);
        for i in 0..MAX_ENTRIES + 3 {
            let path = cache.entry_path(&format!("{i:064}"));
            std::fs::write(&path, b"x").unwrap();
            let age = if i < 3 { old } else { SystemTime::now() };
            std::fs::File::options()
                .append(true)
                .open(&path)
                .unwrap()
                .set_modified(age)
                .unwrap();
        }
        let stale_temp = dir.path().join("x.cwasm.1.2.tmp");
        std::fs::write(&stale_temp, b"x").unwrap();
        std::fs::File::options()
            .append(true)
            .open(&stale_temp)
            .unwrap()
            .set_modified(old)
            .unwrap();
        cache.prune();
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(left.len(), MAX_ENTRIES);
        for i in 0..3 {
            assert!(!cache.entry_path(&format!("{i:064}")).exists());
        }
        assert!(!stale_temp.exists());
    }

    #[cfg(unix)]
    #[test]
    fn the_directory_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b");
        Cache::open(&path, &engine(wasmtime::OptLevel::Speed)).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
