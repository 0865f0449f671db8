//! `backup --images`: each image's manifests, config and layers fetched by digest, checked,
//! and stored as one OCI image layout. A blob already in the parent snapshot is taken from
//! there without a download; one shared by two images of this backup is fetched once.

use std::collections::{BTreeMap, HashMap};

use oci_client::Reference;

use super::layout::{self, Descriptor, Parsed, TopLevel};
use super::registry::{Registry, RegistryOptions};
use super::tree::{layout_files, read_layout};
use kairn_format::error::{Error, ErrorKind, Result};
use kairn_format::snapshot::{Snapshot, Source, SourceKind};
use kairn_ops::backup::memory::{FileData, MemoryBackup, StoredData};
use kairn_ops::backup::{BackupOptions, BackupOutcome, ParentChoice};
use kairn_ops::progress::Progress;
use kairn_repository::index::Index;
use kairn_repository::repo::Repository;
use kairn_repository::session::Session;
use kairn_repository::snapshots::{SnapshotFilter, list_readable};

/// What to fetch, and how.
#[derive(Debug, Clone, Default)]
pub struct ImageOptions {
    /// Registries and their logins.
    pub registry: RegistryOptions,
    /// Logins for particular images, by normalised reference (`Reference::whole`): such an
    /// image is fetched with these and no other (in a cluster, its namespace's pull secrets,
    /// so that one tenant's logins never fetch another's images).
    pub logins: BTreeMap<String, super::auth::Credentials>,
    /// Other references an image ran under, by normalised reference: recorded in
    /// `index.json` for a namespace restore to rewrite.
    pub aliases: BTreeMap<String, std::collections::BTreeSet<String>>,
    /// Of a multi-platform image, keep only this platform (`os/arch[/variant]`), stored as the
    /// image: its manifest's digest is the one a node of that platform pulls. All when `None`.
    pub platform: Option<String>,
}

/// An image stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredImage {
    /// The reference, normalised (`docker.io/library/nginx:1.27`).
    pub reference: String,
    /// Its manifest's or index's digest.
    pub digest: String,
    /// The platforms it holds (empty for a single-platform image without a platform field).
    pub platforms: Vec<String>,
    /// Blobs it consists of (manifests, configs, layers).
    pub blobs: usize,
    /// Their total size.
    pub bytes: u64,
}

/// An image that could not be stored, and why.
#[derive(Debug)]
pub struct FailedImage {
    /// The reference as given.
    pub reference: String,
    /// What went wrong; its kind says whether a retry can help.
    pub error: Error,
}

/// What an images backup produced.
#[derive(Debug)]
pub struct ImageBackup {
    /// The snapshot, when at least one image was stored.
    pub outcome: Option<BackupOutcome>,
    /// The images stored.
    pub images: Vec<StoredImage>,
    /// The images left out.
    pub failed: Vec<FailedImage>,
    /// Bytes downloaded from registries (blobs found in the parent are not).
    pub downloaded: u64,
}

/// Parses image references, normalised as Docker does (`nginx` is
/// `docker.io/library/nginx:latest`); a reference that does not parse is
/// [`ErrorKind::InvalidInput`].
pub fn parse_references(refs: &[String]) -> Result<Vec<Reference>> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for r in refs {
        let parsed: Reference = r
            .trim()
            .parse()
            .map_err(|e| Error::invalid(format!("{r:?} is not an image reference: {e}")))?;
        if seen.insert(parsed.whole()) {
            out.push(parsed);
        }
    }
    if out.is_empty() {
        return Err(Error::invalid("no image reference given"));
    }
    Ok(out)
}

