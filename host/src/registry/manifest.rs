//! A plugin's manifest in host terms: the WIT record checked and turned into
//! plain data (the schema parsed), stored and shown as JSON.

use serde::{Deserialize, Serialize};

use crate::runtime::types;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Task {
    pub name: String,
    pub description: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub description: String,
    pub subscriptions: Vec<String>,
    pub config_schema: serde_json::Value,
    pub default_allowed_hosts: Vec<String>,
    pub tasks: Vec<Task>,
    /// Pending events of one key collapse into one run (the latest).
    #[serde(default)]
    pub coalesce: bool,
    /// The connector's own ordering rules, tried before the host's.
    #[serde(default)]
    pub ordering_keys: Vec<crate::routing::OrderingRule>,
    /// The `recoco:connector` version the component was built against (set by
    /// the loader; manifests stored before versions existed are 0.1.0).
    #[serde(default = "first_wit_version")]
    pub wit_version: String,
    /// Who wrote it, where to read about it, its license (since 0.2.0).
    #[serde(default)]
    pub authors: Vec<String>,
    #[serde(default)]
    pub homepage: Option<String>,
    #[serde(default)]
    pub license: Option<String>,
}

fn first_wit_version() -> String {
    "0.1.0".into()
}

impl TryFrom<types::PluginManifest> for Manifest {
    type Error = String;

    fn try_from(m: types::PluginManifest) -> Result<Self, String> {
        validate_fields(&m)?;
        let valid_name = !m.name.is_empty()
            && m.name.len() <= 64
            && m.name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !valid_name {
            return Err(format!(
                "manifest name {:?} must be 1-64 lowercase letters, digits, - or _",
                m.name
            ));
        }
        let config_schema: serde_json::Value = serde_json::from_str(&m.config_schema)
            .map_err(|e| format!("plugin {}: config schema is not JSON: {e}", m.name))?;
        if !config_schema.is_object() {
            return Err(format!(
                "plugin {}: config schema must be a JSON object",
                m.name
            ));
        }
        for host in &m.default_allowed_hosts {
            if !host.starts_with("config:") {
                crate::outbound::allow::HostPattern::parse(host)
                    .map_err(|e| format!("plugin {}: {e}", m.name))?;
            }
        }
        let mut ordering_keys = Vec::new();
        for rule in m.ordering_keys {
            if !rule.pointer.is_empty() && !rule.pointer.starts_with('/') {
                return Err(format!(
                    "plugin {}: ordering key pointer {:?} must be a JSON pointer (`/object/id`)",
                    m.name, rule.pointer
                ));
            }
            ordering_keys.push(crate::routing::OrderingRule {
                events: rule.events,
                pointer: rule.pointer,
            });
        }
        Ok(Self {
            wit_version: first_wit_version(),
            authors: m.authors,
            homepage: m.homepage.filter(|h| !h.is_empty()),
            license: m.license.filter(|l| !l.is_empty()),
            coalesce: m.coalesce,
            ordering_keys,
            name: m.name,
            version: m.version,
            description: m.description,
            subscriptions: m.subscriptions,
            config_schema,
            default_allowed_hosts: m.default_allowed_hosts,
            tasks: m
                .tasks
                .into_iter()
                .map(|t| Task {
                    name: t.name,
                    description: t.description,
                })
                .collect(),
        })
    }
}

/// Bounds on what a connector declares about itself: operators see these values
/// (admin page, CLI, logs), so they are short, printable, and task names are
/// kebab-case (they also appear in URLs).
fn validate_fields(m: &types::PluginManifest) -> Result<(), String> {
    const MAX_TASKS: usize = 64;
    const MAX_SUBSCRIPTIONS: usize = 128;
    const MAX_HOSTS: usize = 64;
    const MAX_SCHEMA_BYTES: usize = 256 * 1024;
    /// A value quoted in an error, cut so a huge one cannot flood the log.
    fn shown(v: &str) -> String {
        let cut: String = v.chars().take(80).collect();
        if cut.len() < v.len() {
            format!("{cut:?}…")
        } else {
            format!("{cut:?}")
        }
    }
    fn text(what: &str, v: &str, max: usize, multiline: bool) -> Result<(), String> {
        if v.chars().count() > max {
            return Err(format!("{what} is longer than {max} characters"));
        }
        if v.chars()
            .any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\t')))
        {
            return Err(format!("{what} {} contains control characters", shown(v)));
        }
        Ok(())
    }
    let plugin = shown(&m.name);
    text(&format!("plugin {plugin}: version"), &m.version, 64, false)?;
    if m.version.is_empty() {
        return Err(format!("plugin {plugin}: version is empty"));
    }
    text(
        &format!("plugin {plugin}: description"),
        &m.description,
        2000,
        true,
    )?;
    if m.subscriptions.len() > MAX_SUBSCRIPTIONS {
        return Err(format!(
            "plugin {plugin}: more than {MAX_SUBSCRIPTIONS} subscriptions"
        ));
    }
    for sub in &m.subscriptions {
        let ok = !sub.is_empty()
            && sub.len() <= 128
            && sub
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | '*' | '-' | '_'));
        if !ok {
            return Err(format!(
                "plugin {plugin}: subscription {} must be 1-128 letters, digits or . / * - _",
                shown(sub)
            ));
        }
    }
    if m.config_schema.len() > MAX_SCHEMA_BYTES {
        return Err(format!(
            "plugin {plugin}: config schema is larger than {MAX_SCHEMA_BYTES} bytes"
        ));
    }
    if m.default_allowed_hosts.len() > MAX_HOSTS {
        return Err(format!(
            "plugin {plugin}: more than {MAX_HOSTS} default allowed hosts"
        ));
    }
    for host in &m.default_allowed_hosts {
        text(&format!("plugin {plugin}: allowed host"), host, 300, false)?;
    }
    const MAX_AUTHORS: usize = 32;
    if m.authors.len() > MAX_AUTHORS {
        return Err(format!("plugin {plugin}: more than {MAX_AUTHORS} authors"));
    }
    for author in &m.authors {
        text(&format!("plugin {plugin}: author"), author, 200, false)?;
    }
    if let Some(homepage) = &m.homepage {
        text(&format!("plugin {plugin}: homepage"), homepage, 500, false)?;
        let web = url::Url::parse(homepage)
            .map(|u| matches!(u.scheme(), "http" | "https"))
            .unwrap_or(false);
        if !homepage.is_empty() && !web {
            return Err(format!(
                "plugin {plugin}: homepage {} must be an http(s) URL",
                shown(homepage)
            ));
        }
    }
    if let Some(license) = &m.license {
        text(&format!("plugin {plugin}: license"), license, 200, false)?;
    }
    if m.tasks.len() > MAX_TASKS {
        return Err(format!("plugin {plugin}: more than {MAX_TASKS} tasks"));
    }
    let mut seen = std::collections::HashSet::new();
    for task in &m.tasks {
        if !is_kebab_case(&task.name) || task.name.len() > 64 {
            return Err(format!(
                "plugin {plugin}: task name {} must be kebab-case (lowercase letters and digits in words joined by '-'), at most 64 characters",
                shown(&task.name)
            ));
        }
        if !seen.insert(task.name.as_str()) {
            return Err(format!(
                "plugin {plugin}: task {:?} is declared twice",
                task.name
            ));
        }
        text(
            &format!("plugin {plugin}: description of task {:?}", task.name),
            &task.description,
            1000,
            true,
        )?;
    }
    Ok(())
}

