//! Progress on a terminal: an indicatif bar on stderr; nothing when stderr is not a terminal.
//! A file-system backup gets restic's display instead of a bar: elapsed time, files and bytes
//! done out of the totals a scan beside it finds, the rate, an ETA once the scan has finished,
//! and the file being read. `-v` lists new and modified files on standard output (`-vv`
//! unchanged ones too), whether or not there is a terminal.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::backup::FileChange;
use indicatif::{ProgressBar, ProgressState, ProgressStyle};

/// Shows engine progress as a bar, and warnings as lines above it.
pub struct CliProgress {
    bar: Mutex<Option<ProgressBar>>,
    enabled: bool,
    print_warnings: bool,
    bytes: AtomicU64,
    /// `-v` count: 1 lists new and modified files, 2 unchanged ones too.
    verbose: u8,
    /// Set for a file-system backup: what its display shows.
    backup: Option<Arc<BackupStats>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl CliProgress {
    /// A bar when stderr is a terminal and `quiet` is false.
    pub fn new(quiet: bool, print_warnings: bool) -> Self {
        Self {
            bar: Mutex::new(None),
            enabled: !quiet && std::io::stderr().is_terminal(),
            print_warnings,
            bytes: AtomicU64::new(0),
            verbose: 0,
            backup: None,
        }
    }

    /// For a file-system backup: the backup display (on a terminal, unless `quiet`), and
    /// `verbose` file lists.
    pub fn for_backup(quiet: bool, print_warnings: bool, verbose: u8) -> Self {
        Self {
            verbose,
            backup: Some(Arc::new(BackupStats::default())),
            ..Self::new(quiet, print_warnings)
        }
    }

    /// True when the backup display is shown: then a scan for its totals is worth running.
    pub fn shows_totals(&self) -> bool {
        self.enabled && self.backup.is_some()
    }

    /// The scan's running totals; `finished` once it has seen everything.
    pub fn set_totals(&self, files: u64, bytes: u64, finished: bool) {
        if let Some(s) = &self.backup {
            s.total_files.store(files, Ordering::Relaxed);
            s.total_bytes.store(bytes, Ordering::Relaxed);
            s.scan_finished.store(finished, Ordering::Relaxed);
        }
    }

    fn with_bar(&self, f: impl FnOnce(&ProgressBar)) {
        if let Some(bar) = lock(&self.bar).as_ref() {
            f(bar);
        }
    }

    /// Prints a line on standard output, with the bar out of the way.
    fn print(&self, text: &str) {
        let bar = lock(&self.bar).clone();
        // A closed standard output (`| head`) is not the backup's problem.
        match bar {
            Some(b) => b.suspend(|| crate::output::line(text).ok()),
            None => crate::output::line(text).ok(),
        };
    }

    fn backup_bar(stats: &Arc<BackupStats>) -> ProgressBar {
        let (status, current) = (Arc::clone(stats), Arc::clone(stats));
        let style = ProgressStyle::with_template("{status}\n{current}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner())
            .with_key(
                "status",
                move |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = w.write_str(&status_line(&status.counts(), state.elapsed()));
                },
            )
            .with_key(
                "current",
                move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let width = console::Term::stderr().size().1 as usize;
                    let _ = w.write_str(&fit(&lock(&current.current), width));
                },
            );
        ProgressBar::new_spinner().with_style(style)
    }
}

/// What the backup display reads at every redraw.
#[derive(Default)]
pub struct BackupStats {
    files_done: AtomicU64,
    bytes_done: AtomicU64,
    total_files: AtomicU64,
    total_bytes: AtomicU64,
    scan_finished: AtomicBool,
    errors: AtomicU64,
    current: Mutex<String>,
}

/// A moment's copy of [`BackupStats`].
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    files_done: u64,
    bytes_done: u64,
    total_files: u64,
    total_bytes: u64,
    scan_finished: bool,
    errors: u64,
}

