//! A blocking client of the OCI distribution API over `oci-client`: manifests and blobs
//! fetched by digest and checked as they stream, blobs and manifests pushed. Its own runtime
//! runs the requests, and callers wait on channels, so it may be used from any thread that is
//! not itself driving async tasks (the agent calls the engine from blocking threads).

use std::future::Future;
use std::io::{Read, Write};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;

use super::auth::Credentials;
use kairn_format::error::{Error, ErrorKind, Result};

/// Where registries are and how to reach them.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Logins by registry host.
    pub credentials: Credentials,
    /// Hosts reached over plain HTTP. Loopback hosts (`localhost`, `127.0.0.0/8`, `[::1]`)
    /// always are, as Docker does.
    pub insecure: Vec<String>,
}

/// A connection to registries; cheap to keep for a whole backup or push.
pub struct Registry {
    runtime: Option<tokio::runtime::Runtime>,
    client: Client,
    credentials: Credentials,
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// True for the hosts Docker reaches over HTTP without being told.
pub fn is_loopback(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    name == "localhost" || name == "[::1]" || name.starts_with("127.")
}

impl Registry {
    /// A client for references on `hosts` (to know which of them speak plain HTTP).
    pub fn new<'h>(
        options: &RegistryOptions,
        hosts: impl IntoIterator<Item = &'h str>,
    ) -> Result<Self> {
        let mut plain: Vec<String> = options.insecure.clone();
        plain.extend(
            hosts
                .into_iter()
                .filter(|h| is_loopback(h))
                .map(String::from),
        );
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(plain),
            use_monolithic_push: true,
            connect_timeout: Some(Duration::from_secs(30)),
            read_timeout: Some(Duration::from_secs(300)),
            platform_resolver: None,
            ..Default::default()
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("kairn-registry")
            .enable_all()
            .build()
            .map_err(|e| Error::io("cannot start the registry client", e))?;
        Ok(Self {
            runtime: Some(runtime),
            client: Client::new(config),
            credentials: options.credentials.clone(),
        })
    }

