#!/usr/bin/env bash
# Installs what the end-to-end benchmark compares against, idempotently: restic and borg from
# Debian's packages, rustic from crates.io, zstd (the compression bound) and PostgreSQL (the
# pgbench dataset).
set -euo pipefail
pkgs=()
command -v restic >/dev/null || pkgs+=(restic)
command -v borg >/dev/null || pkgs+=(borgbackup)
command -v zstd >/dev/null || pkgs+=(zstd)
command -v pgbench >/dev/null || pkgs+=(postgresql postgresql-contrib)
if ((${#pkgs[@]})); then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}"
fi
command -v rustic >/dev/null || cargo install rustic-rs --locked
restic version
borg --version
rustic --version
