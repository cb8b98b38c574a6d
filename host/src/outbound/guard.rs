//! Keeps connectors away from the service they run in, whatever their
//! allow-list says. Two locks:
//! - before each hop, the target is resolved and refused when it is one of the
//!   addresses the service listens on (any local address when it listens on
//!   `0.0.0.0`/`[::]`);
//! - every outbound request carries `Via: 1.1 recoco-sync-<id>` (RFC 9110 loop
//!   detection), and the service answers `508 Loop Detected` to any request
//!   bearing its own id, on every route. This one also holds when the service is
//!   reached through a reverse proxy, another name, or a DNS answer that changes
//!   between our check and the connection.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// What identifies this process's outbound requests and listening sockets.
#[derive(Debug)]
pub struct SelfGuard {
    /// `recoco-sync-<random>`, the pseudonym in our `Via` entries.
    pseudonym: String,
    listen: RwLock<Vec<SocketAddr>>,
}

impl Default for SelfGuard {
    fn default() -> Self {
        Self {
            pseudonym: format!("recoco-sync-{}", uuid::Uuid::new_v4().simple()),
            listen: RwLock::default(),
        }
    }
}

impl SelfGuard {
    /// The `Via` value added to every outbound request.
    pub fn via(&self) -> String {
        format!("1.1 {}", self.pseudonym)
    }

    /// Records an address the service listens on.
    pub fn add_listen_address(&self, addr: SocketAddr) {
        self.listen.write().expect("guard lock").push(addr);
    }

    /// Whether connecting to `target` would reach this service.
    pub fn is_own(&self, target: SocketAddr) -> bool {
        let listen = self.listen.read().expect("guard lock");
        listen.iter().any(|own| {
            own.port() == target.port()
                && (same_ip(own.ip(), target.ip())
                    || (own.ip().is_unspecified() && is_local(target.ip())))
        })
    }

    /// Whether a received request was sent by this process's outbound client.
    pub fn sent_by_us(&self, headers: &axum::http::HeaderMap) -> bool {
        headers
            .get_all(axum::http::header::VIA)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains(&self.pseudonym))
    }
}

/// `127.0.0.1` and `::ffff:127.0.0.1` are the same socket address for a
/// dual-stack listener.
fn same_ip(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

/// An address of this machine: loopback, unspecified (which connects to the
/// local host), or one a socket can be bound to (assigned to an interface).
fn is_local(ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    ip.is_loopback()
        || ip.is_unspecified()
        || std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
}

/// Axum middleware: refuses requests made by this service's own connectors.
pub async fn refuse_own_requests(
    State(guard): State<Arc<SelfGuard>>,
    request: Request,
    next: Next,
) -> Response {
    if guard.sent_by_us(request.headers()) {
        tracing::warn!(path = %request.uri().path(), "refused a request a connector of this service sent to the service itself");
        return (
            StatusCode::LOOP_DETECTED,
            axum::Json(serde_json::json!({
                "error": "a connector may not call the service it runs in"
            })),
        )
            .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_addresses_by_port_and_interface() {
        let guard = SelfGuard::default();
        guard.add_listen_address("127.0.0.1:8000".parse().unwrap());
        assert!(guard.is_own("127.0.0.1:8000".parse().unwrap()));
        assert!(guard.is_own("[::ffff:127.0.0.1]:8000".parse().unwrap()));
        assert!(!guard.is_own("127.0.0.1:8001".parse().unwrap()));
        assert!(!guard.is_own("127.0.0.2:8000".parse().unwrap()));

        let any = SelfGuard::default();
        any.add_listen_address("0.0.0.0:9000".parse().unwrap());
        for local in [
            "127.0.0.1:9000",
            "127.9.9.9:9000",
            "0.0.0.0:9000",
            "[::1]:9000",
        ] {
            assert!(any.is_own(local.parse().unwrap()), "{local}");
        }
        assert!(!any.is_own("93.184.216.34:9000".parse().unwrap()));
        assert!(!any.is_own("127.0.0.1:9001".parse().unwrap()));
    }

    #[test]
    fn recognises_its_own_via_entry_only() {
        let guard = SelfGuard::default();
        let mut headers = axum::http::HeaderMap::new();
        headers.append("via", "1.1 proxy.example".parse().unwrap());
        assert!(!guard.sent_by_us(&headers));
        headers.append("via", guard.via().parse().unwrap());
        assert!(guard.sent_by_us(&headers));
        let other = SelfGuard::default();
        assert!(!other.sent_by_us(&headers));
    }
}
