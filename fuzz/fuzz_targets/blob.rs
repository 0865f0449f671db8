#![no_main]
//! Stored blobs: decryption, decompression and the id check, with the plaintext length an index
//! claims. Input: `kind (1) ‖ claimed raw length (4, LE) ‖ id (32) ‖ stored bytes`.

use kairn_format::compress;
use kairn_format::blob::{open_blob, open_blob_in_place};
use kairn_format::id::BlobKind;
use kairn_format::id::{BlobId, Id};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 37 {
        return;
    }
    let kind = if data[0] & 1 == 0 { BlobKind::Data } else { BlobKind::Tree };
    let raw_len = u32::from_le_bytes([data[1], data[2], data[3], data[4]]) as usize;
    let Ok(id_bytes) = <[u8; 32]>::try_from(&data[5..37]) else {
        return;
    };
    let id = BlobId(Id(id_bytes));
    let stored = &data[37..];
    let keys = kairn_fuzz::keys();
    let opened = open_blob(keys, kind, &id, stored, raw_len);
    let mut copy = stored.to_vec();
    let in_place = open_blob_in_place(keys, kind, &id, &mut copy, raw_len).map(|c| c.into_owned());
    assert_eq!(opened.ok(), in_place.ok());
    // Decompression alone, as if the bytes had authenticated.
    if let Ok(out) = compress::decode(stored, raw_len) {
        assert_eq!(out.len(), raw_len);
    }
    let _ = compress::decode_unbounded(stored, 1 << 20);
});
