//! Progress on a terminal: an indicatif bar on stderr; nothing when stderr is not a terminal.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{ProgressBar, ProgressStyle};

/// Shows engine progress as a bar, and warnings as lines above it.
pub struct CliProgress {
    bar: Mutex<Option<ProgressBar>>,
    enabled: bool,
    print_warnings: bool,
    bytes: AtomicU64,
}

impl CliProgress {
    /// A bar when stderr is a terminal and `quiet` is false.
    pub fn new(quiet: bool, print_warnings: bool) -> Self {
        Self {
            bar: Mutex::new(None),
            enabled: !quiet && std::io::stderr().is_terminal(),
            print_warnings,
            bytes: AtomicU64::new(0),
        }
    }

    fn with_bar(&self, f: impl FnOnce(&ProgressBar)) {
        if let Some(bar) = self
            .bar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
        {
            f(bar);
        }
    }
}

impl engine::progress::Progress for CliProgress {
    fn should_stop(&self) -> bool {
        crate::interrupt::requested()
    }

    fn start(&self, phase: &str, total: Option<u64>) {
        if !self.enabled {
            return;
        }
        let bar = match total {
            Some(t) => ProgressBar::new(t).with_style(
                ProgressStyle::with_template(
                    "{prefix:>8} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{prefix:>8} {spinner} {msg}, {pos} files, {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        };
        self.bytes.store(0, Ordering::Relaxed);
        bar.set_prefix(phase.to_string());
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        *self
            .bar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(bar);
    }

    fn bytes(&self, n: u64) {
        let done = self.bytes.fetch_add(n, Ordering::Relaxed) + n;
        self.with_bar(|b| {
            if b.length().is_some() {
                b.inc(n);
            } else {
                b.set_message(crate::output::bytes(done));
            }
        });
    }

    fn file_done(&self, _path: &Path) {
        self.with_bar(|b| {
            if b.length().is_none() {
                b.inc(1);
            }
        });
    }

    fn warning(&self, path: &Path, message: &str) {
        if !self.print_warnings {
            return;
        }
        let text = format!("warning: {}: {message}", path.display());
        let mut shown = false;
        self.with_bar(|b| {
            b.println(&text);
            shown = true;
        });
        if !shown {
            eprintln!("{text}");
        }
    }

    fn finish(&self) {
        if let Some(bar) = self
            .bar
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            bar.finish_and_clear();
        }
    }
}
