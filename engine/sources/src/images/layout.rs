//! The OCI image layout an `images` snapshot's tree holds (repo-format.md §13, "images"), and the parts
//! of manifests that say which blobs an image needs. Pure: bytes in, bytes or lists out.

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// `oci-layout`'s content.
pub const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// The annotation that names an image in `index.json`; `skopeo copy oci:DIR:NAME` looks it up.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Set when `--platform` picked one manifest of an index: the index's digest.
pub const FROM_INDEX: &str = "dev.kairn.image.index";
/// Other references the image ran under (a pod's `image` for the digest it ran), as a
/// comma-separated list: what a namespace restore rewrites.
pub const ALIASES: &str = "dev.kairn.image.aliases";

/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker manifest list (schema 2).
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image manifest (schema 2).
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// The manifest types fetched; Docker's schema 1 (signed, without digests for configs) is not.
pub const MANIFEST_TYPES: [&str; 4] = [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST];

/// A content descriptor: what a blob is, its digest and size.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Descriptor {
    /// Media type.
    pub media_type: String,
    /// `sha256:<64 hex>`.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// `os/architecture[/variant]`, for an index's entries.
    pub platform: Option<String>,
}

/// What a manifest document is, and the blobs it refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// An index (or Docker manifest list): one manifest per platform.
    Index(Vec<Descriptor>),
    /// An image manifest: its config, then its layers.
    Manifest(Vec<Descriptor>),
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The hex part of a `sha256:` digest, checked: 64 lowercase hex digits. Other algorithms are
/// refused, as they cannot be verified here.
pub fn digest_hex(digest: &str) -> Result<&str, String> {
    let hex = digest
        .strip_prefix("sha256:")
        .ok_or_else(|| format!("{digest:?} is not a sha256 digest"))?;
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(format!("{digest:?} is not a sha256 digest"));
    }
    Ok(hex)
}

/// The path of a blob in the layout.
pub fn blob_path(digest: &str) -> Result<Vec<String>, String> {
    Ok(vec![
        "blobs".into(),
        "sha256".into(),
        digest_hex(digest)?.to_string(),
    ])
}

/// The media type of a manifest document: its own `mediaType`, else what its fields say.
pub fn media_type(doc: &Value) -> Option<String> {
    if let Some(t) = doc["mediaType"].as_str() {
        return Some(t.to_string());
    }
    if doc["manifests"].is_array() {
        Some(OCI_INDEX.into())
    } else if doc["config"].is_object() && doc["layers"].is_array() {
        Some(OCI_MANIFEST.into())
    } else {
        None
    }
}

/// Parses a manifest or index and lists what it refers to.
pub fn parse(bytes: &[u8]) -> Result<(String, Parsed), String> {
    let doc: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("the manifest is not JSON: {e}"))?;
    if doc["schemaVersion"].as_i64() == Some(1) {
        return Err("Docker schema 1 manifests are not supported".into());
    }
    let media = media_type(&doc).ok_or("the document is neither a manifest nor an index")?;
    let parsed = match media.as_str() {
        OCI_INDEX | DOCKER_LIST => Parsed::Index(descriptors(&doc["manifests"])?),
        OCI_MANIFEST | DOCKER_MANIFEST => {
            let mut blobs = vec![descriptor(&doc["config"])?];
            blobs.extend(descriptors(&doc["layers"])?);
            Parsed::Manifest(blobs)
        }
        other => return Err(format!("unsupported manifest media type {other:?}")),
    };
    Ok((media, parsed))
}

fn descriptors(list: &Value) -> Result<Vec<Descriptor>, String> {
    list.as_array()
        .ok_or("a list of descriptors is missing")?
        .iter()
        .map(descriptor)
        .collect()
}

fn descriptor(d: &Value) -> Result<Descriptor, String> {
    let digest = d["digest"].as_str().ok_or("a descriptor has no digest")?;
    digest_hex(digest)?;
    let platform = d["platform"].as_object().map(|p| {
        let mut s = format!(
            "{}/{}",
            p.get("os").and_then(Value::as_str).unwrap_or("unknown"),
            p.get("architecture")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
        );
        if let Some(v) = p.get("variant").and_then(Value::as_str) {
            s.push('/');
            s.push_str(v);
        }
        s
    });
    Ok(Descriptor {
        media_type: d["mediaType"].as_str().unwrap_or_default().to_string(),
        digest: digest.to_string(),
        size: d["size"].as_u64().ok_or("a descriptor has no size")?,
        platform,
    })
}

