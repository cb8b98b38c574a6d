//! `test-malicious`: a hostile connector. Each task is one attack on the
//! sandbox; `handle-event` runs the task named by the connection's `attack`, so
//! a test can run every attack at once, one connection per attack, by sending
//! one event. Every attack tries for real; what the host answers is what the
//! test checks (see SECURITY.md for the table).

use std::time::Duration;

use recoco_connector_sdk::http::Request;
use recoco_connector_sdk::{info, schedule, state, Connector, Context, Error, Event, Manifest};
use serde::Deserialize;
use serde_json::json;

/// The attacks, as task names, with what each tries.
const ATTACKS: &[(&str, &str)] = &[
    (
        "leak-on-redirect",
        "send credentials to `url`, which redirects to another origin",
    ),
    (
        "call-the-host",
        "GET the host's own admin API at `admin_url`",
    ),
    (
        "private-name",
        "GET `private_url`, a name resolving to a private address",
    ),
    (
        "cloud-metadata",
        "GET the cloud metadata address 169.254.169.254",
    ),
    ("host-call-loop", "call state::get forever"),
    ("cpu-loop", "spin forever without host calls"),
    ("eat-memory", "allocate without bound"),
    ("deep-recursion", "recurse without bound"),
    ("huge-summary", "return a 20 MB summary"),
    ("huge-error", "fail with a 20 MB error message"),
    ("log-flood", "write 200,000 log lines"),
    ("stdout-flood", "print 200,000 lines on stdout"),
    ("state-flood", "store 100,000 state entries of 10 KB"),
    ("schedule-flood", "schedule 100,000 tasks"),
    ("request-flood", "send requests to `url` without end"),
    (
        "escape-wasi",
        "read files, the environment, open sockets, resolve names",
    ),
    (
        "leak-secret",
        "write the decrypted secret to the summary, log, stdout and stderr",
    ),
    (
        "leak-secret-error",
        "fail with the decrypted secret in the error",
    ),
    (
        "nap",
        "sleep `nap_ms` (an hour by default) without computing",
    ),
];

#[derive(Debug, Deserialize)]
struct Config {
    /// The task `handle-event` runs.
    attack: String,
    /// The attack's target, where it needs one.
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    admin_url: Option<String>,
    #[serde(default)]
    private_url: Option<String>,
    /// How long `nap` sleeps.
    #[serde(default)]
    nap_ms: Option<u64>,
    /// A decrypted secret (`writeOnly`) to leak.
    #[serde(default)]
    secret: Option<String>,
}

fn schema() -> serde_json::Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "attack": {"enum": ATTACKS.iter().map(|(name, _)| *name).collect::<Vec<_>>()},
            "url": {"type": "string"},
            "admin_url": {"type": "string"},
            "private_url": {"type": "string"},
            "nap_ms": {"type": "integer", "minimum": 0},
            "secret": {"type": "string", "writeOnly": true}
        },
        "required": ["attack"],
        "additionalProperties": false
    })
}

fn need<'a>(value: &'a Option<String>, what: &str) -> Result<&'a str, Error> {
    value
        .as_deref()
        .ok_or_else(|| Error::permanent(format!("config needs `{what}`")))
}

/// Never returns while the host lets it run.
fn spin() -> ! {
    let mut spins: u64 = 0;
    loop {
        spins = std::hint::black_box(spins.wrapping_add(1));
    }
}

/// A recursion the optimiser cannot turn into a loop: each frame keeps a buffer.
fn recurse(depth: u64) -> u64 {
    if depth == u64::MAX {
        return 0;
    }
    let buffer = std::hint::black_box([depth as u8; 256]);
    let below = recurse(std::hint::black_box(depth + 1));
    below.wrapping_add(buffer[(depth % 256) as usize] as u64)
}

/// What the WASI environment let through; an empty list is the expected answer.
fn escapes(url: Option<&str>) -> Vec<String> {
    let mut got = Vec::new();
    for path in ["/etc/passwd", "/proc/self/environ", ".", "/"] {
        if std::fs::read_to_string(path).is_ok() || std::fs::read_dir(path).is_ok() {
            got.push(format!("read {path}"));
        }
    }
    if std::fs::write("/tmp/recoco-malicious", b"x").is_ok() {
        got.push("wrote /tmp/recoco-malicious".into());
    }
    if std::env::vars().next().is_some() {
        got.push(format!(
            "environment: {} variables",
            std::env::vars().count()
        ));
    }
    if std::env::current_dir().is_ok_and(|d| d.as_os_str().len() > 1) {
        got.push("a current directory".into());
    }
    if let Some(addr) = url
        .and_then(|u| u.strip_prefix("http://"))
        .and_then(|u| u.split('/').next())
    {
        if std::net::TcpStream::connect(addr).is_ok() {
            got.push(format!("opened a TCP socket to {addr}"));
        }
    }
    if std::net::UdpSocket::bind("0.0.0.0:0").is_ok() {
        got.push("bound a UDP socket".into());
    }
    if std::net::ToSocketAddrs::to_socket_addrs(&("localhost", 80)).is_ok() {
        got.push("resolved a name".into());
    }
    got
}

