//! Opens etcd's snapshot stream over HTTP(S), with the client certificate kubeadm clusters
//! require.
//!
//! This speaks to etcd's gRPC gateway (`POST /v3/maintenance/snapshot`), which every etcd since
//! 3.3 serves on its client port unless started with `--enable-grpc-gateway=false`. It is the
//! same `Maintenance.Snapshot` call etcdctl makes, through the HTTP stack the S3 backend already
//! links; a native gRPC client would bring tonic, prost and a `protoc` build dependency for one
//! streaming call.

use std::io::BufReader;
use std::time::Duration;

use kairn_format::error::{Error, ErrorKind, Result};

use super::gateway::GatewayStream;

/// PEM-encoded TLS material for etcd, as kubeadm lays it out under `/etc/kubernetes/pki/etcd`.
#[derive(Debug, Clone, Default)]
pub struct EtcdTls {
    /// The CA that signed etcd's server certificate (`ca.crt`). Without it, the system's roots.
    pub ca: Option<Vec<u8>>,
    /// The client certificate (`healthcheck-client.crt`), PEM.
    pub cert: Option<Vec<u8>>,
    /// The client certificate's private key, PEM.
    pub key: Option<Vec<u8>>,
}

impl EtcdTls {
    fn any(&self) -> bool {
        self.ca.is_some() || self.cert.is_some() || self.key.is_some()
    }
}

/// Where etcd is and how to reach it.
#[derive(Debug, Clone)]
pub struct EtcdSource {
    /// Client URLs (`https://10.0.0.1:2379`), tried in order until one answers. Without a
    /// scheme, `https` when TLS material is given, `http` otherwise.
    pub endpoints: Vec<String>,
    /// TLS material.
    pub tls: EtcdTls,
    /// How long to wait for a connection to each endpoint.
    pub connect_timeout: Duration,
    /// How long a connection may stay silent (TCP user timeout) before it counts as dead.
    pub idle_timeout: Duration,
}

impl Default for EtcdSource {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            tls: EtcdTls::default(),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// A snapshot stream being received.
pub struct OpenStream {
    /// The endpoint that answered.
    pub endpoint: String,
    /// The decoded bytes: the database, then its SHA-256.
    pub stream: GatewayStream<BufReader<reqwest::blocking::Response>>,
}

fn url_for(endpoint: &str, tls: bool) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.contains("://") {
        format!("{base}/v3/maintenance/snapshot")
    } else if tls {
        format!("https://{base}/v3/maintenance/snapshot")
    } else {
        format!("http://{base}/v3/maintenance/snapshot")
    }
}

fn client(source: &EtcdSource) -> Result<reqwest::blocking::Client> {
    let tls_err = |what: &str, e: reqwest::Error| {
        Error::invalid(format!("cannot use the etcd {what}")).with_source(e)
    };
    let mut builder = reqwest::blocking::Client::builder()
        .timeout(None)
        .connect_timeout(source.connect_timeout)
        .tcp_user_timeout(source.idle_timeout)
        .tcp_keepalive(Duration::from_secs(15));
    let tls = &source.tls;
    if let Some(ca) = &tls.ca {
        let certs =
            reqwest::Certificate::from_pem_bundle(ca).map_err(|e| tls_err("CA certificate", e))?;
        if certs.is_empty() {
            return Err(Error::invalid("the etcd CA file holds no PEM certificate"));
        }
        builder = builder.tls_certs_only(certs);
    }
    match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let mut pem = cert.clone();
            pem.push(b'\n');
            pem.extend_from_slice(key);
            let identity = reqwest::Identity::from_pem(&pem)
                .map_err(|e| tls_err("client certificate and key", e))?;
            builder = builder.identity(identity);
        }
        (None, None) => {}
        _ => {
            return Err(Error::invalid(
                "an etcd client certificate needs its key, and a key its certificate",
            ));
        }
    }
    builder
        .build()
        .map_err(|e| Error::invalid("cannot set up the etcd client").with_source(e))
}

/// Asks the endpoints in order for a snapshot, and returns the first stream one grants: an
/// endpoint that cannot be reached or refuses (any HTTP error) is passed over for the next.
pub fn open(source: &EtcdSource) -> Result<OpenStream> {
    if source.endpoints.is_empty() {
        return Err(Error::invalid("no etcd endpoint given"));
    }
    let http = client(source)?;
    let mut failures = Vec::new();
    for endpoint in &source.endpoints {
        let url = url_for(endpoint, source.tls.any());
        let response = match http
            .post(&url)
            .header("content-type", "application/json")
            .body("{}")
            .send()
        {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{endpoint}: {}", chain(&e)));
                continue;
            }
        };
        let status = response.status();
        if !status.is_success() {
            let body = response.text().unwrap_or_default();
            let hint = if status.as_u16() == 404 {
                " (is etcd's gRPC gateway disabled?)"
            } else {
                ""
            };
            failures.push(format!(
                "{endpoint} answered HTTP {status}{hint}: {}",
                body.trim()
            ));
            continue;
        }
        return Ok(OpenStream {
            endpoint: endpoint.clone(),
            stream: GatewayStream::new(BufReader::with_capacity(256 * 1024, response)),
        });
    }
    Err(Error::new(
        ErrorKind::SourceUnavailable,
        format!("cannot take a snapshot from etcd: {}", failures.join("; ")),
    )
    .set_retryable(true))
}

/// An error and its causes on one line: reqwest's own message rarely says what failed (a TLS
/// handshake, a refused connection).
fn chain(err: &dyn std::error::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_get_the_scheme_the_tls_settings_imply() {
        assert_eq!(
            url_for("10.0.0.1:2379", true),
            "https://10.0.0.1:2379/v3/maintenance/snapshot"
        );
        assert_eq!(
            url_for("10.0.0.1:2379", false),
            "http://10.0.0.1:2379/v3/maintenance/snapshot"
        );
        assert_eq!(
            url_for("http://127.0.0.1:2379/", true),
            "http://127.0.0.1:2379/v3/maintenance/snapshot"
        );
    }
}
