//! `plugin new NAME --lang rust|python|js`: writes a connector project outside
//! this repository from the templates compiled into the binary
//! (`host/templates/<lang>/`) and the current WIT (`wit/v0.2.0`). Template
//! files ending in `.tmpl` lose the suffix (so the tools of this repository
//! never mistake a template for a crate or a package); `{{name}}`,
//! `{{name_snake}}` and `{{sdk_dependency}}` are substituted.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use include_dir::{include_dir, Dir};

static TEMPLATES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates");
/// The world a new connector is written against: the current version.
const WIT: &str = include_str!("../../wit/v0.2.0/connector.wit");
/// The SDK a Rust scaffold depends on unless told otherwise (crates.io).
const SDK_VERSION: &str = "0.2";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

impl Lang {
    fn dir(self) -> &'static str {
        match self {
            Self::Rust => "rust",
            Self::Python => "python",
            Self::Js => "js",
        }
    }

    /// The one command that builds `<name>.wasm`, as the template's README says.
    pub fn build_command(self, name: &str) -> String {
        match self {
            Self::Rust => "make".into(),
            Self::Python => {
                format!("componentize-py -d wit -w connector componentize app -o {name}.wasm")
            }
            Self::Js => "npm install && npm run build".into(),
        }
    }
}

/// What `plugin new` needs.
pub struct NewConnector<'a> {
    pub name: &'a str,
    pub lang: Lang,
    pub dir: Option<&'a Path>,
    /// A local checkout of the SDK (`plugins/sdk`), else the crates.io version.
    pub sdk_path: Option<&'a Path>,
}

/// Connector names as the host accepts them, usable as a crate, a Python
/// module (with `_`) and an npm package name.
fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = (2..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && !name.contains("--")
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    anyhow::ensure!(
        ok,
        "connector name {name:?} must be 2-64 lowercase letters, digits and single dashes, starting with a letter (e.g. forward-tagged)"
    );
    Ok(())
}

/// Writes the project; returns its directory.
pub fn create(new: &NewConnector) -> anyhow::Result<PathBuf> {
    check_name(new.name)?;
    let target = new
        .dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(new.name));
    if target.exists() && std::fs::read_dir(&target)?.next().is_some() {
        anyhow::bail!("{} already exists and is not empty", target.display());
    }
    let template = TEMPLATES
        .get_dir(new.lang.dir())
        .with_context(|| format!("no {} template in this build", new.lang.dir()))?;
    let sdk_dependency = match new.sdk_path {
        Some(path) => {
            let path = std::fs::canonicalize(path)
                .with_context(|| format!("no SDK at {}", path.display()))?;
            anyhow::ensure!(
                path.join("Cargo.toml").is_file(),
                "{} is not the SDK crate (no Cargo.toml)",
                path.display()
            );
            format!("{{ path = {:?} }}", path.display().to_string())
        }
        None => format!("{SDK_VERSION:?}"),
    };
    let substitute = |text: &str| {
        text.replace("{{name}}", new.name)
            .replace("{{name_snake}}", &new.name.replace('-', "_"))
            .replace("{{sdk_dependency}}", &sdk_dependency)
    };
    let mut files = Vec::new();
    collect(template, &mut files);
    for file in files {
        let relative = file
            .path()
            .strip_prefix(template.path())
            .expect("a file of the template");
        let relative = match relative.to_str().and_then(|p| p.strip_suffix(".tmpl")) {
            Some(stripped) => PathBuf::from(stripped),
            None => relative.to_path_buf(),
        };
        let path = target.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        match file.contents_utf8() {
            Some(text) => std::fs::write(&path, substitute(text)),
            None => std::fs::write(&path, file.contents()),
        }
        .with_context(|| format!("cannot write {}", path.display()))?;
        if path.extension().is_some_and(|e| e == "sh") {
            make_executable(&path)?;
        }
    }
    std::fs::create_dir_all(target.join("wit"))?;
    std::fs::write(target.join("wit/connector.wit"), WIT)?;
    Ok(target)
}

fn collect<'a>(dir: &'a Dir<'a>, out: &mut Vec<&'a include_dir::File<'a>>) {
    out.extend(dir.files());
    for sub in dir.dirs() {
        collect(sub, out);
    }
}

#[cfg(unix)]
fn make_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

#[cfg(not(unix))]
fn make_executable(_: &Path) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["forward-tagged", "ab", "sheet2"] {
            check_name(good).unwrap();
        }
        for bad in ["", "a", "Forward", "2sheets", "a--b", "a-", "a_b", "a b"] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_embedded_wit_is_the_newest_version_the_host_runs() {
        let newest = crate::runtime::bindings::SUPPORTED_VERSIONS[0];
        assert!(
            WIT.contains(&format!("package recoco:connector@{newest};")),
            "new connectors must be written against {newest}"
        );
    }
}
