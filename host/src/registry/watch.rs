//! Watches the plugins directory and keeps the registry in step with it.
//! File-system events (notify) and a periodic rescan, the safety net for
//! missed events and file systems without notifications, feed ONE loader
//! task. It loads, swaps and removes one file at a time, so a load and an
//! unload of the same plugin never race.
//!
//! Installing a file safely: write it under a temporary name in the same
//! directory, then rename it to `<name>.wasm`. A rename within one file system
//! is atomic, so the service sees the old file or the new one, never a part.
//! Only names ending in `.wasm` and not starting with `.` are plugin files, so
//! `.x.wasm`, `x.wasm.tmp` and `x.wasm.part` are ignored. Files copied in place
//! are guarded too: a file is read only once its size, modification time and
//! inode stayed the same for [`SETTLE`], and a file that fails to load but
//! changed meanwhile is not ready yet: it is looked at again, not refused.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::load::content_hash;
use super::{Origin, Registry};

/// How long a file must stay unchanged before it is read. Renames complete at
/// once; this is for copies in place, whose writes come in bursts well under it.
pub const SETTLE: Duration = Duration::from_millis(200);
/// How often the whole directory is compared with what was loaded.
pub const RESCAN_EVERY: Duration = Duration::from_secs(10);

/// Whether `path` names a plugin file (see the module doc).
pub fn is_plugin_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    name.len() > ".wasm".len() && name.ends_with(".wasm") && !name.starts_with('.')
}

/// Starts the loader task for `dir`; it stops when `shutdown` fires.
pub fn spawn(
    registry: Arc<Registry>,
    dir: PathBuf,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let (signals, rx) = mpsc::unbounded_channel();
        // Dropping the watcher stops notifications: it lives as long as the task.
        let _watcher = start_watcher(&dir, signals.clone());
        let mut loader = Loader {
            registry,
            dir,
            pending: HashMap::new(),
            seen: HashMap::new(),
            _signals: signals,
        };
        loader.run(rx, shutdown).await;
    })
}

/// What the notify thread tells the loader.
enum Signal {
    /// These paths changed.
    Paths(Vec<PathBuf>),
    /// Events were lost (queue overflow): look at everything.
    Rescan,
}

fn start_watcher(dir: &Path, signals: mpsc::UnboundedSender<Signal>) -> Option<RecommendedWatcher> {
    let handler = move |result: notify::Result<notify::Event>| match result {
        Ok(event) if event.need_rescan() => {
            let _ = signals.send(Signal::Rescan);
        }
        Ok(event) if is_change(&event.kind) => {
            let _ = signals.send(Signal::Paths(event.paths));
        }
        Ok(_) => {}
        Err(err) => {
            tracing::warn!(error = %err, "plugins directory watch error; rescanning");
            let _ = signals.send(Signal::Rescan);
        }
    };
    let watching = notify::recommended_watcher(handler).and_then(|mut w| {
        w.watch(dir, RecursiveMode::NonRecursive)?;
        Ok(w)
    });
    match watching {
        Ok(watcher) => Some(watcher),
        Err(err) => {
            tracing::warn!(dir = %dir.display(), error = %err, "cannot watch the plugins directory; changes are picked up by the rescan every {RESCAN_EVERY:?}");
            None
        }
    }
}

/// Opening and reading a file are events too (our own reads among them): only
/// changes, and a writer closing its file, matter.
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// What identifies one content of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    /// A rename over the file changes it even when size and time match.
    inode: u64,
}

/// The stamp of `path`, `None` when there is no regular file there.
fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok().filter(|m| m.is_file())?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Stamp {
        len: meta.len(),
        modified: meta.modified().ok(),
        inode,
    })
}

/// A path to look at once it has been quiet for [`SETTLE`].
struct Pending {
    due: Instant,
    /// The file's stamp when this wait started: it must not have changed since.
    stamp: Option<Stamp>,
}

struct Loader {
    registry: Arc<Registry>,
    dir: PathBuf,
    pending: HashMap<PathBuf, Pending>,
    /// Stamp of each file when it was last loaded or refused.
    seen: HashMap<PathBuf, Stamp>,
    /// Keeps the channel open when no watcher could start.
    _signals: mpsc::UnboundedSender<Signal>,
}

