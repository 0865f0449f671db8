#![no_main]
//! Key files: JSON, then (for cheap key-derivation settings only, so that an iteration stays
//! fast) unwrapping the master keys with a password.

use kairn_format::keyfile::KeyFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = KeyFile::decode(data) {
        let p = key.kdf_params;
        if p.memory_kib <= 64 && p.iterations <= 2 && p.parallelism <= 2 {
            let _ = key.open(b"fuzz");
        }
        let _ = key.encode().map(|b| KeyFile::decode(&b));
    }
});
