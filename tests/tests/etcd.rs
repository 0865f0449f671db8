//! etcd snapshots against a real etcd (Debian's etcd-server 3.4) started on 127.0.0.1: write
//! keys, snapshot them into the repository, restore the file, rebuild a data directory with
//! `etcdctl snapshot restore`, start etcd on it and read every key back. Plus client-certificate
//! TLS, and streams that are cut or altered (served by an in-process fake etcd gateway, built
//! from a real snapshot), which must be refused without recording anything.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use kairn_e2e::etcd::{Etcd, Pki, restore_snapshot};
use kairn_e2e::s3::free_port;
use kairn_e2e::{Cli, SMALL_CHUNKS, code, noise};

fn keys(prefix: &str, n: usize, seed: u64) -> BTreeMap<String, String> {
    (0..n)
        .map(|i| {
            let value = hex_of(&noise(seed + i as u64, 24 + i % 200));
            (format!("/kairn/{prefix}/{i:04}"), value)
        })
        .collect()
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn etcd_snapshots(cli: &Cli) -> Vec<serde_json::Value> {
    cli.json(&["snapshots"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["source"]["kind"] == "etcd")
        .cloned()
        .collect()
}

#[test]
fn real_etcd_snapshot_restores_into_a_member_that_serves_every_key() {
    let work = tempfile::tempdir().unwrap();
    let etcd = Etcd::start("source", &work.path().join("source"), None);
    let before = keys("app", 600, 1);
    etcd.put_all(&before);
    // Large values, so the database spans many chunks.
    let mut expected = before.clone();
    for i in 0..4 {
        let big = hex_of(&noise(99 + i, 300_000));
        let key = format!("/kairn/big/{i}");
        let out = etcd.ctl_with_stdin(&["put", &key], big.as_bytes());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        expected.insert(key, big);
    }

    let cli = Cli::init_with(&SMALL_CHUNKS);
    let first = cli.json(&[
        "backup",
        "--etcd",
        &etcd.endpoint,
        "--cluster",
        "test",
        "--tag",
        "etcd",
    ]);
    let size = first["size"].as_u64().unwrap();
    assert_eq!(size % 512, 32, "a bbolt file plus its 32-byte hash");
    assert_eq!(first["sha256"].as_str().unwrap().len(), 64);
    let snaps = etcd_snapshots(&cli);
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["paths"][0], "/etcd-snapshot.db");
    assert_eq!(snaps[0]["source"]["cluster"], "test");

    // Change a little, snapshot again: most chunks are shared with the first snapshot.
    let after = keys("later", 20, 5000);
    etcd.put_all(&after);
    let second = cli.json(&["backup", "--etcd", &etcd.endpoint]);
    let added = second["summary"]["new_bytes_raw"].as_u64().unwrap();
    let size2 = second["size"].as_u64().unwrap();
    assert!(
        added < size2 / 2,
        "the second snapshot added {added} of {size2} bytes: it should share most chunks"
    );

    // Restore the first one and rebuild a member from it.
    let first_id = first["snapshot"].as_str().unwrap();
    let target = work.path().join("restored");
    cli.ok(&["restore", first_id, "--target", target.to_str().unwrap()]);
    let file = target.join("etcd-snapshot.db");
    assert_eq!(std::fs::metadata(&file).unwrap().len(), size);
    let peer = free_port();
    let data = work.path().join("rebuilt");
    let out = restore_snapshot(&file, &data, "rebuilt", peer);
    assert!(
        out.status.success(),
        "etcdctl snapshot restore refused the restored file: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(etcd);
    let rebuilt = Etcd::start_with_peer("rebuilt", &data, None, peer);
    let served = rebuilt.get_prefix("/kairn/");
    assert_eq!(served.len(), expected.len());
    assert!(served == expected, "the rebuilt member serves other values");
    assert!(
        after.keys().all(|k| !served.contains_key(k)),
        "point in time"
    );
}

#[test]
fn etcd_with_client_certificates_is_backed_up_and_a_stranger_certificate_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let pki = Pki::create(work.path());
    let etcd = Etcd::start("tls", &work.path().join("tls"), Some(&pki));
    let written = keys("tls", 50, 7);
    etcd.put_all(&written);
    let cli = Cli::init();
    let path = |p: &Path| p.to_str().unwrap().to_string();
    let endpoint = etcd.endpoint.clone();
    let with = |cert: &Path, key: &Path| {
        vec![
            "backup".to_string(),
            "--etcd".into(),
            endpoint.clone(),
            "--etcd-cacert".into(),
            path(&pki.ca),
            "--etcd-cert".into(),
            path(cert),
            "--etcd-key".into(),
            path(key),
        ]
    };

    let stranger = cli.run(&with(&pki.stranger_cert, &pki.stranger_key));
    assert_eq!(
        code(&stranger),
        20,
        "{}",
        String::from_utf8_lossy(&stranger.stderr)
    );
    let no_cert = cli.run(&[
        "backup",
        "--etcd",
        &endpoint,
        "--etcd-cacert",
        &path(&pki.ca),
    ]);
    assert_eq!(
        code(&no_cert),
        20,
        "{}",
        String::from_utf8_lossy(&no_cert.stderr)
    );
    assert!(etcd_snapshots(&cli).is_empty());

    let mut args = vec!["--json".to_string()];
    args.extend(with(&pki.client_cert, &pki.client_key));
    let taken: serde_json::Value = serde_json::from_str(&cli.ok(&args)).unwrap();
    let id = taken["snapshot"].as_str().unwrap();
    let target = work.path().join("out");
    cli.ok(&["restore", id, "--target", target.to_str().unwrap()]);
    let peer = free_port();
    let data = work.path().join("rebuilt");
    let out = restore_snapshot(&target.join("etcd-snapshot.db"), &data, "rebuilt", peer);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(etcd);
    let rebuilt = Etcd::start_with_peer("rebuilt", &data, Some(&pki), peer);
    assert!(rebuilt.get_prefix("/kairn/") == written);
}

/// An in-process fake of etcd's JSON gateway that serves a fixed body: the real snapshot,
/// re-encoded the way the gateway sends it, then altered.
struct FakeGateway {
    server: std::sync::Arc<tiny_http::Server>,
    thread: Option<std::thread::JoinHandle<()>>,
    endpoint: String,
}

impl FakeGateway {
    fn serving(body: Vec<u8>) -> Self {
        let server = std::sync::Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let endpoint = format!("http://{}", server.server_addr());
        let s = server.clone();
        let thread = std::thread::spawn(move || {
            for mut request in s.incoming_requests() {
                let mut ignored = Vec::new();
                let _ = request.as_reader().read_to_end(&mut ignored);
                let ok = request.url() == "/v3/maintenance/snapshot";
                let response =
                    tiny_http::Response::from_data(if ok { body.clone() } else { vec![] })
                        .with_status_code(if ok { 200 } else { 404 });
                let _ = request.respond(response);
            }
        });
        Self {
            server,
            thread: Some(thread),
            endpoint,
        }
    }
}

impl Drop for FakeGateway {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The gateway's lines for `bytes` (the database and its hash): 32 KiB per message, the
/// hash alone in the last one, as etcd sends them.
fn gateway_lines(bytes: &[u8]) -> Vec<u8> {
    let (db, hash) = bytes.split_at(bytes.len() - 32);
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut out = String::new();
    let mut sent = 0;
    for piece in db.chunks(32 * 1024) {
        sent += piece.len();
        out.push_str(&format!(
            "{{\"result\":{{\"remaining_bytes\":\"{}\",\"blob\":\"{}\"}}}}\n",
            db.len() - sent,
            b64(piece)
        ));
    }
    out.push_str(&format!("{{\"result\":{{\"blob\":\"{}\"}}}}\n", b64(hash)));
    out.into_bytes()
}

#[test]
fn fake_etcd_gateway_a_cut_or_altered_snapshot_stream_is_refused_and_nothing_is_recorded() {
    let work = tempfile::tempdir().unwrap();
    let etcd = Etcd::start("real", &work.path().join("real"), None);
    etcd.put_all(&keys("x", 200, 3));
    let saved = work.path().join("saved.db");
    let out = etcd.ctl(&["snapshot", "save", saved.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(etcd);
    let good = std::fs::read(&saved).unwrap();

    let cli = Cli::init();
    // The unaltered stream through the fake is accepted: the fake is faithful.
    let faithful = FakeGateway::serving(gateway_lines(&good));
    let taken = cli.json(&["backup", "--etcd", &faithful.endpoint]);
    let target = work.path().join("faithful");
    cli.ok(&[
        "restore",
        taken["snapshot"].as_str().unwrap(),
        "--target",
        target.to_str().unwrap(),
    ]);
    assert!(std::fs::read(target.join("etcd-snapshot.db")).unwrap() == good);
    let recorded = etcd_snapshots(&cli).len();

    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x01;
    let mut bad_hash = good.clone();
    let last = bad_hash.len() - 1;
    bad_hash[last] ^= 0x80;
    let mut cut = gateway_lines(&good);
    let last_line = cut[..cut.len() - 1]
        .iter()
        .rposition(|&b| b == b'\n')
        .unwrap();
    cut.truncate(last_line + 1);
    let lines = gateway_lines(&good);
    let first_line = &lines[..=lines.iter().position(|&b| b == b'\n').unwrap()];
    let cases: Vec<(&str, Vec<u8>, i32, &str)> = vec![
        (
            "one bit flipped",
            gateway_lines(&flipped),
            19,
            "SHA-256 does not match",
        ),
        (
            "hash altered",
            gateway_lines(&bad_hash),
            19,
            "SHA-256 does not match",
        ),
        ("hash message missing", cut, 19, "no room for its SHA-256"),
        (
            "not JSON",
            b"<html>proxy error</html>\n".to_vec(),
            19,
            "not JSON",
        ),
        (
            "server error mid-stream",
            [
                first_line.to_vec(),
                b"{\"error\":{\"grpc_code\":14,\"message\":\"etcdserver: leader changed\"}}\n"
                    .to_vec(),
            ]
            .concat(),
            20,
            "leader changed",
        ),
    ];
    for (what, body, expected, says) in cases {
        let fake = FakeGateway::serving(body);
        let out = cli.run(&["backup", "--etcd", &fake.endpoint]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(code(&out), expected, "{what}: {stderr}");
        assert!(stderr.contains(says), "{what}: {stderr}");
        assert_eq!(
            etcd_snapshots(&cli).len(),
            recorded,
            "{what}: nothing recorded"
        );
    }
    cli.ok(&["check"]);
}

#[test]
fn an_unreachable_etcd_is_a_retryable_exit_code_and_the_next_endpoint_is_tried() {
    let work = tempfile::tempdir().unwrap();
    let cli = Cli::init();
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let out = cli.run(&["backup", "--etcd", &nobody]);
    assert_eq!(code(&out), 20, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot take a snapshot from etcd"));

    let etcd = Etcd::start("second", &work.path().join("second"), None);
    let both = format!("{nobody},{}", etcd.endpoint);
    let taken = cli.json(&["backup", "--etcd", &both]);
    assert_eq!(taken["endpoint"], etcd.endpoint.as_str());
}
