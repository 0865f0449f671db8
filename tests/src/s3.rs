//! Real S3-compatible servers for the tests, started on 127.0.0.1 and stopped on drop: moto
//! (PyPI `moto[s3]`, with Object Lock) and s3s-fs (crates.io), plus a fault-injecting HTTP
//! proxy that stands between the client and either. `.ci/run` (scripts/test-deps.sh) installs
//! both servers; a missing one fails the test with the command that installs it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Credentials the test servers accept.
pub const ACCESS_KEY: &str = "kairntest";
/// Secret of [`ACCESS_KEY`].
pub const SECRET_KEY: &str = "kairntestsecret";

/// A server process, killed on drop.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn wait_listening(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening: {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not listen on 127.0.0.1:{port} within 60 s");
}

/// Where moto lives: `KAIRN_MOTO` (its venv), else `/opt/moto`.
fn moto_home() -> PathBuf {
    let home = PathBuf::from(std::env::var("KAIRN_MOTO").unwrap_or_else(|_| "/opt/moto".into()));
    assert!(
        home.join("bin/moto_server").exists(),
        "moto is not installed at {}: run `bash scripts/test-deps.sh` (it runs \
         python3 -m venv /opt/moto && /opt/moto/bin/pip install 'moto[s3]==5.2.5' flask flask-cors)",
        home.display()
    );
    home
}

/// Starts moto's S3 server on a free loopback port.
pub fn moto() -> Server {
    let home = moto_home();
    start(home.join("bin/moto_server"), None, |port| {
        vec![
            "-H".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
        ]
    })
}

/// Starts s3s-fs over a fresh directory, with `bucket` created.
pub fn s3s_fs(bucket: &str) -> Server {
    let bin = std::env::var("KAIRN_S3S_FS").map_or_else(
        |_| {
            let home = std::env::var("CARGO_HOME").map_or_else(
                |_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo"),
                PathBuf::from,
            );
            home.join("bin/s3s-fs")
        },
        PathBuf::from,
    );
    assert!(
        bin.exists(),
        "s3s-fs is not installed at {}: run `bash scripts/test-deps.sh` (it runs cargo install \
         s3s-fs --version 0.14.1 --features binary --locked)",
        bin.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join(bucket)).expect("bucket directory");
    let root = dir.path().to_string_lossy().into_owned();
    start(bin, Some(dir), |port| {
        let port = port.to_string();
        let args = [
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "--access-key",
            ACCESS_KEY,
        ];
        let args = args.into_iter().chain(["--secret-key", SECRET_KEY, &root]);
        args.map(String::from).collect()
    })
}

/// Runs `bin` with the arguments for a free loopback port, and waits until it listens.
fn start(
    bin: PathBuf,
    dir: Option<tempfile::TempDir>,
    args: impl Fn(u16) -> Vec<String>,
) -> Server {
    let port = free_port();
    let name = bin.display().to_string();
    let mut child = Command::new(&bin)
        .args(args(port))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {name}: {e}"));
    wait_listening(port, &mut child, &name);
    Server {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

/// Runs a Python script with boto3 (from moto's venv) against `endpoint`; `s3` is the client.
/// Returns stdout; panics with stderr when it fails.
pub fn boto3(endpoint: &str, script: &str) -> String {
    let home = moto_home();
    let prelude = format!(
        "import boto3, json, sys\n\
         s3 = boto3.client('s3', endpoint_url='{endpoint}', aws_access_key_id='{ACCESS_KEY}', \
         aws_secret_access_key='{SECRET_KEY}', region_name='us-east-1')\n"
    );
    let out = Command::new(home.join("bin/python"))
        .arg("-c")
        .arg(format!("{prelude}{script}"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "boto3 script failed: {}\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Creates a bucket; with `lock_days`, with Object Lock and that default COMPLIANCE retention.
pub fn create_bucket(endpoint: &str, bucket: &str, lock_days: Option<u32>) {
    let script = match lock_days {
        None => format!("s3.create_bucket(Bucket='{bucket}')"),
        Some(days) => format!(
            "s3.create_bucket(Bucket='{bucket}', ObjectLockEnabledForBucket=True)\n\
             s3.put_object_lock_configuration(Bucket='{bucket}', ObjectLockConfiguration=\
             {{'ObjectLockEnabled': 'Enabled', 'Rule': {{'DefaultRetention': \
             {{'Mode': 'COMPLIANCE', 'Days': {days}}}}}}})"
        ),
    };
    boto3(endpoint, &script);
}

/// The `-o` options that point the CLI at `endpoint` with the test credentials, and never at
/// `~/.aws` or the instance metadata service.
pub fn options(endpoint: &str) -> Vec<String> {
    [
        format!("endpoint={endpoint}"),
        "region=us-east-1".into(),
        format!("access-key-id={ACCESS_KEY}"),
        format!("secret-access-key={SECRET_KEY}"),
        "ambient-credentials=false".into(),
    ]
    .into_iter()
    .flat_map(|o| ["-o".to_string(), o])
    .collect()
}

/// What the proxy does to requests.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Every `every`-th request (counting from 1) gets a fault, cycling through: 500 before
    /// forwarding, 503 before forwarding, forwarded and then answered 503 (the work was done,
    /// the answer lost), and a stall longer than the client's timeout. 0 for none.
    pub every: u64,
    /// How long a stall lasts.
    pub stall: Duration,
    /// Answer every DELETE (and batch delete) with 403 AccessDenied, as S3 does for a
    /// credential without `s3:DeleteObject`.
    pub deny_deletes: bool,
}

/// Counts of what the proxy did.
#[derive(Debug, Default)]
pub struct ProxyStats {
    /// Requests seen.
    pub requests: AtomicU64,
    /// Faults injected.
    pub faults: AtomicU64,
    /// DELETE requests seen (refused or forwarded).
    pub deletes: AtomicU64,
    /// GET requests of one object (not listings).
    pub object_gets: AtomicU64,
}

/// An HTTP/1.1 proxy on 127.0.0.1 in front of `upstream`, injecting [`Faults`]. Each
/// connection carries one request (`Connection: close` both ways), which keeps it simple.
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// What it did.
    pub stats: Arc<ProxyStats>,
    stop: Arc<AtomicBool>,
    port: u16,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port)); // wake the accept loop
    }
}

