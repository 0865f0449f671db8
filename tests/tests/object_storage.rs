//! Kairn on real S3-compatible servers started on 127.0.0.1 by the tests: moto (Object Lock,
//! `If-None-Match`) and s3s-fs, directly or behind a proxy that injects faults or refuses
//! deletes. Credentials come from options only: ambient AWS configuration and the instance
//! metadata service are turned off.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use engine::backend::{Backend, Location, OpendalBackend, StorageOptions};
use kairn_e2e::s3::{self, Faults};
use kairn_e2e::{Cli, code, scan};

fn storage(endpoint: &str) -> StorageOptions {
    let mut o = StorageOptions {
        timeout: Duration::from_secs(10),
        io_timeout: Duration::from_secs(10),
        ..Default::default()
    };
    for pair in s3::options(endpoint).chunks(2) {
        let (k, v) = pair[1].split_once('=').unwrap();
        o.options.insert(k.into(), v.into());
    }
    o
}

fn backend(endpoint: &str, bucket: &str, prefix: &str) -> Arc<dyn Backend> {
    let location: Location = format!("s3://{bucket}/{prefix}").parse().unwrap();
    Arc::new(OpendalBackend::open(&location, &storage(endpoint), true).unwrap())
}

/// Some files worth restoring: several chunks, a few small ones, a nested directory.
fn source(dir: &std::path::Path) -> std::path::PathBuf {
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("nested/deeper")).unwrap();
    let mut big = vec![0u8; 3 << 20];
    let mut x = 0x9e37_79b9_u32;
    for b in &mut big {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    std::fs::write(src.join("big.bin"), &big).unwrap();
    for i in 0..20 {
        std::fs::write(
            src.join(format!("nested/small-{i}.txt")),
            format!("file {i}\n"),
        )
        .unwrap();
    }
    std::fs::write(src.join("nested/deeper/notes.md"), "# notes\n".repeat(500)).unwrap();
    src
}

