//! The admin surface seen from a real non-loopback peer: the test makes a
//! network namespace joined to ours by a veth pair, listens on our end, and
//! connects from a thread that entered the namespace (setns). Needs root and
//! `ip` (iproute2; .ci/run installs it); skipped with a loud message otherwise.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;

use recoco_sync::store::keys::{self, Scope};
use recoco_sync_tests::service::{source_block, TestService};

/// A namespace with one veth end inside it; removed (with the pair) on drop.
struct Netns {
    name: String,
    /// Our end's address (the service listens here) and the namespace's.
    host_ip: Ipv4Addr,
    peer_ip: Ipv4Addr,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    /// None (after saying why, loudly) when this machine cannot make one.
    fn create() -> Option<Self> {
        let why = if unsafe { libc::geteuid() } != 0 {
            Some("not running as root".to_string())
        } else if Command::new("ip").arg("-V").output().is_err() {
            Some("the `ip` command (iproute2) is missing".to_string())
        } else {
            None
        };
        let skip = |why: &str| {
            eprintln!("\n!!!!!! SKIPPED: the non-loopback admin client test needs a network namespace: {why} !!!!!!\n");
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true: the non-loopback admin client test must run ({why})");
            }
        };
        if let Some(why) = why {
            skip(&why);
            return None;
        }
        let id = std::process::id();
        let octet = (id % 200 + 20) as u8;
        let ns = Self {
            name: format!("rs-admin-{id}"),
            host_ip: Ipv4Addr::new(10, 213, octet, 1),
            peer_ip: Ipv4Addr::new(10, 213, octet, 2),
        };
        let (ours, theirs) = (format!("rsa{id}"), format!("rsb{id}"));
        let setup = || -> Result<(), String> {
            ip(&["netns", "add", &ns.name])?;
            ip(&[
                "link", "add", &ours, "type", "veth", "peer", "name", &theirs,
            ])?;
            ip(&["link", "set", &theirs, "netns", &ns.name])?;
            ip(&["addr", "add", &format!("{}/30", ns.host_ip), "dev", &ours])?;
            ip(&["link", "set", &ours, "up"])?;
            ip(&[
                "-n",
                &ns.name,
                "addr",
                "add",
                &format!("{}/30", ns.peer_ip),
                "dev",
                &theirs,
            ])?;
            ip(&["-n", &ns.name, "link", "set", &theirs, "up"])?;
            ip(&["-n", &ns.name, "link", "set", "lo", "up"])
        };
        if let Err(err) = setup() {
            drop(ns);
            ip(&["link", "del", &ours]).ok();
            skip(&format!("cannot make one here: {err}"));
            return None;
        }
        Some(ns)
    }

    /// Sends a raw HTTP/1.1 request to `to` from inside the namespace; returns
    /// the status and the body.
    fn request(&self, to: SocketAddr, request: String) -> (u16, String) {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("namespace file");
            let rc =
                unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            let mut stream = TcpStream::connect_timeout(&to, std::time::Duration::from_secs(5))
                .expect("connect from the namespace");
            stream.write_all(request.as_bytes()).unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).unwrap();
            let status = answer
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let body = answer
                .split_once("\r\n\r\n")
                .map(|(_, b)| b.to_string())
                .unwrap_or_default();
            (status, body)
        })
        .join()
        .expect("client thread")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth pair with it.
        if let Err(err) = ip(&["netns", "del", &self.name]) {
            eprintln!("cannot remove test namespace: {err}");
        }
    }
}

fn get(path: &str, host: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n")
}

// Multi-threaded: the client blocks its thread while the service answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_loopback_client_is_refused_without_a_key_whatever_it_claims() {
    let Some(ns) = Netns::create() else { return };
    let bind = SocketAddr::from((ns.host_ip, 0));
    let dir = tempfile::tempdir().unwrap();
    // trust_forwarded_for is on: it must still not decide who is loopback.
    let svc = TestService::start_on(
        bind,
        dir,
        &format!(
            "[intake]\ntrust_forwarded_for = true\n{}",
            source_block(None)
        ),
        &[],
    )
    .await;
    let addr: SocketAddr = svc.url.strip_prefix("http://").unwrap().parse().unwrap();
    // From our own namespace (the same address, a local peer) versus from the veth peer.
    let loopback_host = format!("127.0.0.1:{}", addr.port());
    for (claim, extra) in [
        ("nothing", String::new()),
        (
            "X-Forwarded-For: 127.0.0.1",
            "X-Forwarded-For: 127.0.0.1\r\n".to_string(),
        ),
        (
            "Forwarded and X-Real-IP",
            "Forwarded: for=127.0.0.1\r\nX-Real-IP: 127.0.0.1\r\n".to_string(),
        ),
    ] {
        let (status, body) = tokio::task::block_in_place(|| {
            ns.request(addr, get("/admin/api/overview", &loopback_host, &extra))
        });
        assert_eq!(
            status, 403,
            "non-loopback peer {} claiming {claim}: {body}",
            ns.peer_ip
        );
        assert!(body.contains("loopback"), "{body}");
    }
    let (status, _) = tokio::task::block_in_place(|| {
        ns.request(addr, format!("POST /admin/api/sources/recoco-test/disable HTTP/1.1\r\nHost: {loopback_host}\r\nX-Forwarded-For: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
    });
    assert_eq!(status, 403);
    let enabled: i64 = recoco_sync::store::sql::query_scalar("SELECT enabled FROM sources")
        .fetch_one(&svc.pool)
        .await
        .unwrap();
    assert_eq!(enabled, 1);
    // With a key, the same peer gets in: keys work from anywhere.
    let key = keys::create(&svc.pool, "remote", Scope::Read)
        .await
        .unwrap();
    let (status, body) = tokio::task::block_in_place(|| {
        ns.request(
            addr,
            get(
                "/admin/api/overview",
                &addr.to_string(),
                &format!("Authorization: Bearer {key}\r\n"),
            ),
        )
    });
    assert_eq!(status, 200, "{body}");
    let (status, _) = tokio::task::block_in_place(|| {
        ns.request(addr, get("/admin/api/overview", &addr.to_string(), ""))
    });
    assert_eq!(status, 401);
    svc.stop().await;
}
