//! Tenants of a real cluster (tests/src/agent.rs: a real kube-apiserver, its RBAC and
//! admission, the node agent under its ServiceAccount) cannot reach each other's backups. Each
//! tenant is a user with a real bearer token, bound to the built-in `edit` role in its own
//! namespace, into which `deploy/tenant-roles.yaml` is aggregated (the aggregation done as the
//! controller manager would; there is none here).

use std::process::Output;

use kairn_e2e::agent::{Cluster, is_final, kairn_object};
use kairn_e2e::write_volume;
use serde_json::{Value, json};

fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts kubectl was refused, with `why` in what the server said.
fn refused(out: &Output, why: &str) {
    assert!(!out.status.success(), "accepted: {}", said(out));
    assert!(said(out).contains(why), "wanted {why:?} in: {}", said(out));
}

fn bind(c: &Cluster, ns: &str, role: &str, user: &str) {
    c.plane.kubectl_ok(&[
        "create",
        "rolebinding",
        &format!("{user}-{role}"),
        "--clusterrole",
        role,
        "--user",
        user,
        "-n",
        ns,
    ]);
}

/// Creates a Kairn resource as a tenant and waits for its final status.
fn as_tenant(c: &Cluster, token: &str, obj: &Value, agent: &mut kairn_e2e::agent::Agent) -> Value {
    let out = c.try_create_as(Some(token), obj);
    assert!(out.status.success(), "{}", said(&out));
    let meta = &obj["metadata"];
    let plural = format!("{}s", obj["kind"].as_str().unwrap().to_lowercase());
    c.wait(
        meta["namespace"].as_str().unwrap(),
        &plural,
        meta["name"].as_str().unwrap(),
        agent,
        is_final,
    )
}

