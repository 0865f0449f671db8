//! An in-process **fake** Kubernetes API server, kept for the one thing the real kube-apiserver
//! of the tests cannot do without a kubelet behind it: run exec hooks. It serves real-format
//! JSON (objects as `kubectl get -o json` shows them, `List` envelopes, `Status` errors) over
//! plain HTTP on 127.0.0.1, for the subset of the API the node agent uses:
//!
//! - `GET` of a collection (one namespace or all), with the `fieldSelector`s `spec.nodeName`
//!   and `metadata.name`; `GET` of one object;
//! - `POST` to create (uid, resourceVersion and creationTimestamp filled in);
//! - `PATCH` of an object or its `status` subresource, as a JSON merge patch (RFC 7386), with
//!   `metadata.resourceVersion` in the body as a precondition (409 Conflict when stale).
//!
//! - `GET` with `watch=true`: the changes since `resourceVersion`, as a watch stream that the
//!   fake ends at once (after 20 ms when there is none): the client then watches again from
//!   where it was, so a watch is a poll that costs the fake little;
//! - the exec subresource (`pods/<name>/exec`) over WebSocket with the `v4.channel.k8s.io`
//!   protocol. There is no container: the fake runs the command as a local process, streams
//!   its stdout and stderr on channels 1 and 2, and its exit status as a `Status` on channel
//!   3, as the kubelet does.
//!
//! It keeps every object in memory; tests read and change them directly too.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde_json::{Value, json};

#[derive(Default)]
struct Store {
    /// Commands run through the exec API: (namespace/pod, container, command).
    execs: Vec<(String, String, Vec<String>)>,
    /// Collection path (`/api/v1/pods`, `/apis/kairn.dev/v1alpha1/volumebackups`) to objects
    /// by (namespace, name).
    objects: BTreeMap<String, BTreeMap<(String, String), Value>>,
    resource_version: u64,
}

/// A running fake API server; stopped when dropped.
pub struct FakeKube {
    addr: std::net::SocketAddr,
    store: Arc<Mutex<Store>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Where a request goes: the collection, the namespace, the name and the subresource.
#[derive(Debug)]
struct Target {
    collection: String,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn parse_path(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (prefix, rest) = match parts.as_slice() {
        ["api", v, rest @ ..] => (format!("/api/{v}"), rest),
        ["apis", g, v, rest @ ..] => (format!("/apis/{g}/{v}"), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some(ns.to_string()), rest),
        _ => (None, rest),
    };
    let (resource, name, sub) = match rest {
        [r] => (*r, None, None),
        [r, n] => (*r, Some(n.to_string()), None),
        [r, n, s] => (*r, Some(n.to_string()), Some(s.to_string())),
        _ => return None,
    };
    Some(Target {
        collection: format!("{prefix}/{resource}"),
        namespace,
        name,
        subresource: sub,
    })
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let t = target.as_object_mut().expect("made an object above");
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

fn status_error(code: u16, reason: &str, message: &str) -> (u16, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code}),
    )
}

fn field_matches(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let Some((field, want)) = term.split_once('=') else {
            return false;
        };
        let want = want.trim_start_matches('=');
        let pointer = format!("/{}", field.replace('.', "/"));
        obj.pointer(&pointer).and_then(Value::as_str) == Some(want)
    })
}

/// Equality-based label selectors (`a=b,c!=d`, `e`), as a real server reads them.
fn labels_match(obj: &Value, selector: &str) -> bool {
    let labels = &obj["metadata"]["labels"];
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        if let Some((k, v)) = term.split_once("!=") {
            labels[k.trim()].as_str() != Some(v.trim())
        } else if let Some((k, v)) = term.split_once('=') {
            labels[k.trim().trim_end_matches('=')].as_str() == Some(v.trim())
        } else if let Some(k) = term.strip_prefix('!') {
            labels[k.trim()].is_null()
        } else {
            !labels[term.trim()].is_null()
        }
    })
}

fn query_param(url: &str, key: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => out.push(b),
                    Err(_) => out.extend_from_slice(&bytes[i..i + 3]),
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `/api/v1/pods` → `v1`; `/apis/kairn.dev/v1alpha1/x` → `kairn.dev/v1alpha1`.
fn api_version(collection: &str) -> String {
    let parts: Vec<&str> = collection.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["apis", g, v, ..] => format!("{g}/{v}"),
        [_, v, ..] => v.to_string(),
        _ => "v1".to_string(),
    }
}

