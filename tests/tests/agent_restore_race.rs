//! A tenant's pod races the node agent's restore into its own volume (tests/src/agent.rs: the
//! real kube-apiserver, the agent under its ServiceAccount): while the agent writes, the "pod"
//! (a thread of this test, with the same access to the volume as the pod's containers) swaps
//! every directory of the target for a link to a directory outside the volume, and plants the
//! completion marker's directory as such a link. Nothing outside the volume may change.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kairn_e2e::agent::{Cluster, is_final};
use serde_json::json;

const DIRS: usize = 120;

/// The pod's attack, until stopped: `mv dN dN.moved; ln -sfn elsewhere dN` for every `dN`,
/// and `.kairn-restored` as a link to elsewhere whenever it is not there.
fn attack(target: PathBuf, elsewhere: PathBuf, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let _ = symlink(&elsewhere, target.join(".kairn-restored"));
        for n in 0..DIRS {
            let dir = target.join(format!("d{n}"));
            let _ = fs::rename(&dir, target.join(format!("d{n}.moved")));
            let _ = fs::remove_file(&dir);
            let _ = symlink(&elsewhere, &dir);
        }
    }
}

#[test]
fn a_pod_swapping_links_in_its_volume_during_a_restore_never_leads_the_agent_outside_it() {
    let Some(c) = Cluster::new() else { return };
    let shop = c.namespace("shop");
    let source = c.pvc_with_pod(&shop, "db", "db-0", "Running");
    for n in 0..DIRS {
        let dir = source.join(format!("d{n}"));
        fs::create_dir(&dir).unwrap();
        for k in 0..3 {
            fs::write(dir.join(format!("f{k}")), format!("file {k} of {n}")).unwrap();
        }
    }
    let mut agent = c.agent(&[]);
    c.create(&shop, "volumebackups", "db-1", json!({"pvc": "db"}));
    let st = c.wait(&shop, "volumebackups", "db-1", &mut agent, is_final);
    assert_eq!(st["phase"], "Completed", "{st}");

    // Outside every volume: the node's own filesystem, as the attacker would aim at it.
    let elsewhere = c.cli.dir.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    fs::write(elsewhere.join("keep"), b"untouched").unwrap();
    fs::set_permissions(&elsewhere, fs::Permissions::from_mode(0o700)).unwrap();
    let untouched = kairn_e2e::listing_with_mode(&elsewhere);

    for run in 0..3 {
        let pvc = format!("copy-{run}");
        let target = c.pvc_with_pod(&shop, &pvc, &format!("copy-{run}-0"), "Initializing");
        let stop = Arc::new(AtomicBool::new(false));
        let racer = {
            let (t, e, s) = (target.clone(), elsewhere.clone(), stop.clone());
            std::thread::spawn(move || attack(t, e, s))
        };
        let name = format!("race-{run}");
        let spec = json!({"snapshot": "latest", "sourcePvc": "db", "target": {"pvc": pvc}});
        c.create(&shop, "volumerestores", &name, spec);
        let rs = c.wait(&shop, "volumerestores", &name, &mut agent, is_final);
        stop.store(true, Ordering::Relaxed);
        racer.join().unwrap();
        assert!(
            matches!(rs["phase"].as_str(), Some("Completed" | "PartiallyFailed")),
            "run {run}: {rs}\n{}",
            agent.logs()
        );
        assert_eq!(
            kairn_e2e::listing_with_mode(&elsewhere),
            untouched,
            "run {run}: the agent wrote or changed modes outside the volume: {rs}"
        );
    }
}
