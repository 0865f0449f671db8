#![no_main]
//! The content-defined chunker: chunks cover the input exactly, in order, within the size
//! bounds, and the same input always cuts the same way. Small sizes, so inputs make many chunks.

use kairn_format::chunker::{Chunker, ChunkerParams};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let params = ChunkerParams { min_size: 64, avg_size: 256, max_size: 1024 };
    let chunker = Chunker::new(params, &[7; 32]).expect("valid parameters");
    let mut lengths = Vec::new();
    let mut joined = Vec::with_capacity(data.len());
    let read = chunker
        .for_each_chunk(data, |c| {
            lengths.push(c.len());
            joined.extend_from_slice(c);
            Ok(())
        })
        .expect("reading a slice cannot fail")
        .expect("the callback does not fail");
    assert_eq!(read as usize, data.len());
    assert_eq!(joined, data);
    for (i, &n) in lengths.iter().enumerate() {
        assert!(n <= params.max_size as usize);
        assert!(n > 0);
        if i + 1 < lengths.len() {
            assert!(n >= params.min_size as usize);
        }
    }
    // The first cut of the whole input is the first chunk.
    if let Some(&first) = lengths.first() {
        assert_eq!(chunker.cut(data), first);
    }
});
