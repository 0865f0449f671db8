#![no_main]
//! The repository config: as a sealed file, and as the payload inside one.

use kairn_format::config::Config;
use kairn_format::sealed::{self, SealedType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(config) = Config::decode(data) {
        let _ = config.validate();
    }
    if let Ok(payload) = sealed::open(kairn_fuzz::keys(), SealedType::Config, data)
        && let Ok(config) = Config::decode(&payload)
    {
        let _ = config.validate();
    }
});
