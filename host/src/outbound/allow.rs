//! Allowed hosts of a connection, parsed once and checked for every request.
//!
//! Entry forms: `api.example.org` (that host, any port), `*.example.org` (its
//! subdomains), `example.org:8443` (that port only), `https://example.org`
//! (that scheme only), `127.0.0.1:8080` / `[::1]` (IP literals) and `*` (any
//! host). A manifest default may also be `config:/pointer`, resolved against the
//! connection's config to the host of the URL found there.

use std::net::IpAddr;

use url::Url;

pub use super::special::is_private;

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    Any,
    Exact(String),
    /// Subdomains of the given domain (`*.example.org` → `example.org`).
    Suffix(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    scheme: Option<String>,
    host: HostMatch,
    port: Option<u16>,
}

/// An allow-list entry that could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("invalid allowed host {entry:?}: {reason}")]
pub struct PatternError {
    pub entry: String,
    pub reason: String,
}

impl HostPattern {
    pub fn parse(entry: &str) -> Result<Self, PatternError> {
        let err = |reason: &str| PatternError {
            entry: entry.to_string(),
            reason: reason.to_string(),
        };
        let trimmed = entry.trim();
        if trimmed.is_empty() {
            return Err(err("empty"));
        }
        if trimmed == "*" {
            return Ok(Self {
                scheme: None,
                host: HostMatch::Any,
                port: None,
            });
        }
        let (scheme, rest) = match trimmed.split_once("://") {
            Some((s, rest)) if s == "http" || s == "https" => (Some(s.to_string()), rest),
            Some(_) => return Err(err("scheme must be http or https")),
            None => (None, trimmed),
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') {
            return Err(err("give a host, not a URL path"));
        }
        // Let the URL parser handle IPv6 brackets, ports and IDNA.
        let probe = Url::parse(&format!("http://{rest}")).map_err(|e| err(&e.to_string()))?;
        let host = probe
            .host_str()
            .ok_or_else(|| err("no host"))?
            .to_ascii_lowercase();
        let port = probe.port().or_else(|| {
            // `http://x:80` loses its port in url; keep what was written.
            rest.rsplit_once(':')
                .and_then(|(_, p)| p.parse().ok())
                .filter(|_| !rest.ends_with(']'))
        });
        let host = if let Some(domain) = host.strip_prefix("*.") {
            HostMatch::Suffix(domain.to_string())
        } else if host.contains('*') {
            return Err(err(
                "a wildcard is only allowed as the first label (*.example.org)",
            ));
        } else {
            HostMatch::Exact(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
            )
        };
        Ok(Self { scheme, host, port })
    }

    fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        if self.scheme.as_deref().is_some_and(|s| s != scheme) {
            return false;
        }
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        match &self.host {
            HostMatch::Any => true,
            HostMatch::Exact(h) => h == host,
            HostMatch::Suffix(domain) => {
                host.len() > domain.len() + 1 && host.ends_with(&format!(".{domain}"))
            }
        }
    }

    /// An entry that names an IP literal grants that address even if private.
    fn names_ip(&self, ip: &IpAddr) -> bool {
        matches!(&self.host, HostMatch::Exact(h) if h.parse::<IpAddr>().ok().as_ref() == Some(ip))
    }
}

/// The parsed allow-list of one connection. Empty means nothing is allowed.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    patterns: Vec<HostPattern>,
}

/// Why a URL may not be requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not in the list; holds the entry that would allow it.
    NotAllowed(String),
    /// Not an http(s) URL with a host.
    Invalid(String),
}

