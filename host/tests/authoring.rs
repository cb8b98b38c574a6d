//! Connectors written outside this repository, one per language, as their
//! authors write them:
//! 1. `plugin new NAME --lang L --dir DIR` scaffolds the project (Rust with
//!    `--sdk-path`, the SDK not being on crates.io here);
//! 2. the language's own tools build it (cargo through `make`, componentize-py,
//!    npm with esbuild and componentize-js);
//! 3. `plugin test DIR` passes on the scaffold's own scenario, `plugin check`
//!    accepts the component;
//! 4. a running service loads it from its plugins directory and turns a signed
//!    webhook into a request whose `x-recoco-signature` the fake target verifies;
//! 5. broken (the signature header misspelt in the source) and rebuilt, the
//!    same scenario fails, and `plugin test GOOD.wasm --scenario` passes again.
//!
//! The Python and JavaScript toolchains are the ones `.ci/run` installs
//! (tests/toolchains). Without them the test fails under `CI`, and elsewhere
//! says what is missing and stops.

mod cli_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cli_support::*;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// One build at a time: the machine has two cores.
static BUILDS: Mutex<()> = Mutex::new(());

const SOURCE_SECRET: &str = "portal-hook-secret-0001";
const CONNECTION_SECRET: &str = "0123456789abcdef-connection";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The build command of each scaffold, as its README gives it.
fn build_command(lang: &str, project: &Path, name: &str) -> Command {
    let mut cmd = match lang {
        "rust" => {
            let mut cmd = Command::new("make");
            cmd.env("CARGO_TARGET_DIR", repo().join("target/authoring"));
            cmd
        }
        "python" => {
            let mut cmd = Command::new("componentize-py");
            cmd.args(["-d", "wit", "-w", "connector", "componentize", "app", "-o"])
                .arg(format!("{name}.wasm"));
            cmd
        }
        "js" => {
            let mut cmd = Command::new("sh");
            cmd.args([
                "-c",
                "npm install --prefer-offline --no-audit --no-fund && npm run build",
            ]);
            cmd
        }
        other => panic!("no language {other}"),
    };
    recoco_plugin_builder::clean_cargo_env(&mut cmd);
    cmd.current_dir(project);
    cmd
}

/// Whether the language's toolchain is installed; `None` when it is and the
/// test goes on.
fn missing_toolchain(lang: &str) -> Option<&'static str> {
    let probe = match lang {
        "rust" => Command::new("make").arg("--version").output(),
        "python" => Command::new("componentize-py").arg("--version").output(),
        "js" => Command::new("npm").arg("--version").output(),
        _ => unreachable!(),
    };
    match probe {
        Ok(out) if out.status.success() => None,
        _ => Some(match lang {
            "rust" => "make",
            "python" => "componentize-py (pip install -r tests/toolchains/requirements.txt)",
            _ => "npm",
        }),
    }
}

fn build(lang: &str, project: &Path, name: &str) -> Duration {
    let _one = BUILDS.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let out = build_command(lang, project, name)
        .output()
        .expect("the build command runs");
    assert!(
        out.status.success(),
        "{lang} build failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed()
}

/// Misspells the signature header in the connector's own source files.
fn break_signature(project: &Path) {
    let mut broken = 0;
    let mut stack = vec![project.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if !["tests", "wit", "node_modules", "target", "dist", ".git"]
                    .contains(&name.as_str())
                {
                    stack.push(path);
                }
                continue;
            }
            if !(name.ends_with(".rs") || name.ends_with(".py") || name.ends_with(".js")) {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            if text.contains("x-recoco-signature") {
                std::fs::write(
                    &path,
                    text.replace("x-recoco-signature", "x-recoco-signatur"),
                )
                .unwrap();
                broken += 1;
            }
        }
    }
    assert!(
        broken > 0,
        "no source file of {} names the header",
        project.display()
    );
}

