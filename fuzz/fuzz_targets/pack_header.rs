#![no_main]
//! A whole pack: its trailer, its sealed header, and the blob entries the header claims.

use kairn_format::blob::open_blob;
use kairn_format::pack::read_header_from_bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let keys = kairn_fuzz::keys();
    if let Ok(header) = read_header_from_bytes(keys, data) {
        for e in &header.entries {
            // The header is checked: every entry lies inside the pack.
            let start = e.offset as usize;
            let stored = &data[start..start + e.length as usize];
            let _ = open_blob(keys, e.kind, &e.id, stored, e.raw_length as usize);
        }
    }
});
