//! Writer sessions: heartbeats that tell a prune who is writing, and the fence that decides,
//! once, whether a writer commits or a prune expires it. The protocol is repo-format.md §14.1.
//!
//! A [`Session`] is a value: whatever publishes (index files, snapshots, garbage lists) takes
//! one and publishes through it, so a caller cannot forget the fence. It is built over typed
//! files (storage and keys), not over the repository. [`fence`] reads and creates fences;
//! [`registry`] is what observers (prune, `repair sessions`) see of every session.

pub mod fence;
pub mod registry;

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use rand::RngCore;

use crate::files::Files;
use kairn_format::FileKind;
use kairn_format::error::{Error, ErrorKind, Result};
use kairn_format::garbage::GarbageList;
use kairn_format::id::{GarbageId, HeartbeatId, Id, IndexId, SessionId, SnapshotId};
use kairn_format::index::IndexFile;
use kairn_format::session::{Heartbeat, Outcome};
use kairn_format::snapshot::Snapshot;
use kairn_format::sync::lock;

/// How long a session may go without a heartbeat before a prune may expire it, in storage time.
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(30 * 60);

/// A running writer's session. Its heartbeat thread runs until [`Session::end`] or drop.
pub struct Session {
    inner: Arc<Inner>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

struct Inner {
    files: Files,
    expiry: Duration,
    /// Deletes nothing: heartbeats pile up, and the last one says the writer ended.
    append_only: bool,
    beat: Mutex<Beat>,
    /// Held while a heartbeat is written, so two writes never both delete the same predecessor.
    writing: Mutex<()>,
    stop: Mutex<bool>,
    wake: Condvar,
}

struct Beat {
    template: Heartbeat,
    current: HeartbeatId,
    /// When the write of the newest stored heartbeat began, on [`boot_clock`].
    last_ok: Duration,
    /// Set when two stored heartbeats were ever half the expiry apart: a prune may have
    /// expired the session in between, so it must never publish again.
    gap: Option<Duration>,
    committed: bool,
}

/// Time since boot, counting suspended time (CLOCK_BOOTTIME): a writer whose machine slept
/// must see the time a prune's storage saw pass.
fn boot_clock() -> Duration {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|t| {
            Duration::new(
                t.tv_sec().max(0) as u64,
                t.tv_nsec().clamp(0, 999_999_999) as u32,
            )
        })
        .unwrap_or_default()
}

