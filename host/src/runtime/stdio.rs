//! Guest stdout and stderr, line by line into the host log with the plugin's
//! name, secrets scrubbed. Anything a connector prints is visible, nothing
//! reaches the service's own stdout.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

use super::quota::LogBudget;
use crate::secrets::Scrubber;

/// Longest line kept in one log record.
const MAX_LINE_BYTES: usize = 8 * 1024;
/// Last stderr lines kept to explain a trap (a Rust panic prints its message there).
const TAIL_LINES: usize = 5;

/// The last lines a guest wrote to stderr.
#[derive(Clone, Default)]
pub struct Tail(Arc<Mutex<VecDeque<String>>>);

impl Tail {
    fn push(&self, line: String) {
        let mut lines = self.0.lock().expect("tail lock");
        if lines.len() == TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// The kept lines joined, if any.
    pub fn text(&self) -> Option<String> {
        let lines = self.0.lock().expect("tail lock");
        (!lines.is_empty()).then(|| lines.iter().cloned().collect::<Vec<_>>().join(" | "))
    }
}

#[derive(Clone)]
pub struct GuestOutput {
    plugin: Arc<str>,
    connection: Arc<str>,
    stream: &'static str,
    scrubber: Scrubber,
    tail: Option<Tail>,
    /// Lines past the invocation's log quota are dropped.
    budget: Arc<LogBudget>,
}

impl GuestOutput {
    pub fn new(
        plugin: &str,
        connection: &str,
        stream: &'static str,
        scrubber: Scrubber,
        budget: Arc<LogBudget>,
    ) -> Self {
        Self {
            plugin: plugin.into(),
            connection: connection.into(),
            stream,
            scrubber,
            tail: None,
            budget,
        }
    }

    /// Also keeps the last lines in `tail`.
    pub fn with_tail(mut self, tail: Tail) -> Self {
        self.tail = Some(tail);
        self
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineWriter {
            out: self.clone(),
            buf: Vec::new(),
        })
    }
}

struct LineWriter {
    out: GuestOutput,
    buf: Vec<u8>,
}

impl LineWriter {
    fn emit(&self, line: &[u8]) {
        let text = self.out.scrubber.scrub(&String::from_utf8_lossy(line));
        if let Some(tail) = &self.out.tail {
            tail.push(text.trim_end().to_string());
        }
        if !self.out.budget.admit(line.len()) {
            return;
        }
        tracing::info!(
            target: "connector",
            plugin = %self.out.plugin,
            connection = %self.out.connection,
            stream = self.out.stream,
            "{}",
            text.trim_end_matches('\r')
        );
    }

    fn drain_lines(&mut self) {
        while let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            self.emit(&line[..line.len() - 1]);
        }
        if self.buf.len() >= MAX_LINE_BYTES {
            let line = std::mem::take(&mut self.buf);
            self.emit(&line);
        }
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.buf.extend_from_slice(data);
        self.drain_lines();
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            let rest = std::mem::take(&mut self.buf);
            self.emit(&rest);
        }
    }
}