#[test]
fn every_route_into_another_namespaces_backups_is_refused() {
    let Some(c) = Cluster::new() else { return };
    let (a, b) = (c.namespace("tenant-a"), c.namespace("tenant-b"));
    let (ta, tb) = (&c.plane.tenant_a, &c.plane.tenant_b);
    bind(&c, &a, "edit", &ta.name);
    bind(&c, &b, "edit", &tb.name);
    bind(&c, &b, "view", &ta.name);
    for ns in [&a, &b] {
        let volume = c.pvc_with_pod(ns, "db", "db-0", "Running");
        write_volume(&volume, ns.len() as u64, 3);
        c.pvc_with_pod(ns, "copy", "copy-0", "Initializing");
    }
    let mut agent = c.agent(&[]);

    // Each tenant backs up its own PVC.
    let backup = |ns: &str, token: &str, agent: &mut _| {
        let st = as_tenant(
            &c,
            token,
            &kairn_object("volumebackups", Some(ns), "own", json!({"pvc": "db"})),
            agent,
        );
        assert_eq!(st["phase"], "Completed", "{st}");
        st["snapshotId"].as_str().unwrap().to_string()
    };
    let own = backup(&a, &ta.token, &mut agent);
    let theirs = backup(&b, &tb.token, &mut agent);

    // Tenant A restores its own, by id and by `latest`.
    for (name, snapshot) in [("by-id", own.as_str()), ("by-latest", "latest")] {
        let spec = json!({"snapshot": snapshot, "sourcePvc": "db", "target": {"pvc": "copy"}});
        let obj = kairn_object("volumerestores", Some(&a), name, spec);
        let st = as_tenant(&c, &ta.token, &obj, &mut agent);
        assert_eq!(st["phase"], "Completed", "{st}\n{}", agent.logs());
        assert_eq!(st["snapshotId"], own.as_str());
    }

    // B's snapshot by full id, and by an 8-digit prefix: not there for A, in the same words as
    // an id that nobody has.
    let nobody = "0123abcd".repeat(8);
    let mut answers = Vec::new();
    for (name, snapshot) in [
        ("theirs-full", theirs.clone()),
        ("theirs-prefix", theirs[..8].to_string()),
        ("nobodys", nobody.clone()),
    ] {
        let spec = json!({"snapshot": snapshot, "target": {"pvc": "copy"}});
        let obj = kairn_object("volumerestores", Some(&a), name, spec);
        let st = as_tenant(&c, &ta.token, &obj, &mut agent);
        assert_eq!(st["phase"], "Failed", "{st}");
        answers.push(st["errors"][0].as_str().unwrap().replace(&snapshot, "ID"));
    }
    assert_eq!(answers[0], answers[2], "the refusal tells B's id apart");
    assert_eq!(answers[1], answers[2], "the refusal tells B's prefix apart");

    // Refused at admission: a short prefix, `latest` of B, a target in B, a path on a node.
    let try_restore = |spec: Value| {
        c.try_create_as(
            Some(&ta.token),
            &kairn_object("volumerestores", Some(&a), "refused", spec),
        )
    };
    let short = try_restore(json!({"snapshot": &theirs[..1], "target": {"pvc": "copy"}}));
    refused(&short, "at least 8 hex digits");
    let latest = json!({"snapshot": "latest", "sourceNamespace": b, "sourcePvc": "db",
                        "target": {"pvc": "copy"}});
    refused(&try_restore(latest), "kairn-system");
    let into = json!({"snapshot": &own, "targetNamespace": b, "target": {"pvc": "copy"}});
    refused(&try_restore(into), "kairn-system");
    let path = json!({"snapshot": &own, "target": {"path": "/etc"}, "node": c.node});
    refused(&try_restore(path), "kairn-system");
    // A backup that claims to belong to a cluster backup.
    let joined = kairn_object(
        "volumebackups",
        Some(&a),
        "joined",
        json!({"pvc": "db", "clusterBackup": {"id": "nightly-20260101", "series": "nightly"}}),
    );
    refused(&c.try_create_as(Some(&ta.token), &joined), "node agents");
    // A backup posing as a schedule's run, to make its status look successful.
    let mut posing = kairn_object("volumebackups", Some(&a), "posing", json!({"pvc": "db"}));
    posing["metadata"]["labels"] = json!({"kairn.dev/schedule": "nightly"});
    posing["metadata"]["annotations"] = json!({"kairn.dev/scheduled-at": "2099-01-01T00:00:00Z"});
    refused(
        &c.try_create_as(Some(&ta.token), &posing),
        "only by the node agents",
    );
    // Nor added to its own backup afterwards.
    let relabel = c.plane.kubectl_as(
        &ta.token,
        &[
            "label",
            "volumebackup",
            "own",
            "-n",
            &a,
            "kairn.dev/schedule=nightly",
        ],
    );
    refused(&relabel, "only by the node agents");

    // RBAC: schedules and cluster backups are the administrators'; B's namespace is only
    // viewable; no tenant writes a status.
    let schedule = kairn_object(
        "backupschedules",
        None,
        "mine",
        json!({"schedule": "* * * * *", "namespaceSelector": {"matchLabels": {"x": "y"}}}),
    );
    refused(&c.try_create_as(Some(&ta.token), &schedule), "Forbidden");
    let cluster = kairn_object("clusterbackups", None, "mine", json!({}));
    refused(&c.try_create_as(Some(&ta.token), &cluster), "Forbidden");
    let in_b = kairn_object("volumebackups", Some(&b), "sneaky", json!({"pvc": "db"}));
    refused(&c.try_create_as(Some(&ta.token), &in_b), "Forbidden");
    let viewed = c
        .plane
        .kubectl_as(&ta.token, &["get", "volumebackups", "-n", &b, "-o", "name"]);
    assert!(viewed.status.success(), "{}", said(&viewed));
    let forged = c.plane.kubectl_as(
        &ta.token,
        &[
            "patch",
            "volumebackup",
            "own",
            "-n",
            &a,
            "--subresource",
            "status",
            "--type",
            "merge",
            "-p",
            r#"{"status":{"phase":"Completed"}}"#,
        ],
    );
    refused(&forged, "Forbidden");
    for (verb, what) in [("get", "secrets"), ("list", "volumerestores")] {
        let out = c
            .plane
            .kubectl_as(&tb.token, &["auth", "can-i", verb, what, "-n", &a]);
        assert_eq!(said(&out).trim(), "no", "tenant B may {verb} {what} in A");
    }
}