/// Backs up, restores and checks through `cli`, and compares the restored tree.
fn roundtrip(cli: &Cli) {
    let src = source(cli.dir.path());
    let id = cli.backup(&src);
    let target = cli.dir.path().join("restored");
    cli.ok(&[
        "restore",
        &format!("{id}:{}", src.display()),
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_eq!(scan(&src), scan(&target), "restore differs from the source");
    cli.ok(&["check", "--read-data"]);
}

fn init(cli: &Cli, extra: &[&str]) {
    let mut args = vec!["init"];
    args.extend_from_slice(&kairn_e2e::CHEAP_KDF);
    args.extend_from_slice(&kairn_e2e::SMALL_CHUNKS);
    args.extend_from_slice(extra);
    cli.ok(&args);
}

#[test]
fn moto_s3_keeps_the_backend_contract() {
    let server = s3::moto();
    s3::create_bucket(&server.endpoint, "contract", None);
    let b = backend(&server.endpoint, "contract", "repo");
    engine::backend::conformance::suite(b.as_ref());
    // S3 keeps last-modified times in whole seconds.
    engine::backend::conformance::storage_time(b.as_ref(), Duration::from_millis(1100));
}

/// s3s-fs checks `If-None-Match` and then writes, so racing exclusive creators can all win:
/// it keeps every clause but that one. Concurrent writers need a store whose conditional
/// create is atomic (AWS S3, moto), which README.md says.
#[test]
fn s3s_fs_keeps_the_backend_contract_but_the_exclusive_race() {
    let server = s3::s3s_fs("contract");
    let b = backend(&server.endpoint, "contract", "repo");
    engine::backend::conformance::basics(b.as_ref());
}

#[test]
fn backup_restore_and_check_on_moto() {
    let server = s3::moto();
    s3::create_bucket(&server.endpoint, "kairn", None);
    let cli = Cli::at("s3://kairn/team/cluster-1", s3::options(&server.endpoint));
    init(&cli, &[]);
    roundtrip(&cli);
    let again = cli.run(&["init"]);
    assert_eq!(code(&again), 11, "a second init must find the repository");
}

#[test]
fn backup_restore_and_check_on_s3s_fs() {
    let server = s3::s3s_fs("kairn");
    let mut extra = s3::options(&server.endpoint);
    // The throttle and the request limit in the path, too.
    extra.extend(["--limit-bandwidth", "256M", "--connections", "2"].map(String::from));
    let cli = Cli::at("s3://kairn/repo", extra);
    init(&cli, &[]);
    roundtrip(&cli);
}

#[test]
fn any_opendal_service_by_its_options_here_fs() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let cli = Cli::at(
        "opendal:fs",
        vec!["-o".into(), format!("root={}", root.display())],
    );
    init(&cli, &[]);
    roundtrip(&cli);
    assert!(root.join("config").exists());
}

#[test]
fn transient_faults_and_stalls_do_not_fail_a_backup() {
    let server = s3::moto();
    s3::create_bucket(&server.endpoint, "flaky", None);
    let proxy = s3::FaultProxy::start(
        &server.endpoint,
        Faults {
            every: 5,
            stall: Duration::from_secs(4),
            deny_deletes: false,
        },
    );
    let mut extra = s3::options(&proxy.endpoint);
    extra.extend(["--timeout".into(), "2".into()]);
    let cli = Cli::at("s3://flaky/repo", extra);
    init(&cli, &[]);
    roundtrip(&cli);
    let faults = proxy.stats.faults.load(Ordering::SeqCst);
    let requests = proxy.stats.requests.load(Ordering::SeqCst);
    eprintln!("{faults} faults injected in {requests} requests");
    assert!(faults >= 8, "only {faults} faults in {requests} requests");
}

#[test]
fn an_append_only_key_backs_up_without_delete_rights_and_cannot_prune() {
    let server = s3::moto();
    s3::create_bucket(&server.endpoint, "agents", None);
    let admin = Cli::at("s3://agents/repo", s3::options(&server.endpoint));
    init(&admin, &[]);
    let agent_password = admin.dir.path().join("agent-password");
    std::fs::write(&agent_password, "agent secret\n").unwrap();
    let mut args = vec!["key", "add", "--append-only", "--new-password-file"];
    args.push(agent_password.to_str().unwrap());
    args.extend_from_slice(&kairn_e2e::CHEAP_KDF);
    admin.ok(&args);

    // The agent's storage credential cannot delete: the proxy refuses as S3 would.
    let proxy = s3::FaultProxy::start(
        &server.endpoint,
        Faults {
            deny_deletes: true,
            ..Default::default()
        },
    );
    let mut agent = Cli::at("s3://agents/repo", s3::options(&proxy.endpoint));
    agent.password_file = agent_password;
    // Short heartbeats, so several pile up during the backup.
    agent.extra.extend(["--session-expiry".into(), "6".into()]);
    let src = source(agent.dir.path());
    let first = agent.backup(&src);
    std::fs::write(src.join("nested/new.txt"), "new\n").unwrap();
    agent.backup(&src);
    assert_eq!(
        proxy.stats.deletes.load(Ordering::SeqCst),
        0,
        "backup sent a DELETE"
    );

    for refused in [
        vec!["prune"],
        vec!["forget", "--keep-last", "1"],
        vec!["forget", &first],
    ] {
        let out = agent.run(&refused);
        assert_eq!(
            code(&out),
            18,
            "{refused:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(proxy.stats.deletes.load(Ordering::SeqCst), 0);
    // Nor can the agent make itself a full key.
    let escalate = agent.run(&["key", "add", "--new-password-file", "/dev/null"]);
    assert_ne!(code(&escalate), 0);

    // A full key without delete rights behaves the same with --append-only.
    let mut flagged = Cli::at("s3://agents/repo", s3::options(&proxy.endpoint));
    flagged.password_file = admin.password_file.clone();
    flagged.extra.push("--append-only".into());
    flagged.backup(&src);
    assert_eq!(proxy.stats.deletes.load(Ordering::SeqCst), 0);

    // The admin, with delete rights, prunes: the agents' ended sessions no longer block it,
    // and their heartbeats are cleaned up.
    admin.ok(&["forget", "--keep-last", "1", "--prune"]);
    let sessions = admin.json(&["repair", "sessions"]);
    assert_eq!(sessions.as_array().map(Vec::len), Some(0), "{sessions}");
    admin.ok(&["check", "--read-data"]);
}

/// Keys of `prefix` in `bucket` with their delete markers and versions, through boto3.
fn versions(endpoint: &str, bucket: &str) -> serde_json::Value {
    let out = s3::boto3(
        endpoint,
        &format!(
            "v = s3.list_object_versions(Bucket='{bucket}')\n\
             print(json.dumps({{'versions': [x['Key'] for x in v.get('Versions', [])], \
             'markers': [x['Key'] for x in v.get('DeleteMarkers', [])]}}))"
        ),
    );
    serde_json::from_str(&out).unwrap()
}

#[test]
fn object_lock_keeps_packs_from_a_client_with_delete_rights() {
    let server = s3::moto();
    s3::create_bucket(&server.endpoint, "locked", Some(1));
    let cli = Cli::at("s3://locked/repo", s3::options(&server.endpoint));
    init(&cli, &["--object-lock-days", "1"]);
    let src = source(cli.dir.path());
    let first = cli.backup(&src);
    std::fs::remove_file(src.join("big.bin")).unwrap();
    std::fs::write(src.join("nested/new.txt"), "new\n").unwrap();
    cli.backup(&src);

    // Forget and prune plan the deletion of locked objects for later, and say so; they send
    // no delete for any repository content.
    let out = cli.ok(&["forget", &first, "--prune"]);
    assert!(out.contains("Object Lock holds it until"), "{out}");
    // A pack no index lists (as an interrupted backup leaves): once it is older than the
    // session expiry, prune chooses it, and keeps it for a later prune, since the lock holds it.
    let stray = format!("repo/data/ab/ab{}", "0".repeat(62));
    s3::boto3(
        &server.endpoint,
        &format!("s3.put_object(Bucket='locked', Key='{stray}', Body=b'x' * 4096)"),
    );
    std::thread::sleep(std::time::Duration::from_secs(7));
    let out = cli.ok(&["prune", "--session-expiry", "6"]);
    assert!(
        out.contains("Object Lock holds 1 pack(s)") && out.contains("a prune after that"),
        "{out}"
    );
    let v = versions(&server.endpoint, "locked");
    let markers: Vec<&str> = v["markers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k.as_str())
        .filter(|k| k.contains("/data/") || k.contains("/snapshots/") || k.contains("/index/"))
        .collect();
    assert!(markers.is_empty(), "deleted locked content: {markers:?}");
    let snaps = cli.json(&["snapshots"]);
    assert_eq!(
        snaps.as_array().unwrap().len(),
        2,
        "the locked snapshot stays"
    );

    // An attacker holding delete rights: deleting each version is refused, deleting the
    // names only adds delete markers.
    let report = s3::boto3(
        &server.endpoint,
        "import botocore\n\
         v = s3.list_object_versions(Bucket='locked')\n\
         refused = deleted = 0\n\
         for x in v.get('Versions', []):\n\
         \x20   try:\n\
         \x20       s3.delete_object(Bucket='locked', Key=x['Key'], VersionId=x['VersionId'])\n\
         \x20       deleted += 1\n\
         \x20   except botocore.exceptions.ClientError as e:\n\
         \x20       refused += 1\n\
         for x in v.get('Versions', []):\n\
         \x20   s3.delete_object(Bucket='locked', Key=x['Key'])\n\
         print(json.dumps({'refused': refused, 'deleted': deleted}))",
    );
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(
        report["deleted"], 0,
        "a locked version was destroyed: {report}"
    );
    assert!(report["refused"].as_u64().unwrap() > 10, "{report}");
    let gone = cli.run(&["snapshots"]);
    assert_eq!(
        code(&gone),
        10,
        "the repository looks gone after the deletes"
    );

    // Every locked version is still there: bring them back, then restore.
    cli.ok(&["repair", "undelete"]);
    let target = cli.dir.path().join("after-attack");
    cli.ok(&[
        "restore",
        &format!("{first}:{}", src.display()),
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(target.join("big.bin")).unwrap().len(),
        3 << 20,
        "the first snapshot's data came back"
    );
    cli.ok(&["check", "--read-data"]);
}

#[test]
fn the_local_cache_spares_downloads_and_is_never_trusted() {
    let server = s3::moto();
    s3::create_bucket(&server.endpoint, "cached", None);
    let proxy = s3::FaultProxy::start(&server.endpoint, Faults::default());
    let mut extra = s3::options(&proxy.endpoint);
    let cache = tempfile::tempdir().unwrap();
    extra.extend(["--cache-dir".into(), cache.path().to_str().unwrap().into()]);
    let cli = Cli::at("s3://cached/repo", extra);
    init(&cli, &[]);
    cli.backup(&source(cli.dir.path()));
    let gets = || proxy.stats.object_gets.load(Ordering::SeqCst);

    let listing = |expect: Option<&str>| {
        let before = gets();
        let out = cli.ok(&["ls", "latest"]);
        if let Some(expect) = expect {
            assert_eq!(out, expect);
        }
        (out, gets() - before)
    };
    let (first, cold) = listing(None);
    let (_, warm) = listing(Some(&first));
    // Warm: the config and the key file only; the snapshot, index and tree pack are cached.
    eprintln!("ls latest: {cold} object GETs without the cache, {warm} with it");
    assert!(
        cold >= warm + 3 && warm <= 2,
        "cold {cold} GETs, warm {warm}"
    );

    // Tampered cached files are refused, fetched again, and the answer is the same.
    for f in kairn_e2e::walk_files(cache.path()) {
        if f.file_name().is_some_and(|n| n.len() == 64) {
            std::fs::write(&f, b"tampered").unwrap();
        }
    }
    let (_, after) = listing(Some(&first));
    assert_eq!(after, cold, "every tampered file is fetched again");
}