impl FaultProxy {
    /// Starts the proxy.
    pub fn start(upstream: &str, faults: Faults) -> Self {
        let upstream = upstream
            .strip_prefix("http://")
            .expect("an http:// upstream")
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let stats = Arc::new(ProxyStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (stats.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let n = s.requests.fetch_add(1, Ordering::SeqCst) + 1;
                let (s, upstream) = (s.clone(), upstream.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &upstream, n, faults, &s);
                });
            }
        });
        Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            stats,
            stop,
            port,
        }
    }
}

struct Request {
    head: Vec<String>,
    body: Vec<u8>,
}

fn read_request(r: &mut BufReader<TcpStream>) -> std::io::Result<Request> {
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let line = line.trim_end_matches(['\r', '\n']).to_string();
        if line.is_empty() {
            break;
        }
        head.push(line);
    }
    let header = |name: &str| {
        head.iter().skip(1).find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let mut body = Vec::new();
    if let Some(len) = header("content-length") {
        let len: usize = len.parse().unwrap_or(0);
        body.resize(len, 0);
        r.read_exact(&mut body)?;
    } else if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        // Passed on as it came: the upstream decodes it.
        loop {
            let mut size_line = String::new();
            r.read_line(&mut size_line)?;
            body.extend_from_slice(size_line.as_bytes());
            let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk);
            if size == 0 {
                break;
            }
        }
    }
    Ok(Request { head, body })
}

fn serve(
    conn: TcpStream,
    upstream: &str,
    n: u64,
    faults: Faults,
    stats: &ProxyStats,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let req = read_request(&mut reader)?;
    let mut client = conn;
    let request_line = req.head.first().cloned().unwrap_or_default();
    let is_delete = request_line.starts_with("DELETE ")
        || (request_line.starts_with("POST ") && request_line.contains("?delete"));
    if request_line.starts_with("GET ") && !request_line.contains("list-type") {
        stats.object_gets.fetch_add(1, Ordering::SeqCst);
    }
    if is_delete {
        stats.deletes.fetch_add(1, Ordering::SeqCst);
        if faults.deny_deletes {
            return respond(&mut client, 403, "AccessDenied");
        }
    }
    let fault =
        (faults.every > 0 && n.is_multiple_of(faults.every)).then(|| (n / faults.every) % 4);
    match fault {
        Some(0) => {
            stats.faults.fetch_add(1, Ordering::SeqCst);
            return respond(&mut client, 500, "InternalError");
        }
        Some(1) => {
            stats.faults.fetch_add(1, Ordering::SeqCst);
            return respond(&mut client, 503, "SlowDown");
        }
        Some(3) => {
            stats.faults.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(faults.stall);
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
        _ => {}
    }
    let response = forward(upstream, &req)?;
    if fault == Some(2) {
        stats.faults.fetch_add(1, Ordering::SeqCst);
        return respond(&mut client, 503, "ServiceUnavailable");
    }
    client.write_all(&response)?;
    client.flush()
}

fn forward(upstream: &str, req: &Request) -> std::io::Result<Vec<u8>> {
    let mut up = TcpStream::connect(upstream)?;
    let mut out = Vec::with_capacity(req.body.len() + 1024);
    for (i, h) in req.head.iter().enumerate() {
        if i > 0 && h.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out.extend_from_slice(&req.body);
    up.write_all(&out)?;
    let mut response = Vec::new();
    up.read_to_end(&mut response)?;
    // Tell the client this connection ends here, whatever the upstream said.
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(response.len());
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let mut fixed: Vec<u8> = head
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .flat_map(|l| [l.as_bytes(), b"\r\n"].concat())
        .collect();
    fixed.extend_from_slice(b"Connection: close\r\n");
    fixed.extend_from_slice(response.get(split + 2..).unwrap_or_default());
    Ok(fixed)
}

fn respond(client: &mut TcpStream, status: u16, code: &str) -> std::io::Result<()> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
         <Message>injected by the test proxy</Message></Error>"
    );
    let reason = match status {
        403 => "Forbidden",
        500 => "Internal Server Error",
        _ => "Service Unavailable",
    };
    write!(
        client,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )?;
    client.flush()
}

/// A directory for things a test keeps outside the repository.
pub fn scratch(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(&p).expect("scratch dir");
    p
}
