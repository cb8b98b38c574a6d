//! The same connector in Rust, Python and JavaScript: the scaffold of
//! `recoco-sync plugin new` (a signed forward of each event), built with each
//! language's tools and run by the `plugin test` kit. Per language: component
//! size, build time (cold: a fresh project; warm: after touching the source),
//! native compile time (Cranelift), instantiate time (a fresh instance and its
//! manifest), and per-event invocation time (instantiate, handle the event,
//! one faked HTTP exchange), each also as a ratio to Rust measured in the same
//! run. A language whose toolchain is missing is reported as not measured.
//!
//! Run: `cargo bench -p recoco-sync-tests --bench languages` (needs `make`,
//! `componentize-py` and `npm`: `pip install -r tests/toolchains/requirements.txt`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use recoco_sync::config::RuntimeConfig;
use recoco_sync::scaffold::{self, Lang, NewConnector};
use recoco_sync::testkit::Kit;

const EVENTS: usize = 300;

struct Figures {
    lang: &'static str,
    size: u64,
    cold_build: Duration,
    warm_build: Duration,
    compile_ms: f64,
    instantiate_us: u64,
    event_p50_us: u64,
    event_p90_us: u64,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn build(lang: Lang, project: &Path, name: &str, target_dir: &Path) -> Result<Duration, String> {
    let line = lang.build_command(name);
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        &line.replace(
            "npm install",
            "npm install --prefer-offline --no-audit --no-fund",
        ),
    ]);
    recoco_plugin_builder::clean_cargo_env(&mut cmd);
    cmd.env("CARGO_TARGET_DIR", target_dir).current_dir(project);
    let started = Instant::now();
    let out = cmd.output().map_err(|e| format!("{line}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{line} failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ));
    }
    Ok(started.elapsed())
}

/// The scaffold's own scenario with its step repeated `EVENTS` times.
fn bench_scenario(project: &Path) -> PathBuf {
    let text = std::fs::read_to_string(project.join("tests/scenario.toml")).unwrap();
    let at = text.find("[[steps]]").expect("a step");
    let (head, step) = text.split_at(at);
    let path = project.join("tests/bench.toml");
    std::fs::write(&path, format!("{head}{}", step.repeat(EVENTS))).unwrap();
    path
}

fn touch_source(project: &Path) {
    for file in ["src/lib.rs", "app.py", "src/index.js"] {
        let path = project.join(file);
        if let Ok(text) = std::fs::read_to_string(&path) {
            std::fs::write(&path, format!("{text}\n")).unwrap();
        }
    }
}

async fn measure(lang: Lang, word: &'static str, root: &Path) -> Result<Figures, String> {
    let name = format!("bench-{word}");
    let project = root.join(&name);
    scaffold::create(&NewConnector {
        name: &name,
        lang,
        dir: Some(&project),
        sdk_path: Some(&repo().join("plugins/sdk")),
    })
    .map_err(|e| format!("{e:#}"))?;
    let target_dir = root.join("cargo-target");
    let cold_build = build(lang, &project, &name, &target_dir)?;
    touch_source(&project);
    let warm_build = build(lang, &project, &name, &target_dir)?;
    let wasm = project.join(format!("{name}.wasm"));
    let kit = Kit::new(&RuntimeConfig::default()).map_err(|e| format!("{e:#}"))?;
    let report = kit
        .run(&bench_scenario(&project), Some(&wasm))
        .await
        .map_err(|e| format!("{e:#}"))?;
    if let Some(bad) = report.steps.iter().find(|s| !s.passed) {
        return Err(format!("the scenario failed: {:?}", bad.problems));
    }
    let mut times: Vec<u64> = report.steps.iter().map(|s| s.elapsed_us).collect();
    // The first runs warm the caches; keep the steady state.
    let steady = times.split_off(times.len().min(20));
    let mut sorted = steady;
    sorted.sort_unstable();
    Ok(Figures {
        lang: word,
        size: report.size_bytes,
        cold_build,
        warm_build,
        compile_ms: report.compile_ms,
        instantiate_us: report.manifest_us,
        event_p50_us: sorted[sorted.len() / 2],
        event_p90_us: sorted[sorted.len() * 9 / 10],
    })
}

fn ratio(value: f64, base: f64) -> String {
    if base > 0.0 {
        format!("{:.1}x", value / base)
    } else {
        "-".into()
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let root = tempfile::tempdir().unwrap();
    let mut measured = Vec::new();
    for (lang, word) in [
        (Lang::Rust, "rust"),
        (Lang::Python, "python"),
        (Lang::Js, "js"),
    ] {
        match measure(lang, word, root.path()).await {
            Ok(f) => measured.push(f),
            Err(why) => println!("{word}: not measured: {why}"),
        }
    }
    let Some(rust) = measured.iter().find(|f| f.lang == "rust") else {
        println!("no Rust figures: no baseline");
        return;
    };
    let (rs, rc, rw, rk, ri, re) = (
        rust.size as f64,
        rust.cold_build.as_secs_f64(),
        rust.warm_build.as_secs_f64(),
        rust.compile_ms,
        rust.instantiate_us as f64,
        rust.event_p50_us as f64,
    );
    println!(
        "{:<7} {:>12} {:>16} {:>16} {:>16} {:>18} {:>18} {:>10}",
        "lang",
        "size",
        "build cold",
        "build warm",
        "compile",
        "instantiate",
        "event p50",
        "event p90"
    );
    for f in &measured {
        println!(
            "{:<7} {:>7} KB {:>5} {:>9.1} s {:>5} {:>9.1} s {:>5} {:>8.0} ms {:>5} {:>9} µs {:>5} {:>9} µs {:>5} {:>7} µs",
            f.lang,
            f.size / 1024,
            ratio(f.size as f64, rs),
            f.cold_build.as_secs_f64(),
            ratio(f.cold_build.as_secs_f64(), rc),
            f.warm_build.as_secs_f64(),
            ratio(f.warm_build.as_secs_f64(), rw),
            f.compile_ms,
            ratio(f.compile_ms, rk),
            f.instantiate_us,
            ratio(f.instantiate_us as f64, ri),
            f.event_p50_us,
            ratio(f.event_p50_us as f64, re),
            f.event_p90_us,
        );
    }
    println!("(ratios against the Rust scaffold of this run; {EVENTS} events each, the first 20 not counted)");
}