#[test]
fn admission_rejects_a_schedule_name_too_long_for_a_label_and_a_malformed_snapshot() {
    let Some(c) = Cluster::new() else { return };
    let ns = c.namespace("admission");
    let long = "s".repeat(64);
    let schedule = kairn_object(
        "backupschedules",
        None,
        &long,
        json!({"schedule": "0 2 * * *", "namespaceSelector": {"matchLabels": {"x": "y"}}}),
    );
    refused(&c.try_create_as(None, &schedule), "63 characters");
    let fits = kairn_object(
        "backupschedules",
        None,
        &format!("{}-{}", &long[..50], c.node),
        json!({"schedule": "0 2 * * *", "namespaceSelector": {"matchLabels": {"x": "y"}}}),
    );
    let out = c.try_create_as(None, &fits);
    assert!(out.status.success(), "{}", said(&out));
    for bad in ["", "xyz12345", "LATEST", "abc"] {
        let obj = kairn_object(
            "volumerestores",
            Some(&ns),
            "bad",
            json!({"snapshot": bad, "target": {"pvc": "x"}}),
        );
        refused(&c.try_create_as(None, &obj), "8 hex digits");
    }
}

/// The agents may create pods (mount pods); whoever steals an agent's token may not use that
/// to start any other pod: deploy/admission.yaml admits only the mount pod's shape.
#[test]
fn a_stolen_agent_token_starts_no_pod_but_a_mount_pod() {
    let Some(c) = Cluster::new() else { return };
    let ns = c.namespace("victim");
    let token = c
        .plane
        .service_account_token("kairn-system", "kairn-node-agent");
    let mount_pod = || {
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "m", "namespace": ns,
                         "labels": {"app.kubernetes.io/managed-by": "kairn"}},
            "spec": {"automountServiceAccountToken": false, "restartPolicy": "Never",
                "containers": [{"name": "mount", "image": "kairn:test",
                    "command": ["/usr/local/bin/node-agent", "mount-pod"],
                    "securityContext": {"runAsNonRoot": true, "runAsUser": 65534,
                                        "allowPrivilegeEscalation": false}}],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "db"}}]}})
    };
    let dry = |pod: Value| {
        let out = c.plane.kubectl_as_with_stdin(
            &token,
            &["create", "--dry-run=server", "-f", "-"],
            Some(&pod.to_string()),
        );
        (out.status.success(), said(&out))
    };
    let (ok, text) = dry(mount_pod());
    assert!(ok, "the mount pod's own shape was refused: {text}");
    let mut secret = mount_pod();
    secret["spec"]["volumes"][0] = json!({"name": "data", "secret": {"secretName": "db"}});
    let mut token_pod = mount_pod();
    token_pod["spec"]["automountServiceAccountToken"] = json!(true);
    let mut shell = mount_pod();
    shell["spec"]["containers"][0]["command"] = json!(["sh", "-c", "cat /data/*"]);
    let mut env = mount_pod();
    env["spec"]["containers"][0]["env"] =
        json!([{"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "p"}}}]);
    let mut host = mount_pod();
    host["spec"]["hostPID"] = json!(true);
    let mut unlabelled = mount_pod();
    unlabelled["metadata"]["labels"] = json!({});
    for (what, pod) in [
        ("a Secret volume", secret),
        ("a token", token_pod),
        ("another command", shell),
        ("a Secret in the environment", env),
        ("the host's PIDs", host),
        ("no managed-by label", unlabelled),
    ] {
        let (ok, text) = dry(pod);
        assert!(!ok, "a pod with {what} was admitted for the agent's token");
        assert!(text.contains("kairn-mount-pods"), "{what}: {text}");
    }
}