impl AllowList {
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, PatternError> {
        let patterns = entries
            .iter()
            .map(|e| HostPattern::parse(e.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self { patterns })
    }

    /// Checks `url`; on success says whether the host is an IP literal the list
    /// names explicitly (a grant to reach it even when private).
    pub fn check(&self, url: &Url) -> Result<Grant, Refusal> {
        let scheme = url.scheme();
        if scheme != "http" && scheme != "https" {
            return Err(Refusal::Invalid(format!("unsupported scheme {scheme:?}")));
        }
        let host = url
            .host_str()
            .ok_or_else(|| Refusal::Invalid("URL has no host".into()))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = url.port_or_known_default().unwrap_or(443);
        let matched: Vec<&HostPattern> = self
            .patterns
            .iter()
            .filter(|p| p.matches(scheme, &host, port))
            .collect();
        if matched.is_empty() {
            let suggestion = match url.port() {
                Some(p) => format!("{host}:{p}"),
                None => host.clone(),
            };
            return Err(Refusal::NotAllowed(suggestion));
        }
        let ip = host.parse::<IpAddr>().ok();
        Ok(Grant {
            explicit_ip: ip.is_some_and(|ip| matched.iter().any(|p| p.names_ip(&ip))),
            ip,
        })
    }
}

/// What a successful check grants.
#[derive(Debug, Clone, Copy)]
pub struct Grant {
    /// The URL's host when it is an IP literal.
    pub ip: Option<IpAddr>,
    /// The list names that IP itself (not through `*`).
    pub explicit_ip: bool,
}

/// Resolves manifest defaults: `config:/pointer` becomes the host (and port) of
/// the URL found at that place of `config`; other entries pass through. Entries
/// whose pointer leads nowhere are dropped.
pub fn resolve_defaults(defaults: &[String], config: &serde_json::Value) -> Vec<String> {
    defaults
        .iter()
        .filter_map(|entry| match entry.strip_prefix("config:") {
            None => Some(entry.clone()),
            Some(pointer) => {
                let url = Url::parse(config.pointer(pointer)?.as_str()?).ok()?;
                let host = url.host_str()?;
                Some(match url.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host.to_string(),
                })
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(entries: &[&str], url: &str) -> Result<Grant, Refusal> {
        AllowList::parse(entries)
            .unwrap()
            .check(&Url::parse(url).unwrap())
    }

    #[test]
    fn exact_wildcard_port_scheme() {
        assert!(check(&["crm.example.org"], "https://crm.example.org/hooks").is_ok());
        assert!(check(&["crm.example.org"], "http://CRM.example.org:8080/x").is_ok());
        assert_eq!(
            check(&["crm.example.org"], "https://evil.org/").unwrap_err(),
            Refusal::NotAllowed("evil.org".into())
        );
        assert!(check(&["*.example.org"], "https://a.b.example.org/").is_ok());
        assert!(check(&["*.example.org"], "https://example.org/").is_err());
        assert!(check(&["*.example.org"], "https://badexample.org/").is_err());
        assert!(check(&["example.org:8443"], "https://example.org:8443/").is_ok());
        assert!(check(&["example.org:8443"], "https://example.org/").is_err());
        assert!(check(&["https://example.org"], "http://example.org/").is_err());
        assert!(check(&["http://example.org:80"], "http://example.org/").is_ok());
        assert!(check(&["*"], "https://anything.example/").is_ok());
        assert!(check(&[], "https://example.org/").is_err());
        assert!(matches!(
            check(&["*"], "ftp://example.org/"),
            Err(Refusal::Invalid(_))
        ));
    }

    #[test]
    fn ip_literals_are_explicit_grants() {
        let g = check(&["127.0.0.1:9000"], "http://127.0.0.1:9000/x").unwrap();
        assert!(g.explicit_ip);
        let g = check(&["*"], "http://127.0.0.1:9000/x").unwrap();
        assert!(
            !g.explicit_ip,
            "a wildcard does not grant private addresses"
        );
        assert!(
            check(&["[::1]:8080"], "http://[::1]:8080/")
                .unwrap()
                .explicit_ip
        );
        assert_eq!(
            check(&["127.0.0.1:9000"], "http://127.0.0.1:9001/").unwrap_err(),
            Refusal::NotAllowed("127.0.0.1:9001".into())
        );
    }

    #[test]
    fn bad_entries_are_refused() {
        for bad in ["", "ftp://x.org", "x.org/path", "a.*.org"] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn config_pointers_resolve_to_hosts() {
        let config = serde_json::json!({"url": "http://127.0.0.1:4567/hook", "api": {"base": "https://grist.example.org/api"}});
        let out = resolve_defaults(
            &[
                "config:/url".into(),
                "config:/api/base".into(),
                "config:/missing".into(),
                "static.org".into(),
            ],
            &config,
        );
        assert_eq!(
            out,
            vec!["127.0.0.1:4567", "grist.example.org", "static.org"]
        );
    }

    #[test]
    fn private_ranges() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.5.4",
            "169.254.169.254",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_private(&ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111"] {
            assert!(!is_private(&ip.parse().unwrap()), "{ip}");
        }
    }
}
