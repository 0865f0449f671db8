//! Sources that used to trip a backup: a repository inside the tree being backed up, and the
//! pseudo files of `/proc/sys`, which refuse large reads.

use kairn_e2e::{CHEAP_KDF, Cli, code, noise};

#[test]
fn a_repository_inside_the_backed_up_tree_is_left_out_with_a_note() {
    let mut cli = Cli::uninitialised();
    let tree = cli.dir.path().join("tree");
    std::fs::create_dir_all(tree.join("docs")).expect("test setup");
    std::fs::write(tree.join("docs/a"), noise(1, 50_000)).expect("test setup");
    cli.repo = tree.join("backups/repo");
    std::fs::create_dir_all(&cli.repo).expect("test setup");
    cli.ok(&[&["init"][..], &CHEAP_KDF].concat());

    let out = cli.run(&[std::ffi::OsStr::new("backup"), tree.as_os_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code(&out), 0, "stderr: {stderr}");
    assert!(
        stderr.contains("note:") && stderr.contains("repository"),
        "the repository should be left out with a note; stderr: {stderr}"
    );

    let listing = cli.ok(&["ls", "latest"]);
    let tree_str = tree.to_string_lossy();
    assert!(
        listing.contains(&format!("{tree_str}/docs/a")),
        "the rest of the tree is backed up:\n{listing}"
    );
    assert!(
        listing.contains(&format!("{tree_str}/backups")),
        "the repository's parent stays:\n{listing}"
    );
    assert!(
        !listing.contains(&format!("{tree_str}/backups/repo")),
        "the repository was backed up into itself:\n{listing}"
    );
}

#[test]
fn proc_sys_files_are_read_with_small_reads() {
    let source = std::path::Path::new("/proc/sys/kernel/osrelease");
    let expected = std::fs::read(source).expect("read /proc/sys/kernel/osrelease");
    let cli = Cli::init();
    let out = cli.run(&[std::ffi::OsStr::new("backup"), source.as_os_str()]);
    assert_eq!(
        code(&out),
        0,
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dumped = cli
        .cmd()
        .args(["dump", "latest:/proc/sys/kernel/osrelease"])
        .output()
        .expect("run repo dump");
    assert_eq!(code(&dumped), 0);
    assert_eq!(dumped.stdout, expected);
}
