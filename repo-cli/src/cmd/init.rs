use anyhow::Result;
use clap::Args;
use engine::chunker::ChunkerParams;
use engine::crypto::KdfParams;
use engine::format::config::{LockMode, ObjectLock};
use engine::repo::{InitOptions, Repository};

use crate::args::{Global, new_password};
use crate::output;

#[derive(Debug, Args)]
pub struct InitArgs {
    /// zstd compression level for new blobs (0 stores raw).
    #[arg(long, default_value_t = 3)]
    compression: i32,
    /// Target pack size in MiB.
    #[arg(long, default_value_t = 16)]
    pack_size_mib: u32,
    /// Smallest chunk, in bytes.
    #[arg(long, default_value_t = ChunkerParams::default().min_size)]
    chunk_min: u32,
    /// Average chunk, in bytes.
    #[arg(long, default_value_t = ChunkerParams::default().avg_size)]
    chunk_avg: u32,
    /// Largest chunk, in bytes.
    #[arg(long, default_value_t = ChunkerParams::default().max_size)]
    chunk_max: u32,
    /// The bucket's Object Lock default retention, in days: maintenance then never deletes
    /// repository content younger than this (repo-format.md §14.2).
    #[arg(long, value_name = "DAYS")]
    object_lock_days: Option<u32>,
    /// The bucket's Object Lock mode, for the record.
    #[arg(
        long,
        value_enum,
        default_value = "compliance",
        requires = "object_lock_days"
    )]
    object_lock_mode: LockModeArg,
    #[command(flatten)]
    kdf: KdfArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LockModeArg {
    Compliance,
    Governance,
}

/// Argon2id costs of a new key. Lower them only for tests.
#[derive(Debug, Args)]
pub struct KdfArgs {
    /// Argon2id memory in KiB.
    #[arg(long, default_value_t = KdfParams::default().memory_kib, hide = true)]
    pub kdf_memory_kib: u32,
    /// Argon2id passes.
    #[arg(long, default_value_t = KdfParams::default().iterations, hide = true)]
    pub kdf_iterations: u32,
}

impl KdfArgs {
    pub fn params(&self) -> KdfParams {
        KdfParams {
            memory_kib: self.kdf_memory_kib,
            iterations: self.kdf_iterations,
            parallelism: 1,
        }
    }
}

pub fn run(g: &Global, a: InitArgs) -> Result<()> {
    g.refuse_costly_kdf(&a.kdf.params())?;
    let backend = g.backend_at(true)?;
    let password = new_password(None, g)?;
    if password.is_empty() {
        anyhow::bail!(crate::exit::UsageError(
            "an empty password is not allowed".into()
        ));
    }
    let opts = InitOptions {
        chunk_sizes: ChunkerParams {
            min_size: a.chunk_min,
            avg_size: a.chunk_avg,
            max_size: a.chunk_max,
        },
        compression_level: a.compression,
        pack_size: a.pack_size_mib.saturating_mul(1 << 20),
        kdf: a.kdf.params(),
        object_lock: a.object_lock_days.map(|days| ObjectLock {
            days,
            mode: match a.object_lock_mode {
                LockModeArg::Compliance => LockMode::Compliance,
                LockModeArg::Governance => LockMode::Governance,
            },
        }),
    };
    let repo = Repository::init(backend.clone(), &password, &opts)?;
    if g.json {
        output::json(
            &serde_json::json!({ "id": repo.config().id.to_hex(), "location": backend.location() }),
        )?;
    } else {
        output::line(format!(
            "created kairn repository {} at {}",
            repo.config().id.short(),
            backend.location()
        ))?;
        output::line("keep the password safe: losing it means losing the data in the repository")?;
    }
    Ok(())
}