/// True when `platform` (`os/arch[/variant]`) is one of `wanted`; an entry without a variant
/// matches every variant.
pub fn platform_matches(platform: Option<&str>, wanted: &[String]) -> bool {
    let Some(platform) = platform else {
        return false;
    };
    wanted.iter().any(|w| {
        platform == w
            || platform
                .strip_prefix(w.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// One image named in `index.json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TopLevel {
    /// The reference it was fetched by, as normalised (`registry/repository:tag` or `@digest`).
    pub reference: String,
    /// Its manifest or index.
    pub descriptor: Descriptor,
    /// When `--platform` picked this manifest out of an index: the index's digest.
    pub from_index: Option<String>,
    /// Other normalised references that named it, sorted.
    pub aliases: Vec<String>,
}

/// `index.json` for these images, sorted by reference so the same images give the same bytes.
pub fn index_json(images: &[TopLevel]) -> Vec<u8> {
    let mut images: Vec<&TopLevel> = images.iter().collect();
    images.sort_by(|a, b| a.reference.cmp(&b.reference));
    let manifests: Vec<Value> = images
        .iter()
        .map(|image| {
            let d = &image.descriptor;
            let mut annotations = serde_json::Map::new();
            annotations.insert(REF_NAME.into(), json!(image.reference));
            if let Some(index) = &image.from_index {
                annotations.insert(FROM_INDEX.into(), json!(index));
            }
            if !image.aliases.is_empty() {
                annotations.insert(ALIASES.into(), json!(image.aliases.join(",")));
            }
            let mut entry = json!({
                "mediaType": d.media_type,
                "digest": d.digest,
                "size": d.size,
                "annotations": annotations,
            });
            if let Some(p) = &d.platform {
                let mut parts = p.splitn(3, '/');
                let mut platform = json!({
                    "os": parts.next().unwrap_or_default(),
                    "architecture": parts.next().unwrap_or_default(),
                });
                if let Some(v) = parts.next() {
                    platform["variant"] = json!(v);
                }
                entry["platform"] = platform;
            }
            entry
        })
        .collect();
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    });
    let mut bytes = serde_json::to_vec_pretty(&index).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// The images an `index.json` names.
pub fn read_index_json(bytes: &[u8]) -> Result<Vec<TopLevel>, String> {
    let doc: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("index.json is not JSON: {e}"))?;
    let entries = doc["manifests"]
        .as_array()
        .ok_or("index.json lists no manifests")?;
    entries
        .iter()
        .map(|entry| {
            let descriptor = descriptor(entry)?;
            let annotations = &entry["annotations"];
            Ok(TopLevel {
                reference: annotations[REF_NAME]
                    .as_str()
                    .ok_or("an image in index.json has no reference name")?
                    .to_string(),
                descriptor,
                from_index: annotations[FROM_INDEX].as_str().map(str::to_string),
                aliases: annotations[ALIASES]
                    .as_str()
                    .map(|a| {
                        a.split(',')
                            .filter(|s| !s.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn manifests_list_their_config_then_layers() {
        let m = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D1, "size": 10},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": D2, "size": 20}]});
        let (media, parsed) = parse(&serde_json::to_vec(&m).unwrap()).unwrap();
        assert_eq!(media, OCI_MANIFEST);
        let Parsed::Manifest(blobs) = parsed else {
            panic!("a manifest")
        };
        assert_eq!(
            blobs.iter().map(|b| b.size).collect::<Vec<_>>(),
            [10, 20],
            "config first"
        );
    }

    #[test]
    fn indexes_list_their_platforms_and_unknown_documents_are_refused() {
        let i = json!({"schemaVersion": 2, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": D1, "size": 5,
             "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}]});
        let (media, parsed) = parse(&serde_json::to_vec(&i).unwrap()).unwrap();
        assert_eq!(media, OCI_INDEX, "inferred without a mediaType field");
        let Parsed::Index(entries) = parsed else {
            panic!("an index")
        };
        assert_eq!(entries[0].platform.as_deref(), Some("linux/arm64/v8"));
        assert!(platform_matches(
            Some("linux/arm64/v8"),
            &["linux/arm64".into()]
        ));
        assert!(!platform_matches(
            Some("linux/arm64"),
            &["linux/amd64".into()]
        ));
        assert!(parse(br#"{"schemaVersion":1,"fsLayers":[]}"#).is_err());
        assert!(parse(b"{}").is_err());
        let bad = json!({"manifests": [{"digest": "md5:abc", "size": 1}]});
        assert!(parse(&serde_json::to_vec(&bad).unwrap()).is_err());
    }

    #[test]
    fn index_json_is_stable_and_reads_back() {
        let a = TopLevel {
            reference: "127.0.0.1:5000/b:v1".into(),
            descriptor: Descriptor {
                media_type: OCI_MANIFEST.into(),
                digest: D1.into(),
                size: 5,
                platform: Some("linux/amd64".into()),
            },
            from_index: Some(D2.into()),
            aliases: vec!["127.0.0.1:5000/b:latest".into()],
        };
        let b = TopLevel {
            reference: "127.0.0.1:5000/a:v1".into(),
            descriptor: Descriptor {
                platform: None,
                ..a.descriptor.clone()
            },
            from_index: None,
            aliases: Vec::new(),
        };
        let one = index_json(&[a.clone(), b.clone()]);
        assert_eq!(one, index_json(&[b.clone(), a.clone()]));
        assert_eq!(read_index_json(&one).unwrap(), vec![b, a]);
    }

    #[test]
    fn only_sha256_digests_make_paths() {
        assert_eq!(blob_path(D1).unwrap()[2], &D1[7..]);
        assert!(blob_path("sha256:../../etc").is_err());
        assert!(blob_path(&D1.to_uppercase()).is_err());
        assert_eq!(sha256_digest(b"").len(), 71);
    }
}
