//! The Helm chart `deploy/chart`: `helm lint`, `helm template` with the default values and with
//! every option on (`deploy/chart/ci/all-on.yaml`), the values reaching the objects, the plain
//! manifests `deploy/*.yaml` being the chart rendered, the versions, and the rendered objects
//! validated by a **real** kube-apiserver (tests/src/control_plane.rs): the CRDs applied, every
//! other object through a server-side dry run, and a real `helm install`, `upgrade` and
//! `uninstall`. kubeconform checks the same objects against schemas made from that server's
//! OpenAPI document (it cannot fetch its own schemas here).
//!
//! The ServiceMonitor and PrometheusRule need prometheus-operator's CRDs: the tests apply a
//! minimal stand-in, tests/fixtures/prometheus-operator-crds.yaml (its header says what it is).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use kairn_e2e::chart::{
    self, EXAMPLE_REPOSITORY, all_on_values, chart_dir, env_of, find, helm, helm_in,
    kinds_and_names, objects, root, stream, template_all_on, template_defaults, text,
};
use kairn_e2e::control_plane::{self, ControlPlane};
use serde_json::{Value, json};

/// Where the tests install the chart with every option on: not kairn-system, so that whatever
/// still names kairn-system shows.
const OTHER_NAMESPACE: &str = "kairn-chart";

