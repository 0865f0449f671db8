//! `repo images push`: the images of a snapshot uploaded, digests unchanged, to the registry
//! they came from or to another one. Blobs the registry already has are not sent again;
//! manifests go up after their blobs, and an index after its manifests, so a registry never
//! holds a manifest whose parts are missing.

use oci_client::Reference;

use super::layout::{self, Parsed, TopLevel};
use super::registry::{Registry, RegistryOptions};
use super::tree::{StoredLayout, read_layout};
use kairn_format::error::{Error, ErrorKind, Result};
use kairn_format::snapshot::Snapshot;
use kairn_ops::progress::Progress;
use kairn_repository::index::Index;
use kairn_repository::repo::Repository;

/// Where to push, and how.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// Registries and their logins.
    pub registry: RegistryOptions,
    /// `host[:port][/prefix]`: push there, under the prefix, each image keeping its repository
    /// path. The registry each image came from when `None`.
    pub to: Option<String>,
    /// Only the images whose reference (as stored) is one of these; all when empty.
    pub only: Vec<String>,
}

/// An image pushed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PushedImage {
    /// The reference it was stored under.
    pub source: String,
    /// Where it went (with its tag, if it had one).
    pub target: String,
    /// Its manifest's or index's digest, the same there.
    pub digest: String,
    /// Blobs uploaded.
    pub uploaded: usize,
    /// Blobs the registry had already.
    pub present: usize,
    /// Bytes uploaded.
    pub bytes: u64,
}

/// What a push did.
#[derive(Debug, Default)]
pub struct PushReport {
    /// The images pushed.
    pub pushed: Vec<PushedImage>,
    /// The images that could not be, and why.
    pub failed: Vec<(String, Error)>,
}

/// `reference` moved to `to` (`host[:port][/prefix]`): the repository path is kept below the
/// prefix, and so are the tag and digest.
pub fn retarget(reference: &Reference, to: Option<&str>) -> Result<Reference> {
    let Some(to) = to else {
        return Ok(reference.clone());
    };
    let to = to.trim_end_matches('/');
    let (host, prefix) = match to.split_once('/') {
        Some((h, p)) => (h, Some(p)),
        None => (to, None),
    };
    let repository = match prefix {
        Some(p) => format!("{p}/{}", reference.repository()),
        None => reference.repository().to_string(),
    };
    let mut text = format!("{host}/{repository}");
    if let Some(tag) = reference.tag() {
        text.push(':');
        text.push_str(tag);
    }
    if let Some(digest) = reference.digest() {
        text.push('@');
        text.push_str(digest);
    }
    text.parse().map_err(|e| {
        Error::invalid(format!(
            "--to {to:?} gives {text:?}, not an image reference: {e}"
        ))
    })
}

/// Pushes the images of an `images` snapshot. An image that fails is listed and the others
/// are still pushed; when every one fails, the first failure is the error.
pub fn push_images(
    repo: &Repository,
    index: &Index,
    snapshot: &Snapshot,
    opts: &PushOptions,
    progress: &dyn Progress,
) -> Result<PushReport> {
    let stored = read_layout(repo, index, snapshot)?;
    let mut chosen = Vec::new();
    for image in &stored.images {
        if opts.only.is_empty() || opts.only.iter().any(|o| o == &image.reference) {
            let source: Reference = image
                .reference
                .parse()
                .map_err(|e| Error::corrupt(format!("{:?} in index.json: {e}", image.reference)))?;
            chosen.push((image, retarget(&source, opts.to.as_deref())?));
        }
    }
    if chosen.is_empty() {
        return Err(Error::new(
            ErrorKind::NotFound,
            "no image of the snapshot matches",
        ));
    }
    let registry = Registry::new(&opts.registry, chosen.iter().map(|(_, t)| t.registry()))?;
    let pusher = Pusher {
        repo,
        index,
        stored: &stored,
        registry: &registry,
        progress,
    };
    let mut report = PushReport::default();
    for (image, target) in chosen {
        if progress.should_stop() {
            return Err(Error::canceled());
        }
        match pusher.image(image, &target) {
            Ok(pushed) => report.pushed.push(pushed),
            Err(e) if e.kind() == ErrorKind::Canceled => return Err(e),
            Err(e) => report.failed.push((image.reference.clone(), e)),
        }
    }
    if report.pushed.is_empty() && !report.failed.is_empty() {
        return Err(report.failed.swap_remove(0).1);
    }
    Ok(report)
}

