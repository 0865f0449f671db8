//! Upload and download rate limits (restic's `--limit-upload`/`--limit-download`) as a backend
//! wrapper, so they hold for every store, a local directory included (a repository on a NAS
//! mount shares its link like any other).
//!
//! Each direction has a [`Pacer`]: a virtual clock of when the link is next free. A request of
//! `n` bytes books `n / rate` seconds on it and waits until its booking ends (less a small
//! burst allowance), so requests in parallel share the rate instead of each taking it.
//! Uploads wait before they are sent; downloads wait after they arrive, when their size is
//! known. Over any stretch longer than one object the average stays at the limit.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Backend;
use kairn_format::FileKind;
use kairn_format::error::Result;

/// Books transfers on a link of a fixed rate. Pure: the caller passes the time.
#[derive(Debug)]
pub struct Pacer {
    bytes_per_sec: u64,
    /// How far ahead of the booked schedule a transfer may run: idle time earns this much.
    burst: Duration,
    free_at: Option<Instant>,
}

impl Pacer {
    /// A link of `bytes_per_sec` (at least 1), with a quarter second of burst.
    pub fn new(bytes_per_sec: u64) -> Self {
        Self {
            bytes_per_sec: bytes_per_sec.max(1),
            burst: Duration::from_millis(250),
            free_at: None,
        }
    }

    /// Books `bytes` at `now`; returns when the transfer may be reported done.
    pub fn book(&mut self, now: Instant, bytes: u64) -> Instant {
        let start = match self.free_at {
            Some(free) if free > now => free,
            _ => now,
        };
        let took = Duration::from_secs_f64(bytes as f64 / self.bytes_per_sec as f64);
        let done = start + took;
        self.free_at = Some(done);
        done.checked_sub(self.burst).unwrap_or(done).max(now)
    }
}

/// A backend whose transfers are paced to the given rates.
pub struct ThrottledBackend {
    inner: std::sync::Arc<dyn Backend>,
    upload: Option<Mutex<Pacer>>,
    download: Option<Mutex<Pacer>>,
}

impl ThrottledBackend {
    /// Wraps `inner`; `None` leaves a direction unlimited.
    pub fn new(
        inner: std::sync::Arc<dyn Backend>,
        upload: Option<u64>,
        download: Option<u64>,
    ) -> Self {
        Self {
            inner,
            upload: upload.map(|r| Mutex::new(Pacer::new(r))),
            download: download.map(|r| Mutex::new(Pacer::new(r))),
        }
    }

    fn wait(pacer: Option<&Mutex<Pacer>>, bytes: usize) {
        let Some(pacer) = pacer else { return };
        let now = Instant::now();
        let until = match pacer.lock() {
            Ok(mut p) => p.book(now, bytes as u64),
            Err(poisoned) => poisoned.into_inner().book(now, bytes as u64),
        };
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
    }
}

impl Backend for ThrottledBackend {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> Result<()> {
        self.inner.create()
    }
    fn read(&self, kind: FileKind, name: &str) -> Result<Vec<u8>> {
        let data = self.inner.read(kind, name)?;
        Self::wait(self.download.as_ref(), data.len());
        Ok(data)
    }
    fn read_range(&self, kind: FileKind, name: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        let data = self.inner.read_range(kind, name, offset, length)?;
        Self::wait(self.download.as_ref(), data.len());
        Ok(data)
    }
    fn write(&self, kind: FileKind, name: &str, data: Vec<u8>) -> Result<()> {
        Self::wait(self.upload.as_ref(), data.len());
        self.inner.write(kind, name, data)
    }
    fn size(&self, kind: FileKind, name: &str) -> Result<u64> {
        self.inner.size(kind, name)
    }
    fn list(&self, kind: FileKind) -> Result<Vec<(String, u64)>> {
        self.inner.list(kind)
    }
    fn delete(&self, kind: FileKind, name: &str) -> Result<()> {
        self.inner.delete(kind, name)
    }
    fn create_exclusive(&self, kind: FileKind, name: &str, data: Vec<u8>) -> Result<()> {
        Self::wait(self.upload.as_ref(), data.len());
        self.inner.create_exclusive(kind, name, data)
    }
    fn modified(&self, kind: FileKind, name: &str) -> Result<i64> {
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

    #[test]
    fn back_to_back_transfers_are_spaced_at_the_rate() {
        let mut p = Pacer::new(1000);
        let t0 = Instant::now();
        // The first second of data may finish a burst early; the next queue behind it.
        assert_eq!(p.book(t0, 1000), t0 + Duration::from_millis(750));
        assert_eq!(p.book(t0, 1000), t0 + Duration::from_millis(1750));
        assert_eq!(p.book(t0, 500), t0 + Duration::from_millis(2250));
    }

    #[test]
    fn an_idle_link_does_not_bank_more_than_the_burst() {
        let mut p = Pacer::new(1000);
        let t0 = Instant::now();
        p.book(t0, 100);
        let later = t0 + Duration::from_secs(60);
        // After a minute idle, 2000 bytes still take 2 s (less the burst), not nothing.
        assert_eq!(p.book(later, 2000), later + Duration::from_millis(1750));
        // A tiny transfer on an idle link goes at once.
        let idle = later + Duration::from_secs(60);
        assert_eq!(p.book(idle, 10), idle);
    }
}