impl Session {
    /// Writes the first heartbeat and starts the heartbeat thread. Start the session before
    /// loading the index (§14.1, backup step 1).
    pub fn start(files: Files, kind: &str, expiry: Duration, append_only: bool) -> Result<Self> {
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        let template = Heartbeat {
            session: SessionId(Id(raw)),
            seq: 0,
            kind: kind.to_string(),
            host: crate::sysinfo::hostname(),
            pid: std::process::id(),
            started: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            ended: false,
        };
        let began = boot_clock();
        let (current, _) = files.save(&template)?;
        let inner = Arc::new(Inner {
            files,
            expiry,
            append_only,
            beat: Mutex::new(Beat {
                template,
                current,
                last_ok: began,
                gap: None,
                committed: false,
            }),
            writing: Mutex::new(()),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let worker = inner.clone();
        let thread = std::thread::Builder::new()
            .name("kairn-heartbeat".into())
            .spawn(move || worker.run())
            .map_err(|e| Error::io("cannot start the heartbeat thread", e))?;
        Ok(Self {
            inner,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The session's id.
    pub fn id(&self) -> SessionId {
        lock(&self.inner.beat).template.session
    }

    /// The storage's time now: the last-modified time of this session's newest heartbeat,
    /// written afresh for the purpose.
    pub fn storage_now(&self) -> Result<i64> {
        self.inner.beat_once()?;
        let current = lock(&self.inner.beat).current;
        self.inner
            .files
            .backend()
            .modified(FileKind::Session, &current.to_hex())
    }

    /// Fails when the newest stored heartbeat began half the expiry ago or more: a prune may
    /// then be about to expire this session, and the writer must not publish anything.
    pub fn check_alive(&self) -> Result<()> {
        let (last_ok, gap) = {
            let b = lock(&self.inner.beat);
            (b.last_ok, b.gap)
        };
        let age = gap.unwrap_or_else(|| boot_clock().saturating_sub(last_ok));
        if age >= self.inner.expiry / 2 {
            return Err(Error::new(
                ErrorKind::SessionExpired,
                format!(
                    "this writer's session went {} s without a stored heartbeat (expiry {} s), \
                     so a prune may have expired it; nothing more is published, run it again",
                    age.as_secs(),
                    self.inner.expiry.as_secs()
                ),
            ));
        }
        Ok(())
    }

    /// Commits: creates the fence with outcome `commit`. After this no prune can expire the
    /// session, so the caller may write its snapshot.
    pub fn commit(&self) -> Result<()> {
        if lock(&self.inner.beat).committed {
            return Ok(()); // a writer may publish several snapshots under one commit
        }
        self.check_alive()?;
        let session = self.id();
        let inner = &self.inner;
        if fence::create(&inner.files, session, Outcome::Commit)?
            || fence::is_own_commit(&inner.files, session)?
        {
            // The second test: a retried create whose first attempt landed finds our own fence.
            lock(&inner.beat).committed = true;
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::SessionExpired,
            "a prune expired this writer's session (no heartbeat reached the repository in \
             time); no snapshot was written, run it again",
        ))
    }

    /// Publishes an index file: only while the session is alive (a prune may otherwise be
    /// deleting the packs it lists). Returns its id and stored size.
    pub fn save_index(&self, file: &IndexFile) -> Result<(IndexId, u64)> {
        self.check_alive()?;
        self.inner.files.save(file)
    }

    /// Publishes a prune's garbage list, only while the session is alive.
    pub fn save_garbage(&self, list: &GarbageList) -> Result<GarbageId> {
        self.check_alive()?;
        self.inner.files.save(list).map(|(id, _)| id)
    }

    /// Publishes a snapshot: commits the session first (or fails if a prune expired it), so a
    /// snapshot never lands after a prune judged this writer's blobs unused.
    pub fn save_snapshot(&self, snapshot: &Snapshot) -> Result<SnapshotId> {
        self.commit()?;
        self.inner.files.save(snapshot).map(|(id, _)| id)
    }

    /// Stops the heartbeats and removes the session's files: heartbeats first, then the fence.
    pub fn end(self) -> Result<()> {
        self.finish()
    }

    fn finish(&self) -> Result<()> {
        *lock(&self.inner.stop) = true;
        self.inner.wake.notify_all();
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
        let (current, committed, session) = {
            let b = lock(&self.inner.beat);
            (b.current, b.committed, b.template.session)
        };
        if self.inner.append_only {
            lock(&self.inner.beat).template.ended = true;
            return self.inner.beat_once();
        }
        let backend = self.inner.files.backend();
        backend.delete(FileKind::Session, &current.to_hex())?;
        if committed {
            backend.delete(FileKind::Fence, &session.to_hex())?;
        }
        Ok(())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if lock(&self.thread).is_some() {
            let _ = self.finish();
        }
    }
}

impl Inner {
    fn run(&self) {
        let interval = self.expiry / 6;
        let mut stopped = lock(&self.stop);
        loop {
            // A stop asked for before this thread first took the lock must not wait a whole
            // interval (it made a quick forget take expiry/6 to end).
            if *stopped {
                return;
            }
            let (guard, _) = self
                .wake
                .wait_timeout(stopped, interval)
                .unwrap_or_else(PoisonError::into_inner);
            stopped = guard;
            if *stopped {
                return;
            }
            drop(stopped);
            // A failed heartbeat is retried at the next interval; check_alive() stops the
            // writer before it publishes anything if they keep failing.
            let _ = self.beat_once();
            stopped = lock(&self.stop);
        }
    }

    /// Writes the next heartbeat, then deletes the previous one.
    fn beat_once(&self) -> Result<()> {
        let _writing = lock(&self.writing);
        let (next, previous) = {
            let mut b = lock(&self.beat);
            b.template.seq += 1;
            (b.template.clone(), b.current)
        };
        let began = boot_clock();
        let (id, _): (HeartbeatId, u64) = self.files.save(&next)?;
        {
            let mut b = lock(&self.beat);
            let since = began.saturating_sub(b.last_ok);
            if since >= self.expiry / 2 && b.gap.is_none() {
                b.gap = Some(since);
            }
            b.current = id;
            b.last_ok = began;
        }
        if self.append_only {
            return Ok(());
        }
        self.files
            .backend()
            .delete(FileKind::Session, &previous.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::repo::{InitOptions, Repository};
    use kairn_format::crypto::KdfParams;
    use kairn_storage::OpendalBackend;

    /// A liveness check, not a speed one: with the bug, each end waited expiry / 6 (five
    /// minutes here), so twenty ends could never fit in the minute allowed.
    #[test]
    fn a_session_ended_at_once_does_not_wait_for_its_heartbeat_interval() {
        let opts = InitOptions {
            kdf: KdfParams {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
            },
            ..Default::default()
        };
        let backend = Arc::new(OpendalBackend::memory().unwrap());
        let repo = Repository::init(backend, b"pw", &opts).unwrap();
        let began = std::time::Instant::now();
        for _ in 0..20 {
            let session = repo.begin_session("forget", super::DEFAULT_EXPIRY).unwrap();
            session.end().unwrap();
        }
        assert!(began.elapsed() < std::time::Duration::from_secs(60));
    }
}
