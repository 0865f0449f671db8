#!/usr/bin/env bash
# Container images, measured against `skopeo copy` to an OCI directory: a real registry
# (Debian's docker-registry) on 127.0.0.1 holding three images built here from real files
# (a ~175 MB base layer of compilers and Python, shared by all three; app:v1 and app:v2 each
# add a documentation layer, v2's with one file changed; tools:1 adds the locales). Then:
#   1. app:v1 and tools:1, by skopeo into one OCI directory, and by `repo backup --images`;
#   2. app:v2 added (only its own layer is new);
#   3. the same three again (nothing new);
#   4. `repo restore` of the last snapshot, an OCI layout skopeo reads.
#   bash benches/e2e/images.sh
# Needs a release build (cargo build --release -p repo-cli), docker-registry and skopeo
# (scripts/test-deps.sh installs them); uses /var/tmp/kairn-images.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo_bin=$PWD/target/release/repo
work=/var/tmp/kairn-images
rm -rf "$work" && mkdir -p "$work" && cd "$work"
echo pw >pw
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
reg=127.0.0.1:$port
cat >registry.yml <<YML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $work/registry}}
http: {addr: $reg}
YML
docker-registry serve registry.yml >registry.log 2>&1 &
reg_pid=$!
trap 'kill $reg_pid 2>/dev/null || true' EXIT
until python3 -c "import urllib.request; urllib.request.urlopen('http://$reg/v2/')" 2>/dev/null; do sleep 0.2; done

# The images: gzip tar layers of real directories, assembled as an OCI layout, pushed.
python3 - layout <<'PY'
import gzip, hashlib, io, json, os, sys, tarfile
out = sys.argv[1]
os.makedirs(f"{out}/blobs/sha256", exist_ok=True)
def blob(data):
    d = hashlib.sha256(data).hexdigest()
    open(f"{out}/blobs/sha256/{d}", "wb").write(data)
    return {"digest": f"sha256:{d}", "size": len(data)}
def layer(dirs, extra=None):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as t:
        for d in dirs:
            t.add(d, arcname=d.lstrip("/"), filter=lambda i: (setattr(i, "mtime", 0), i)[1])
        if extra:
            info = tarfile.TarInfo(extra[0]); info.size = len(extra[1])
            t.addfile(info, io.BytesIO(extra[1]))
    return blob(gzip.compress(raw.getvalue(), 6, mtime=0))
def image(layers):
    config = blob(json.dumps({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layers]}}).encode())
    m = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
         "config": dict(config, mediaType="application/vnd.oci.image.config.v1+json"),
         "layers": [dict(l, mediaType="application/vnd.oci.image.layer.v1.tar+gzip") for l in layers]}
    return dict(blob(json.dumps(m).encode()), mediaType=m["mediaType"])
base = layer(["/usr/lib/gcc", "/usr/lib/python3.11"])
tags = {
    "app-v1": image([base, layer(["/usr/share/doc"], ("app/VERSION", b"1\n"))]),
    "app-v2": image([base, layer(["/usr/share/doc"], ("app/VERSION", b"2\n"))]),
    "tools-1": image([base, layer(["/usr/share/locale"])]),
}
index = {"schemaVersion": 2, "manifests": [
    dict(d, annotations={"org.opencontainers.image.ref.name": t}) for t, d in tags.items()]}
json.dump(index, open(f"{out}/index.json", "w"))
open(f"{out}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
PY
for t in app:v1 app:v2 tools:1; do
  skopeo --insecure-policy copy --dest-tls-verify=false "oci:layout:${t/:/-}" "docker://$reg/bench/$t" >/dev/null
done
registry_bytes=$(du -sb registry | cut -f1)

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }
field() { python3 -c "import json,sys; v=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }
r() { "$repo_bin" --password-file pw -r repo "$@"; }
timed() { /usr/bin/time -f %M -o rss "$repo_bin" --password-file pw -r repo "$@"; }
skopeo_to_dir() {
  for t in "$@"; do
    /usr/bin/time -a -f %M -o skopeo.rss skopeo --insecure-policy copy --src-tls-verify=false \
      "docker://$reg/bench/$t" "oci:skopeo-dir:$t" >/dev/null
  done
}

r init >/dev/null
printf '| step | tool | wall s | downloaded | stored (du) | peak RSS MiB |\n|---|---|---|---|---|---|\n'
step() { # NAME IMAGES...
  local name=$1; shift
  local refs=() s e
  for t in "$@"; do refs+=("$reg/bench/$t"); done
  s=$(now); skopeo_to_dir "$@"; e=$(now)
  printf '| %s | skopeo copy | %.2f | | %s | %d |\n' "$name" "$(secs "$s" "$e")" \
    "$(du -sb skopeo-dir | cut -f1)" "$(( $(sort -n skopeo.rss | tail -1) / 1024 ))"
  s=$(now); timed --json backup --images "${refs[@]}" >out.json; e=$(now)
  printf '| %s | repo backup --images | %.2f | %s | %s | %d |\n' "$name" "$(secs "$s" "$e")" \
    "$(field out.json 'v["downloaded"]')" "$(du -sb repo | cut -f1)" "$(( $(cat rss) / 1024 ))"
}
step "app:v1 + tools:1" app:v1 tools:1
step "+ app:v2" app:v1 app:v2 tools:1
step "unchanged" app:v1 app:v2 tools:1
s=$(now); timed restore latest --target restored >/dev/null; e=$(now)
printf '| restore | repo restore | %.2f | | %s | %d |\n' "$(secs "$s" "$e")" "$(du -sb restored | cut -f1)" "$(( $(cat rss) / 1024 ))"
skopeo --insecure-policy inspect --raw "oci:restored:$reg/bench/app:v2" | sha256sum >restored.sum
skopeo --insecure-policy inspect --raw --tls-verify=false "docker://$reg/bench/app:v2" | sha256sum >registry.sum
cmp restored.sum registry.sum && echo "restored app:v2 manifest digest = the registry's"
echo "registry holds $registry_bytes bytes"
