//! A backend wrapper that breaks the storage contract on purpose, so that tests can show what
//! the repository does when its store misbehaves: failed requests (some of whose writes landed
//! anyway), slow requests, torn and short writes, listings that lag behind writes, and a crash
//! (SIGKILL to this very process) after a chosen number of changes.
//!
//! The CLI wraps its backend in one when `KAIRN_FAULTS` is set (see RELIABILITY.md); the spec is
//! a comma-separated list of `key=value`:
//!
//! | key | meaning |
//! |---|---|
//! | `seed` | seeds the random choices (default 1) |
//! | `error` | share of requests that fail with a retryable error; a failed write lands first half the time |
//! | `latency-ms` | every request first sleeps a random time up to this |
//! | `torn` | share of writes that store a prefix of the object and fail |
//! | `short` | share of writes that store a prefix of the object and report success |
//! | `list-lag-ms` | objects younger than this (by their storage time) are left out of listings |
//! | `kill-after` | after this many changes (writes, exclusive creates, deletes), SIGKILL self |
//! | `only` | `pack`, `index`, `snapshot`, ...: inject errors, torn and short writes into that kind only |

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::Backend;
use kairn_format::FileKind;
use kairn_format::error::{Error, ErrorKind, Result};

/// What to break, and how often.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultPlan {
    /// Seeds the random choices.
    pub seed: u64,
    /// Share of requests that fail.
    pub error: f64,
    /// Upper bound of the delay added to each request.
    pub latency: Duration,
    /// Share of writes that store a prefix and fail.
    pub torn: f64,
    /// Share of writes that store a prefix and succeed.
    pub short: f64,
    /// Objects younger than this are not listed.
    pub list_lag: Duration,
    /// SIGKILL this process after this many changes.
    pub kill_after: Option<u64>,
    /// Inject errors, torn and short writes only into this kind.
    pub only: Option<FileKind>,
}

impl FaultPlan {
    /// Parses `key=value,...` (see the module docs).
    pub fn parse(spec: &str) -> Result<Self> {
        let mut plan = Self {
            seed: 1,
            ..Self::default()
        };
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| Error::invalid(format!("fault {item:?} is not key=value")))?;
            let bad = || Error::invalid(format!("fault {key}: cannot use {value:?}"));
            let share = || match value.parse::<f64>() {
                Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
                _ => Err(bad()),
            };
            let millis = || {
                value
                    .parse::<u64>()
                    .map(Duration::from_millis)
                    .map_err(|_| bad())
            };
            match key {
                "seed" => plan.seed = value.parse().map_err(|_| bad())?,
                "error" => plan.error = share()?,
                "torn" => plan.torn = share()?,
                "short" => plan.short = share()?,
                "latency-ms" => plan.latency = millis()?,
                "list-lag-ms" => plan.list_lag = millis()?,
                "kill-after" => plan.kill_after = Some(value.parse().map_err(|_| bad())?),
                "only" => {
                    plan.only = Some(
                        FileKind::ALL
                            .into_iter()
                            .find(|k| k.name() == value || k.dir().trim_end_matches('s') == value)
                            .ok_or_else(bad)?,
                    );
                }
                _ => return Err(Error::invalid(format!("unknown fault {key:?}"))),
            }
        }
        Ok(plan)
    }
}

/// How many faults a [`FaultyBackend`] injected.
#[derive(Debug, Default)]
pub struct FaultCounts {
    /// Requests failed.
    pub errors: AtomicU64,
    /// Writes torn.
    pub torn: AtomicU64,
    /// Writes cut short and reported as done.
    pub short: AtomicU64,
    /// Objects left out of listings.
    pub hidden: AtomicU64,
}

/// A [`Backend`] that injects the faults of a [`FaultPlan`] into another.
pub struct FaultyBackend {
    inner: std::sync::Arc<dyn Backend>,
    plan: FaultPlan,
    rng: Mutex<StdRng>,
    changes: AtomicU64,
    /// What was injected so far.
    pub counts: FaultCounts,
}

enum WriteFault {
    None,
    Fail { landed: bool },
    Torn(usize),
    Short(usize),
}

impl FaultyBackend {
    /// Wraps `inner`.
    pub fn new(inner: std::sync::Arc<dyn Backend>, plan: FaultPlan) -> Self {
        Self {
            inner,
            rng: Mutex::new(StdRng::seed_from_u64(plan.seed)),
            plan,
            changes: AtomicU64::new(0),
            counts: FaultCounts::default(),
        }
    }

