//! `repo backup`'s restic options: --dry-run writes nothing and says what a backup would add,
//! -v lists new and modified files, --files-from* choose the paths, and --exclude-larger-than,
//! --exclude-caches, --iexclude and --exclude-if-present leave entries out.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use kairn_e2e::{Cli, code, walk_files};

/// Every file under the repository with its bytes.
fn repository_state(cli: &Cli) -> Vec<(PathBuf, Vec<u8>)> {
    walk_files(&cli.repo)
        .into_iter()
        .map(|p| {
            let bytes = fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// The paths in the latest snapshot, below `root`, relative to it.
fn listed(cli: &Cli, root: &Path) -> BTreeSet<String> {
    let out = cli.ok(&["--json", "ls", "latest"]);
    out.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|v| v["path"].as_str().map(String::from))
        .filter_map(|p| {
            Path::new(&p)
                .strip_prefix(root)
                .ok()
                .filter(|r| !r.as_os_str().is_empty())
                .map(|r| r.to_string_lossy().into_owned())
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn backup_args<'a>(src: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["backup"];
    args.extend_from_slice(extra);
    args.push(src.to_str().unwrap());
    args
}

#[test]
fn dry_run_writes_nothing_and_counts_what_is_new() {
    let cli = Cli::init();
    let src = cli.dir.path().join("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("a"), vec![7u8; 200_000]).unwrap();
    fs::write(src.join("d/b"), b"bee").unwrap();

    // On a repository with no snapshot and no index yet.
    let before = repository_state(&cli);
    let out = cli.ok(&backup_args(&src, &["--dry-run"]));
    assert!(
        out.contains("files: 2 new, 0 changed, 0 unmodified"),
        "{out}"
    );
    assert!(out.contains("estimated"), "{out}");
    assert_eq!(
        repository_state(&cli),
        before,
        "a dry run changed the repository"
    );

    cli.backup(&src);
    fs::write(src.join("new1"), b"one").unwrap();
    fs::write(src.join("d/new2"), vec![9u8; 100_000]).unwrap();
    let before = repository_state(&cli);
    let v = cli.json(&backup_args(&src, &["-n", "-v"]));
    assert_eq!(v["dry_run"], true);
    let s = &v["summary"];
    assert_eq!(s["files_new"], 2, "{v}");
    assert_eq!(s["files_unmodified"], 2, "{v}");
    // Dedup against the index is real: only the new content would be added.
    let raw = s["new_bytes_raw"].as_u64().unwrap();
    assert!((100_003..200_000).contains(&raw), "{v}");
    let text = cli.ok(&backup_args(&src, &["-n", "-v"]));
    let lines: BTreeSet<&str> = text.lines().filter(|l| l.starts_with("new ")).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(
        repository_state(&cli),
        before,
        "a dry run changed the repository"
    );
    assert_eq!(cli.json(&["snapshots"]).as_array().map(Vec::len), Some(1));
}

#[test]
fn verbose_lists_exactly_the_new_and_changed_files() {
    let cli = Cli::init();
    let src = cli.dir.path().join("src");
    fs::create_dir_all(src.join("d")).unwrap();
    for name in ["a", "b", "d/c"] {
        fs::write(src.join(name), name.as_bytes()).unwrap();
    }
    let first = cli.ok(&backup_args(&src, &["-v"]));
    let news: BTreeSet<String> = first
        .lines()
        .filter_map(|l| l.strip_prefix("new       "))
        .map(|l| l.split("  ").next().unwrap().to_string())
        .collect();
    let all: BTreeSet<String> = ["a", "b", "d/c"]
        .iter()
        .map(|n| src.join(n).to_string_lossy().into_owned())
        .collect();
    assert_eq!(news, all, "{first}");

    fs::OpenOptions::new()
        .append(true)
        .open(src.join("b"))
        .unwrap()
        .write_all(b" changed")
        .unwrap();
    fs::write(src.join("d/e"), b"new file").unwrap();
    let second = cli.ok(&backup_args(&src, &["-v"]));
    let listed: Vec<&str> = second
        .lines()
        .filter(|l| l.starts_with("new ") || l.starts_with("modified ") || l.starts_with("unch"))
        .collect();
    let b = format!("modified  {}  9 B", src.join("b").display());
    let e = format!("new       {}  8 B", src.join("d/e").display());
    assert_eq!(listed.len(), 2, "{second}");
    assert!(
        listed.contains(&b.as_str()) && listed.contains(&e.as_str()),
        "{second}"
    );
    assert!(
        second.contains("files: 1 new, 1 changed, 2 unmodified"),
        "{second}"
    );

    // -vv adds the unchanged ones; --json prints only its document.
    let third = cli.ok(&backup_args(&src, &["-vv"]));
    assert_eq!(
        third
            .lines()
            .filter(|l| l.starts_with("unchanged "))
            .count(),
        4,
        "{third}"
    );
    let v = cli.json(&backup_args(&src, &["-v"]));
    assert_eq!(v["summary"]["files_unmodified"], 4);
}

#[test]
fn files_from_skips_comments_and_blank_lines_and_keeps_spaces() {
    let cli = Cli::init();
    let src = cli.dir.path().join("src");
    fs::create_dir_all(src.join("dir with space")).unwrap();
    fs::write(src.join("dir with space/file one"), b"1").unwrap();
    fs::write(src.join("plain"), b"2").unwrap();
    fs::write(src.join("left out"), b"3").unwrap();
    fs::write(src.join("#hash"), b"4").unwrap();
    let list = cli.dir.path().join("list");
    fs::write(
        &list,
        format!(
            "# what to back up\n\n{}\n   \n  {}  \n# {}\n",
            src.join("dir with space").display(),
            src.join("plain").display(),
            src.join("left out").display()
        ),
    )
    .unwrap();
    cli.ok(&["backup", "--files-from", list.to_str().unwrap()]);
    assert_eq!(
        listed(&cli, &src),
        set(&["dir with space", "dir with space/file one", "plain"])
    );

    // From standard input, beside a path argument.
    let mut child = cli
        .cmd()
        .args(["backup", "--files-from", "-"])
        .arg(src.join("#hash"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let line = format!("{}\n", src.join("left out").display());
    child
        .stdin
        .take()
        .unwrap()
        .write_all(line.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(listed(&cli, &src), set(&["#hash", "left out"]));

    // An empty list is nothing to back up: a usage error.
    let empty = cli.dir.path().join("empty");
    fs::write(&empty, "# nothing\n\n").unwrap();
    assert_eq!(
        code(&cli.run(&["backup", "--files-from", empty.to_str().unwrap()])),
        2
    );
}

#[test]
fn files_from_raw_takes_names_with_newlines() {
    let cli = Cli::init();
    let src = cli.dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    let odd = src.join("two\nlines");
    fs::write(&odd, b"odd").unwrap();
    fs::write(src.join("two"), b"decoy").unwrap();
    fs::write(src.join("lines"), b"decoy").unwrap();
    let list = cli.dir.path().join("list0");
    let mut bytes = odd.as_os_str().as_bytes().to_vec();
    bytes.push(0);
    fs::write(&list, &bytes).unwrap();
    cli.ok(&["backup", "--files-from-raw", list.to_str().unwrap()]);
    assert_eq!(listed(&cli, &src), set(&["two\nlines"]));
    let restored = cli.dir.path().join("restored");
    cli.ok(&["restore", "latest", "--target", restored.to_str().unwrap()]);
    let back = restored.join(odd.strip_prefix("/").unwrap());
    assert_eq!(fs::read(back).unwrap(), b"odd");
}

#[test]
fn exclude_larger_than_leaves_out_big_files_only() {
    let cli = Cli::init();
    let src = cli.dir.path().join("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("small"), vec![1u8; 1024]).unwrap();
    fs::write(src.join("d/big"), vec![2u8; 1025]).unwrap();
    cli.ok(&backup_args(&src, &["--exclude-larger-than", "1K"]));
    assert_eq!(listed(&cli, &src), set(&["d", "small"]));
    let out = cli.run(&backup_args(&src, &["--exclude-larger-than", "lots"]));
    assert_eq!(code(&out), 2);
}

#[test]
fn exclude_caches_keeps_the_tag_and_needs_the_signature() {
    let cli = Cli::init();
    let src = cli.dir.path().join("src");
    for d in ["cache/sub", "fake", "plain"] {
        fs::create_dir_all(src.join(d)).unwrap();
    }
    let signature = "Signature: 8a477f597d28d172789f06886806bc55";
    fs::write(
        src.join("cache/CACHEDIR.TAG"),
        format!("{signature}\n# a cache\n"),
    )
    .unwrap();
    fs::write(src.join("cache/blob"), b"cached").unwrap();
    fs::write(src.join("cache/sub/deep"), b"cached").unwrap();
    fs::write(
        src.join("fake/CACHEDIR.TAG"),
        b"Signature: not the right one",
    )
    .unwrap();
    fs::write(src.join("fake/data"), b"keep").unwrap();
    fs::write(src.join("plain/data"), b"keep").unwrap();
    cli.ok(&backup_args(&src, &["--exclude-caches"]));
    assert_eq!(
        listed(&cli, &src),
        set(&[
            "cache",
            "cache/CACHEDIR.TAG",
            "fake",
            "fake/CACHEDIR.TAG",
            "fake/data",
            "plain",
            "plain/data"
        ])
    );
    // Without the flag, the cache is backed up.
    cli.ok(&backup_args(&src, &[]));
    assert!(listed(&cli, &src).contains("cache/sub/deep"));
}

#[test]
fn iexclude_ignores_case_where_exclude_does_not() {
    let cli = Cli::init();
    let src = cli.dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    for name in ["a.JPG", "b.jpg", "c.Jpg", "d.png", "E.PNG"] {
        fs::write(src.join(name), name.as_bytes()).unwrap();
    }
    cli.ok(&backup_args(
        &src,
        &["--iexclude", "*.jpg", "--exclude", "*.png"],
    ));
    assert_eq!(listed(&cli, &src), set(&["E.PNG"]));
}

#[test]
fn exclude_if_present_with_and_without_a_header() {
    let cli = Cli::init();
    let src = cli.dir.path().join("src");
    for d in ["any", "hdr", "wrong", "none"] {
        fs::create_dir_all(src.join(d)).unwrap();
        fs::write(src.join(d).join("data"), d.as_bytes()).unwrap();
    }
    fs::write(src.join("any/.nobackup"), b"").unwrap();
    fs::write(src.join("hdr/.skip"), b"KAIRN-SKIP: yes").unwrap();
    fs::write(src.join("wrong/.skip"), b"other text").unwrap();
    cli.ok(&backup_args(
        &src,
        &[
            "--exclude-if-present",
            ".nobackup",
            "--exclude-if-present",
            ".skip:KAIRN-SKIP",
        ],
    ));
    assert_eq!(
        listed(&cli, &src),
        set(&[
            "any",
            "any/.nobackup",
            "hdr",
            "hdr/.skip",
            "none",
            "none/data",
            "wrong",
            "wrong/.skip",
            "wrong/data"
        ])
    );
    // A tag that is not a file name is a usage error.
    let out = cli.run(&backup_args(&src, &["--exclude-if-present", "a/b"]));
    assert_eq!(code(&out), 2, "{}", String::from_utf8_lossy(&out.stderr));
}
