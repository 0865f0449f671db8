//! Ctrl-C and SIGTERM. A command that can stop in good order (a backup between chunk batches,
//! a restore between packs) is asked to, through [`engine::progress::Progress::should_stop`]:
//! the pack being written is finished (packs already stored are adopted by the next backup),
//! the session ends with its heartbeat removed, so no prune waits for it, and `repo` exits with
//! 130 (SIGINT) or 143 (SIGTERM). A second signal, or the first one during a command that cannot
//! stop in order, exits at once with the same code, as a kill would; the repository stays
//! consistent either way (repo-format.md §14).
//!
//! signal-hook is used because it registers handlers without `unsafe` here and delivers
//! signals to an ordinary thread, where printing and exiting are allowed.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// The first signal received, 0 before any.
static RECEIVED: AtomicI32 = AtomicI32::new(0);
/// Set while the running command polls [`requested`] and can stop in order.
static STOPPABLE: AtomicBool = AtomicBool::new(false);
/// What the first signal says when the command stops in order, if not a backup's words.
static STOP_NOTE: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// Starts the thread that takes SIGINT and SIGTERM for the rest of the process.
pub fn install() -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("kairn-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                on_signal(signal);
            }
        })?;
    Ok(())
}

fn on_signal(signal: i32) {
    let first = RECEIVED
        .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok();
    let name = if signal == SIGTERM {
        "SIGTERM"
    } else {
        "Ctrl-C"
    };
    if first && STOPPABLE.load(Ordering::SeqCst) {
        let note = STOP_NOTE
            .get()
            .copied()
            .unwrap_or("stopping after the pack being written; press Ctrl-C again to stop at once");
        eprintln!("repo: interrupted ({name}): {note}");
        return;
    }
    eprintln!("repo: interrupted ({name})");
    std::process::exit(exit_code_for(signal));
}

/// Marks the running command as one that stops in order when asked.
pub fn stoppable() {
    STOPPABLE.store(true, Ordering::SeqCst);
}

/// [`stoppable`], saying `note` on the first signal instead of a backup's words.
pub fn stoppable_with(note: &'static str) {
    let _ = STOP_NOTE.set(note);
    stoppable();
}

/// True once a signal asked the command to stop.
pub fn requested() -> bool {
    RECEIVED.load(Ordering::SeqCst) != 0
}

/// The exit code of a command stopped by a signal: 128 + the signal, as shells report it.
pub fn exit_code() -> Option<u8> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(exit_code_for(signal) as u8),
    }
}

fn exit_code_for(signal: i32) -> i32 {
    128 + signal
}
