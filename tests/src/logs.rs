//! The service's log lines, captured in memory beside the test output, so a
//! test can check what reached the log (a secret must not; a flood is cut).

use std::io::Write;
use std::sync::Mutex;

/// Lines kept; older ones are forgotten.
const MAX_LINES: usize = 200_000;

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The captured lines containing `needle`.
pub fn containing(needle: &str) -> Vec<String> {
    LINES
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(needle))
        .cloned()
        .collect()
}

/// A `MakeWriter` for the capturing layer.
#[derive(Clone, Copy, Default)]
pub struct Capture;

pub struct LineSink(Vec<u8>);

impl Write for LineSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineSink {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let mut lines = LINES.lock().unwrap();
        if lines.len() >= MAX_LINES {
            lines.drain(..MAX_LINES / 2);
        }
        lines.extend(text.lines().map(str::to_string));
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = LineSink;
    fn make_writer(&'a self) -> LineSink {
        LineSink(Vec::new())
    }
}
