//! A caller who may see only some snapshots (a tenant of one namespace, through the node agent)
//! finds them by id, prefix or `latest`, and learns nothing of the rest: a miss and an ambiguous
//! prefix read the same whether or not another namespace's snapshot matches.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use engine::backend::{Backend, OpendalBackend};
use engine::backup::{BackupOptions, backup};
use engine::crypto::KdfParams;
use engine::format::snapshot::{Snapshot, Source};
use engine::id::SnapshotId;
use engine::index::Index;
use engine::progress::NoProgress;
use engine::repo::{InitOptions, Repository};
use engine::session::DEFAULT_EXPIRY;
use engine::snapshots::find_visible;

fn repository() -> Repository {
    let backend: Arc<dyn Backend> = Arc::new(OpendalBackend::memory().unwrap());
    let opts = InitOptions {
        kdf: KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        ..Default::default()
    };
    Repository::init(backend, b"pw", &opts).unwrap()
}

fn volume_of(repo: &Repository, namespace: &str, n: u32) -> SnapshotId {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("f"), format!("{namespace} {n}")).unwrap();
    let session = repo.begin_session("backup", DEFAULT_EXPIRY).unwrap();
    let index = Index::load(repo).unwrap();
    let opts = BackupOptions {
        paths: vec![dir.path().to_path_buf()],
        source: Source {
            namespace: Some(namespace.to_string()),
            pvc: Some("db".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let outcome = backup(repo, &session, &index, &opts, &NoProgress).unwrap();
    session.end().unwrap();
    outcome.id
}

fn of(namespace: &'static str) -> impl Fn(&Snapshot) -> bool {
    move |s| s.source.namespace.as_deref() == Some(namespace)
}

#[test]
fn another_namespaces_snapshot_is_not_there_for_a_tenant() {
    let repo = repository();
    let mut shop = Vec::new();
    let mut bank = Vec::new();
    for n in 0..8 {
        shop.push(volume_of(&repo, "shop", n));
        bank.push(volume_of(&repo, "bank", n));
    }
    // Its own, by full id and by prefix.
    let own = shop[3].to_hex();
    assert_eq!(find_visible(&repo, &own, of("shop")).unwrap().0, shop[3]);
    assert_eq!(
        find_visible(&repo, &own[..12], of("shop")).unwrap().0,
        shop[3]
    );
    // Another namespace's, by full id: the same answer as an id nobody has.
    let theirs = bank[0].to_hex();
    let refused = find_visible(&repo, &theirs, of("shop")).unwrap_err();
    let nobody = "f".repeat(64);
    let missing = find_visible(&repo, &nobody, of("shop")).unwrap_err();
    assert_eq!(refused.kind(), missing.kind());
    assert_eq!(
        refused.to_string().replace(&theirs, "ID"),
        missing.to_string().replace(&nobody, "ID")
    );
    // A prefix that one of its own and some of bank's share is unique for the tenant.
    for id in &shop {
        let hex = id.to_hex();
        let prefix = &hex[..1];
        let visible: Vec<_> = shop
            .iter()
            .filter(|i| i.to_hex().starts_with(prefix))
            .collect();
        if visible.len() == 1 {
            assert_eq!(find_visible(&repo, prefix, of("shop")).unwrap().0, *id);
        }
    }
    // `latest` is the newest of its own.
    assert_eq!(
        find_visible(&repo, "latest", of("shop")).unwrap().0,
        shop[7]
    );
    assert_eq!(
        find_visible(&repo, "latest", of("bank")).unwrap().0,
        bank[7]
    );
}