/// Stores `references` as one snapshot of kind `images`. Each image is stored whole or not
/// at all: one that fails (a digest mismatch, refused credentials, a registry that is down) is
/// listed in [`ImageBackup::failed`] and the others are still stored. When none could be,
/// the first failure is the error and no snapshot is written.
pub fn backup_images(
    repo: &Repository,
    session: &Session,
    index: &Index,
    references: &[Reference],
    image_opts: &ImageOptions,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<ImageBackup> {
    if let Some(p) = &image_opts.platform {
        check_platform(p)?;
    }
    let source = Source {
        kind: SourceKind::Images,
        ..opts.source.clone()
    };
    // A parent that cannot be read (a damaged tree) only costs downloads, never the backup.
    let parent_blobs = match parent(repo, opts, &source)?.map(|s| read_layout(repo, index, &s)) {
        Some(Ok(layout)) => layout.blobs,
        Some(Err(e)) => {
            tracing::warn!("the parent images snapshot is unreadable, fetching every blob: {e}");
            HashMap::new()
        }
        None => HashMap::new(),
    };
    let (registries, login_of) = registries_for(image_opts, references)?;
    let memory = MemoryBackup::start(repo, session, index, None, progress)?;
    let mut run = Fetch {
        registry: &registries[0],
        memory: &memory,
        parent: &parent_blobs,
        done: HashMap::new(),
        downloaded: 0,
        platform: image_opts.platform.as_deref(),
    };
    let mut images = Vec::new();
    let mut failed = Vec::new();
    let mut kept: BTreeMap<String, FileData> = BTreeMap::new();
    for reference in references {
        run.registry = &registries[login_of.get(&reference.whole()).copied().unwrap_or(0)];
        match run.image(reference) {
            Ok((top, blobs, stored)) => {
                for hex in blobs {
                    if let Some(data) = run.done.get(&hex) {
                        kept.insert(hex, data.clone());
                    }
                }
                progress.file_done(std::path::Path::new(&top.reference));
                images.push((top, stored));
            }
            Err(e) if e.kind() == ErrorKind::Canceled => return Err(e),
            Err(error) => failed.push(FailedImage {
                reference: reference.whole(),
                error,
            }),
        }
    }
    let downloaded = run.downloaded;
    if images.is_empty() {
        let first = failed.into_iter().next().map(|f| f.error);
        return Err(first.unwrap_or_else(|| Error::invalid("no image reference given")));
    }
    let tops: Vec<TopLevel> = images
        .iter()
        .map(|(t, _)| TopLevel {
            aliases: image_opts
                .aliases
                .get(&t.reference)
                .map(|a| a.iter().filter(|x| **x != t.reference).cloned().collect())
                .unwrap_or_default(),
            ..t.clone()
        })
        .collect();
    let files = layout_files(&tops, kept);
    let opts = BackupOptions {
        paths: Vec::new(),
        source,
        ..opts.clone()
    };
    let outcome = memory.finish(&files, &opts)?;
    Ok(ImageBackup {
        outcome: Some(outcome),
        images: images.into_iter().map(|(_, s)| s).collect(),
        failed,
        downloaded,
    })
}

/// One registry client per distinct set of logins (a client keeps the first login it used
/// for a registry, so images with other logins need their own), and which one each image uses.
fn registries_for(
    image_opts: &ImageOptions,
    references: &[Reference],
) -> Result<(Vec<Registry>, HashMap<String, usize>)> {
    let hosts: Vec<&str> = references.iter().map(Reference::registry).collect();
    let mut sets = vec![image_opts.registry.credentials.clone()];
    let mut login_of = HashMap::new();
    for (reference, credentials) in &image_opts.logins {
        let at = match sets.iter().position(|s| s == credentials) {
            Some(at) => at,
            None => {
                sets.push(credentials.clone());
                sets.len() - 1
            }
        };
        login_of.insert(reference.clone(), at);
    }
    let registries = sets
        .into_iter()
        .map(|credentials| {
            let options = RegistryOptions {
                credentials,
                ..image_opts.registry.clone()
            };
            Registry::new(&options, hosts.iter().copied())
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((registries, login_of))
}

/// Checks a `--platform` value: `os/architecture[/variant]`.
pub fn check_platform(p: &str) -> Result<()> {
    let parts: Vec<&str> = p.split('/').collect();
    if (2..=3).contains(&parts.len()) && parts.iter().all(|s| !s.is_empty()) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "--platform {p:?}: expected os/architecture[/variant], like linux/amd64"
        )))
    }
}

/// The earlier `images` snapshot to take unchanged blobs from: the one asked for, or the
/// newest of the same cluster, whichever node's agent took it.
fn parent(repo: &Repository, opts: &BackupOptions, source: &Source) -> Result<Option<Snapshot>> {
    match &opts.parent {
        ParentChoice::None => Ok(None),
        ParentChoice::Snapshot(id) => Ok(Some(repo.load_file::<Snapshot>(id)?)),
        ParentChoice::Latest => {
            // A damaged snapshot file is skipped here: it only costs downloads.
            let all = list_readable(repo, &SnapshotFilter::default())?.snapshots;
            Ok(all.into_iter().rev().map(|(_, s)| s).find(|s| {
                s.source.kind == SourceKind::Images && s.source.cluster == source.cluster
            }))
        }
    }
}

struct Fetch<'a> {
    registry: &'a Registry,
    memory: &'a MemoryBackup<'a>,
    parent: &'a HashMap<String, StoredData>,
    /// Blobs stored by this backup so far, by hex digest.
    done: HashMap<String, FileData>,
    downloaded: u64,
    platform: Option<&'a str>,
}