impl Store {
    /// The objects of `t`'s collection that the selectors in `url` pick and that changed after
    /// resource version `since`, as watch events.
    fn changes(&self, t: &Target, url: &str, since: u64) -> Vec<Value> {
        let fields = query_param(url, "fieldSelector").unwrap_or_default();
        let labels = query_param(url, "labelSelector").unwrap_or_default();
        let rv = |o: &Value| -> u64 {
            o["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        self.objects
            .get(&t.collection)
            .into_iter()
            .flatten()
            .filter(|((ns, _), _)| t.namespace.as_ref().is_none_or(|want| want == ns))
            .map(|(_, obj)| obj)
            .filter(|obj| rv(obj) > since)
            .filter(|obj| field_matches(obj, &fields) && labels_match(obj, &labels))
            .map(|obj| json!({"type": "MODIFIED", "object": obj}))
            .collect()
    }

    fn next_rv(&mut self) -> String {
        self.resource_version += 1;
        self.resource_version.to_string()
    }

    fn handle(&mut self, method: &str, url: &str, body: &[u8]) -> (u16, Value) {
        let path = url.split('?').next().unwrap_or(url);
        let Some(t) = parse_path(path) else {
            return status_error(404, "NotFound", &format!("no route {path}"));
        };
        match (method, &t.name) {
            ("GET", None) => self.list(&t, url),
            ("GET", Some(name)) => match self.get(&t, name) {
                Some(obj) => (200, obj.clone()),
                None => status_error(
                    404,
                    "NotFound",
                    &format!("{} {name} not found", t.collection),
                ),
            },
            ("POST", None) => match serde_json::from_slice::<Value>(body) {
                Ok(obj) => self.create(&t, obj),
                Err(e) => status_error(400, "BadRequest", &e.to_string()),
            },
            ("PATCH", Some(name)) => match serde_json::from_slice::<Value>(body) {
                Ok(patch) => self.patch(&t, name, &patch),
                Err(e) => status_error(400, "BadRequest", &e.to_string()),
            },
            _ => status_error(405, "MethodNotAllowed", &format!("{method} {path}")),
        }
    }

    fn get(&self, t: &Target, name: &str) -> Option<&Value> {
        self.objects
            .get(&t.collection)?
            .get(&(t.namespace.clone().unwrap_or_default(), name.to_string()))
    }

    fn list(&self, t: &Target, url: &str) -> (u16, Value) {
        let fields = query_param(url, "fieldSelector").unwrap_or_default();
        let labels = query_param(url, "labelSelector").unwrap_or_default();
        let mut items: Vec<Value> = self
            .objects
            .get(&t.collection)
            .into_iter()
            .flatten()
            .filter(|((ns, _), _)| t.namespace.as_ref().is_none_or(|want| want == ns))
            .map(|(_, obj)| obj.clone())
            .filter(|obj| field_matches(obj, &fields) && labels_match(obj, &labels))
            .collect();
        let kind = items
            .first()
            .and_then(|o| o["kind"].as_str())
            .map_or("List".to_string(), |k| format!("{k}List"));
        // Paging (`limit`, `continue`): the token is the offset of the next item.
        let offset: usize = query_param(url, "continue")
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let limit: usize = query_param(url, "limit")
            .and_then(|l| l.parse().ok())
            .filter(|&l| l > 0)
            .unwrap_or(usize::MAX);
        let total = items.len();
        items = items.into_iter().skip(offset).take(limit).collect();
        let next = offset.saturating_add(items.len());
        // A built-in type's list items carry no apiVersion or kind (only the envelope does);
        // custom resources are served as unstructured objects, which keep theirs.
        let version = api_version(&t.collection);
        let group = version.rsplit_once('/').map(|(g, _)| g).unwrap_or_default();
        if !group.contains('.') || group.ends_with(".k8s.io") {
            for item in &mut items {
                if let Some(o) = item.as_object_mut() {
                    o.remove("apiVersion");
                    o.remove("kind");
                }
            }
        }
        let mut metadata = json!({"resourceVersion": self.resource_version.to_string()});
        if next < total {
            metadata["continue"] = json!(next.to_string());
            metadata["remainingItemCount"] = json!(total - next);
        }
        (
            200,
            json!({"apiVersion": version, "kind": kind, "metadata": metadata, "items": items}),
        )
    }

    fn create(&mut self, t: &Target, mut obj: Value) -> (u16, Value) {
        let ns = t
            .namespace
            .clone()
            .or_else(|| obj["metadata"]["namespace"].as_str().map(String::from))
            .unwrap_or_default();
        let Some(name) = obj["metadata"]["name"].as_str().map(String::from) else {
            return status_error(422, "Invalid", "metadata.name is required");
        };
        let key = (ns.clone(), name.clone());
        if self
            .objects
            .get(&t.collection)
            .is_some_and(|c| c.contains_key(&key))
        {
            return status_error(409, "AlreadyExists", &format!("{name} already exists"));
        }
        let rv = self.next_rv();
        let meta = &mut obj["metadata"];
        if !ns.is_empty() {
            meta["namespace"] = json!(ns);
        }
        meta["uid"] = json!(format!("uid-{}-{rv}", name));
        meta["resourceVersion"] = json!(rv);
        meta["creationTimestamp"] = json!("2026-11-23T00:00:00Z");
        self.objects
            .entry(t.collection.clone())
            .or_default()
            .insert(key, obj.clone());
        (201, obj)
    }

    fn patch(&mut self, t: &Target, name: &str, patch: &Value) -> (u16, Value) {
        let rv = self.next_rv();
        let key = (t.namespace.clone().unwrap_or_default(), name.to_string());
        let Some(obj) = self
            .objects
            .get_mut(&t.collection)
            .and_then(|c| c.get_mut(&key))
        else {
            return status_error(404, "NotFound", &format!("{name} not found"));
        };
        if let Some(want) = patch
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            && obj["metadata"]["resourceVersion"].as_str() != Some(want)
        {
            return status_error(
                409,
                "Conflict",
                &format!(
                    "the object has been modified; please apply your changes to the latest version ({name})"
                ),
            );
        }
        match t.subresource.as_deref() {
            Some("status") => merge_patch(&mut obj["status"], &patch["status"]),
            None => {
                let mut p = patch.clone();
                if let Some(m) = p.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("resourceVersion");
                }
                if let Some(m) = p.as_object_mut() {
                    m.remove("status");
                }
                merge_patch(obj, &p);
            }
            Some(other) => {
                return status_error(404, "NotFound", &format!("no subresource {other}"));
            }
        }
        obj["metadata"]["resourceVersion"] = json!(rv);
        (200, obj.clone())
    }
}

impl FakeKube {
    /// Starts the server on a free port of 127.0.0.1.
    pub fn start() -> Self {
        let server = tiny_http::Server::http("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = server.server_addr().to_ip().expect("an IP address");
        let store = Arc::new(Mutex::new(Store::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (store.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                let Ok(Some(mut req)) = server.recv_timeout(std::time::Duration::from_millis(50))
                else {
                    continue;
                };
                if req.url().contains("/exec?") {
                    exec::serve(req, &s);
                    continue;
                }
                if query_param(req.url(), "watch").as_deref() == Some("true") {
                    watch::serve(req, &s);
                    continue;
                }
                let mut body = Vec::new();
                let _ = req.as_reader().read_to_end(&mut body);
                let method = req.method().as_str().to_ascii_uppercase();
                let (code, value) = s.lock().expect("store").handle(&method, req.url(), &body);
                let header = tiny_http::Header::from_bytes("Content-Type", "application/json")
                    .expect("a valid header");
                let response = tiny_http::Response::from_string(value.to_string())
                    .with_status_code(code)
                    .with_header(header);
                let _ = req.respond(response);
            }
        });
        Self {
            addr,
            store,
            stop,
            thread: Some(thread),
        }
    }

    /// The server's URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig that points at this server, with no credentials.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n\
             current-context: fake\nusers:\n- name: fake\n  user: {{}}\n",
            self.url()
        )
    }