    fn run<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> Result<T> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let rt = self
            .runtime
            .as_ref()
            .ok_or_else(|| Error::internal("the registry client is shut down"))?;
        rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .map_err(|_| Error::internal("a registry request stopped without an answer"))
    }

    fn auth_for(&self, reference: &Reference) -> RegistryAuth {
        match self.credentials.get(reference.registry()) {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
            None => RegistryAuth::Anonymous,
        }
    }

    /// Logs in for `reference`'s repository, to pull, or to pull and push.
    pub fn login(&self, reference: &Reference, push: bool) -> Result<()> {
        let (client, r, auth) = (
            self.client.clone(),
            reference.clone(),
            self.auth_for(reference),
        );
        let op = if push {
            RegistryOperation::Push
        } else {
            RegistryOperation::Pull
        };
        self.run(async move { client.auth(&r, &auth, op).await })?
            .map(|_| ())
            .map_err(|e| registry_error(&format!("cannot log in to {}", reference.registry()), e))
    }

    /// A manifest or index, as the registry serves it. The caller checks its digest.
    pub fn manifest(&self, reference: &Reference, accepted: &[&'static str]) -> Result<Vec<u8>> {
        let (client, r, auth) = (
            self.client.clone(),
            reference.clone(),
            self.auth_for(reference),
        );
        let accepted = accepted.to_vec();
        self.run(async move { client.pull_manifest_raw(&r, &auth, &accepted).await })?
            .map(|(bytes, _)| bytes.to_vec())
            .map_err(|e| {
                registry_error(
                    &format!("cannot fetch the manifest of {}", reference.whole()),
                    e,
                )
            })
    }

    /// Streams a blob; the reader checks its size and digest and fails at the first byte too
    /// many or at its end. After a failed read, [`BlobReader::failure`] says what went wrong.
    pub fn blob(&self, reference: &Reference, digest: &str, size: u64) -> Result<BlobReader> {
        let (client, r) = (self.client.clone(), reference.clone());
        let descriptor = OciDescriptor {
            digest: digest.to_string(),
            size: size as i64,
            ..Default::default()
        };
        let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(8);
        let opened = self.run(async move {
            let mut stream = client.pull_blob_stream(&r, &descriptor).await?;
            tokio::spawn(async move {
                while let Some(chunk) = stream.next().await {
                    if tx.send(chunk).await.is_err() {
                        break;
                    }
                }
            });
            Ok::<_, OciDistributionError>(())
        })?;
        opened.map_err(|e| {
            registry_error(
                &format!("cannot fetch {digest} of {}", reference.whole()),
                e,
            )
        })?;
        Ok(BlobReader {
            rx,
            current: Bytes::new(),
            hasher: Sha256::new(),
            received: 0,
            size,
            digest: digest.to_string(),
            source: reference.whole(),
            failure: None,
        })
    }

    /// True when the repository of `reference` has the blob.
    pub fn has_blob(&self, reference: &Reference, digest: &str) -> Result<bool> {
        let (client, r, d) = (self.client.clone(), reference.clone(), digest.to_string());
        self.run(async move { client.blob_exists(&r, &d).await })?
            .map_err(|e| {
                registry_error(&format!("cannot ask {} for {digest}", reference.whole()), e)
            })
    }

    /// Uploads a blob of `size` bytes whose content `write` produces.
    pub fn push_blob(
        &self,
        reference: &Reference,
        digest: &str,
        size: u64,
        write: impl FnOnce(&mut dyn Write) -> Result<()>,
    ) -> Result<()> {
        let (tx, rx) = mpsc::channel::<Bytes>(4);
        let (client, r, d) = (self.client.clone(), reference.clone(), digest.to_string());
        let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
        let rt = self
            .runtime
            .as_ref()
            .ok_or_else(|| Error::internal("the registry client is shut down"))?;
        rt.spawn(async move {
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|b| (Ok(b), rx))
            });
            let _ = done_tx.send(client.push_blob_stream(&r, stream, &d, Some(size)).await);
        });
        let mut writer = ChannelWriter {
            tx: Some(tx),
            buf: Vec::with_capacity(CHUNK),
        };
        let written = write(&mut writer).and_then(|()| {
            writer
                .flush()
                .map_err(|e| Error::io("cannot send a blob to the registry", e))
        });
        drop(writer);
        let pushed = done_rx
            .recv()
            .map_err(|_| Error::internal("a registry upload stopped without an answer"))?;
        pushed.map_err(|e| {
            registry_error(
                &format!("cannot upload {digest} to {}", reference.whole()),
                e,
            )
        })?;
        written
    }

    /// Uploads a manifest or index under `reference` (a tag, or its digest).
    pub fn push_manifest(
        &self,
        reference: &Reference,
        bytes: Vec<u8>,
        media_type: &str,
    ) -> Result<()> {
        let content_type = http_header(media_type)?;
        let (client, r) = (self.client.clone(), reference.clone());
        self.run(async move { client.push_manifest_raw(&r, bytes, content_type).await })?
            .map(|_| ())
            .map_err(|e| {
                registry_error(
                    &format!("cannot upload the manifest {}", reference.whole()),
                    e,
                )
            })
    }
}

fn http_header(media_type: &str) -> Result<reqwest::header::HeaderValue> {
    media_type
        .parse()
        .map_err(|_| Error::invalid(format!("{media_type:?} is not a media type")))
}

const CHUNK: usize = 1 << 20;

struct ChannelWriter {
    tx: Option<mpsc::Sender<Bytes>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        let tx = self.tx.as_ref().ok_or(std::io::ErrorKind::BrokenPipe)?;
        tx.blocking_send(chunk)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the upload stopped"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// A blob as it streams from the registry, checked against its descriptor.
pub struct BlobReader {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
    hasher: Sha256,
    received: u64,
    size: u64,
    digest: String,
    source: String,
    failure: Option<Error>,
}

impl BlobReader {
    /// Why the stream was refused or broke off, once a read failed.
    pub fn failure(&mut self) -> Option<Error> {
        self.failure.take()
    }

