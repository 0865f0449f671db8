#![no_main]
//! Trees, the blobs an attacker with the key controls most directly: every name a decoded tree
//! yields must be safe to join to a restore target.

use kairn_format::tree::{Tree, validate_name};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tree) = Tree::decode(data) {
        for node in &tree.nodes {
            assert!(validate_name(&node.name).is_ok(), "decoded an unsafe name");
            let _ = node.display_name();
            let _ = node.size();
            let _ = node.subtree();
        }
        if let Ok(again) = tree.encode() {
            let _ = Tree::decode(&again);
        }
    }
});
