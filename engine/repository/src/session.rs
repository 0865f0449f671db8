//! Writer sessions: heartbeats that tell a prune who is writing, and the fence that decides,
//! once, whether a writer commits or a prune expires it. The protocol is repo-format.md §14.1.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::repo::{RepoFile, Repository};
use kairn_format::FileKind;
use kairn_format::crypto::MasterKeys;
use kairn_format::error::{Error, ErrorKind, Result};
use kairn_format::id::{HeartbeatId, Id, SessionId};
use kairn_format::sealed::{self, SealedType};
use kairn_storage::Backend;

/// How long a session may go without a heartbeat before a prune may expire it, in storage time.
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(30 * 60);

/// One heartbeat of a session (sealed file type 4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The session.
    pub session: SessionId,
    /// 0 for the first heartbeat, then counting up.
    pub seq: u64,
    /// What the writer does: `backup`, `prune`, `forget`.
    pub kind: String,
    /// The writer's host.
    pub host: String,
    /// The writer's process id.
    pub pid: u32,
    /// When the session began by the writer's clock; for people, never compared.
    pub started: String,
    /// The writer has ended: written last, instead of deleting its heartbeats, by a writer in
    /// append-only mode. A prune removes such a session's files.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ended: bool,
}

impl RepoFile for Heartbeat {
    const KIND: FileKind = FileKind::Session;
    const SEALED: SealedType = SealedType::Session;
    type Id = HeartbeatId;
    fn to_payload(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
    fn from_payload(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::corrupt("session heartbeat does not decode").with_source(e))
    }
}

/// Who created a session's fence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The session committed: it is writing its snapshot.
    Commit,
    /// A prune expired the session: it may never commit.
    Expire,
}

#[derive(Serialize, Deserialize)]
struct FencePayload {
    session: SessionId,
    outcome: Outcome,
}

/// Tries to create `session`'s fence with `outcome`. True when this call created it.
pub fn create_fence(repo: &Repository, session: SessionId, outcome: Outcome) -> Result<bool> {
    fence_with(repo.backend(), repo.keys(), level(repo), session, outcome)
}

fn level(repo: &Repository) -> i32 {
    repo.config().compression_level
}

