//! Key files: the master keys wrapped under a password-derived key.
//!
//! A key file is clear JSON, so its KDF parameters can be read before any key is known. Its
//! `sealed_keys` field is base64 of a sealed box (under the Argon2id output, associated data
//! `"kairn key v1"`) holding the 96 bytes of the master keys. The file is named by its BLAKE3
//! hash, so damage is told apart from a wrong password.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::check_version;
use crate::crypto::{self, KdfParams, MasterKeys};
use crate::error::{Error, ErrorKind, Result};

/// Associated data of the sealed master keys.
pub const KEY_AAD: &[u8] = b"kairn key v1";
/// Associated data of an append-only key's sealed master keys: the flag is authenticated, so
/// a copy of the file without it does not open.
pub const APPEND_ONLY_KEY_AAD: &[u8] = b"kairn key v1 append-only";

/// A decoded key file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    /// Format version of the key file.
    pub version: u8,
    /// Always `argon2id`.
    pub kdf: String,
    /// Argon2id cost parameters.
    pub kdf_params: KdfParams,
    /// Base64 of the 32-byte salt.
    pub salt: String,
    /// When the key was made, RFC 3339.
    pub created: String,
    /// Host that made the key.
    pub host: String,
    /// User that made the key.
    pub username: String,
    /// Base64 of the sealed master keys.
    pub sealed_keys: String,
    /// Whoever opens the repository with this key may add, never delete (§5).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub append_only: bool,
}

impl KeyFile {
    /// Wraps `keys` under `password`.
    pub fn create(
        keys: &MasterKeys,
        password: &[u8],
        params: KdfParams,
        host: &str,
        user: &str,
        append_only: bool,
    ) -> Result<Self> {
        let salt: [u8; 32] = crypto::random_bytes();
        let kek = params.derive(password, &salt)?;
        let sealed = crypto::seal_with_key(&kek, aad(append_only), &keys.to_bytes());
        Ok(Self {
            version: crate::FORMAT_VERSION,
            kdf: "argon2id".into(),
            kdf_params: params,
            salt: B64.encode(salt),
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            host: host.into(),
            username: user.into(),
            sealed_keys: B64.encode(sealed),
            append_only,
        })
    }

    /// Unwraps the master keys; [`ErrorKind::WrongPassword`] when the password does not fit.
    pub fn open(&self, password: &[u8]) -> Result<MasterKeys> {
        let salt = B64
            .decode(&self.salt)
            .map_err(|e| Error::corrupt("key file salt").with_source(e))?;
        let sealed = B64
            .decode(&self.sealed_keys)
            .map_err(|e| Error::corrupt("key file data").with_source(e))?;
        let kek = self.kdf_params.derive(password, &salt)?;
        let plain = crypto::open_with_key(&kek, aad(self.append_only), &sealed)
            .ok_or_else(|| Error::new(ErrorKind::WrongPassword, "wrong password"))?;
        let bytes: &[u8; MasterKeys::LEN] = plain
            .as_slice()
            .try_into()
            .map_err(|_| Error::corrupt("master keys have the wrong length"))?;
        Ok(MasterKeys::from_bytes(bytes))
    }

    /// JSON bytes.
    pub fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(self)
            .map_err(|e| Error::internal("key file does not encode").with_source(e))
    }

    /// Parses and validates JSON bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let k: Self = serde_json::from_slice(bytes)
            .map_err(|e| Error::corrupt("key file is not valid").with_source(e))?;
        check_version(k.version, "key file")?;
        if k.kdf != "argon2id" {
            return Err(Error::new(
                ErrorKind::UnsupportedVersion,
                format!("unknown key derivation {:?}", k.kdf),
            ));
        }
        let p = k.kdf_params;
        if p.memory_kib > 4 << 20 || p.iterations > 1000 || p.parallelism == 0 || p.parallelism > 64
        {
            return Err(Error::corrupt(
                "key file asks for unreasonable Argon2id costs",
            ));
        }
        Ok(k)
    }
}

fn aad(append_only: bool) -> &'static [u8] {
    if append_only {
        APPEND_ONLY_KEY_AAD
    } else {
        KEY_AAD
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> KdfParams {
        KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[test]
    fn wrap_and_unwrap() {
        let keys = MasterKeys::generate();
        let kf = KeyFile::create(&keys, b"pw", cheap(), "h", "u", false).unwrap();
        let back = KeyFile::decode(&kf.encode().unwrap()).unwrap();
        assert_eq!(back.open(b"pw").unwrap().to_bytes(), keys.to_bytes());
        assert_eq!(
            back.open(b"nope").unwrap_err().kind(),
            ErrorKind::WrongPassword
        );
    }

    #[test]
    fn the_append_only_flag_cannot_be_stripped() {
        let keys = MasterKeys::generate();
        let kf = KeyFile::create(&keys, b"pw", cheap(), "h", "u", true).unwrap();
        let back = KeyFile::decode(&kf.encode().unwrap()).unwrap();
        assert!(back.append_only);
        assert_eq!(back.open(b"pw").unwrap().to_bytes(), keys.to_bytes());
        let stripped = KeyFile {
            append_only: false,
            ..back
        };
        assert!(
            stripped.open(b"pw").is_err(),
            "a key without its flag must not open"
        );
    }
}