struct Pusher<'a> {
    repo: &'a Repository,
    index: &'a Index,
    stored: &'a StoredLayout,
    registry: &'a Registry,
    progress: &'a dyn Progress,
}

impl Pusher<'_> {
    fn image(&self, image: &TopLevel, target: &Reference) -> Result<PushedImage> {
        self.registry.login(target, true)?;
        let mut pushed = PushedImage {
            source: image.reference.clone(),
            target: target.whole(),
            digest: image.descriptor.digest.clone(),
            uploaded: 0,
            present: 0,
            bytes: 0,
        };
        let d = &image.descriptor;
        let bytes = self.stored.blob_bytes(self.repo, self.index, &d.digest)?;
        match layout::parse(&bytes).map_err(Error::corrupt)? {
            (media, Parsed::Manifest(parts)) => {
                self.manifest(
                    target,
                    &d.digest,
                    bytes.clone(),
                    &media,
                    &parts,
                    &mut pushed,
                )?;
                self.tag(target, bytes, &media)?;
            }
            (media, Parsed::Index(entries)) => {
                for e in &entries {
                    let child = self.stored.blob_bytes(self.repo, self.index, &e.digest)?;
                    let Ok((child_media, Parsed::Manifest(parts))) = layout::parse(&child) else {
                        return Err(Error::corrupt(format!(
                            "{} is not an image manifest",
                            e.digest
                        )));
                    };
                    self.manifest(target, &e.digest, child, &child_media, &parts, &mut pushed)?;
                }
                let by_digest = digest_ref(target, &d.digest);
                self.registry
                    .push_manifest(&by_digest, bytes.clone(), &media)?;
                self.tag(target, bytes, &media)?;
            }
        }
        self.progress
            .file_done(std::path::Path::new(&pushed.target));
        Ok(pushed)
    }

    fn manifest(
        &self,
        target: &Reference,
        digest: &str,
        bytes: Vec<u8>,
        media: &str,
        parts: &[layout::Descriptor],
        pushed: &mut PushedImage,
    ) -> Result<()> {
        for part in parts {
            if self.progress.should_stop() {
                return Err(Error::canceled());
            }
            if self.registry.has_blob(target, &part.digest)? {
                pushed.present += 1;
                continue;
            }
            self.registry
                .push_blob(target, &part.digest, part.size, |out| {
                    self.stored
                        .write_blob(self.repo, self.index, &part.digest, out)
                        .map(|n| self.progress.bytes(n))
                })?;
            pushed.uploaded += 1;
            pushed.bytes += part.size;
        }
        self.registry
            .push_manifest(&digest_ref(target, digest), bytes, media)
    }

    /// Points the target's tag at the manifest just pushed (nothing for a digest reference).
    fn tag(&self, target: &Reference, bytes: Vec<u8>, media: &str) -> Result<()> {
        match (target.tag(), target.digest()) {
            (Some(tag), None) => {
                let tagged = Reference::with_tag(
                    target.registry().to_string(),
                    target.repository().to_string(),
                    tag.to_string(),
                );
                self.registry.push_manifest(&tagged, bytes, media)
            }
            _ => Ok(()),
        }
    }
}

fn digest_ref(target: &Reference, digest: &str) -> Reference {
    Reference::with_digest(
        target.registry().to_string(),
        target.repository().to_string(),
        digest.to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retargeting_keeps_the_repository_path_tag_and_digest() {
        let r: Reference = "127.0.0.1:5000/shop/app:v1".parse().unwrap();
        assert_eq!(
            retarget(&r, Some("127.0.0.1:6000")).unwrap().whole(),
            "127.0.0.1:6000/shop/app:v1"
        );
        assert_eq!(
            retarget(&r, Some("mirror.example/dr/")).unwrap().whole(),
            "mirror.example/dr/shop/app:v1"
        );
        let d = format!("nginx@sha256:{}", "a".repeat(64));
        let r: Reference = d.parse().unwrap();
        assert_eq!(
            retarget(&r, Some("127.0.0.1:6000")).unwrap().whole(),
            format!("127.0.0.1:6000/library/nginx@sha256:{}", "a".repeat(64))
        );
        assert_eq!(retarget(&r, None).unwrap(), r);
        assert!(retarget(&r, Some("UPPER CASE/x")).is_err());
    }
}