impl Loader {
    async fn run(&mut self, mut rx: mpsc::UnboundedReceiver<Signal>, shutdown: CancellationToken) {
        // The first tick is immediate: it catches what changed between the
        // load at start and the watcher's start.
        let mut rescan = tokio::time::interval(RESCAN_EVERY);
        rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let next = self.pending.values().map(|p| p.due).min();
            tokio::select! {
                _ = shutdown.cancelled() => return,
                Some(signal) = rx.recv() => match signal {
                    Signal::Paths(paths) => paths.into_iter().for_each(|p| self.touch(&p)),
                    Signal::Rescan => self.rescan(),
                },
                _ = rescan.tick() => self.rescan(),
                _ = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = self.process_due() => {}
                    }
                }
            }
        }
    }

    /// Something happened to `path`: (re)start its quiet period.
    fn touch(&mut self, path: &Path) {
        // Keyed like the registry's paths: the directory as configured + name.
        let Some(name) = path.file_name() else {
            return;
        };
        let path = self.dir.join(name);
        if is_plugin_file(&path) {
            self.wait(path);
        }
    }

    fn wait(&mut self, path: PathBuf) {
        let stamp = stamp(&path);
        self.pending.insert(
            path,
            Pending {
                due: Instant::now() + SETTLE,
                stamp,
            },
        );
    }

    /// Compares the directory with what was loaded, and queues the differences.
    fn rescan(&mut self) {
        let registered: BTreeSet<PathBuf> = self.registry.file_paths().into_iter().collect();
        let mut paths: BTreeSet<PathBuf> = self.seen.keys().cloned().collect();
        paths.extend(registered.iter().cloned());
        match std::fs::read_dir(&self.dir) {
            Ok(entries) => paths.extend(
                entries
                    .flatten()
                    .map(|e| self.dir.join(e.file_name()))
                    .filter(|p| is_plugin_file(p)),
            ),
            Err(err) => {
                tracing::warn!(dir = %self.dir.display(), error = %err, "cannot list the plugins directory")
            }
        }
        for path in paths {
            if self.pending.contains_key(&path) {
                continue;
            }
            let now = stamp(&path);
            let gone_but_registered = now.is_none() && registered.contains(&path);
            if self.seen.get(&path).copied() != now || gone_but_registered {
                self.wait(path);
            }
        }
    }

    /// Looks at every path whose quiet period is over, one at a time.
    async fn process_due(&mut self) {
        let now = Instant::now();
        let mut due: Vec<PathBuf> = self
            .pending
            .iter()
            .filter(|(_, p)| p.due <= now)
            .map(|(path, _)| path.clone())
            .collect();
        due.sort();
        for path in due {
            if let Some(pending) = self.pending.remove(&path) {
                self.settle(path, pending.stamp).await;
            }
        }
    }

    /// Loads, refuses or removes `path`, unless it is still changing.
    async fn settle(&mut self, path: PathBuf, before: Option<Stamp>) {
        let current = stamp(&path);
        if current != before {
            return self.wait(path);
        }
        let Some(current) = current else {
            self.seen.remove(&path);
            self.registry.remove_file(&path);
            return;
        };
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            // Gone since the stat: the next event or rescan sees it.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return self.wait(path),
            Err(err) => {
                self.registry
                    .record_failure(&path, None, &format!("cannot read: {err}"));
                self.seen.insert(path, current);
                return;
            }
        };
        if stamp(&path) != Some(current) {
            return self.wait(path);
        }
        let hash = content_hash(&bytes);
        if self.registry.file_hash(&path).as_deref() == Some(hash.as_str()) {
            // Same content as last time (a touch, or the first rescan after start).
            self.seen.insert(path, current);
            return;
        }
        match self
            .registry
            .prepare(bytes, Origin::File(path.clone()))
            .await
        {
            Ok(plugin) => {
                self.registry.install(plugin).await;
                self.seen.insert(path, current);
            }
            Err(err) if stamp(&path) != Some(current) => {
                tracing::debug!(path = %path.display(), error = %err, "plugin file changed while loading: not ready yet");
                self.wait(path);
            }
            Err(err) => {
                self.registry.record_failure(&path, Some(hash), &err.0);
                self.seen.insert(path, current);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_complete_wasm_names_are_plugin_files() {
        for name in ["forward.wasm", "a.b.wasm", "x-1.wasm"] {
            assert!(is_plugin_file(Path::new(name)), "{name}");
        }
        for name in [
            ".forward.wasm",
            ".forward.wasm.tmp",
            "forward.wasm.tmp",
            "forward.wasm.part",
            "forward.wasm~",
            "forward.wat",
            ".wasm",
            "README",
        ] {
            assert!(!is_plugin_file(Path::new(name)), "{name}");
        }
        assert!(is_plugin_file(Path::new("/srv/connectors/forward.wasm")));
    }

    #[test]
    fn only_changes_and_finished_writes_are_signals() {
        use notify::event::{CreateKind, ModifyKind, RemoveKind, RenameMode};
        assert!(is_change(&EventKind::Create(CreateKind::File)));
        assert!(is_change(&EventKind::Modify(ModifyKind::Name(
            RenameMode::To
        ))));
        assert!(is_change(&EventKind::Remove(RemoveKind::File)));
        assert!(is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
    }

    #[cfg(unix)]
    #[test]
    fn a_stamp_changes_with_size_time_or_rename() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wasm");
        assert_eq!(stamp(&path), None);
        std::fs::write(&path, b"one").unwrap();
        let first = stamp(&path).unwrap();
        assert_eq!(stamp(&path), Some(first));
        std::fs::write(&path, b"one plus").unwrap();
        assert_ne!(stamp(&path), Some(first));
        // Same size and time, but another file renamed over it.
        let before = stamp(&path).unwrap();
        let other = dir.path().join(".a.wasm.tmp");
        std::fs::write(&other, b"one pluz").unwrap();
        std::fs::File::options()
            .append(true)
            .open(&other)
            .unwrap()
            .set_modified(before.modified.unwrap())
            .unwrap();
        std::fs::rename(&other, &path).unwrap();
        assert_ne!(stamp(&path), Some(before));
        assert_eq!(stamp(dir.path()), None, "a directory is not a plugin file");
    }
}
