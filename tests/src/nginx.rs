//! Debian's `nginx-light` as a fast webhook target for the benchmarks.

use std::path::Path;
use std::time::Duration;

/// nginx answering 200 to everything, on a free port; killed on drop.
pub struct Nginx {
    child: std::process::Child,
    conf: std::path::PathBuf,
    prefix: std::path::PathBuf,
    pub url: String,
}

impl Nginx {
    /// None when `/usr/sbin/nginx` is not installed or does not start.
    pub fn start(dir: &Path) -> Option<Self> {
        let binary = Path::new("/usr/sbin/nginx");
        if !binary.exists() {
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let prefix = dir.join("nginx");
        std::fs::create_dir_all(prefix.join("logs")).unwrap();
        let conf = prefix.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "worker_processes 1;\ndaemon off;\npid {p}/nginx.pid;\nerror_log {p}/logs/error.log;\n\
                 events {{ worker_connections 4096; }}\n\
                 http {{ access_log off; client_body_temp_path {p}/body; client_body_buffer_size 64k; keepalive_requests 1000000;\n\
                   server {{ listen 127.0.0.1:{port}; tcp_nodelay on; location / {{ return 200 \"ok\"; }} }} }}\n",
                p = prefix.display()
            ),
        )
        .unwrap();
        let child = std::process::Command::new(binary)
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        // Wait until it accepts connections (bounded).
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(Self {
                    child,
                    conf,
                    prefix,
                    url: format!("http://127.0.0.1:{port}/hook"),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Nginx {
    /// `nginx -s stop` lets the master stop its worker (a killed master
    /// would leave it behind); kill only if that fails.
    fn drop(&mut self) {
        let stopped = std::process::Command::new("/usr/sbin/nginx")
            .arg("-p")
            .arg(&self.prefix)
            .arg("-c")
            .arg(&self.conf)
            .args(["-s", "stop"])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !stopped {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