fn signature_of(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(CONNECTION_SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn scaffold_builds_tests_loads_and_delivers(lang: &str) {
    if let Some(missing) = missing_toolchain(lang) {
        assert!(
            std::env::var_os("CI").is_none(),
            "the {lang} toolchain is missing under CI: {missing}"
        );
        eprintln!("not run: the {lang} toolchain is missing ({missing})");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let name = format!("forward-{lang}");
    let project = cwd.join("projects").join(&name);
    let sdk = repo().join("plugins/sdk");
    let created = ok(
        cwd,
        &[],
        &[
            "plugin",
            "new",
            &name,
            "--lang",
            lang,
            "--dir",
            project.to_str().unwrap(),
            "--sdk-path",
            sdk.to_str().unwrap(),
        ],
    );
    assert!(created.contains(&format!("created {name} in")), "{created}");
    let wit = std::fs::read_to_string(project.join("wit/connector.wit")).unwrap();
    assert!(wit.contains("package recoco:connector@0.2.0;"));
    assert!(project.join("README.md").is_file());
    assert!(project.join("tests/scenario.toml").is_file());
    if lang == "rust" {
        let manifest = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
        assert!(
            manifest.contains(&format!(
                "recoco-connector-sdk = {{ path = {:?} }}",
                sdk.canonicalize().unwrap().display().to_string()
            )),
            "{manifest}"
        );
    }

    let took = build(lang, &project, &name);
    let wasm = project.join(format!("{name}.wasm"));
    let size = std::fs::metadata(&wasm).unwrap().len();
    eprintln!(
        "{lang}: built {} ({size} bytes) in {:.1} s",
        wasm.display(),
        took.as_secs_f64()
    );

    let tested = ok(cwd, &[], &["plugin", "test", project.to_str().unwrap()]);
    assert!(tested.contains("steps passed"), "{tested}");
    assert!(!tested.contains("FAIL"), "{tested}");
    let report = ok(
        cwd,
        &[],
        &["-o", "json", "plugin", "test", project.to_str().unwrap()],
    );
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    let steps = report[0]["steps"].as_array().unwrap();
    assert!(
        !steps.is_empty() && steps.iter().all(|s| s["passed"] == true),
        "{report}"
    );
    assert_eq!(report[0]["wit_version"], "0.2.0");
    let checked = ok(
        cwd,
        &[],
        &["-o", "json", "plugin", "check", wasm.to_str().unwrap()],
    );
    let checked: serde_json::Value = serde_json::from_str(&checked).unwrap();
    assert_eq!(checked["name"], name.as_str());
    assert_eq!(checked["wit_version"], "0.2.0");
    assert_eq!(
        checked["subscriptions"],
        serde_json::json!(["projects.Project", "taggit.TaggedItem"])
    );

    // Deployed: dropped in the plugins directory of a running service.
    let (target, received) =
        fake_server_whole(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    std::fs::create_dir_all(cwd.join("plugins")).unwrap();
    std::fs::copy(&wasm, cwd.join("plugins").join(format!("{name}.wasm"))).unwrap();
    std::fs::write(
        cwd.join("rs.toml"),
        format!(
            "plugins_dir = \"plugins\"\n\
             [[sources]]\ncode = \"portal\"\nsecrets = [\"{SOURCE_SECRET}\"]\n\
             [[connections]]\nname = \"sheet\"\nsource = \"portal\"\nplugin = \"{name}\"\n\
             [connections.config]\nurl = \"http://{target}/rows\"\nsecret = \"{CONNECTION_SECRET}\"\n"
        ),
    )
    .unwrap();
    let env = [("RECOCO_SYNC_CONFIG", "rs.toml")];
    ok(cwd, &env, &["migrate", "--create"]);
    let served = Served::start(cwd, &env, &[]);
    let body_file = cwd.join("webhook.json");
    std::fs::write(
        &body_file,
        include_str!("../../../shared/fixtures/webhook-project-update.json"),
    )
    .unwrap();
    let url = format!("http://{}", served.addr);
    ok(
        cwd,
        &env,
        &[
            "--url",
            &url,
            "send",
            "--source",
            "portal",
            "--secret",
            SOURCE_SECRET,
            body_file.to_str().unwrap(),
        ],
    );
    let request = eventually("the signed request at the target", || {
        received.lock().unwrap().first().cloned()
    });
    let (head, body) = request.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("POST /rows HTTP/1.1"), "{head}");
    let signature = head
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(n, _)| n.eq_ignore_ascii_case("x-recoco-signature"))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| panic!("no signature in {head}"));
    assert_eq!(signature, signature_of(body.as_bytes()), "{head}");
    let sent: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(sent["topic"], "projects.Project/update");
    assert!(
        sent["event"].as_str().unwrap().starts_with("evt_"),
        "{sent}"
    );
    assert_eq!(sent["object"]["id"], 1312, "{sent}");
    drop(served);

    // Broken, rebuilt: the scaffold's scenario catches it.
    let good = cwd.join("good.wasm");
    std::fs::copy(&wasm, &good).unwrap();
    break_signature(&project);
    build(lang, &project, &name);
    let (stdout, _) = exits(cwd, &[], &["plugin", "test", project.to_str().unwrap()], 1);
    assert!(stdout.contains("FAIL"), "{stdout}");
    assert!(
        stdout.contains("header x-recoco-signature is missing"),
        "{stdout}"
    );
    let scenario = project.join("tests/scenario.toml");
    let again = ok(
        cwd,
        &[],
        &[
            "plugin",
            "test",
            good.to_str().unwrap(),
            "--scenario",
            scenario.to_str().unwrap(),
        ],
    );
    assert!(!again.contains("FAIL"), "{again}");
}

#[test]
fn a_rust_connector_from_the_scaffold() {
    scaffold_builds_tests_loads_and_delivers("rust");
}

#[test]
fn a_python_connector_from_the_scaffold() {
    scaffold_builds_tests_loads_and_delivers("python");
}

#[test]
fn a_javascript_connector_from_the_scaffold() {
    scaffold_builds_tests_loads_and_delivers("js");
}

#[test]
fn plugin_new_refuses_bad_names_and_non_empty_directories() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let err = fails(cwd, &[], &["plugin", "new", "Bad_Name"]);
    assert!(err.contains("must be 2-64 lowercase letters"), "{err}");
    std::fs::create_dir_all(cwd.join("taken")).unwrap();
    std::fs::write(cwd.join("taken/file"), "x").unwrap();
    let err = fails(cwd, &[], &["plugin", "new", "taken", "--lang", "python"]);
    assert!(err.contains("already exists and is not empty"), "{err}");
    let err = fails(
        cwd,
        &[],
        &["plugin", "new", "fresh", "--sdk-path", "/nowhere"],
    );
    assert!(err.contains("no SDK at /nowhere"), "{err}");
    // The default directory is ./NAME; the default language Rust, on the
    // crates.io SDK.
    ok(cwd, &[], &["plugin", "new", "fresh"]);
    let manifest = std::fs::read_to_string(cwd.join("fresh/Cargo.toml")).unwrap();
    assert!(
        manifest.contains("recoco-connector-sdk = \"0.2\""),
        "{manifest}"
    );
    assert!(!manifest.contains("{{"), "placeholders left: {manifest}");
}