fn yaml_file(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn sorted(names: Vec<String>) -> BTreeSet<String> {
    names.into_iter().collect()
}

/// What the chart installs with its default values.
fn default_objects() -> BTreeSet<String> {
    let mut expected: Vec<String> = [
        "volumebackups",
        "volumerestores",
        "backupschedules",
        "clusterbackups",
        "namespacerestores",
    ]
    .iter()
    .map(|crd| format!("CustomResourceDefinition/{crd}.kairn.dev"))
    .collect();
    for object in [
        "ServiceAccount/kairn-node-agent",
        "ClusterRole/kairn-node-agent",
        "ClusterRoleBinding/kairn-node-agent",
        "Role/kairn-node-agent-leases",
        "RoleBinding/kairn-node-agent-leases",
        "DaemonSet/kairn-node-agent",
        "ServiceAccount/kairn-maintenance",
        "ClusterRole/kairn-maintenance",
        "ClusterRoleBinding/kairn-maintenance",
        "Deployment/kairn-maintenance",
        "ClusterRole/kairn-edit",
        "ClusterRole/kairn-view",
    ] {
        expected.push(object.to_string());
    }
    for policy in [
        "kairn-tenant-boundaries",
        "kairn-mount-pods",
        "kairn-synced-objects",
    ] {
        expected.push(format!("ValidatingAdmissionPolicy/{policy}"));
        expected.push(format!("ValidatingAdmissionPolicyBinding/{policy}"));
    }
    sorted(expected)
}

#[test]
fn helm_lint_passes_with_the_defaults_and_strictly_with_every_option_on() {
    let chart = chart_dir();
    let chart = chart.to_str().unwrap();
    let values = all_on_values();
    for args in [
        vec!["lint", chart],
        vec!["lint", "--strict", chart],
        vec![
            "lint",
            "--strict",
            chart,
            "--values",
            values.to_str().unwrap(),
        ],
    ] {
        let out = helm(&args);
        println!("helm {}:\n{}", args.join(" "), text(&out));
        assert!(
            out.status.success(),
            "helm {}: {}",
            args.join(" "),
            text(&out)
        );
    }
}

#[test]
fn without_a_repository_url_the_chart_says_so_and_renders_nothing() {
    let chart = chart_dir();
    let out = helm(&["template", "kairn", chart.to_str().unwrap()]);
    assert!(!out.status.success(), "rendered without a repository");
    assert!(
        text(&out).contains("repository.url is required"),
        "{}",
        text(&out)
    );
}

#[test]
fn the_defaults_render_the_plain_installation_and_every_option_adds_its_objects() {
    let defaults = objects(&template_defaults("kairn-system"));
    assert_eq!(sorted(kinds_and_names(&defaults)), default_objects());

    let all_on = objects(&template_all_on(OTHER_NAMESPACE));
    let mut expected = default_objects();
    for object in [
        "Namespace/kairn-chart",
        "ClusterRole/kairn-manifests-reader",
        "ClusterRoleBinding/kairn-manifests-reader",
        "ClusterRole/kairn-restorer",
        "ClusterRoleBinding/kairn-restorer",
        "ClusterRole/kairn-node-agent-images",
        "ClusterRoleBinding/kairn-node-agent-images",
        "ClusterRole/kairn-node-agent-pull-secrets",
        "ClusterRoleBinding/kairn-node-agent-pull-secrets",
        "Service/kairn-node-agent",
        "Service/kairn-maintenance",
        "ServiceMonitor/kairn",
        "PrometheusRule/kairn",
        "ConfigMap/kairn-grafana-dashboard",
    ] {
        expected.insert(object.to_string());
    }
    assert_eq!(sorted(kinds_and_names(&all_on)), expected);

    // Every namespaced object lands in the release's namespace, and nothing but the CRDs'
    // descriptions still names the plain manifests' kairn-system.
    for object in &all_on {
        if let Some(namespace) = object["metadata"].get("namespace") {
            assert_eq!(namespace, OTHER_NAMESPACE, "{}", object["metadata"]["name"]);
        }
        if object["kind"] != "CustomResourceDefinition" {
            assert!(
                !object.to_string().contains("kairn-system"),
                "{} still names kairn-system",
                object["metadata"]["name"]
            );
        }
    }
}

#[test]
fn the_defaults_are_the_recommended_deployment() {
    let objects = objects(&template_defaults("kairn-system"));
    let version = env!("CARGO_PKG_VERSION");
    let agent = find(&objects, "DaemonSet", "kairn-node-agent");
    let pod = &agent["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(
        container["image"],
        format!("ghcr.io/kairn/node-agent:{version}")
    );
    assert!(container.get("imagePullPolicy").is_none());
    let env = env_of(container);
    assert_eq!(env["KAIRN_REPOSITORY"], EXAMPLE_REPOSITORY);
    // No cluster name unless one is given, and never the append-only switch: the key decides.
    assert!(!env.contains_key("KAIRN_CLUSTER"));
    assert!(!env.contains_key("KAIRN_APPEND_ONLY"));
    assert_eq!(
        pod["volumes"][2]["secret"]["secretName"],
        "kairn-repository"
    );
    assert_eq!(pod["tolerations"], json!([{"operator": "Exists"}]));
    assert_eq!(pod["priorityClassName"], "system-node-critical");
    let added = &container["securityContext"]["capabilities"]["add"];
    assert!(added.as_array().unwrap().contains(&json!("SYS_ADMIN")));

    let maintenance = find(&objects, "Deployment", "kairn-maintenance");
    let pod = &maintenance["spec"]["template"]["spec"];
    assert_eq!(
        pod["containers"][0]["image"],
        format!("ghcr.io/kairn/node-agent:{version}")
    );
    assert_eq!(
        pod["volumes"][0]["secret"]["secretName"],
        "kairn-repository-full"
    );
    // Deleting a CRD deletes every object of its kind: an uninstall keeps them.
    let crd = find(
        &objects,
        "CustomResourceDefinition",
        "volumebackups.kairn.dev",
    );
    assert_eq!(
        crd["metadata"]["annotations"]["helm.sh/resource-policy"],
        "keep"
    );
}

/// The agent's container and pod in the all-on rendering reflect `values.agent`.
fn check_agent(objects: &[Value], values: &Value) {
    let agent = &values["agent"];
    let ds = find(objects, "DaemonSet", "kairn-node-agent");
    let pod = &ds["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let image = &values["image"];
    assert_eq!(
        container["image"],
        format!(
            "{}:{}",
            image["repository"].as_str().unwrap(),
            image["tag"].as_str().unwrap()
        )
    );
    assert_eq!(container["imagePullPolicy"], image["pullPolicy"]);
    assert_eq!(pod["imagePullSecrets"], values["imagePullSecrets"]);
    for key in [
        "nodeSelector",
        "tolerations",
        "affinity",
        "priorityClassName",
    ] {
        assert_eq!(pod[key], agent[key], "agent {key}");
    }
    assert_eq!(container["resources"], agent["resources"]);
    let annotations = &ds["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["example.com/team"], "storage");
    assert_eq!(annotations["prometheus.io/scrape"], "true");

    let env = env_of(container);
    let mount_pods = &agent["mountPods"];
    for (name, value) in [
        ("KAIRN_REPOSITORY", &values["repository"]["url"]),
        ("KAIRN_CLUSTER", &values["cluster"]["name"]),
        (
            "KAIRN_SESSION_EXPIRY",
            &values["repository"]["sessionExpirySeconds"],
        ),
        ("KAIRN_APPEND_ONLY", &json!("true")),
        ("KAIRN_MAX_CONCURRENT", &json!("4")),
        ("KAIRN_CACHE_SIZE", &agent["cacheSize"]),
        ("KAIRN_REPO_SYNC_SECONDS", &agent["repoSyncSeconds"]),
        ("KAIRN_HISTORY_SECONDS", &agent["historySeconds"]),
        ("KAIRN_KUBELET_ROOT", &agent["kubeletRoot"]),
        ("KAIRN_MOUNT_POD_IMAGE", &mount_pods["image"]),
        (
            "KAIRN_MOUNT_POD_PRIORITY_CLASS",
            &mount_pods["priorityClassName"],
        ),
    ] {
        assert_eq!(&env[name], value, "{name}");
    }
    for extra in agent["extraEnv"].as_array().unwrap() {
        assert_eq!(env[extra["name"].as_str().unwrap()], extra["value"]);
    }
    // The JSON the agent parses, as the pod spec has it.
    for (name, key) in [
        ("KAIRN_MOUNT_POD_RESOURCES", "resources"),
        ("KAIRN_MOUNT_POD_TOLERATIONS", "tolerations"),
    ] {
        let parsed: Value = serde_json::from_str(env[name].as_str().unwrap()).unwrap();
        assert_eq!(parsed, mount_pods[key], "{name}");
    }
    let added = &container["securityContext"]["capabilities"]["add"];
    assert!(!added.as_array().unwrap().contains(&json!("SYS_ADMIN")));
    let kubelet_pods = format!("{}/pods", agent["kubeletRoot"].as_str().unwrap());
    assert_eq!(pod["volumes"][0]["hostPath"]["path"], kubelet_pods.as_str());
    assert_eq!(
        container["volumeMounts"][0]["mountPath"],
        kubelet_pods.as_str()
    );
    assert_eq!(
        pod["volumes"][2]["secret"]["secretName"],
        agent["credentials"]["secretName"]
    );
    assert_eq!(
        pod["volumes"][3]["emptyDir"]["sizeLimit"],
        agent["cacheSizeLimit"]
    );
}

/// The maintenance Deployment in the all-on rendering reflects `values.maintenance`.
fn check_maintenance(objects: &[Value], values: &Value) {
    let maintenance = &values["maintenance"];
    let deployment = find(objects, "Deployment", "kairn-maintenance");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    for key in [
        "nodeSelector",
        "tolerations",
        "affinity",
        "priorityClassName",
    ] {
        assert_eq!(pod[key], maintenance[key], "maintenance {key}");
    }
    assert_eq!(container["resources"], maintenance["resources"]);
    assert_eq!(pod["imagePullSecrets"], values["imagePullSecrets"]);
    let env = env_of(container);
    for (name, value) in [
        ("KAIRN_REPOSITORY", &values["repository"]["url"]),
        (
            "KAIRN_SESSION_EXPIRY",
            &values["repository"]["sessionExpirySeconds"],
        ),
        (
            "KAIRN_MAINTENANCE_INTERVAL_SECONDS",
            &maintenance["intervalSeconds"],
        ),
        (
            "KAIRN_PRUNE_INTERVAL_SECONDS",
            &maintenance["pruneIntervalSeconds"],
        ),
        (
            "KAIRN_PRUNE_MAX_UNUSED_PERCENT",
            &maintenance["pruneMaxUnusedPercent"],
        ),
        ("KAIRN_CACHE_SIZE", &maintenance["cacheSize"]),
        ("KAIRN_LOG_TEXT", &json!("true")),
    ] {
        assert_eq!(&env[name], value, "{name}");
    }
    assert_eq!(
        pod["volumes"][0]["secret"]["secretName"],
        maintenance["credentials"]["secretName"]
    );
}

/// The ServiceMonitor finds the Services, which find the pods; the rules and the dashboard are
/// the chart's files.
fn check_monitoring(objects: &[Value], values: &Value) {
    let metrics = &values["metrics"];
    let monitor = find(objects, "ServiceMonitor", "kairn");
    assert_eq!(
        monitor["metadata"]["labels"],
        metrics["serviceMonitor"]["labels"]
    );
    assert_eq!(
        monitor["spec"]["endpoints"][0]["interval"],
        metrics["serviceMonitor"]["interval"]
    );
    assert_eq!(
        monitor["spec"]["namespaceSelector"]["matchNames"],
        json!([OTHER_NAMESPACE])
    );
    let selector = monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap();
    for (service, workload) in [
        ("kairn-node-agent", ("DaemonSet", "kairn-node-agent")),
        ("kairn-maintenance", ("Deployment", "kairn-maintenance")),
    ] {
        let service = find(objects, "Service", service);
        for (key, value) in selector {
            assert_eq!(&service["metadata"]["labels"][key], value);
        }
        let pod_labels =
            &find(objects, workload.0, workload.1)["spec"]["template"]["metadata"]["labels"];
        for (key, value) in service["spec"]["selector"].as_object().unwrap() {
            assert_eq!(&pod_labels[key], value);
        }
        assert_eq!(service["spec"]["ports"][0]["targetPort"], "metrics");
    }

    let rules = yaml_file(&chart_dir().join("files/prometheus-rules.yaml"));
    let rule = find(objects, "PrometheusRule", "kairn");
    assert_eq!(rule["spec"]["groups"], rules["groups"]);
    assert_eq!(
        rule["metadata"]["labels"],
        metrics["prometheusRule"]["labels"]
    );

    let dashboard_file = chart_dir().join("files/grafana-dashboard.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(dashboard_file).unwrap()).unwrap();
    let config_map = find(objects, "ConfigMap", "kairn-grafana-dashboard");
    assert_eq!(config_map["metadata"]["labels"]["grafana_dashboard"], "1");
    assert_eq!(
        config_map["metadata"]["annotations"],
        metrics["grafanaDashboard"]["annotations"]
    );
    let data: Value =
        serde_json::from_str(config_map["data"]["kairn.json"].as_str().unwrap()).unwrap();
    assert_eq!(data, dashboard);
}

#[test]
fn every_value_reaches_the_objects() {
    let values = yaml_file(&all_on_values());
    let objects = objects(&template_all_on(OTHER_NAMESPACE));
    check_agent(&objects, &values);
    check_maintenance(&objects, &values);
    check_monitoring(&objects, &values);
    // The admission policies know the agents by the release's namespace.
    let policy = find(&objects, "ValidatingAdmissionPolicy", "kairn-mount-pods");
    assert_eq!(
        policy["spec"]["matchConditions"][0]["expression"],
        format!(
            "request.userInfo.username == 'system:serviceaccount:{OTHER_NAMESPACE}:kairn-node-agent'"
        )
    );
    let binding = find(&objects, "ClusterRoleBinding", "kairn-restorer");
    assert_eq!(binding["subjects"][0]["namespace"], OTHER_NAMESPACE);
}

#[test]
fn the_chart_version_and_default_image_tag_are_the_crate_version() {
    let version = env!("CARGO_PKG_VERSION");
    let chart = yaml_file(&chart_dir().join("Chart.yaml"));
    assert_eq!(chart["name"], "kairn");
    assert_eq!(chart["version"], version);
    assert_eq!(chart["appVersion"], version);
    let values = yaml_file(&chart_dir().join("values.yaml"));
    assert_eq!(values["image"]["tag"], "", "the tag defaults to appVersion");
    let rendered = template_defaults("kairn-system");
    let image = format!("image: ghcr.io/kairn/node-agent:{version}\n");
    assert_eq!(rendered.matches(&image).count(), 2, "{rendered}");
}

#[test]
fn the_plain_manifests_in_deploy_are_the_chart_rendered() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("bash")
        .arg(root().join("scripts/render-manifests.sh"))
        .arg(dir.path())
        .env("KAIRN_HELM", chart::tools().join("helm"))
        .output()
        .unwrap();
    assert!(out.status.success(), "render-manifests.sh: {}", text(&out));
    let deploy = root().join("deploy");
    let mut plain: Vec<String> = std::fs::read_dir(&deploy)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".yaml"))
        .collect();
    plain.sort();
    let mut rendered: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    rendered.push("crds.yaml".into());
    rendered.sort();
    assert_eq!(
        plain, rendered,
        "every file of deploy/ comes from the chart"
    );
    for file in rendered.iter().filter(|f| *f != "crds.yaml") {
        let want = std::fs::read_to_string(dir.path().join(file)).unwrap();
        let have = std::fs::read_to_string(deploy.join(file)).unwrap();
        assert!(
            want == have,
            "deploy/{file} differs from the chart: run `bash scripts/render-manifests.sh`"
        );
    }
    // The CRDs are generated into deploy/ from node-agent/src/crd.rs; the chart holds a copy.
    let crds = std::fs::read_to_string(deploy.join("crds.yaml")).unwrap();
    let copy = std::fs::read_to_string(chart_dir().join("files/crds.yaml")).unwrap();
    assert!(
        crds == copy,
        "deploy/chart/files/crds.yaml differs from deploy/crds.yaml: run `bash \
         scripts/render-manifests.sh`"
    );
}

fn monitoring_crds(plane: &ControlPlane) {
    let fixture = root().join("tests/fixtures/prometheus-operator-crds.yaml");
    plane.kubectl_ok(&["apply", "--server-side", "-f", fixture.to_str().unwrap()]);
}

/// The server's OpenAPI v2 document once it describes `kinds` (the definitions of new CRDs are
/// published a moment after they are established).
fn openapi_with(plane: &ControlPlane, kinds: &[&str]) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let document: Value =
            serde_json::from_str(&plane.kubectl_ok(&["get", "--raw", "/openapi/v2"])).unwrap();
        let definitions = document["definitions"].as_object().unwrap();
        let missing: Vec<&&str> = kinds
            .iter()
            .filter(|kind| !definitions.contains_key(**kind))
            .collect();
        if missing.is_empty() {
            return document;
        }
        assert!(
            Instant::now() < deadline,
            "the server's OpenAPI document still lacks {missing:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A server-side dry run of `objects`: their server-side apply as `kubectl apply` would send
/// it, with strict field validation, checked against every schema and admission, and stored
/// nowhere.
fn dry_run(plane: &ControlPlane, objects: &[&Value]) -> std::process::Output {
    plane.kubectl_with_stdin(
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--dry-run=server",
            "-f",
            "-",
        ],
        Some(&stream(objects)),
    )
}

#[test]
fn the_api_server_and_kubeconform_accept_every_rendered_object() {
    let plane = control_plane::shared();
    monitoring_crds(plane);
    let renders = [
        ("kairn-system", objects(&template_defaults("kairn-system"))),
        (OTHER_NAMESPACE, objects(&template_all_on(OTHER_NAMESPACE))),
    ];
    // The CRDs really applied first, as Helm installs them before what uses them.
    let crds: Vec<&Value> = renders[1]
        .1
        .iter()
        .filter(|o| o["kind"] == "CustomResourceDefinition")
        .collect();
    assert_eq!(crds.len(), 5);
    let out =
        plane.kubectl_with_stdin(&["apply", "--server-side", "-f", "-"], Some(&stream(&crds)));
    assert!(out.status.success(), "the CRDs: {}", text(&out));
    plane.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd",
        "--all",
        "--timeout=120s",
    ]);
    // What `helm install --create-namespace` makes first.
    for (namespace, _) in &renders {
        plane.create_namespace(namespace);
    }

    let schemas = tempfile::tempdir().unwrap();
    let openapi = openapi_with(
        plane,
        &[
            "dev.kairn.v1alpha1.VolumeBackup",
            "com.coreos.monitoring.v1.ServiceMonitor",
            "com.coreos.monitoring.v1.PrometheusRule",
        ],
    );
    chart::kubeconform_schemas(&openapi, schemas.path());

    for (namespace, objects) in &renders {
        let all: Vec<&Value> = objects.iter().collect();
        let out = chart::kubeconform(schemas.path(), &stream(&all));
        println!("kubeconform ({namespace}):\n{}", text(&out));
        assert!(out.status.success(), "kubeconform: {}", text(&out));
        assert!(
            text(&out).contains(&format!("{} resources found", all.len())),
            "{}",
            text(&out)
        );

        let rest: Vec<&Value> = objects
            .iter()
            .filter(|o| o["kind"] != "CustomResourceDefinition")
            .collect();
        let out = dry_run(plane, &rest);
        println!("server-side dry run ({namespace}):\n{}", text(&out));
        assert!(out.status.success(), "{}", text(&out));
        let applied = String::from_utf8_lossy(&out.stdout)
            .matches("serverside-applied (server dry run)")
            .count();
        assert_eq!(applied, rest.len(), "{}", text(&out));
    }
}

