#![no_main]
//! etcd's snapshot stream as the JSON gateway sends it: whatever the lines hold, decoding and
//! checking end in bytes or an error, never a panic, and a stream is only accepted when its
//! last 32 bytes are the SHA-256 of the rest.

use std::io::Read;

use kairn_sources::etcd::gateway::GatewayStream;
use kairn_sources::etcd::verify::VerifiedReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut reader = VerifiedReader::new(GatewayStream::new(data));
    let mut out = Vec::new();
    if reader.read_to_end(&mut out).is_ok() {
        if let Some(Ok(hex)) = reader.verdict() {
            assert_eq!(out.len() % 512, 32);
            assert_eq!(hex.len(), 64);
        }
    }
    // The checker alone, on raw bytes.
    let mut raw = VerifiedReader::new(data);
    let mut out = Vec::new();
    let _ = raw.read_to_end(&mut out);
});
