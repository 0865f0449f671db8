#![no_main]
//! Index files: as sealed files, and as the postcard payload inside one.

use kairn_format::index::IndexFile;
use kairn_format::sealed::{self, SealedType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(index) = IndexFile::decode(data) {
        let _ = index.blob_count();
        assert_eq!(index.encode().ok().and_then(|b| IndexFile::decode(&b).ok()), Some(index));
    }
    if let Ok(payload) = sealed::open(kairn_fuzz::keys(), SealedType::Index, data) {
        let _ = IndexFile::decode(&payload);
    }
});