#[test]
fn the_api_server_and_kubeconform_refuse_what_the_schemas_do_not_allow() {
    let plane = control_plane::shared();
    monitoring_crds(plane);
    plane.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "crd/servicemonitors.monitoring.coreos.com",
        "crd/prometheusrules.monitoring.coreos.com",
        "--timeout=120s",
    ]);
    let namespace = plane.namespace("kairn-refused");
    let objects = objects(&template_all_on(&namespace));
    let mut monitor = find(&objects, "ServiceMonitor", "kairn").clone();
    monitor["spec"]["endpoints"][0]["intervall"] = json!("30s");
    let mut rule = json!({
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "bad", "namespace": namespace},
        "spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up == 0", "for": "5 minutes"}]}]},
    });
    let mut daemonset = find(&objects, "DaemonSet", "kairn-node-agent").clone();
    daemonset["spec"]["template"]["spec"]["tolerations"][0]["opperator"] = json!("Exists");
    for bad in [&monitor, &rule, &daemonset] {
        let out = dry_run(plane, &[bad]);
        assert!(
            !out.status.success(),
            "the server accepted {}: {}",
            bad["kind"],
            text(&out)
        );
    }
    // Fixed, the same objects pass: the refusal was the field.
    monitor["spec"]["endpoints"][0]
        .as_object_mut()
        .unwrap()
        .remove("intervall");
    rule["spec"]["groups"][0]["rules"][0]["for"] = json!("5m");
    let out = dry_run(plane, &[&monitor, &rule]);
    assert!(out.status.success(), "{}", text(&out));

    let schemas = tempfile::tempdir().unwrap();
    let openapi = openapi_with(plane, &["io.k8s.api.apps.v1.DaemonSet"]);
    chart::kubeconform_schemas(&openapi, schemas.path());
    let out = chart::kubeconform(schemas.path(), &stream(&[&daemonset]));
    assert!(!out.status.success(), "kubeconform: {}", text(&out));
    assert!(text(&out).contains("opperator"), "{}", text(&out));
}

