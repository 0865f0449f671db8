//! Keys and authenticated encryption: XChaCha20-Poly1305 sealed boxes and Argon2id (the keyed
//! blob ids that use the same master keys are the hash stage, `hash.rs`).
//!
//! A sealed box is `nonce (24) ‖ ciphertext ‖ tag (16)`. The associated data always names what the
//! box holds (a blob's kind and id, a file's header), so a valid box cannot be replayed in the
//! place of another. Nothing here does I/O.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

/// Bytes a sealed box adds to its plaintext.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;
/// Nonce length of XChaCha20-Poly1305.
pub const NONCE_LEN: usize = 24;
/// Authentication tag length.
pub const TAG_LEN: usize = 16;

/// The repository's secret key set, generated at `init` and wrapped by every key file.
#[derive(Clone)]
pub struct MasterKeys {
    encryption: [u8; 32],
    /// The key of blob ids (`hash.rs`).
    pub(crate) id: [u8; 32],
    chunker: [u8; 32],
}

impl MasterKeys {
    /// Length of the serialized key set.
    pub const LEN: usize = 96;

    /// A fresh random key set.
    pub fn generate() -> Self {
        let mut bytes = [0u8; Self::LEN];
        rand::rng().fill_bytes(&mut bytes);
        Self::from_bytes(&bytes)
    }

    /// Builds the key set from `encryption ‖ id ‖ chunker`.
    pub fn from_bytes(bytes: &[u8; Self::LEN]) -> Self {
        let mut k = Self {
            encryption: [0; 32],
            id: [0; 32],
            chunker: [0; 32],
        };
        k.encryption.copy_from_slice(&bytes[..32]);
        k.id.copy_from_slice(&bytes[32..64]);
        k.chunker.copy_from_slice(&bytes[64..]);
        k
    }

    /// Serializes as `encryption ‖ id ‖ chunker`.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        out[..32].copy_from_slice(&self.encryption);
        out[32..64].copy_from_slice(&self.id);
        out[64..].copy_from_slice(&self.chunker);
        out
    }

    /// The key of MACs over files kept only in a local cache (the index run), derived so that
    /// it opens nothing stored in the repository.
    pub fn local_cache_key(&self) -> [u8; 32] {
        blake3::derive_key("kairn 2026-12 local index run MAC", &self.encryption)
    }

    /// The chunker key, from which the gear table is derived.
    pub fn chunker_key(&self) -> &[u8; 32] {
        &self.chunker
    }

    /// Seals `plaintext` with a random nonce, appending the box to `out`.
    pub fn seal_into(&self, aad: &[u8], plaintext: &[u8], out: &mut Vec<u8>) {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        seal_with_nonce(&self.encryption, &nonce, aad, plaintext, out);
    }

    /// Seals `plaintext` with a random nonce into a new buffer.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
        self.seal_into(aad, plaintext, &mut out);
        out
    }

    /// Opens a sealed box; any change to the box or the associated data is [`ErrorKind::Corrupt`].
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>> {
        open_with_key(&self.encryption, aad, sealed).ok_or_else(|| {
            Error::corrupt("authentication failed: the data was changed or is damaged")
        })
    }

    /// Opens a sealed box in place and returns the plaintext, a slice of `sealed`: no copy and
    /// no allocation. On failure the buffer's content is unspecified.
    pub fn open_in_place<'b>(&self, aad: &[u8], sealed: &'b mut [u8]) -> Result<&'b [u8]> {
        use chacha20poly1305::aead::AeadInPlace;
        let fail = || Error::corrupt("authentication failed: the data was changed or is damaged");
        if sealed.len() < SEAL_OVERHEAD {
            return Err(fail());
        }
        let (nonce, rest) = sealed.split_at_mut(NONCE_LEN);
        let (ct, tag) = rest.split_at_mut(rest.len() - TAG_LEN);
        XChaCha20Poly1305::new((&self.encryption).into())
            .decrypt_in_place_detached(
                XNonce::from_slice(nonce),
                aad,
                ct,
                chacha20poly1305::Tag::from_slice(tag),
            )
            .map_err(|_| fail())?;
        Ok(ct)
    }

    /// Seals with a caller-chosen nonce: only for the published test vectors.
    #[doc(hidden)]
    pub fn seal_with_fixed_nonce(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], pt: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        seal_with_nonce(&self.encryption, nonce, aad, pt, &mut out);
        out
    }
}

impl std::fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKeys(..)")
    }
}

