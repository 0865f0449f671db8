//! etcd's JSON gateway for `Maintenance.Snapshot` (`POST /v3/maintenance/snapshot`): one JSON
//! message per line, `{"result":{"remaining_bytes":"N","blob":"<base64>"}}`, or
//! `{"error":{...}}` when the server fails mid-stream. This turns those lines back into the
//! bytes etcd sent; no I/O of its own, so it can be tested and fuzzed.

use std::io::{self, BufRead, Read};

use base64::Engine as _;
use serde::Deserialize;

#[derive(Deserialize)]
struct Line {
    #[serde(default)]
    result: Option<Message>,
    #[serde(default)]
    error: Option<ServerError>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    remaining_bytes: Option<String>,
    #[serde(default)]
    blob: String,
}

#[derive(Deserialize)]
struct ServerError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    grpc_code: i64,
}

/// The bytes of a gateway snapshot stream, as a reader.
pub struct GatewayStream<R> {
    lines: R,
    line: Vec<u8>,
    pending: Vec<u8>,
    offset: usize,
    /// The size of the whole stream, as the first message announces it.
    total: Option<u64>,
}

impl<R: BufRead> GatewayStream<R> {
    /// Decodes the gateway's lines read from `lines`.
    pub fn new(lines: R) -> Self {
        Self {
            lines,
            line: Vec::new(),
            pending: Vec::new(),
            offset: 0,
            total: None,
        }
    }

    /// The database size etcd announced in its first message, once that has been read: the
    /// bytes of that message plus `remaining_bytes` (the hash comes on top).
    pub fn announced_size(&self) -> Option<u64> {
        self.total
    }

    /// Reads the next message with data; false at the end of the stream.
    fn next_message(&mut self) -> io::Result<bool> {
        loop {
            self.line.clear();
            if self.lines.read_until(b'\n', &mut self.line)? == 0 {
                return Ok(false);
            }
            let text = self.line.trim_ascii();
            if text.is_empty() {
                continue;
            }
            let line: Line = serde_json::from_slice(text).map_err(|e| {
                invalid(format!(
                    "etcd sent a snapshot message that is not JSON: {e}"
                ))
            })?;
            if let Some(err) = line.error {
                return Err(io::Error::other(format!(
                    "etcd failed the snapshot (gRPC code {}): {}",
                    err.grpc_code, err.message
                )));
            }
            let Some(message) = line.result else {
                return Err(invalid(
                    "etcd sent a snapshot message without a result".into(),
                ));
            };
            let blob = base64::engine::general_purpose::STANDARD
                .decode(message.blob.as_bytes())
                .map_err(|e| {
                    invalid(format!("etcd sent a snapshot blob that is not base64: {e}"))
                })?;
            if self.total.is_none() {
                let remaining = match message.remaining_bytes.as_deref() {
                    None | Some("") => 0,
                    Some(n) => n.parse::<u64>().map_err(|_| {
                        invalid(format!("etcd sent remaining_bytes {n:?}, not a number"))
                    })?,
                };
                self.total = Some(remaining.saturating_add(blob.len() as u64));
            }
            if blob.is_empty() {
                continue;
            }
            self.pending = blob;
            self.offset = 0;
            return Ok(true);
        }
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

impl<R: BufRead> Read for GatewayStream<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.offset == self.pending.len() {
            if !self.next_message()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.pending.len() - self.offset);
        buf[..n].copy_from_slice(&self.pending[self.offset..self.offset + n]);
        self.offset += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(remaining: Option<u64>, blob: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(blob);
        match remaining {
            Some(r) => format!(r#"{{"result":{{"remaining_bytes":"{r}","blob":"{b64}"}}}}"#),
            None => format!(r#"{{"result":{{"blob":"{b64}"}}}}"#),
        }
    }

    #[test]
    fn decodes_the_messages_in_order() {
        let text = [
            line(Some(6), b"abcd"),
            line(Some(2), b"efgh"),
            line(None, b"ij"),
            line(None, b"HASH"),
        ]
        .join("\n")
            + "\n";
        let mut stream = GatewayStream::new(text.as_bytes());
        let mut out = Vec::new();
        stream.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abcdefghijHASH");
        assert_eq!(stream.announced_size(), Some(10));
    }

    #[test]
    fn a_server_error_mid_stream_is_an_error() {
        let text = format!(
            "{}\n{}\n",
            line(Some(10), b"abcd"),
            r#"{"error":{"grpc_code":14,"http_code":503,"message":"transport is closing"}}"#
        );
        let mut out = Vec::new();
        let err = GatewayStream::new(text.as_bytes())
            .read_to_end(&mut out)
            .unwrap_err();
        assert!(err.to_string().contains("transport is closing"), "{err}");
    }

    #[test]
    fn garbage_is_invalid_data() {
        for text in ["not json\n", "{\"result\":{\"blob\":\"@@@\"}}\n", "{}\n"] {
            let mut out = Vec::new();
            let err = GatewayStream::new(text.as_bytes())
                .read_to_end(&mut out)
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{text}");
        }
    }
}
