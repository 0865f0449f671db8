//! Records of checks, prunes and verified restores (repo-format.md §13.1): written after the
//! operation, read by the restore-readiness report. A record is sealed with the master keys like
//! a snapshot, so a file planted without them, or damaged, fails its hash or authentication and
//! is reported, never believed.

use rayon::prelude::*;

use crate::repo::Repository;
use crate::unreadable::UnreadableFile;
use kairn_format::FileKind;
use kairn_format::error::{ErrorKind, Result};
use kairn_format::id::{Id, RecordId};
use kairn_format::record::{Record, RecordKind, RecordOutcome};

/// A record of `kind` that started at `started` and ends now, on this host, by this user,
/// with no figures yet: the caller adds its kind's own.
pub fn new_record(
    kind: RecordKind,
    started: chrono::DateTime<chrono::Utc>,
    outcome: RecordOutcome,
    message: String,
    program: String,
) -> Record {
    let rfc =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    Record {
        kind,
        started: rfc(started),
        finished: rfc(chrono::Utc::now()),
        host: crate::sysinfo::hostname(),
        username: crate::sysinfo::username(),
        program,
        outcome,
        message,
        check: None,
        prune: None,
        restore: None,
    }
}

/// Stores a record. It references no blob, so it needs no writer session: an append-only key
/// (which may only create) writes it as well as a full one.
pub fn save(repo: &Repository, record: &Record) -> Result<RecordId> {
    repo.files().save(record).map(|(id, _)| id)
}

/// The records that could be read, oldest first by finish time, and the files that could not.
#[derive(Debug, Clone, Default)]
pub struct RecordScan {
    /// Readable records, oldest first.
    pub records: Vec<(RecordId, Record)>,
    /// Record files that fail their hash, authentication or decoding, or are not named by an id.
    pub damaged: Vec<UnreadableFile>,
}

/// Reads every record, skipping (and returning) damaged ones; a storage failure fails.
pub fn scan(repo: &Repository) -> Result<RecordScan> {
    let mut damaged = Vec::new();
    let mut ids = Vec::new();
    for name in repo.list_names(FileKind::Record)? {
        match Id::from_hex(&name) {
            Ok(id) => ids.push(RecordId::from(id)),
            Err(_) => damaged.push(UnreadableFile::new(name, "its name is not a record id")),
        }
    }
    type Loaded = Option<std::result::Result<(RecordId, Record), UnreadableFile>>;
    let loaded: Vec<Loaded> = ids
        .par_iter()
        .map(|id| match repo.load_file::<Record>(id) {
            Ok(r) => Ok(Some(Ok((*id, r)))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) if matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::UnsupportedVersion) => {
                Ok(Some(Err(UnreadableFile::new(id.0.to_hex(), e.to_string()))))
            }
            Err(e) => Err(e),
        })
        .collect::<Result<_>>()?;
    let mut records = Vec::with_capacity(loaded.len());
    for item in loaded.into_iter().flatten() {
        match item {
            Ok(r) => records.push(r),
            Err(bad) => damaged.push(bad),
        }
    }
    records.sort_by(|a, b| a.1.finished.cmp(&b.1.finished).then(a.0.cmp(&b.0)));
    damaged.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(RecordScan { records, damaged })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::repo::InitOptions;
    use kairn_format::crypto::{KdfParams, MasterKeys};
    use kairn_format::record::{RecordKind, RecordOutcome};
    use kairn_format::sealed::{SealedType, seal};
    use kairn_storage::{Backend, OpendalBackend};

    fn record(finished: &str) -> Record {
        Record {
            kind: RecordKind::Check,
            started: finished.into(),
            finished: finished.into(),
            host: "h".into(),
            username: "u".into(),
            program: "kairn test".into(),
            outcome: RecordOutcome::Ok,
            message: String::new(),
            check: Some(Default::default()),
            prune: None,
            restore: None,
        }
    }

    #[test]
    fn an_append_only_key_adds_records_and_planted_or_damaged_ones_are_reported() {
        let opts = InitOptions {
            kdf: KdfParams {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
            },
            ..Default::default()
        };
        let backend: Arc<dyn Backend> = Arc::new(OpendalBackend::memory().unwrap());
        let full = Repository::init(backend.clone(), b"full", &opts).unwrap();
        full.add_key(b"append", opts.kdf, true).unwrap();
        let append = Repository::open(backend.clone(), b"append").unwrap();
        assert!(append.append_only());
        let newer = save(&append, &record("2026-01-02T00:00:00Z")).unwrap();
        let older = save(&full, &record("2026-01-01T00:00:00Z")).unwrap();

        // Sealed with other keys (someone with write access to the storage only), and one
        // stored record with a flipped bit.
        let planted = seal(
            &MasterKeys::generate(),
            SealedType::Record,
            &record("2030-01-01T00:00:00Z").encode().unwrap(),
            3,
        );
        let planted_name = Id::hash_of(&planted).to_hex();
        backend
            .write(FileKind::Record, &planted_name, planted)
            .unwrap();
        let mut bytes = backend.read(FileKind::Record, &newer.0.to_hex()).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let flipped = Id::hash_of(&bytes).to_hex();
        backend.write(FileKind::Record, &flipped, bytes).unwrap();

        let found = scan(&full).unwrap();
        let ids: Vec<RecordId> = found.records.iter().map(|(id, _)| *id).collect();
        assert_eq!(
            ids,
            vec![older, newer],
            "oldest first, only the sealed ones"
        );
        let mut bad: Vec<&str> = found.damaged.iter().map(|d| d.name.as_str()).collect();
        bad.sort();
        let mut want = vec![planted_name.as_str(), flipped.as_str()];
        want.sort();
        assert_eq!(bad, want);
    }
}
