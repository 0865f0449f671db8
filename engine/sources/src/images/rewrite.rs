//! A namespace restore that pushed its images to another registry points its workloads there:
//! every container image that names a stored image (by its reference or one of its aliases)
//! becomes `REGISTRY[/PREFIX]/repository@digest`, so pods pull exactly what ran, from where
//! the images now are. Pure: objects in, objects out.

use std::collections::BTreeMap;

use oci_client::Reference;
use serde_json::Value;

use super::layout::TopLevel;
use super::push::retarget;
use kairn_format::error::Result;

/// The fields of a pod spec that hold containers.
const CONTAINER_LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// An image reference as stored: normalised as Docker does (`nginx` is
/// `docker.io/library/nginx:latest`), or `None` when it does not parse.
pub fn normalise(image: &str) -> Option<String> {
    image.parse::<Reference>().ok().map(|r| r.whole())
}

/// For each stored image, its reference and aliases mapped to where it is after a push to
/// `to` (`host[:port][/prefix]`), by digest.
pub fn image_map(images: &[TopLevel], to: &str) -> Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for image in images {
        let Ok(stored) = image.reference.parse::<Reference>() else {
            continue;
        };
        let moved = retarget(&stored, Some(to))?;
        let by_digest = format!(
            "{}/{}@{}",
            moved.registry(),
            moved.repository(),
            image.descriptor.digest
        );
        for name in std::iter::once(&image.reference).chain(&image.aliases) {
            map.insert(name.clone(), by_digest.clone());
        }
    }
    Ok(map)
}

/// Rewrites every container image in `obj` (pods, and the pod templates of any workload or
/// custom resource) that `map` knows; returns how many were rewritten.
pub fn rewrite_images(obj: &mut Value, map: &BTreeMap<String, String>) -> usize {
    match obj {
        Value::Object(fields) => {
            let mut n = 0;
            for (key, value) in fields.iter_mut() {
                if CONTAINER_LISTS.contains(&key.as_str())
                    && let Value::Array(containers) = value
                {
                    for c in containers.iter_mut() {
                        n += rewrite_container(c, map);
                    }
                } else {
                    n += rewrite_images(value, map);
                }
            }
            n
        }
        Value::Array(items) => items.iter_mut().map(|v| rewrite_images(v, map)).sum(),
        _ => 0,
    }
}

fn rewrite_container(container: &mut Value, map: &BTreeMap<String, String>) -> usize {
    let Some(image) = container.get("image").and_then(Value::as_str) else {
        return 0;
    };
    match normalise(image).and_then(|n| map.get(&n)) {
        Some(new) => {
            container["image"] = Value::String(new.clone());
            1
        }
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::images::layout::Descriptor;
    use serde_json::json;

    #[test]
    fn workloads_are_pointed_at_the_pushed_digests() {
        let digest = format!("sha256:{}", "c".repeat(64));
        let images = [TopLevel {
            reference: format!("old.example:5000/shop/web@{digest}"),
            descriptor: Descriptor {
                media_type: String::new(),
                digest: digest.clone(),
                size: 1,
                platform: None,
            },
            from_index: None,
            aliases: vec!["old.example:5000/shop/web:v1".into()],
        }];
        let map = image_map(&images, "new.example/dr").unwrap();
        let mut deploy = json!({"kind": "Deployment", "spec": {"template": {"spec": {
            "initContainers": [{"name": "i", "image": "old.example:5000/shop/web:v1"}],
            "containers": [{"name": "a", "image": "old.example:5000/shop/web:v1"},
                           {"name": "b", "image": "busybox:1"}]}}}});
        assert_eq!(rewrite_images(&mut deploy, &map), 2);
        let expected = format!("new.example/dr/shop/web@{digest}");
        let spec = &deploy["spec"]["template"]["spec"];
        assert_eq!(spec["containers"][0]["image"], expected.as_str());
        assert_eq!(spec["initContainers"][0]["image"], expected.as_str());
        assert_eq!(
            spec["containers"][1]["image"], "busybox:1",
            "not stored: unchanged"
        );
        assert_eq!(
            normalise("nginx").as_deref(),
            Some("docker.io/library/nginx:latest")
        );
    }
}