#[test]
fn helm_installs_upgrades_and_uninstalls_against_the_real_api_server() {
    // A control plane of its own: the release owns the CRDs and roles it creates, which the
    // shared one's other tests apply without Helm.
    let plane = ControlPlane::start();
    monitoring_crds(&plane);
    let home = tempfile::tempdir().unwrap();
    let chart = chart_dir();
    let kubeconfig = plane.kubeconfig.to_str().unwrap().to_string();
    let url = format!("repository.url={EXAMPLE_REPOSITORY}");
    let values = all_on_values();
    let release = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--kubeconfig", &kubeconfig, "--namespace", "kairn-system"]);
        let out = helm_in(home.path(), &all);
        println!("helm {}:\n{}", args.join(" "), text(&out));
        assert!(
            out.status.success(),
            "helm {}: {}",
            args.join(" "),
            text(&out)
        );
    };
    let chart = chart.to_str().unwrap();
    release(&[
        "install",
        "kairn",
        chart,
        "--create-namespace",
        "--set",
        &url,
    ]);
    let get = |args: &[&str]| plane.kubectl(args).status.success();
    assert!(get(&["get", "crd", "volumebackups.kairn.dev"]));
    assert!(get(&[
        "-n",
        "kairn-system",
        "get",
        "daemonset/kairn-node-agent"
    ]));
    assert!(get(&[
        "-n",
        "kairn-system",
        "get",
        "deployment/kairn-maintenance"
    ]));
    assert!(get(&["get", "validatingadmissionpolicy/kairn-mount-pods"]));
    assert!(!get(&["get", "clusterrole/kairn-restorer"]));

    // Every option on; the namespace stays the one --create-namespace made.
    release(&[
        "upgrade",
        "kairn",
        chart,
        "--values",
        values.to_str().unwrap(),
        "--set",
        "namespace.create=false",
    ]);
    assert!(get(&["get", "clusterrole/kairn-restorer"]));
    assert!(get(&["-n", "kairn-system", "get", "servicemonitor/kairn"]));
    assert!(get(&["-n", "kairn-system", "get", "prometheusrule/kairn"]));
    let env = plane.kubectl_ok(&[
        "-n",
        "kairn-system",
        "get",
        "daemonset/kairn-node-agent",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].env}",
    ]);
    assert!(env.contains("KAIRN_APPEND_ONLY"), "{env}");

    release(&["uninstall", "kairn"]);
    assert!(!get(&[
        "-n",
        "kairn-system",
        "get",
        "daemonset/kairn-node-agent"
    ]));
    assert!(!get(&["get", "clusterrole/kairn-node-agent"]));
    // Kept: deleting them would delete every backup and restore object of the cluster.
    assert!(get(&["get", "crd", "volumebackups.kairn.dev"]));
}
