//! Leaves a record of a check, prune or verified restore in the repository (repo-format.md
//! §13.1), for the restore-readiness report. Storing it is best effort: a credential that may
//! not write, or a store that is down, costs a warning, never the operation's own outcome.

use chrono::{DateTime, Utc};
use engine::format::record::{Record, RecordKind, RecordOutcome};
use engine::repo::Repository;

/// What to record, besides the kind's own figures.
pub struct Outcome {
    /// How it ended.
    pub outcome: RecordOutcome,
    /// The error or the problems, in a line.
    pub message: String,
}

impl Outcome {
    /// Ok, or problems with this message.
    pub fn problems_if(problems: bool, message: impl Into<String>) -> Self {
        if problems {
            Self {
                outcome: RecordOutcome::Problems,
                message: message.into(),
            }
        } else {
            Self {
                outcome: RecordOutcome::Ok,
                message: String::new(),
            }
        }
    }

    /// Failed with this error.
    pub fn failed(err: &anyhow::Error) -> Self {
        Self {
            outcome: RecordOutcome::Failed,
            message: format!("{err:#}"),
        }
    }
}

/// An empty record of `kind` that started at `started` and ends now.
pub fn record(kind: RecordKind, started: DateTime<Utc>, outcome: Outcome) -> Record {
    let program = format!("kairn {}", env!("CARGO_PKG_VERSION"));
    engine::records::new_record(kind, started, outcome.outcome, outcome.message, program)
}

/// Stores the record; says on stderr when it cannot.
pub fn store(repo: &Repository, record: &Record) {
    if let Err(e) = engine::records::save(repo, record) {
        eprintln!(
            "warning: could not store the record of this {:?} for `repo report`: {e}",
            record.kind
        );
    }
}
