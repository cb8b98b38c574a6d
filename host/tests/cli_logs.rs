//! Log colours: ANSI codes on a terminal (a pseudo-terminal made by
//! util-linux `script`), none with `NO_COLOR` set, none on a pipe.

use std::process::Command;

/// Runs `recoco-sync keys list` in an empty directory with a debug log (one
/// line: a `RECOCO_SYNC_*` variable that is not a setting), its standard error
/// on a pseudo-terminal when `tty`; everything written, as bytes.
fn log_of(tty: bool, no_color: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_recoco-sync");
    let mut cmd = if tty {
        let mut c = Command::new("script");
        c.args(["-q", "-e", "-c", &format!("'{bin}' keys list"), "/dev/null"]);
        c
    } else {
        let mut c = Command::new(bin);
        c.args(["keys", "list"]);
        c
    };
    for (key, _) in std::env::vars() {
        if key.starts_with("RECOCO_") || key.starts_with("SENTRY_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd.env_remove("NO_COLOR")
        .env("RUST_LOG", "debug")
        .env("RECOCO_SYNC_NOT_A_SETTING", "1")
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null());
    if let Some(v) = no_color {
        cmd.env("NO_COLOR", v);
    }
    let out = cmd
        .output()
        .expect("script (util-linux) and the binary run");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("not a setting"), "{text}");
    assert!(text.contains("no database at"), "{text}");
    text
}

#[test]
fn colours_on_a_terminal_unless_no_color() {
    assert!(
        log_of(true, None).contains("\u{1b}["),
        "a terminal gets colours"
    );
    assert!(!log_of(true, Some("1")).contains('\u{1b}'), "NO_COLOR=1");
    // An empty NO_COLOR does not count (no-color.org).
    assert!(log_of(true, Some("")).contains("\u{1b}["));
    assert!(!log_of(false, None).contains('\u{1b}'), "a pipe");
}