    /// Creates an object under `collection_path` (for example
    /// `/apis/kairn.dev/v1alpha1/namespaces/shop/volumebackups`), as a `POST` would.
    pub fn create(&self, collection_path: &str, obj: Value) -> Value {
        let (code, v) = self.request("POST", collection_path, &obj);
        assert_eq!(code, 201, "create {collection_path}: {v}");
        v
    }

    /// Reads one object, or `None` when there is none.
    pub fn get(&self, path: &str) -> Option<Value> {
        let (code, v) = self.request("GET", path, &Value::Null);
        (code == 200).then_some(v)
    }

    /// Applies a merge patch to an object (or, with a `/status` path, to its status).
    pub fn patch(&self, path: &str, patch: Value) -> Value {
        let (code, v) = self.request("PATCH", path, &patch);
        assert_eq!(code, 200, "patch {path}: {v}");
        v
    }

    /// Every object of a collection, in every namespace.
    pub fn list(&self, collection: &str) -> Vec<Value> {
        let (_, v) = self.request("GET", collection, &Value::Null);
        v["items"].as_array().cloned().unwrap_or_default()
    }

    /// Commands run through the exec API so far: (namespace/pod, container, command).
    pub fn execs(&self) -> Vec<(String, String, Vec<String>)> {
        self.store.lock().expect("store").execs.clone()
    }

