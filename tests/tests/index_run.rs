//! The `repo` binary with an index past its memory bound (`--index-memory`): backups,
//! forget and prune (which supersede index files, so the cached run goes stale), restore and
//! check all see the same blobs as with the index in memory.

use std::fs;
use std::path::Path;

use kairn_e2e::{check_clean, contents, restored, small_packs, snapshot_ids, write_volume};

fn runs(cache: &Path) -> Vec<std::path::PathBuf> {
    let Ok(repos) = fs::read_dir(cache.join("kairn")) else {
        return Vec::new();
    };
    repos
        .flatten()
        .filter_map(|r| fs::read_dir(r.path().join("index-run")).ok())
        .flat_map(|d| d.flatten().map(|e| e.path()))
        .collect()
}

#[test]
fn a_repository_past_the_index_bound_backs_up_prunes_restores_and_checks() {
    let mut cli = small_packs();
    cli.extra = vec!["--index-memory".into(), "20".into()];
    let cache = cli.dir.path().join("cache");
    let vol = cli.dir.path().join("vol");
    for round in 0..4 {
        write_volume(&vol, round + 1, 12);
        cli.backup(&vol);
    }
    let built = runs(&cache);
    assert_eq!(
        built.len(),
        1,
        "a local repository keeps its run too: {built:?}"
    );
    assert!(built[0].extension().is_some_and(|e| e == "kidx"));
    assert_eq!(restored(&cli, "latest", &vol), contents(&vol));
    let report = cli.json(&["forget", "--keep-last", "1", "--prune"]);
    assert!(
        report["prune"]["deleted_packs"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert_eq!(snapshot_ids(&cli).len(), 1);
    assert_eq!(restored(&cli, "latest", &vol), contents(&vol));
    check_clean(&cli);
    let after = runs(&cache);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(
        after, built,
        "prune superseded index files: the run was built again"
    );
    // Planted junk where the run lives is refused and removed; the backup goes on.
    fs::write(after[0].with_file_name("run-junk.kidx"), vec![7u8; 5000]).unwrap();
    write_volume(&vol, 9, 3);
    cli.backup(&vol);
    assert_eq!(restored(&cli, "latest", &vol), contents(&vol));
    assert!(!after[0].with_file_name("run-junk.kidx").exists());
}
