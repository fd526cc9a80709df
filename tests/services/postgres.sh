#!/usr/bin/env bash
# PostgreSQL for tests/test_mlflow_server.py (MLflow's backend store): role wsss (password wsss, may create
# databases) owning database mlflow_test, on 127.0.0.1:5432. Idempotent: exits 0 at once when a server
# answers; installs Debian's postgresql (15) and starts its cluster without systemd when root; otherwise
# says why and exits 1 (the tests that need it then skip).
set -euo pipefail
host=127.0.0.1 port=5432 role=wsss password=wsss database=mlflow_test

answers() { command -v pg_isready >/dev/null && pg_isready -q -h "$host" -p "$port"; }

if answers; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "postgres: no server answers on $host:$port and this is not root on an apt system: cannot install one" >&2
    exit 1
fi
if ! command -v pg_ctlcluster >/dev/null || [ -z "$(ls /usr/lib/postgresql 2>/dev/null)" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends postgresql >/dev/null \
        || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends postgresql >/dev/null; } \
        || { echo "postgres: apt-get install postgresql failed" >&2; exit 1; }
fi
version=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main"' | grep -q .; then
    pg_createcluster "$version" main >/dev/null
fi
pg_ctlcluster "$version" main start 2>/dev/null || true   # "already running" is fine
for _ in $(seq 1 30); do
    answers && break
    sleep 1
done
answers || { echo "postgres: cluster $version/main started but $host:$port does not answer" >&2; exit 1; }

sql() { su postgres -c "psql -v ON_ERROR_STOP=1 -qtAc \"$1\"" 2>&1; }
if [ "$(sql "SELECT 1 FROM pg_roles WHERE rolname = '$role'")" != 1 ]; then
    sql "CREATE ROLE $role LOGIN CREATEDB PASSWORD '$password'" >/dev/null
fi
if [ "$(sql "SELECT 1 FROM pg_database WHERE datname = '$database'")" != 1 ]; then
    sql "CREATE DATABASE $database OWNER $role" >/dev/null
fi