    fn request(&self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        let body = serde_json::to_vec(body).expect("JSON");
        self.store
            .lock()
            .expect("store")
            .handle(method, path, &body)
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

mod watch {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use super::{Store, parse_path, query_param};

    /// Answers a watch: the changes after the requested resource version (waiting 20 ms for
    /// some when there are none), as newline-delimited events, then the end of the stream.
    /// Served in turn with every other request: one connection held open would hold them up.
    pub fn serve(req: tiny_http::Request, store: &Arc<Mutex<Store>>) {
        let url = req.url().to_string();
        let path = url.split('?').next().unwrap_or(&url).to_string();
        let since: u64 = query_param(&url, "resourceVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let start = Instant::now();
        let events = loop {
            let events = match parse_path(&path) {
                Some(t) => store.lock().expect("store").changes(&t, &url, since),
                None => Vec::new(),
            };
            if !events.is_empty() || start.elapsed() > Duration::from_millis(20) {
                break events;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let body: String = events.iter().map(|e| format!("{e}\n")).collect();
        let header = tiny_http::Header::from_bytes("Content-Type", "application/json")
            .expect("a valid header");
        let _ = req.respond(tiny_http::Response::from_string(body).with_header(header));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_collections_namespaces_and_subresources() {
        let t =
            parse_path("/apis/kairn.dev/v1alpha1/namespaces/shop/volumebackups/b1/status").unwrap();
        assert_eq!(t.collection, "/apis/kairn.dev/v1alpha1/volumebackups");
        assert_eq!(t.namespace.as_deref(), Some("shop"));
        assert_eq!(t.name.as_deref(), Some("b1"));
        assert_eq!(t.subresource.as_deref(), Some("status"));
        let t = parse_path("/api/v1/pods").unwrap();
        assert_eq!(
            (t.collection.as_str(), t.namespace, t.name),
            ("/api/v1/pods", None, None)
        );
    }

    #[test]
    fn a_stale_resource_version_is_a_conflict() {
        let mut s = Store::default();
        let c = "/apis/kairn.dev/v1alpha1/namespaces/a/volumebackups";
        s.handle("POST", c, br#"{"metadata":{"name":"b"},"spec":{}}"#);
        let ok = br#"{"metadata":{"resourceVersion":"1"},"status":{"phase":"InProgress"}}"#;
        assert_eq!(s.handle("PATCH", &format!("{c}/b/status"), ok).0, 200);
        assert_eq!(s.handle("PATCH", &format!("{c}/b/status"), ok).0, 409);
        let (_, obj) = s.handle("GET", &format!("{c}/b"), b"");
        assert_eq!(obj["status"]["phase"], "InProgress");
    }

    #[test]
    fn lists_filter_on_the_node_name() {
        let mut s = Store::default();
        for (n, node) in [("p1", "n1"), ("p2", "n2")] {
            let pod = json!({"kind": "Pod", "metadata": {"name": n}, "spec": {"nodeName": node}});
            s.handle(
                "POST",
                "/api/v1/namespaces/x/pods",
                pod.to_string().as_bytes(),
            );
        }
        let (_, list) = s.handle("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dn2", b"");
        let items = list["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["metadata"]["name"], "p2");
        assert_eq!(list["kind"], "PodList");
    }
}

mod exec {
    //! The exec subresource: a WebSocket upgrade, then the channel protocol.

    use std::io::{Read, Write};
    use std::sync::{Arc, Mutex};

    use base64::Engine;

    use super::{Store, parse_path, query_param};

    const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

    fn frame(out: &mut dyn Write, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
        let mut head = vec![0x80 | opcode];
        match payload.len() {
            n if n < 126 => head.push(n as u8),
            n if n < 65536 => {
                head.push(126);
                head.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                head.push(127);
                head.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.write_all(&head)?;
        out.write_all(payload)
    }

    fn channel(out: &mut dyn Write, ch: u8, data: &[u8]) -> std::io::Result<()> {
        let mut payload = vec![ch];
        payload.extend_from_slice(data);
        frame(out, 2, &payload)
    }

    fn all_params(url: &str, key: &str) -> Vec<String> {
        let Some((_, query)) = url.split_once('?') else {
            return Vec::new();
        };
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| super::percent_decode(v))
            .collect()
    }

    pub(super) fn serve(req: tiny_http::Request, store: &Arc<Mutex<Store>>) {
        let url = req.url().to_string();
        let target = parse_path(url.split('?').next().unwrap_or_default());
        let command = all_params(&url, "command");
        let container = query_param(&url, "container").unwrap_or_default();
        let header = |name: &str| {
            req.headers()
                .iter()
                .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
                .map(|h| h.value.as_str().to_string())
        };
        let key = header("Sec-WebSocket-Key").unwrap_or_default();
        let offered = header("Sec-WebSocket-Protocol").unwrap_or_default();
        if !offered.split(',').any(|p| p.trim() == "v4.channel.k8s.io") || command.is_empty() {
            let _ = req.respond(
                tiny_http::Response::from_string("exec needs v4.channel.k8s.io and a command")
                    .with_status_code(400),
            );
            return;
        }
        let pod = target
            .map(|t| {
                format!(
                    "{}/{}",
                    t.namespace.unwrap_or_default(),
                    t.name.unwrap_or_default()
                )
            })
            .unwrap_or_default();
        store
            .lock()
            .expect("store")
            .execs
            .push((pod, container, command.clone()));
        let accept = base64::engine::general_purpose::STANDARD.encode(
            sha1_smol::Sha1::from(format!("{key}{GUID}"))
                .digest()
                .bytes(),
        );
        let h = |k: &str, v: &str| tiny_http::Header::from_bytes(k, v).expect("a valid header");
        let response = tiny_http::Response::empty(101)
            .with_header(h("Sec-WebSocket-Accept", &accept))
            .with_header(h("Sec-WebSocket-Protocol", "v4.channel.k8s.io"));
        let mut stream = req.upgrade("websocket", response);
        std::thread::spawn(move || {
            let out = std::process::Command::new(&command[0])
                .args(&command[1..])
                .output();
            let status = match &out {
                Ok(o) if o.status.success() => {
                    serde_json::json!({"metadata": {}, "status": "Success"})
                }
                Ok(o) => {
                    let code = o.status.code().unwrap_or(-1);
                    serde_json::json!({"metadata": {}, "status": "Failure",
                        "message": format!("command terminated with non-zero exit code: exit status {code}"),
                        "reason": "NonZeroExitCode",
                        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}})
                }
                Err(e) => serde_json::json!({"metadata": {}, "status": "Failure",
                    "message": format!("cannot run {}: {e}", command[0]), "reason": "InternalError"}),
            };
            let _ = (|| -> std::io::Result<()> {
                if let Ok(o) = &out {
                    if !o.stdout.is_empty() {
                        channel(&mut stream, 1, &o.stdout)?;
                    }
                    if !o.stderr.is_empty() {
                        channel(&mut stream, 2, &o.stderr)?;
                    }
                }
                channel(&mut stream, 3, status.to_string().as_bytes())?;
                frame(&mut stream, 8, &1000u16.to_be_bytes())?;
                stream.flush()?;
                // Wait for the client's close frame (or the connection's end).
                let mut buf = [0u8; 64];
                let _ = stream.read(&mut buf);
                Ok(())
            })();
        });
    }
}
