#!/usr/bin/env bash
# Starts the machine services the tests talk to, when they are not running
# yet, and fails loudly when one cannot be started. The start commands are
# the ones this machine kind documents; on a machine where a service is
# already up, nothing is touched.
set -euo pipefail

deadline() { # deadline SECONDS CHECK...
  local secs=$1; shift
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= end)); then return 1; fi
    sleep 0.5
  done
}

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432; }
rabbit_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }

ensure_postgres() {
  if pg_up; then echo "postgresql: running"; return; fi
  command -v pg_ctlcluster >/dev/null || { echo "postgresql: not installed (apt-get install postgresql)" >&2; exit 1; }
  echo "postgresql: starting"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  deadline 60 pg_up || { echo "postgresql: did not come up on 127.0.0.1:5432 within 60s" >&2; exit 1; }
  echo "postgresql: running"
}

ensure_rabbitmq() {
  if rabbit_up && rabbitmq-diagnostics -q check_running >/dev/null 2>&1; then echo "rabbitmq: running"; return; fi
  command -v rabbitmq-server >/dev/null || { echo "rabbitmq: not installed (apt-get install rabbitmq-server)" >&2; exit 1; }
  if ! rabbit_up; then
    echo "rabbitmq: starting"
    rabbitmq-server -detached || true
  else
    # The node runs but its app may be stopped (a test restarts it).
    rabbitmqctl start_app >/dev/null 2>&1 || true
  fi
  deadline 90 rabbitmq-diagnostics -q check_port_connectivity || { echo "rabbitmq: did not come up on 127.0.0.1:5672 within 90s" >&2; exit 1; }
  echo "rabbitmq: running"
}

case "${1:-ensure}" in
  ensure) ensure_postgres; ensure_rabbitmq ;;
  postgres) ensure_postgres ;;
  rabbitmq) ensure_rabbitmq ;;
  *) echo "usage: $0 [ensure|postgres|rabbitmq]" >&2; exit 2 ;;
esac
