//! The test vectors of `repo-format.md` section 17, computed from the code and compared with
//! the values written in the document. Run with `KAIRN_PRINT_VECTORS=1` to print them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use engine::chunker::{Chunker, ChunkerParams};
use engine::crypto::{KdfParams, MasterKeys};
use engine::format::blob::blob_aad;
use engine::format::tree::{Extent, Node, NodeKind, Timestamp, Tree, Xattr};
use engine::id::BlobKind;

fn keys() -> MasterKeys {
    let mut bytes = [0u8; 96];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = i as u8;
    }
    MasterKeys::from_bytes(&bytes)
}

fn xorshift(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x0123_4567_89ab_cdef;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn sample_tree() -> Tree {
    let node = |name: &[u8], kind| Node {
        name: name.to_vec(),
        kind,
        mode: 0o644,
        uid: 1000,
        gid: 1000,
        user: "alice".into(),
        group: "staff".into(),
        mtime: Timestamp {
            secs: 1_700_000_000,
            nanos: 5,
        },
        atime: Timestamp {
            secs: 1_700_000_001,
            nanos: 6,
        },
        ctime: Timestamp {
            secs: 1_700_000_002,
            nanos: 7,
        },
        inode: 42,
        device: 2049,
        links: 1,
        xattrs: vec![],
    };
    let k = keys();
    let mut file = node(
        b"hello.txt",
        NodeKind::File {
            size: 17,
            content: vec![Extent::Data {
                id: k.data_id(b"kairn test vector"),
                len: 17,
            }],
        },
    );
    file.xattrs.push(Xattr {
        name: b"user.a".to_vec(),
        value: b"b".to_vec(),
    });
    let link = node(
        b"link",
        NodeKind::Symlink {
            target: b"hello.txt".to_vec(),
        },
    );
    Tree {
        nodes: vec![file, link],
    }
}

fn computed() -> Vec<(&'static str, String)> {
    let k = keys();
    let mut v = Vec::new();
    v.push((
        "data_id(\"kairn test vector\")",
        k.data_id(b"kairn test vector").to_hex(),
    ));
    v.push((
        "tree_id(\"kairn test vector\")",
        k.tree_id(b"kairn test vector").to_hex(),
    ));

    let params = ChunkerParams {
        min_size: 4096,
        avg_size: 16384,
        max_size: 65536,
    };
    let chunker = Chunker::new(params, k.chunker_key()).unwrap();
    let mut lens = Vec::new();
    chunker
        .for_each_chunk(&xorshift(262_144)[..], |c| {
            lens.push(c.len().to_string());
            Ok(())
        })
        .unwrap()
        .unwrap();
    v.push((
        "chunk lengths (4096/16384/65536, 256 KiB xorshift)",
        lens.join(","),
    ));

    let nonce = [0x11u8; 24];
    let id = k.data_id(b"hello");
    let sealed = k.seal_with_fixed_nonce(
        &nonce,
        &blob_aad(BlobKind::Data, &id),
        &[&[0u8][..], b"hello"].concat(),
    );
    v.push((
        "sealed data blob \"hello\" (raw, nonce 11*24)",
        hex(&sealed),
    ));

    let tree = sample_tree();
    let encoded = tree.encode().unwrap();
    v.push(("sample tree, postcard", hex(&encoded)));
    v.push(("sample tree, tree_id", k.tree_id(&encoded).to_hex()));

    let kek = KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    }
    .derive(b"password", &[0x22u8; 32])
    .unwrap();
    v.push(("argon2id(\"password\", 22*32, 64 KiB, t=1, p=1)", hex(&kek)));
    v
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Reads `name: value` lines from the ```vectors block of repo-format.md.
fn documented() -> Vec<(String, String)> {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../repo-format.md")).unwrap();
    let start = doc
        .find("```vectors")
        .expect("repo-format.md has a ```vectors block");
    let body = &doc[start + "```vectors".len()..];
    let body = &body[..body.find("```").expect("block end")];
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(": ").expect("name: value");
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect()
}

#[test]
fn the_documented_test_vectors_match_the_code() {
    let computed = computed();
    if std::env::var_os("KAIRN_PRINT_VECTORS").is_some() {
        for (k, v) in &computed {
            println!("{k}: {v}");
        }
    }
    let documented = documented();
    assert_eq!(
        documented.len(),
        computed.len(),
        "every vector is documented"
    );
    for ((dk, dv), (ck, cv)) in documented.iter().zip(&computed) {
        assert_eq!(dk, ck);
        assert_eq!(dv, cv, "vector {ck:?} differs from repo-format.md");
    }
}

#[test]
fn the_sample_tree_decodes_back() {
    let tree = sample_tree();
    assert_eq!(Tree::decode(&tree.encode().unwrap()).unwrap(), tree);
}