fn fence_with(
    backend: &dyn Backend,
    keys: &MasterKeys,
    level: i32,
    session: SessionId,
    outcome: Outcome,
) -> Result<bool> {
    let payload = serde_json::to_vec(&FencePayload { session, outcome }).unwrap_or_default();
    let bytes = sealed::seal(keys, SealedType::Fence, &payload, level);
    match backend.create_exclusive(FileKind::Fence, &session.to_hex(), bytes) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// The outcome recorded in a session's fence, `None` when it has none. A fence that cannot be
/// read whole counts as a commit: the cautious reading, since a commit blocks deletion.
pub fn fence_outcome(repo: &Repository, session: SessionId) -> Result<Option<Outcome>> {
    Ok(read_fence(repo.backend(), repo.keys(), session)?
        .map(|decoded| decoded.unwrap_or(Outcome::Commit)))
}

/// Whether the fence that exists is this writer's own commit, read strictly (a fence that does
/// not decode is not ours): it is, when a retried create's first attempt had landed.
fn own_commit_fence(backend: &dyn Backend, keys: &MasterKeys, session: SessionId) -> Result<bool> {
    Ok(read_fence(backend, keys, session)? == Some(Some(Outcome::Commit)))
}

/// A session's fence: `None` when there is none, `Some(None)` when it does not decode as this
/// session's fence; each caller decides what such a fence means for it.
fn read_fence(
    backend: &dyn Backend,
    keys: &MasterKeys,
    session: SessionId,
) -> Result<Option<Option<Outcome>>> {
    let bytes = match backend.read(FileKind::Fence, &session.to_hex()) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(Some(
        sealed::open(keys, SealedType::Fence, &bytes)
            .ok()
            .and_then(|p| serde_json::from_slice::<FencePayload>(&p).ok())
            .filter(|f| f.session == session)
            .map(|f| f.outcome),
    ))
}

/// A session as seen by an observer.
#[derive(Debug, Clone, Serialize)]
pub struct SessionView {
    /// The session.
    pub session: SessionId,
    /// Its newest heartbeat.
    pub latest: Heartbeat,
    /// Storage time of its newest heartbeat, ms since the epoch.
    pub last_beat_ms: i64,
    /// Its heartbeat files.
    pub files: Vec<HeartbeatId>,
    /// Its fence, if any.
    pub fence: Option<Outcome>,
}

/// Every session that has a heartbeat. A heartbeat deleted while listing is skipped.
pub fn list_sessions(repo: &Repository) -> Result<Vec<SessionView>> {
    let mut by_session: std::collections::BTreeMap<SessionId, SessionView> = Default::default();
    for id in repo.list_ids::<Heartbeat>()? {
        let beat = match repo.load_file::<Heartbeat>(&id) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let modified = match repo.backend().modified(FileKind::Session, &id.to_hex()) {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let view = by_session
            .entry(beat.session)
            .or_insert_with(|| SessionView {
                session: beat.session,
                latest: beat.clone(),
                last_beat_ms: modified,
                files: Vec::new(),
                fence: None,
            });
        view.files.push(id);
        // Newest by sequence number: storage times may tie (S3 keeps whole seconds).
        view.last_beat_ms = view.last_beat_ms.max(modified);
        if beat.seq >= view.latest.seq {
            view.latest = beat;
        }
    }
    let mut out: Vec<SessionView> = by_session.into_values().collect();
    for v in &mut out {
        v.fence = fence_outcome(repo, v.session)?;
    }
    Ok(out)
}

/// Deletes a session's heartbeats and its fence: `repair sessions`, for a writer known dead.
pub fn remove_session(repo: &Repository, session: SessionId) -> Result<bool> {
    let mut found = false;
    for view in list_sessions(repo)?
        .into_iter()
        .filter(|v| v.session == session)
    {
        for f in view.files {
            repo.backend().delete(FileKind::Session, &f.to_hex())?;
            found = true;
        }
    }
    if fence_outcome(repo, session)?.is_some() {
        repo.backend().delete(FileKind::Fence, &session.to_hex())?;
        found = true;
    }
    Ok(found)
}

/// A running writer's session. Its heartbeat thread runs until [`Session::end`] or drop.
pub struct Session {
    inner: Arc<Inner>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

struct Inner {
    backend: Arc<dyn Backend>,
    keys: MasterKeys,
    level: i32,
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
    pub fn start(repo: &Repository, kind: &str, expiry: Duration) -> Result<Self> {
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
        let current = repo.save_file(&template)?;
        let inner = Arc::new(Inner {
            backend: repo.backend_arc(),
            keys: repo.keys().clone(),
            level: level(repo),
            expiry,
            append_only: repo.append_only(),
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
            .backend
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
        if fence_with(
            inner.backend.as_ref(),
            &inner.keys,
            inner.level,
            session,
            Outcome::Commit,
        )? || own_commit_fence(inner.backend.as_ref(), &inner.keys, session)?
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
        self.inner
            .backend
            .delete(FileKind::Session, &current.to_hex())?;
        if committed {
            self.inner
                .backend
                .delete(FileKind::Fence, &session.to_hex())?;
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
        let bytes = sealed::seal(
            &self.keys,
            SealedType::Session,
            &next.to_payload(),
            self.level,
        );
        let id = HeartbeatId(Id::hash_of(&bytes));
        match self.backend.write(FileKind::Session, &id.to_hex(), bytes) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
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
        self.backend.delete(FileKind::Session, &previous.to_hex())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
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
            repo.begin_session("forget", super::DEFAULT_EXPIRY).unwrap();
            repo.end_session().unwrap();
        }
        assert!(began.elapsed() < std::time::Duration::from_secs(60));
    }
}