impl Fetch<'_> {
    /// One image: its top-level entry, the hex digests of every blob it needs, and a summary.
    fn image(&mut self, reference: &Reference) -> Result<(TopLevel, Vec<String>, StoredImage)> {
        self.registry.login(reference, false)?;
        let (bytes, digest) = self.manifest(reference, reference.digest())?;
        let (media_type, parsed) = layout::parse(&bytes).map_err(|e| bad(reference, e))?;
        let mut blobs = Vec::new();
        let mut platforms = Vec::new();
        let top_level = |descriptor, from_index| TopLevel {
            reference: reference.whole(),
            descriptor,
            from_index,
            aliases: Vec::new(),
        };
        // The document itself, as index.json names it when it is stored whole.
        let whole = Descriptor {
            media_type,
            size: bytes.len() as u64,
            digest: digest.clone(),
            platform: None,
        };
        let top = match parsed {
            Parsed::Manifest(parts) => {
                self.keep_manifest(&digest, bytes, &mut blobs)?;
                self.blobs(reference, &parts, &mut blobs)?;
                top_level(whole, None)
            }
            Parsed::Index(entries) => match self.platform {
                Some(wanted) => {
                    let entry = entries
                        .iter()
                        .find(|e| layout::platform_matches(e.platform.as_deref(), &[wanted.into()]))
                        .ok_or_else(|| {
                            Error::new(
                                ErrorKind::NotFound,
                                format!("{} has no manifest for {wanted}", reference.whole()),
                            )
                        })?;
                    platforms.extend(entry.platform.clone());
                    self.platform_manifest(reference, entry, &mut blobs)?;
                    top_level(entry.clone(), Some(digest.clone()))
                }
                None => {
                    for entry in &entries {
                        platforms.extend(entry.platform.clone());
                        self.platform_manifest(reference, entry, &mut blobs)?;
                    }
                    self.keep_manifest(&digest, bytes, &mut blobs)?;
                    top_level(whole, None)
                }
            },
        };
        let bytes = blobs.iter().filter_map(|h| self.size_of(h)).sum();
        let stored = StoredImage {
            reference: top.reference.clone(),
            digest: top.descriptor.digest.clone(),
            platforms,
            blobs: blobs.len(),
            bytes,
        };
        Ok((top, blobs, stored))
    }

    fn size_of(&self, hex: &str) -> Option<u64> {
        match self.done.get(hex)? {
            FileData::Bytes(b) => Some(b.len() as u64),
            FileData::Stored(d) | FileData::Reused(d) => Some(d.size),
        }
    }

    /// A manifest's bytes and digest, checked against the digest asked for.
    fn manifest(&self, reference: &Reference, expected: Option<&str>) -> Result<(Vec<u8>, String)> {
        let target = match expected {
            Some(d) => reference.clone_with_digest(d.to_string()),
            None => reference.clone(),
        };
        let bytes = self.registry.manifest(&target, &layout::MANIFEST_TYPES)?;
        let digest = layout::sha256_digest(&bytes);
        if let Some(expected) = expected.filter(|e| *e != digest) {
            return Err(bad(
                reference,
                format!("the manifest {expected} hashes to {digest}"),
            ));
        }
        Ok((bytes, digest))
    }

    fn platform_manifest(
        &mut self,
        reference: &Reference,
        entry: &Descriptor,
        blobs: &mut Vec<String>,
    ) -> Result<()> {
        let (bytes, digest) = self.manifest(reference, Some(&entry.digest))?;
        if bytes.len() as u64 != entry.size {
            return Err(bad(
                reference,
                format!("the manifest {digest} is not {} bytes long", entry.size),
            ));
        }
        match layout::parse(&bytes).map_err(|e| bad(reference, e))? {
            (_, Parsed::Manifest(parts)) => {
                self.keep_manifest(&digest, bytes, blobs)?;
                self.blobs(reference, &parts, blobs)
            }
            (_, Parsed::Index(_)) => Err(bad(
                reference,
                "an index inside an index is not supported".into(),
            )),
        }
    }

    fn keep_manifest(
        &mut self,
        digest: &str,
        bytes: Vec<u8>,
        blobs: &mut Vec<String>,
    ) -> Result<()> {
        let hex = layout::digest_hex(digest)
            .map_err(Error::invalid)?
            .to_string();
        self.done
            .entry(hex.clone())
            .or_insert(FileData::Bytes(bytes));
        blobs.push(hex);
        Ok(())
    }

    fn blobs(
        &mut self,
        reference: &Reference,
        parts: &[Descriptor],
        blobs: &mut Vec<String>,
    ) -> Result<()> {
        for part in parts {
            let hex = layout::digest_hex(&part.digest)
                .map_err(|e| bad(reference, e))?
                .to_string();
            blobs.push(hex.clone());
            if self.done.contains_key(&hex) {
                continue;
            }
            let reused = self
                .parent
                .get(&hex)
                .filter(|d| d.size == part.size)
                .and_then(|d| self.memory.reuse(d));
            let data = match reused {
                Some(data) => data,
                None => {
                    let mut reader = self.registry.blob(reference, &part.digest, part.size)?;
                    let stored = self
                        .memory
                        .store(&mut reader)
                        .map_err(|e| reader.failure().unwrap_or(e))?;
                    self.downloaded += stored.size;
                    FileData::Stored(stored)
                }
            };
            self.done.insert(hex, data);
        }
        Ok(())
    }
}

fn bad(reference: &Reference, why: String) -> Error {
    Error::new(
        ErrorKind::SourceCorrupt,
        format!("{} is refused: {why}", reference.whole()),
    )
}
