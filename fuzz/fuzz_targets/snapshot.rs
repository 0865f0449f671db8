#![no_main]
//! Snapshots: as sealed files, and as the JSON payload inside one.

use kairn_format::sealed::{self, SealedType};
use kairn_format::snapshot::Snapshot;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(snapshot) = Snapshot::decode(data) {
        let _ = snapshot.datetime();
        let _ = snapshot.encode().map(|b| Snapshot::decode(&b));
    }
    if let Ok(payload) = sealed::open(kairn_fuzz::keys(), SealedType::Snapshot, data)
        && let Ok(snapshot) = Snapshot::decode(&payload)
    {
        let _ = snapshot.datetime();
    }
});