    fn targets(&self, kind: FileKind) -> bool {
        self.plan.only.is_none_or(|k| k == kind)
    }

    fn rng(&self) -> std::sync::MutexGuard<'_, StdRng> {
        self.rng
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn delay(&self) {
        if !self.plan.latency.is_zero() {
            let d = self.rng().random_range(Duration::ZERO..=self.plan.latency);
            std::thread::sleep(d);
        }
    }

    fn fails(&self, kind: FileKind) -> bool {
        self.delay();
        self.plan.error > 0.0 && self.targets(kind) && self.rng().random_bool(self.plan.error)
    }

    fn injected(&self, what: &str, kind: FileKind, name: &str) -> Error {
        self.counts.errors.fetch_add(1, Ordering::Relaxed);
        Error::new(
            ErrorKind::Backend,
            format!("injected fault: {what} {} {name}", kind.name()),
        )
        .set_retryable(true)
    }

    fn write_fault(&self, kind: FileKind, len: usize) -> WriteFault {
        self.delay();
        if !self.targets(kind) {
            return WriteFault::None;
        }
        let mut rng = self.rng();
        let p = &self.plan;
        if p.error > 0.0 && rng.random_bool(p.error) {
            WriteFault::Fail {
                landed: rng.random_bool(0.5),
            }
        } else if p.torn > 0.0 && rng.random_bool(p.torn) {
            WriteFault::Torn(rng.random_range(0..len.max(1)))
        } else if p.short > 0.0 && rng.random_bool(p.short) {
            WriteFault::Short(rng.random_range(0..len.max(1)))
        } else {
            WriteFault::None
        }
    }

    /// Counts a change that has happened, and dies if the plan says this is the last.
    fn changed(&self) {
        let n = self.changes.fetch_add(1, Ordering::SeqCst) + 1;
        if self.plan.kill_after.is_some_and(|k| n >= k) {
            kill_self();
        }
    }

    fn create_with(
        &self,
        kind: FileKind,
        name: &str,
        data: Vec<u8>,
        create: impl Fn(Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        if self.plan.kill_after == Some(0) {
            kill_self();
        }
        let result = match self.write_fault(kind, data.len()) {
            WriteFault::None => create(data),
            WriteFault::Fail { landed } => {
                if landed {
                    create(data)?;
                }
                Err(self.injected("write failed", kind, name))
            }
            WriteFault::Torn(keep) => {
                self.counts.torn.fetch_add(1, Ordering::Relaxed);
                create(data[..keep].to_vec())?;
                Err(self.injected("write torn", kind, name))
            }
            WriteFault::Short(keep) => {
                self.counts.short.fetch_add(1, Ordering::Relaxed);
                create(data[..keep].to_vec())
            }
        };
        self.changed();
        result
    }
}

/// Ends this process as a crash would: no destructors, no buffered output, no cleanup.
fn kill_self() -> ! {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), nix::sys::signal::Signal::SIGKILL);
    // SIGKILL cannot be caught; this is never reached.
    std::process::abort()
}

