//! The Helm chart `deploy/chart` and the tools its tests use: `helm` and `kubeconform`, built
//! once from the Go module proxy by `scripts/chart-tools.sh build` and cached outside the work
//! tree (scripts/test-deps.sh builds them ahead).
//!
//! Like the control plane, a missing tool is a failure, never a skip: the tests of the chart
//! cannot say anything without it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::{Map, Value, json};

/// The repository location the tests render the chart with (the one the plain manifests show).
pub const EXAMPLE_REPOSITORY: &str = "s3://kairn-backups/cluster-a";

/// The work tree's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `deploy/chart`.
pub fn chart_dir() -> PathBuf {
    root().join("deploy/chart")
}

/// The directory holding `helm` and `kubeconform`: what `scripts/chart-tools.sh build` prints
/// (it builds them the first time).
pub fn tools() -> &'static Path {
    static TOOLS: OnceLock<PathBuf> = OnceLock::new();
    TOOLS.get_or_init(|| {
        let out = Command::new("bash")
            .arg(root().join("scripts/chart-tools.sh"))
            .arg("build")
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/chart-tools.sh");
        assert!(
            out.status.success(),
            "no helm: `bash scripts/chart-tools.sh build` failed ({}). It builds helm and \
             kubeconform with Go from the Go module proxy (scripts/test-deps.sh runs it)",
            out.status
        );
        let dir = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        for bin in ["helm", "kubeconform"] {
            assert!(dir.join(bin).exists(), "{} has no {bin}", dir.display());
        }
        dir
    })
}

/// Runs `helm` with its state (cache, config, data) in `home`, never the user's.
pub fn helm_in(home: &Path, args: &[&str]) -> Output {
    Command::new(tools().join("helm"))
        .args(args)
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .expect("run helm")
}

/// Runs `helm` with its state in a directory of this test process.
pub fn helm(args: &[&str]) -> Output {
    static HOME: OnceLock<tempfile::TempDir> = OnceLock::new();
    let home = HOME.get_or_init(|| tempfile::tempdir().unwrap());
    helm_in(home.path(), args)
}

/// stdout and stderr of a command, for a failure message.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `helm template kairn deploy/chart -n NAMESPACE ARGS...`: the rendered YAML stream.
pub fn template(namespace: &str, args: &[&str]) -> String {
    let chart = chart_dir();
    let mut all = vec![
        "template",
        "kairn",
        chart.to_str().unwrap(),
        "--namespace",
        namespace,
    ];
    all.extend_from_slice(args);
    let out = helm(&all);
    assert!(
        out.status.success(),
        "helm {}: {}",
        all.join(" "),
        text(&out)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The chart with its default values and the one value it requires, the repository.
pub fn template_defaults(namespace: &str) -> String {
    let url = format!("repository.url={EXAMPLE_REPOSITORY}");
    template(namespace, &["--set", &url])
}

/// `deploy/chart/ci/all-on.yaml`: every option of the chart on.
pub fn all_on_values() -> PathBuf {
    chart_dir().join("ci/all-on.yaml")
}

/// The chart with every option on.
pub fn template_all_on(namespace: &str) -> String {
    let values = all_on_values();
    template(namespace, &["--values", values.to_str().unwrap()])
}

/// The documents of a YAML stream, as JSON values (empty documents left out).
pub fn objects(yaml: &str) -> Vec<Value> {
    use serde::Deserialize as _;
    serde_yaml::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).expect("a YAML document"))
        .filter(|doc| !doc.is_null())
        .collect()
}

/// The one object of `kind` named `name`.
pub fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    let found: Vec<&Value> = objects
        .iter()
        .filter(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "{kind} {name}: {} found", found.len());
    found[0]
}

/// `kind/name` of every object, in order.
pub fn kinds_and_names(objects: &[Value]) -> Vec<String> {
    objects
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap(),
                o["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

/// The objects as one YAML stream (JSON documents are YAML).
pub fn stream(objects: &[&Value]) -> String {
    objects
        .iter()
        .map(|o| format!("---\n{o}\n"))
        .collect::<String>()
}

/// A container's environment as name -> value (entries with `valueFrom` left out).
pub fn env_of(container: &Value) -> Map<String, Value> {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e.get("value").is_some())
        .map(|e| (e["name"].as_str().unwrap().to_string(), e["value"].clone()))
        .collect()
}

/// kubeconform's schemas for every kind the API server at hand serves, made from its OpenAPI v2
/// document as kubeconform's own schema repository is made from Kubernetes' (`openapi2jsonschema
/// --strict`): one file per kind beside `_definitions.json`, named `<kind>-<group>-<version>.json`,
/// every object closed to fields it does not declare, and the int-or-string and quantity types
/// given both their forms.
pub fn kubeconform_schemas(openapi_v2: &Value, dir: &Path) {
    let definitions = openapi_v2["definitions"].as_object().unwrap();
    let mut fixed = Map::new();
    for (name, schema) in definitions {
        let mut schema = schema.clone();
        if name.ends_with("util.intstr.IntOrString") || name.ends_with("api.resource.Quantity") {
            schema =
                json!({"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "number"}]});
        }
        strict_schema(&mut schema);
        fixed.insert(name.clone(), schema);
    }
    std::fs::create_dir_all(dir).unwrap();
    let all = json!({ "definitions": fixed });
    std::fs::write(dir.join("_definitions.json"), all.to_string()).unwrap();
    for (name, schema) in definitions {
        for gvk in schema["x-kubernetes-group-version-kind"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let (group, version) = (
                gvk["group"].as_str().unwrap(),
                gvk["version"].as_str().unwrap(),
            );
            let kind = gvk["kind"].as_str().unwrap().to_lowercase();
            // What kubeconform's {{ .KindSuffix }} is: the group's first label, and the version.
            let suffix = match group.split('.').next().unwrap() {
                "" => format!("-{version}"),
                first => format!("-{}-{version}", first.to_lowercase()),
            };
            let file = dir.join(format!("{kind}{suffix}.json"));
            let schema = json!({ "$ref": format!("_definitions.json#/definitions/{name}") });
            std::fs::write(file, schema.to_string()).unwrap();
        }
    }
}

/// References into `_definitions.json`, `additionalProperties: false` on every object that lists
/// its properties and keeps no unknown field.
fn strict_schema(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get_mut("$ref")
                && let Some(name) = reference.strip_prefix("#/definitions/")
            {
                *reference = format!("_definitions.json#/definitions/{name}");
            }
            let open = map.contains_key("x-kubernetes-preserve-unknown-fields")
                || map.contains_key("additionalProperties");
            if map.contains_key("properties") && !open {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            for (key, value) in map.iter_mut() {
                // `properties` and `definitions` name their children: each child is a schema.
                if key == "properties" || key == "definitions" || key == "patternProperties" {
                    if let Value::Object(children) = value {
                        children.values_mut().for_each(strict_schema);
                    }
                } else if value.is_object() || value.is_array() {
                    strict_schema(value);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strict_schema),
        _ => {}
    }
}

/// `kubeconform -strict -summary` of a YAML stream against the schemas in `dir`.
pub fn kubeconform(schemas: &Path, yaml: &str) -> Output {
    use std::io::Write;
    let location = format!(
        "{}/{{{{ .ResourceKind }}}}{{{{ .KindSuffix }}}}.json",
        schemas.display()
    );
    let mut child = Command::new(tools().join("kubeconform"))
        .args([
            "-strict",
            "-summary",
            "-output",
            "text",
            "-schema-location",
            &location,
            "-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubeconform");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}