fn attack(ctx: &Context, name: &str, extra: &serde_json::Value) -> Result<String, Error> {
    let mut config: Config = ctx.config()?;
    if config.admin_url.is_none() {
        config.admin_url = extra["admin_url"].as_str().map(str::to_string);
    }
    match name {
        "leak-on-redirect" => {
            let secret = need(&config.secret, "secret")?;
            let response = Request::get(need(&config.url, "url")?)
                .bearer_auth(secret)
                .header("x-api-key", secret)
                .header("grist-api-key", secret)
                .header("cookie", format!("session={secret}"))
                .sensitive_header("x-session", secret)
                .header("x-harmless", "1")
                .send()?;
            Ok(format!("followed to HTTP {}", response.status))
        }
        "call-the-host" => {
            let response = Request::get(need(&config.admin_url, "admin_url")?).send()?;
            Ok(format!(
                "the host answered HTTP {}: {}",
                response.status,
                response.text()
            ))
        }
        "private-name" | "cloud-metadata" => {
            let url = match name {
                "private-name" => need(&config.private_url, "private_url")?,
                _ => "http://169.254.169.254/latest/meta-data/",
            };
            let response = Request::get(url).send()?;
            Ok(format!("reached {url}: HTTP {}", response.status))
        }
        "host-call-loop" => loop {
            std::hint::black_box(state::get("loop"));
        },
        "cpu-loop" => spin(),
        "eat-memory" => {
            let mut chunks: Vec<Vec<u8>> = Vec::new();
            loop {
                let mut chunk = vec![0u8; 1 << 20];
                for offset in (0..chunk.len()).step_by(64 << 10) {
                    chunk[offset] = 1;
                }
                chunks.push(std::hint::black_box(chunk));
            }
        }
        "deep-recursion" => Ok(format!("depth {}", recurse(0))),
        "huge-summary" => Ok("s".repeat(20 << 20)),
        "huge-error" => Err(Error::permanent("e".repeat(20 << 20))),
        "log-flood" => {
            for i in 0..200_000 {
                info!("flood line {i} {}", "x".repeat(200));
            }
            Ok("logged 200000 lines".into())
        }
        "stdout-flood" => {
            for i in 0..200_000 {
                println!("stdout flood line {i} {}", "x".repeat(200));
            }
            Ok("printed 200000 lines".into())
        }
        "state-flood" => {
            let value = "v".repeat(10_000);
            for i in 0..100_000 {
                state::set(&format!("flood:{i:06}"), &value)?;
            }
            Ok("stored 100000 entries".into())
        }
        "schedule-flood" => {
            for i in 0..100_000 {
                schedule(
                    "leak-secret",
                    &json!({"n": i}).to_string(),
                    Duration::from_secs(3600),
                    None,
                )?;
            }
            Ok("scheduled 100000 tasks".into())
        }
        "request-flood" => {
            let url = need(&config.url, "url")?;
            for i in 0..1_000_000u64 {
                Request::post(url)
                    .json(&json!({"flood": i}))
                    .send()
                    .map_err(|e| e.context(format_args!("request {i}")))?;
            }
            Ok("sent 1000000 requests".into())
        }
        "escape-wasi" => {
            let got = escapes(config.url.as_deref());
            if got.is_empty() {
                Ok("no file, no environment, no socket, no name resolution".into())
            } else {
                Err(Error::permanent(format!(
                    "escaped the sandbox: {}",
                    got.join("; ")
                )))
            }
        }
        "leak-secret" => {
            let secret = need(&config.secret, "secret")?;
            info!("the secret is {secret}");
            println!("stdout: the secret is {secret}");
            eprintln!("stderr: the secret is {secret}");
            Ok(format!("summary: the secret is {secret}"))
        }
        "leak-secret-error" => {
            let secret = need(&config.secret, "secret")?;
            Err(Error::permanent(format!("error: the secret is {secret}")))
        }
        "nap" => {
            let nap = Duration::from_millis(config.nap_ms.unwrap_or(3_600_000));
            std::thread::sleep(nap);
            Ok(format!("slept {} ms", nap.as_millis()))
        }
        other => Err(Error::permanent(format!("unknown attack `{other}`"))),
    }
}

/// The connector.
pub struct Malicious;

impl Connector for Malicious {
    fn manifest() -> Manifest {
        let mut manifest = Manifest::new("test-malicious", env!("CARGO_PKG_VERSION"))
            .description("Test component: attacks the sandbox, one task per attack.")
            .subscribe("*")
            .config_schema(schema());
        for (name, description) in ATTACKS {
            manifest = manifest.task(*name, *description);
        }
        manifest
    }

    /// Attacks on `projects.Project` events (their object may name the
    /// `admin_url`, known only once the host listens); ignores the others.
    fn handle_event(ctx: &Context, event: &Event) -> Result<String, Error> {
        if event.object_type != "projects.Project" {
            return Ok("not an attack event".into());
        }
        let config: Config = ctx.config()?;
        let object: serde_json::Value = event.object()?;
        attack(ctx, &config.attack, &object)
    }

    /// The payload may name the `admin_url` too.
    fn run_task(ctx: &Context, name: &str, payload: &str) -> Result<String, Error> {
        let payload = serde_json::from_str(payload).unwrap_or_default();
        attack(ctx, name, &payload)
    }
}

recoco_connector_sdk::export_connector!(Malicious);
