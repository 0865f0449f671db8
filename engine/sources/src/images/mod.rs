//! Container images as repository snapshots of kind `images` (repo-format.md §13, "images").
//!
//! Each image is fetched by digest through the OCI distribution API ([`registry`], over
//! `oci-client`): its index or manifest, its config and every layer, each checked against its
//! digest and size as it streams. The snapshot's tree is an OCI image layout ([`layout`]:
//! `oci-layout`, `index.json`, `blobs/sha256/<hex>`), so a plain `repo restore` gives a
//! directory that `skopeo copy oci:DIR:REF` reads as it is. Blobs are files like any other:
//! their chunks deduplicate against every other snapshot, an unchanged image adds nothing,
//! and a blob of the parent snapshot is not even downloaded again ([`fetch`]). [`push`] sends
//! the images back to a registry, digests unchanged.

pub mod auth;
pub mod fetch;
pub mod layout;
pub mod push;
pub mod registry;
pub mod rewrite;
pub mod tree;

pub use auth::{Credential, Credentials};
pub use fetch::{
    FailedImage, ImageBackup, ImageOptions, StoredImage, backup_images, parse_references,
};
pub use push::{PushOptions, PushReport, PushedImage, push_images, retarget};
pub use registry::RegistryOptions;
pub use rewrite::{image_map, normalise, rewrite_images};
pub use tree::{StoredLayout, read_layout};

/// One image a snapshot holds, for `repo images list`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ListedImage {
    /// The reference it was fetched by.
    pub reference: String,
    /// Its manifest's or index's digest.
    pub digest: String,
    /// The media type of that manifest or index.
    pub media_type: String,
    /// The platforms it holds.
    pub platforms: Vec<String>,
    /// The size of all its blobs.
    pub bytes: u64,
    /// When one platform was picked out of an index: the index's digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_index: Option<String>,
}

/// The images of an `images` snapshot, each blob it names read and checked.
pub fn list_images(
    repo: &kairn_repository::repo::Repository,
    index: &kairn_repository::index::Index,
    snapshot: &kairn_format::snapshot::Snapshot,
) -> kairn_format::error::Result<Vec<ListedImage>> {
    let stored = read_layout(repo, index, snapshot)?;
    stored
        .images
        .iter()
        .map(|image| {
            let (platforms, bytes) = stored.describe(repo, index, image)?;
            Ok(ListedImage {
                reference: image.reference.clone(),
                digest: image.descriptor.digest.clone(),
                media_type: image.descriptor.media_type.clone(),
                platforms,
                bytes,
                from_index: image.from_index.clone(),
            })
        })
        .collect()
}
