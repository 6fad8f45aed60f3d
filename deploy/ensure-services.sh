#!/usr/bin/env bash
# Make sure Redis and Postgres answer at REDIS_URL and DATABASE_URL.
# Local services that are installed but stopped are started; on Debian/Ubuntu
# missing ones are installed with apt-get; elsewhere we stop with the exact
# command to run. Remote URLs are only checked, never touched.
set -euo pipefail

DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"

# host and port of a URL like scheme://user:pass@host:port/db
url_host() { local rest="${1#*://}"; rest="${rest#*@}"; rest="${rest%%/*}"; echo "${rest%%:*}"; }
url_port() { local rest="${1#*://}"; rest="${rest#*@}"; rest="${rest%%/*}"; [[ "$rest" == *:* ]] && echo "${rest##*:}" || echo "$2"; }
is_local() { [[ "$1" == "127.0.0.1" || "$1" == "localhost" || "$1" == "::1" ]]; }
answers() { timeout 1 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }
wait_for() { for _ in $(seq 1 50); do answers "$1" "$2" && return 0; sleep 0.2; done; return 1; }
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  if command -v apt-get >/dev/null; then
    echo "installing $* with apt-get" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    echo "error: $* is not installed and this is not Debian/Ubuntu; install it, e.g.: sudo dnf install $*" >&2
    exit 1
  fi
}

redis_host=$(url_host "$REDIS_URL"); redis_port=$(url_port "$REDIS_URL" 6379)
if ! answers "$redis_host" "$redis_port"; then
  is_local "$redis_host" || { echo "error: Redis at $redis_host:$redis_port does not answer" >&2; exit 1; }
  command -v redis-server >/dev/null || apt_install redis-server
  echo "starting redis-server on port $redis_port" >&2
  redis-server --daemonize yes --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no >/dev/null
  wait_for "$redis_host" "$redis_port" || { echo "error: redis-server did not start" >&2; exit 1; }
fi

pg_host=$(url_host "$DATABASE_URL"); pg_port=$(url_port "$DATABASE_URL" 5432)
if ! answers "$pg_host" "$pg_port"; then
  is_local "$pg_host" || { echo "error: Postgres at $pg_host:$pg_port does not answer" >&2; exit 1; }
  installed_now=no
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    apt_install postgresql
    installed_now=yes
  fi
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  if [[ "$installed_now" == yes ]]; then
    # A fresh package install asks for passwords over TCP; this is a local
    # development server, so trust loopback like the CI machine does.
    hba="/etc/postgresql/$version/main/pg_hba.conf"
    as_root sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
  fi
  echo "starting PostgreSQL $version" >&2
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_for "$pg_host" "$pg_port" || { echo "error: PostgreSQL did not start; try: pg_ctlcluster --skip-systemctl-redirect $version main start" >&2; exit 1; }
fi
echo "services ready: Redis $redis_host:$redis_port, Postgres $pg_host:$pg_port" >&2