impl Backend for FaultyBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn create(&self) -> Result<()> {
        self.inner.create()
    }

    fn read(&self, kind: FileKind, name: &str) -> Result<Vec<u8>> {
        if self.fails(kind) {
            return Err(self.injected("read failed", kind, name));
        }
        self.inner.read(kind, name)
    }

    fn read_range(&self, kind: FileKind, name: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        if self.fails(kind) {
            return Err(self.injected("read failed", kind, name));
        }
        self.inner.read_range(kind, name, offset, length)
    }

    fn write(&self, kind: FileKind, name: &str, data: Vec<u8>) -> Result<()> {
        self.create_with(kind, name, data, |d| self.inner.write(kind, name, d))
    }

    fn size(&self, kind: FileKind, name: &str) -> Result<u64> {
        if self.fails(kind) {
            return Err(self.injected("stat failed", kind, name));
        }
        self.inner.size(kind, name)
    }

    fn list(&self, kind: FileKind) -> Result<Vec<(String, u64)>> {
        if self.fails(kind) {
            return Err(self.injected("list failed", kind, ""));
        }
        let all = self.inner.list(kind)?;
        if self.plan.list_lag.is_zero() {
            return Ok(all);
        }
        let lag = i64::try_from(self.plan.list_lag.as_millis()).unwrap_or(i64::MAX);
        let now = chrono::Utc::now().timestamp_millis();
        let mut listed = Vec::with_capacity(all.len());
        for (name, size) in all {
            match self.inner.modified(kind, &name) {
                Ok(t) if now.saturating_sub(t) < lag => {
                    self.counts.hidden.fetch_add(1, Ordering::Relaxed);
                }
                // Gone since the listing: a lagging listing may still show it.
                Ok(_) | Err(_) => listed.push((name, size)),
            }
        }
        Ok(listed)
    }

    fn delete(&self, kind: FileKind, name: &str) -> Result<()> {
        if self.plan.kill_after == Some(0) {
            kill_self();
        }
        if self.fails(kind) {
            return Err(self.injected("delete failed", kind, name));
        }
        self.inner.delete(kind, name)?;
        self.changed();
        Ok(())
    }

    fn create_exclusive(&self, kind: FileKind, name: &str, data: Vec<u8>) -> Result<()> {
        self.create_with(kind, name, data, |d| {
            self.inner.create_exclusive(kind, name, d)
        })
    }

    fn modified(&self, kind: FileKind, name: &str) -> Result<i64> {
        if self.fails(kind) {
            return Err(self.injected("stat failed", kind, name));
        }
        self.inner.modified(kind, name)
    }

    fn remove_stale_staged(&self, max_age: Duration) -> Result<u64> {
        self.inner.remove_stale_staged(max_age)
    }

    fn undelete(&self) -> Result<u64> {
        self.inner.undelete()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OpendalBackend;
    use std::sync::Arc;

    fn faulty(spec: &str) -> FaultyBackend {
        let inner: Arc<dyn Backend> = Arc::new(OpendalBackend::memory().unwrap());
        FaultyBackend::new(inner, FaultPlan::parse(spec).unwrap())
    }

    /// On disk: the memory service keeps no modification times, which listing lag needs.
    fn faulty_on_disk(dir: &std::path::Path, spec: &str) -> FaultyBackend {
        let inner: Arc<dyn Backend> = Arc::new(OpendalBackend::local_create(dir).unwrap());
        inner.create().unwrap();
        FaultyBackend::new(inner, FaultPlan::parse(spec).unwrap())
    }

    #[test]
    fn specs_parse_and_bad_ones_are_refused() {
        let p = FaultPlan::parse("seed=7, error=0.25,latency-ms=3,torn=0.5,short=0.1,list-lag-ms=900,kill-after=4,only=pack").unwrap();
        assert_eq!(p.seed, 7);
        assert_eq!(p.error, 0.25);
        assert_eq!(p.latency, Duration::from_millis(3));
        assert_eq!(p.list_lag, Duration::from_millis(900));
        assert_eq!(p.kill_after, Some(4));
        assert_eq!(p.only, Some(FileKind::Pack));
        for bad in [
            "error=2",
            "torn",
            "nonsense=1",
            "only=pixels",
            "latency-ms=-1",
        ] {
            assert!(FaultPlan::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn torn_writes_leave_a_prefix_and_fail_short_ones_claim_success() {
        let torn = faulty("torn=1");
        let err = torn.write(FileKind::Pack, "a", vec![1; 100]).unwrap_err();
        assert!(err.is_retryable());
        assert!(torn.read(FileKind::Pack, "a").unwrap().len() < 100);

        let short = faulty("short=1");
        short.write(FileKind::Pack, "a", vec![1; 100]).unwrap();
        assert!(short.read(FileKind::Pack, "a").unwrap().len() < 100);
    }

    #[test]
    fn errors_hit_only_the_chosen_kind() {
        let b = faulty("error=1,only=index");
        b.write(FileKind::Pack, "p", vec![1]).unwrap();
        assert_eq!(b.read(FileKind::Pack, "p").unwrap(), vec![1]);
        assert!(b.write(FileKind::Index, "i", vec![1]).is_err());
        assert!(b.list(FileKind::Index).is_err());
        assert_eq!(b.counts.errors.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_lagging_listing_hides_new_objects() {
        let dir = tempfile::tempdir().unwrap();
        let name = "ab".repeat(32);
        let b = faulty_on_disk(&dir.path().join("lag"), "list-lag-ms=60000");
        b.write(FileKind::Snapshot, &name, vec![1]).unwrap();
        assert!(b.list(FileKind::Snapshot).unwrap().is_empty());
        assert_eq!(b.read(FileKind::Snapshot, &name).unwrap(), vec![1]);
        assert_eq!(b.counts.hidden.load(Ordering::Relaxed), 1);
        let prompt = faulty_on_disk(&dir.path().join("prompt"), "");
        prompt.write(FileKind::Snapshot, &name, vec![1]).unwrap();
        assert_eq!(prompt.list(FileKind::Snapshot).unwrap().len(), 1);
    }
}
