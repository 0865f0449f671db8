//! One criterion benchmark per pipeline stage, on 64 MiB of mixed real data:
//! chunking, keyed BLAKE3, zstd at the default level, XChaCha20-Poly1305, pack assembly,
//! and index lookup and insert at 10 million entries.
//!
//! `cargo bench -p kairn-benches --bench stages`

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use engine::chunker::{Chunker, ChunkerParams};
use engine::crypto::MasterKeys;
use engine::format::blob::{blob_aad, seal_blob};
use engine::format::pack::PackBuilder;
use engine::id::BlobKind;

const MIB: usize = 1 << 20;
const CORPUS: usize = 64 * MIB;

fn stages(c: &mut Criterion) {
    let data = kairn_benches::mixed_corpus(CORPUS);
    let keys = MasterKeys::from_bytes(&[7u8; 96]);
    let chunker = Chunker::new(ChunkerParams::default(), keys.chunker_key())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut chunks = Vec::new();
    chunker
        .for_each_chunk(&data[..], |ch| {
            chunks.push(ch.to_vec());
            Ok(())
        })
        .ok();

    let mut g = c.benchmark_group("stages");
    g.throughput(Throughput::Bytes(CORPUS as u64));
    g.sample_size(10);
    g.bench_function("chunking (fastcdc keyed, 512K/1M/8M)", |b| {
        b.iter(|| {
            let mut n = 0usize;
            chunker
                .for_each_chunk(&data[..], |ch| {
                    n += ch.len();
                    Ok(())
                })
                .ok();
            n
        });
    });
    g.bench_function("keyed blake3 (per chunk)", |b| {
        b.iter(|| {
            chunks
                .iter()
                .map(|ch| keys.data_id(ch).0.0[0] as usize)
                .sum::<usize>()
        });
    });
    g.bench_function("zstd level 3 (per chunk)", |b| {
        let mut out = Vec::new();
        b.iter(|| {
            let mut total = 0;
            for ch in &chunks {
                out.clear();
                engine::compress::encode_into(ch, 3, &mut out);
                total += out.len();
            }
            total
        });
    });
    g.bench_function("xchacha20-poly1305 seal (per chunk)", |b| {
        let mut out = Vec::new();
        b.iter(|| {
            let mut total = 0;
            for ch in &chunks {
                out.clear();
                keys.seal_into(&blob_aad(BlobKind::Data, &keys.data_id(b"x")), ch, &mut out);
                total += out.len();
            }
            total
        });
    });
    g.bench_function(
        "blob pipeline: id + zstd 3 + seal + pack (16 MiB packs)",
        |b| {
            let mut scratch = Vec::new();
            b.iter(|| {
                let mut builder = PackBuilder::with_capacity(17 * MIB);
                let mut packs = 0;
                for ch in &chunks {
                    let id = keys.data_id(ch);
                    builder
                        .add_with(BlobKind::Data, id, ch.len() as u32, |out| {
                            seal_blob(&keys, BlobKind::Data, &id, ch, 3, &mut scratch, out);
                        })
                        .ok();
                    if builder.len() >= 16 * MIB {
                        let full =
                            std::mem::replace(&mut builder, PackBuilder::with_capacity(17 * MIB));
                        packs += full.finish(&keys).1.len();
                    }
                }
                packs + builder.finish(&keys).1.len()
            });
        },
    );
    g.bench_function(
        "pack assembly of sealed blobs (add + header + pack id)",
        |b| {
            let sealed: Vec<Vec<u8>> = chunks.iter().map(|ch| keys.seal(b"aad", ch)).collect();
            b.iter_batched(
                || PackBuilder::with_capacity(CORPUS + MIB),
                |mut builder| {
                    for (i, s) in sealed.iter().enumerate() {
                        builder
                            .add_with(
                                BlobKind::Data,
                                keys.data_id(&i.to_le_bytes()),
                                s.len() as u32,
                                |out| out.extend_from_slice(s),
                            )
                            .ok();
                    }
                    builder.finish(&keys).1.len()
                },
                BatchSize::LargeInput,
            );
        },
    );
    g.finish();
}

fn index(c: &mut Criterion) {
    const N: usize = 10_000_000;
    let (file, ids) = kairn_benches::synthetic_index(N);
    let mut g = c.benchmark_group("index at 10M blobs");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("insert 10M (build and sort)", |b| {
        b.iter(|| engine::index::Index::from_files([&file]).len())
    });
    let index = engine::index::Index::from_files([&file]);
    drop(file);
    let misses: Vec<_> = ids
        .iter()
        .map(|id| {
            let mut m = *id;
            m.0.0[31] ^= 1;
            m
        })
        .take(1_000_000)
        .collect();
    g.throughput(Throughput::Elements(1_000_000));
    g.bench_function("lookup 1M hits", |b| {
        b.iter(|| {
            ids.iter()
                .step_by(10)
                .filter(|id| index.contains(id))
                .count()
        });
    });
    g.bench_function("lookup 1M misses", |b| {
        b.iter(|| misses.iter().filter(|id| index.contains(id)).count())
    });
    g.finish();
}

criterion_group!(benches, stages, index);
criterion_main!(benches);
