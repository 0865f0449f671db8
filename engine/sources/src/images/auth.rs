//! Registry credentials from a Docker `config.json` (what `docker login`, `skopeo login` and a
//! `kubernetes.io/dockerconfigjson` Secret hold). Secrets never reach a log: [`Credential`]'s
//! `Debug` hides them.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::Value;

/// Docker Hub's key in `config.json`, which `docker login` writes for `docker.io` images.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// How to log in to one registry: a user name and password (sent as HTTP basic auth, or
/// exchanged for a bearer token where the registry asks for one).
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The user.
    pub username: String,
    /// The password.
    pub password: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential({}, <hidden>)", self.username)
    }
}

/// Credentials by registry host (`host[:port]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    by_host: BTreeMap<String, Credential>,
}

impl Credentials {
    /// Adds the registries of a `config.json` document (or a Secret's `.dockercfg`, which is
    /// the `auths` map alone); entries already known are kept.
    pub fn add_config(&mut self, bytes: &[u8]) -> Result<usize, String> {
        let doc: Value = serde_json::from_slice(bytes)
            .map_err(|e| format!("the registry credentials are not JSON: {e}"))?;
        let auths = match doc.get("auths") {
            Some(auths) => auths,
            None if doc.get("credsStore").is_some() || doc.get("credHelpers").is_some() => {
                return Err(
                    "credential helpers (credsStore, credHelpers) are not supported: \
                            give a config.json with an auths entry"
                        .into(),
                );
            }
            None => &doc,
        };
        let auths = auths
            .as_object()
            .ok_or("the registry credentials have no auths map")?;
        let mut added = 0;
        for (key, entry) in auths {
            let host = host_of(key);
            if self.by_host.contains_key(&host) {
                continue;
            }
            if let Some(credential) =
                entry_credential(entry).map_err(|e| format!("the credentials for {host}: {e}"))?
            {
                self.by_host.insert(host, credential);
                added += 1;
            }
        }
        Ok(added)
    }

    /// Sets the credential of one registry.
    pub fn insert(&mut self, host: &str, credential: Credential) {
        self.by_host.insert(host_of(host), credential);
    }

    /// The credential for a registry host, if any.
    pub fn get(&self, host: &str) -> Option<&Credential> {
        let host = host_of(host);
        self.by_host.get(&host)
    }

    /// True when no registry has a credential.
    pub fn is_empty(&self) -> bool {
        self.by_host.is_empty()
    }
}

/// The registry a `config.json` key names: a URL or a bare host, with Docker Hub's names
/// made one.
fn host_of(key: &str) -> String {
    let host = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = host.split('/').next().unwrap_or(host);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".into(),
        _ if key == DOCKER_HUB_KEY => "docker.io".into(),
        h => h.to_ascii_lowercase(),
    }
}

fn entry_credential(entry: &Value) -> Result<Option<Credential>, String> {
    if let Some(auth) = entry["auth"].as_str().filter(|a| !a.is_empty()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| "auth is not base64")?;
        let decoded = String::from_utf8(decoded).map_err(|_| "auth is not UTF-8")?;
        let (username, password) = decoded.split_once(':').ok_or("auth is not user:password")?;
        return Ok(Some(Credential {
            username: username.into(),
            password: password.into(),
        }));
    }
    match (entry["username"].as_str(), entry["password"].as_str()) {
        (Some(u), Some(p)) if !u.is_empty() => Ok(Some(Credential {
            username: u.into(),
            password: p.into(),
        })),
        // An `identitytoken` alone is an OAuth2 refresh token, which the registry client
        // cannot exchange: such an entry gives no credential, and the pull goes anonymous.
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_json_entries_are_found_by_host() {
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret:with:colons");
        let config = format!(
            r#"{{"auths": {{
                "127.0.0.1:5000": {{"auth": "{auth}"}},
                "https://index.docker.io/v1/": {{"username": "bob", "password": "pw"}},
                "https://Quay.io/v2/": {{"username": "q", "password": "tok"}},
                "acr.example": {{"identitytoken": "refresh"}},
                "empty.example": {{}}
            }}}}"#
        );
        let mut c = Credentials::default();
        assert_eq!(c.add_config(config.as_bytes()).unwrap(), 3);
        assert_eq!(
            c.get("127.0.0.1:5000"),
            Some(&Credential {
                username: "alice".into(),
                password: "s3cret:with:colons".into()
            })
        );
        assert_eq!(c.get("docker.io").unwrap().username, "bob");
        assert_eq!(c.get("quay.io").unwrap().password, "tok");
        assert_eq!(c.get("acr.example"), None);
        assert_eq!(c.get("empty.example"), None);
        assert!(
            !format!("{c:?}").contains("s3cret"),
            "secrets stay out of Debug"
        );
    }

    #[test]
    fn a_dockercfg_map_alone_is_accepted_and_junk_is_refused() {
        let mut c = Credentials::default();
        let cfg = br#"{"r.example:443": {"username": "u", "password": "p"}}"#;
        assert_eq!(c.add_config(cfg).unwrap(), 1);
        assert!(c.add_config(b"not json").is_err());
        assert!(c.add_config(br#"{"credsStore": "desktop"}"#).is_err());
        assert!(
            c.add_config(br#"{"auths": {"x": {"auth": "%%%"}}}"#)
                .is_err()
        );
    }
}