/// `sync-all`, `setup`, `v2-import`: not `Sync`, `a--b`, `-a`, `a_b`.
fn is_kebab_case(name: &str) -> bool {
    !name.is_empty()
        && name.split('-').all(|word| {
            !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

#[cfg(test)]
mod validation_tests {
    use super::*;

    fn manifest(tasks: &[(&str, &str)]) -> types::PluginManifest {
        types::PluginManifest {
            name: "p".into(),
            version: "1.0.0".into(),
            description: "A plugin.".into(),
            subscriptions: vec![
                "projects.Project".into(),
                "tasks.Task/update".into(),
                "*".into(),
            ],
            config_schema: "{}".into(),
            default_allowed_hosts: vec![],
            tasks: tasks
                .iter()
                .map(|(n, d)| types::TaskInfo {
                    name: n.to_string(),
                    description: d.to_string(),
                })
                .collect(),
            coalesce: false,
            ordering_keys: vec![],
            authors: vec![],
            homepage: None,
            license: None,
        }
    }

    #[test]
    fn task_names_are_kebab_case_and_fields_bounded() {
        assert!(
            Manifest::try_from(manifest(&[("sync-all", "All.\nOf them."), ("v2", "")])).is_ok()
        );
        for bad in [
            "x\"><img src=x onerror=alert(1)>",
            "Sync",
            "a--b",
            "-a",
            "a_b",
            "",
            &"a".repeat(65),
        ] {
            let err = Manifest::try_from(manifest(&[(bad, "")])).unwrap_err();
            assert!(err.contains("kebab-case"), "{bad}: {err}");
        }
        let err = Manifest::try_from(manifest(&[("a", &"d".repeat(1001))])).unwrap_err();
        assert!(err.contains("longer than 1000"), "{err}");
        let err = Manifest::try_from(manifest(&[("a", ""), ("a", "")])).unwrap_err();
        assert!(err.contains("declared twice"), "{err}");
        let mut m = manifest(&[]);
        m.description = "x".repeat(2001);
        assert!(Manifest::try_from(m).unwrap_err().contains("description"));
        let mut m = manifest(&[]);
        m.version = "1\u{1b}[31m".into();
        assert!(Manifest::try_from(m)
            .unwrap_err()
            .contains("control characters"));
        let mut m = manifest(&[]);
        m.subscriptions = vec!["<script>".into()];
        assert!(Manifest::try_from(m).unwrap_err().contains("subscription"));
        let mut m = manifest(&[]);
        m.tasks = (0..65)
            .map(|i| types::TaskInfo {
                name: format!("t{i}"),
                description: String::new(),
            })
            .collect();
        assert!(Manifest::try_from(m)
            .unwrap_err()
            .contains("more than 64 tasks"));
    }

    #[test]
    fn authors_homepage_and_license_are_bounded_and_the_homepage_is_a_web_url() {
        let mut m = manifest(&[]);
        m.authors = vec!["A <a@example.org>".into()];
        m.homepage = Some("https://example.org/c".into());
        m.license = Some("MIT OR Apache-2.0".into());
        let ok = Manifest::try_from(m).unwrap();
        assert_eq!(ok.homepage.as_deref(), Some("https://example.org/c"));
        let mut m = manifest(&[]);
        m.homepage = Some("javascript:alert(1)".into());
        let err = Manifest::try_from(m).unwrap_err();
        assert!(err.contains("must be an http(s) URL"), "{err}");
        let mut m = manifest(&[]);
        m.authors = vec!["x\u{7}".into()];
        assert!(Manifest::try_from(m)
            .unwrap_err()
            .contains("control characters"));
        let mut m = manifest(&[]);
        m.license = Some(String::new());
        assert_eq!(
            Manifest::try_from(m).unwrap().license,
            None,
            "empty means none"
        );
    }
}
