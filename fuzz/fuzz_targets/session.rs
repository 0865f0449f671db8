#![no_main]
//! The files of writer sessions and prunes: heartbeats, fences and garbage lists, as sealed
//! files and as the payload inside one. Decoding must never panic, and what decodes must
//! encode again.

use kairn_format::garbage::GarbageList;
use kairn_format::repofile::RepoFile;
use kairn_format::sealed;
use kairn_format::session::{Fence, Heartbeat};
use libfuzzer_sys::fuzz_target;

fn round_trip<F: RepoFile + PartialEq + std::fmt::Debug>(data: &[u8]) {
    if let Ok(file) = F::from_payload(data) {
        let again = file.to_payload().expect("a decoded file encodes");
        assert_eq!(F::from_payload(&again).ok(), Some(file));
    }
    if let Ok(payload) = sealed::open(kairn_fuzz::keys(), F::SEALED, data) {
        let _ = F::from_payload(&payload);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<Heartbeat>(data);
    round_trip::<Fence>(data);
    round_trip::<GarbageList>(data);
});