    fn fail(&mut self, e: Error) -> std::io::Error {
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string());
        self.failure = Some(e);
        io
    }

    fn corrupt(&mut self, why: String) -> std::io::Error {
        let e = Error::new(
            ErrorKind::SourceCorrupt,
            format!("{} of {} is refused: {why}", self.digest, self.source),
        );
        self.fail(e)
    }

    fn at_end(&mut self) -> std::io::Result<()> {
        if self.received != self.size {
            let why = format!(
                "the registry sent {} bytes, the manifest says {}",
                self.received, self.size
            );
            return Err(self.corrupt(why));
        }
        let actual = format!("sha256:{}", hex::encode(self.hasher.clone().finalize()));
        if actual != self.digest {
            return Err(self.corrupt(format!("its content hashes to {actual}")));
        }
        Ok(())
    }
}

impl Read for BlobReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                None => {
                    self.at_end()?;
                    return Ok(0);
                }
                Some(Ok(chunk)) => {
                    self.received += chunk.len() as u64;
                    if self.received > self.size {
                        let why = format!(
                            "the registry sends more than the {} bytes the manifest says",
                            self.size
                        );
                        return Err(self.corrupt(why));
                    }
                    self.hasher.update(&chunk);
                    self.current = chunk;
                }
                // oci-client checks the digest too, and says so at the end of the stream.
                Some(Err(_)) if self.received == self.size => {
                    self.at_end()?;
                    return Ok(0);
                }
                Some(Err(e)) => {
                    let e = Error::new(
                        ErrorKind::SourceUnavailable,
                        format!(
                            "the stream of {} from {} broke off: {e}",
                            self.digest, self.source
                        ),
                    )
                    .set_retryable(true);
                    return Err(self.fail(e));
                }
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// An engine error for a registry's answer: refused credentials are [`ErrorKind::SourceDenied`],
/// what the registry does not have [`ErrorKind::NotFound`], bad data
/// [`ErrorKind::SourceCorrupt`], the rest [`ErrorKind::SourceUnavailable`] (retryable).
pub fn registry_error(context: &str, e: OciDistributionError) -> Error {
    let kind = match &e {
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => ErrorKind::SourceDenied,
        OciDistributionError::ImageManifestNotFoundError(_) => ErrorKind::NotFound,
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                ErrorKind::SourceDenied
            } else if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::BlobUnknown
                )
            }) {
                ErrorKind::NotFound
            } else {
                ErrorKind::SourceUnavailable
            }
        }
        OciDistributionError::ServerError { code, .. } => match code {
            401 | 403 => ErrorKind::SourceDenied,
            404 => ErrorKind::NotFound,
            _ => ErrorKind::SourceUnavailable,
        },
        OciDistributionError::DigestError(_) => ErrorKind::SourceCorrupt,
        OciDistributionError::RequestError(r) => match r.status().map(|s| s.as_u16()) {
            Some(401 | 403) => ErrorKind::SourceDenied,
            Some(404) => ErrorKind::NotFound,
            _ => ErrorKind::SourceUnavailable,
        },
        _ => ErrorKind::SourceUnavailable,
    };
    let retryable = kind == ErrorKind::SourceUnavailable;
    Error::new(kind, format!("{context}: {e}")).set_retryable(retryable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_known_with_or_without_a_port() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:80",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["registry.example:5000", "10.0.0.1:5000", "127x.example"] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn registry_answers_map_to_error_kinds() {
        let denied = OciDistributionError::UnauthorizedError { url: "u".into() };
        assert_eq!(registry_error("x", denied).kind(), ErrorKind::SourceDenied);
        let missing = OciDistributionError::ServerError {
            code: 404,
            url: "u".into(),
            message: "m".into(),
        };
        assert_eq!(registry_error("x", missing).kind(), ErrorKind::NotFound);
        let down = OciDistributionError::ServerError {
            code: 503,
            url: "u".into(),
            message: "m".into(),
        };
        let e = registry_error("x", down);
        assert_eq!(e.kind(), ErrorKind::SourceUnavailable);
        assert!(e.is_retryable());
    }
}
