//! What every fuzz target shares: the master keys the seed corpora were sealed with.
//!
//! `seeds/master.key` is written by `cargo run -p kairn-engine --example fuzz-seeds`, together
//! with the seeds, from a real repository. Sealed seeds open with it, so the fuzzer starts past
//! authentication and its mutations test what authentication rejects.

use kairn_format::crypto::MasterKeys;
use std::sync::OnceLock;

static KEY_BYTES: &[u8] = include_bytes!("../seeds/master.key");

/// The keys of the repository the seeds come from.
pub fn keys() -> &'static MasterKeys {
    static KEYS: OnceLock<MasterKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let bytes: &[u8; MasterKeys::LEN] = KEY_BYTES
            .try_into()
            .expect("seeds/master.key holds the master keys");
        MasterKeys::from_bytes(bytes)
    })
}