fn seal_with_nonce(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    pt: &[u8],
    out: &mut Vec<u8>,
) {
    use chacha20poly1305::aead::AeadInPlace;
    let cipher = XChaCha20Poly1305::new(key.into());
    out.reserve(NONCE_LEN + pt.len() + TAG_LEN);
    out.extend_from_slice(nonce);
    let start = out.len();
    out.extend_from_slice(pt);
    // In place, so sealing a blob straight into a pack needs no buffer of its own. Encryption
    // cannot fail for inputs below 256 GiB.
    match cipher.encrypt_in_place_detached(XNonce::from_slice(nonce), aad, &mut out[start..]) {
        Ok(tag) => out.extend_from_slice(&tag),
        Err(_) => out.truncate(start - NONCE_LEN),
    }
}

/// Opens a box sealed under `key`; `None` when authentication fails or the box is too short.
pub fn open_with_key(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < SEAL_OVERHEAD {
        return None;
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    XChaCha20Poly1305::new(key.into())
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
        .ok()
}

/// Seals under a raw key with a random nonce (used for key-encryption keys).
pub fn seal_with_key(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let mut out = Vec::new();
    seal_with_nonce(key, &nonce, aad, plaintext, &mut out);
    out
}

/// Argon2id parameters, stored in each key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
    /// Degree of parallelism (lanes).
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// RFC 9106's second recommended option, with one lane: 64 MiB, 3 passes.
    fn default() -> Self {
        Self {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    }
}

/// The most Argon2id cost a key file may ask for before it is tried (repo-format.md, key
/// files): a key file planted in the repository must not make every command that opens it
/// allocate gigabytes or run for minutes. The defaults are four times the memory and about
/// five times the passes of what `init` makes ([`KdfParams::default`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfLimit {
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
}

impl Default for KdfLimit {
    fn default() -> Self {
        Self {
            memory_kib: 256 * 1024,
            iterations: 16,
        }
    }
}

impl KdfLimit {
    /// What in `params` is over this limit, said for people; `None` when nothing is.
    pub fn excess(&self, params: &KdfParams) -> Option<String> {
        let mut over = Vec::new();
        if params.memory_kib > self.memory_kib {
            over.push(format!(
                "memory {} MiB > {} MiB",
                params.memory_kib.div_ceil(1024),
                self.memory_kib / 1024
            ));
        }
        if params.iterations > self.iterations {
            over.push(format!(
                "passes {} > {}",
                params.iterations, self.iterations
            ));
        }
        (!over.is_empty()).then(|| over.join(", "))
    }
}

impl KdfParams {
    /// Derives a 32-byte key-encryption key from a password and salt with Argon2id (v0x13).
    pub fn derive(&self, password: &[u8], salt: &[u8]) -> Result<[u8; 32]> {
        let params =
            argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
                .map_err(|e| {
                    Error::new(
                        ErrorKind::InvalidInput,
                        format!("invalid Argon2id parameters: {e}"),
                    )
                })?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = [0u8; 32];
        argon
            .hash_password_into(password, salt, &mut out)
            .map_err(|e| Error::new(ErrorKind::InvalidInput, format!("Argon2id failed: {e}")))?;
        Ok(out)
    }
}

/// Fills a fresh random buffer of `N` bytes.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    rand::rng().fill_bytes(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_tamper_detection() {
        let keys = MasterKeys::generate();
        let sealed = keys.seal(b"aad", b"hello");
        assert_eq!(keys.open(b"aad", &sealed).unwrap(), b"hello");
        assert!(keys.open(b"other", &sealed).is_err());
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert_eq!(
                keys.open(b"aad", &bad).unwrap_err().kind(),
                ErrorKind::Corrupt
            );
        }
        assert!(keys.open(b"aad", &sealed[..sealed.len() - 1]).is_err());
        let mut in_place = sealed.clone();
        assert_eq!(keys.open_in_place(b"aad", &mut in_place).unwrap(), b"hello");
        let mut bad = sealed.clone();
        bad[30] ^= 1;
        assert!(keys.open_in_place(b"aad", &mut bad).is_err());
        assert!(keys.open(b"aad", &[]).is_err());
    }

    #[test]
    fn other_keys_cannot_open() {
        let a = MasterKeys::generate();
        let b = MasterKeys::generate();
        assert!(b.open(b"x", &a.seal(b"x", b"secret")).is_err());
        assert_ne!(a.data_id(b"same"), b.data_id(b"same"));
        assert_ne!(a.data_id(b"same"), a.tree_id(b"same"));
    }
}
