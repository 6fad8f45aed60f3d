#!/usr/bin/env bash
# Offline validation of everything under deploy/ (`just deploy-check`; part of
# `just test`). No cluster, no Docker daemon, no network once the tools are
# installed:
#   - every YAML file parses (duplicate keys are errors);
#   - the Kubernetes manifests validate strictly against the Kubernetes
#     schemas (kubernetes-validate, offline), plus hardening, probes,
#     resources and wiring; the KEDA objects get their own field checks;
#     with kubectl installed, the kustomize build is rendered and validated too;
#   - compose.yaml passes `docker compose config` when the plugin is present,
#     else the Compose Specification schema, plus our own checks;
#   - the Dockerfile is multi-stage, non-root, copies both binaries;
#   - the example configs load with the real loader (when ordersync is built);
#   - promtool check rules / check config / test rules.
#
# First run on a fresh Debian or Ubuntu machine installs, idempotently, into
# ${ORDERSYNC_DEPLOY_TOOLS:-~/.cache/ordersync/deploy-tools}: a Python venv
# (pip: kubernetes-validate, PyYAML, jsonschema), promtool (extracted from
# Debian's `prometheus` package with apt-get download: no service is
# installed or started), and the compose schema when docker compose is
# missing. apt-get runs as root, through sudo when not root.
set -euo pipefail

deploy_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$deploy_dir")
tools="${ORDERSYNC_DEPLOY_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/ordersync/deploy-tools}"

# Pinned, so a new release cannot change what passes.
python_requirements=(
  "kubernetes-validate==1.37.0"
  "tomli>=2; python_version < '3.11'"
)
# The Compose Specification schema ships inside docker-compose 1.x's wheel
# (compose/config/compose_spec.json); we read the file, never run compose 1.x.
compose_schema_wheel="docker-compose==1.29.2"

started=$SECONDS
say() { echo "deploy-check: $*" >&2; }
die() { echo "deploy-check: error: $*" >&2; exit 1; }

as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    die "need root to run: $*; run as root or install sudo"
  fi
}

apt_updated=no
apt_install() {
  command -v apt-get >/dev/null || die "$* is missing and this is not Debian/Ubuntu: install it"
  if [[ $apt_updated == no ]]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=yes
  fi
  say "installing $* with apt-get"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

mkdir -p "$tools"
# Two checks at once (two worktrees, parallel CI steps) must not build the
# same venv concurrently.
if command -v flock >/dev/null; then
  exec 9>"$tools/.lock"
  flock 9
fi

# --- Python venv ----------------------------------------------------------------
command -v python3 >/dev/null || apt_install python3
venv="$tools/venv"
if [[ ! -x "$venv/bin/python" ]]; then
  rm -rf "$venv"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    # Debian ships venv's pip bootstrap separately.
    rm -rf "$venv"
    apt_install python3-venv
    python3 -m venv "$venv" || die "python3 -m venv $venv failed"
  fi
fi
wanted=$(printf '%s\n' "${python_requirements[@]}")
if [[ "$(cat "$venv/.installed" 2>/dev/null)" != "$wanted" ]]; then
  say "installing Python packages into $venv: ${python_requirements[*]}"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${python_requirements[@]}" \
    || die "pip install into $venv failed (is PyPI reachable? to start over: rm -rf $venv)"
  printf '%s' "$wanted" >"$venv/.installed"
fi

# --- promtool --------------------------------------------------------------------
if command -v promtool >/dev/null; then
  promtool=$(command -v promtool)
else
  promtool="$tools/promtool"
  if [[ ! -x "$promtool" ]]; then
    command -v apt-get >/dev/null || die "promtool is missing: install Prometheus' promtool (https://prometheus.io/download/) and put it on PATH"
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    say "fetching promtool from Debian's prometheus package"
    # Only the .deb is downloaded and unpacked here: installing the package
    # would also install and start a Prometheus server.
    if ! (cd "$scratch" && apt-get download prometheus >/dev/null 2>&1); then
      as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
      apt_updated=yes
      (cd "$scratch" && apt-get download prometheus >/dev/null 2>&1) \
        || die "apt-get download prometheus failed; install promtool and put it on PATH"
    fi
    dpkg-deb -x "$scratch"/prometheus_*.deb "$scratch/root"
    install -m 0755 "$scratch/root/usr/bin/promtool" "$promtool"
    rm -rf "$scratch"
    trap - EXIT
  fi
fi
"$promtool" --version >/dev/null 2>&1 || die "$promtool does not run"

# --- docker compose, or its schema --------------------------------------------------
compose_args=()
if command -v docker >/dev/null && docker compose version >/dev/null 2>&1; then
  compose_args=(--docker "$(command -v docker)")
else
  schema="$tools/compose-spec.json"
  if [[ ! -s "$schema" ]]; then
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    say "fetching the Compose Specification schema (docker compose is not installed)"
    "$venv/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps \
      --dest "$scratch" "$compose_schema_wheel" || die "pip download $compose_schema_wheel failed"
    "$venv/bin/python" - "$scratch" "$schema" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(wheel) as archive, open(sys.argv[2], "wb") as out:
    out.write(archive.read("compose/config/compose_spec.json"))
PY
    rm -rf "$scratch"
    trap - EXIT
  fi
  compose_args=(--compose-schema "$schema")
fi

# --- optional: kubectl (kustomize build) and a built ordersync (config loader) ------
optional_args=()
if command -v kubectl >/dev/null && kubectl kustomize --help >/dev/null 2>&1; then
  optional_args+=(--kubectl "$(command -v kubectl)")
fi
ordersync_bin="${ORDERSYNC_BIN:-}"
if [[ -z "$ordersync_bin" ]]; then
  target="${CARGO_TARGET_DIR:-$repo/target}"
  for candidate in "$target/release/ordersync" "$target/debug/ordersync"; do
    if [[ -x "$candidate" ]]; then ordersync_bin="$candidate"; break; fi
  done
fi
if [[ -n "$ordersync_bin" ]]; then
  optional_args+=(--ordersync "$ordersync_bin")
fi

status=0
"$venv/bin/python" "$deploy_dir/validate.py" --repo "$repo" --promtool "$promtool" \
  "${compose_args[@]}" "${optional_args[@]}" || status=$?
say "done in $((SECONDS - started)) s"
exit "$status"