impl BackupStats {
    fn counts(&self) -> Counts {
        Counts {
            files_done: self.files_done.load(Ordering::Relaxed),
            bytes_done: self.bytes_done.load(Ordering::Relaxed),
            total_files: self.total_files.load(Ordering::Relaxed),
            total_bytes: self.total_bytes.load(Ordering::Relaxed),
            scan_finished: self.scan_finished.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

/// `[1:02]`, or `[1:02:03]` past an hour.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// The display's first line. While the scan runs, the totals are marked as still growing and
/// there is neither a percentage nor an ETA.
fn status_line(c: &Counts, elapsed: Duration) -> String {
    let bytes = crate::output::bytes;
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.5 {
        (c.bytes_done as f64 / secs) as u64
    } else {
        0
    };
    let mut line = format!("[{}]", clock(elapsed));
    if c.scan_finished && c.total_bytes > 0 {
        let pct = (c.bytes_done as f64 * 100.0 / c.total_bytes as f64).min(100.0);
        line.push_str(&format!(" {pct:5.1}%"));
    }
    let more = if c.scan_finished { "" } else { "+" };
    line.push_str(&format!(
        "  {} / {}{more} files  {} / {}{more}  {}/s",
        c.files_done,
        c.total_files,
        bytes(c.bytes_done),
        bytes(c.total_bytes),
        bytes(rate)
    ));
    if c.errors > 0 {
        line.push_str(&format!("  {} errors", c.errors));
    }
    if !c.scan_finished {
        line.push_str("  (counting)");
    } else if let Some(left) = c.total_bytes.saturating_sub(c.bytes_done).checked_div(rate) {
        line.push_str(&format!("  ETA {}", clock(Duration::from_secs(left))));
    }
    line
}

/// `text` in at most `width` columns: a long path loses its start, as the end names the file.
fn fit(text: &str, width: usize) -> String {
    let chars = text.chars().count();
    if chars <= width {
        return text.to_string();
    }
    let keep = width.saturating_sub(1);
    let tail: String = text.chars().skip(chars - keep).collect();
    format!("…{tail}")
}

impl engine::progress::Progress for CliProgress {
    fn should_stop(&self) -> bool {
        crate::interrupt::requested()
    }

    fn start(&self, phase: &str, total: Option<u64>) {
        if !self.enabled {
            return;
        }
        let bar = match (total, &self.backup) {
            (None, Some(stats)) => Self::backup_bar(stats),
            (Some(t), _) => ProgressBar::new(t).with_style(
                ProgressStyle::with_template(
                    "{prefix:>8} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            ),
            (None, None) => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{prefix:>8} {spinner} {msg}, {pos} files, {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        };
        self.bytes.store(0, Ordering::Relaxed);
        bar.set_prefix(phase.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        *lock(&self.bar) = Some(bar);
    }

    fn bytes(&self, n: u64) {
        if let Some(s) = &self.backup {
            s.bytes_done.fetch_add(n, Ordering::Relaxed);
        }
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

    fn file_started(&self, path: &Path) {
        if let Some(s) = &self.backup
            && self.enabled
        {
            *lock(&s.current) = path.display().to_string();
        }
    }

    fn file_status(&self, path: &Path, change: FileChange, size: u64) {
        if let Some(s) = &self.backup {
            s.files_done.fetch_add(1, Ordering::Relaxed);
            if change == FileChange::Unchanged {
                // Read files counted their bytes as they were read.
                s.bytes_done.fetch_add(size, Ordering::Relaxed);
            }
        }
        let word = match change {
            FileChange::New if self.verbose >= 1 => "new",
            FileChange::Modified if self.verbose >= 1 => "modified",
            FileChange::Unchanged if self.verbose >= 2 => "unchanged",
            _ => return,
        };
        self.print(&format!(
            "{word:<9} {}  {}",
            path.display(),
            crate::output::bytes(size)
        ));
    }

    fn warning(&self, path: &Path, message: &str) {
        if let Some(s) = &self.backup {
            s.errors.fetch_add(1, Ordering::Relaxed);
        }
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
        if let Some(bar) = lock(&self.bar).take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_shows_eta_and_percent_only_once_the_scan_is_done() {
        let mut c = Counts {
            files_done: 10,
            bytes_done: 100 << 20,
            total_files: 40,
            total_bytes: 400 << 20,
            scan_finished: false,
            errors: 0,
        };
        let counting = status_line(&c, Duration::from_secs(10));
        assert_eq!(
            counting,
            "[0:10]  10 / 40+ files  100.00 MiB / 400.00 MiB+  10.00 MiB/s  (counting)"
        );
        c.scan_finished = true;
        c.errors = 2;
        let done = status_line(&c, Duration::from_secs(3700));
        assert!(
            done.starts_with("[1:01:40]  25.0%  10 / 40 files"),
            "{done}"
        );
        assert!(done.contains("2 errors"), "{done}");
        assert!(done.ends_with("ETA 3:05:00"), "{done}");
    }

    #[test]
    fn long_paths_keep_their_end() {
        assert_eq!(fit("/a/b", 10), "/a/b");
        assert_eq!(fit("/srv/data/file.bin", 9), "…file.bin");
        assert_eq!(fit("/ä/ö/ü", 3), "…/ü");
    }
}
