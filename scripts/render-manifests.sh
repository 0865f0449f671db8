#!/usr/bin/env bash
# The plain manifests deploy/*.yaml are the Helm chart deploy/chart rendered with its default
# values, plus what these files have always held: the example repository and cluster name, the
# kairn-system namespace as an object, and the optional grants (each file is applied on its
# own). Edit the chart, then run this; tests/tests/chart.rs fails while they differ.
#
#   bash scripts/render-manifests.sh          # writes deploy/*.yaml
#   bash scripts/render-manifests.sh DIR      # writes them into DIR instead (the test compares)
#
# deploy/crds.yaml is the exception: it is generated from node-agent/src/crd.rs
# (`KAIRN_BLESS=1 cargo test -p kairn-node-agent crds`), and copied from there into the chart.
set -euo pipefail
cd "$(dirname "$0")/.."

CHART=deploy/chart
OUT=${1:-deploy}
HELM=${KAIRN_HELM:-$(bash scripts/chart-tools.sh build)/helm}
FILES=(rbac daemonset maintenance rbac-manifests rbac-restore rbac-images tenant-roles admission)

[ "$OUT" != deploy ] || cp deploy/crds.yaml "$CHART/files/crds.yaml"
mkdir -p "$OUT"
for file in "${FILES[@]}"; do
  {
    echo "# Rendered from the Helm chart (deploy/chart/templates/$file.yaml) by"
    echo "# scripts/render-manifests.sh: edit the chart, not this file."
    echo "#"
    "$HELM" template kairn "$CHART" --namespace kairn-system \
      --set repository.url=s3://kairn-backups/cluster-a,cluster.name=cluster-a \
      --set namespace.create=true,manifestsExport.enabled=true,restore.enabled=true \
      --set images.enabled=true,images.pullSecrets=true \
      --show-only "templates/$file.yaml" |
      # Helm starts every document with `---` and a `# Source:` line: keep the separators
      # between documents only.
      sed -e '/^# Source: /d' | sed -e '1{/^---$/d}'
  } >"$OUT/$file.yaml.tmp"
  mv "$OUT/$file.yaml.tmp" "$OUT/$file.yaml"
done
