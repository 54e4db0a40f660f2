#!/usr/bin/env bash
# Runs a real Maestro server on this machine for integration tests, without
# Kubernetes: PostgreSQL + `maestro migration` + `maestro server` with the gRPC
# broker; and Maestro's real agent (`maestro agent`, the OCM work agent), one
# process per consumer, applying works to the local kube-apiserver of
# deploy/local/kube/kube.sh. Tests that need no real cluster simulate agents
# instead (maestro/maestrotest).
#
#   maestro.sh build            build (or reuse) the maestro binary (migration,
#                               server and agent); prints its path
#   maestro.sh start            start PostgreSQL if needed, recreate the database,
#                               migrate, start the server, wait until healthy
#   maestro.sh stop             stop the server and every agent of this state dir
#                               (SIGTERM, then SIGKILL after a deadline)
#   maestro.sh restart          stop + start the server, keeping the database
#                               (agents keep running and reconnect by themselves)
#   maestro.sh consumer NAME..  register consumers (already existing is fine)
#   maestro.sh env              print `export MAESTRO_...` lines for tests: the
#                               endpoints, and the settings above (but the password)
#   maestro.sh status           say whether the server is running and healthy
#   maestro.sh agent start NAME..   register each consumer, install the
#                               AppliedManifestWork CRD and the agent namespace in
#                               the kube-apiserver, start one real agent per
#                               consumer and wait until each has subscribed
#   maestro.sh agent stop [NAME..]  stop those agents (all of this state dir
#                               without names)
#   maestro.sh agent status [NAME..]  print `NAME running|stopped pid=N log=FILE`
#                               per agent; fails when one is not running
#
# Settings (environment):
#   MAESTRO_CACHE_DIR     binary cache   (default $HOME/.cache/hyperfleet-maestro-adapter)
#   MAESTRO_STATE_DIR     db files, logs, pid files, agents/NAME/ (default /tmp/hyperfleet-maestro)
#   MAESTRO_HTTP_PORT 18000, MAESTRO_GRPC_PORT 18090, MAESTRO_GRPC_BROKER_PORT 18091,
#   MAESTRO_HEALTH_PORT 18083, MAESTRO_METRICS_PORT 18080
#   MAESTRO_DB_HOST 127.0.0.1, MAESTRO_DB_PORT 5432, MAESTRO_DB_USER postgres,
#   MAESTRO_DB_PASSWORD postgres (ignored under trust auth), MAESTRO_DB_NAME maestro_adapter_test
#   MAESTRO_START_TIMEOUT 60 (s), MAESTRO_STOP_TIMEOUT 15 (s), MAESTRO_PG_TIMEOUT 30 (s)
#   MAESTRO_LOG_LEVEL 2 (klog -v)
#   MAESTRO_BUILD_NICE 10 nice level of the build (long; the cores are shared)
#   MAESTRO_HEARTBEAT_INTERVAL 3 (s): the server reports healthy only after its
#     liveness check (every interval/3 s) has marked it ready; upstream's 15 s
#     default makes every start take 5 s.
#   Agents: MAESTRO_AGENT_NAMESPACE open-cluster-management-agent,
#     MAESTRO_AGENT_STATUS_SYNC_INTERVAL 10s (how often an agent re-reads the
#     applied objects' status for Available and feedback), MAESTRO_AGENT_LOG_LEVEL 2,
#     MAESTRO_AGENT_START_TIMEOUT 60 (s, until subscribed). The kube-apiserver
#     is deploy/local/kube/kube.sh's, chosen by the same KUBE_* settings
#     (KUBE_STATE_DIR, KUBE_APISERVER_PORT...).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SCRIPT_PATH="$SCRIPT_DIR/$(basename "${BASH_SOURCE[0]}")"
BUILD_MODULE="$SCRIPT_DIR/maestro-server"
PARSER_MODULE="$SCRIPT_DIR/ocm-common-sqlparser"

CACHE_DIR=${MAESTRO_CACHE_DIR:-$HOME/.cache/hyperfleet-maestro-adapter}
STATE_DIR=${MAESTRO_STATE_DIR:-/tmp/hyperfleet-maestro}
HOST=127.0.0.1
HTTP_PORT=${MAESTRO_HTTP_PORT:-18000}
GRPC_PORT=${MAESTRO_GRPC_PORT:-18090}
GRPC_BROKER_PORT=${MAESTRO_GRPC_BROKER_PORT:-18091}
HEALTH_PORT=${MAESTRO_HEALTH_PORT:-18083}
METRICS_PORT=${MAESTRO_METRICS_PORT:-18080}
DB_HOST=${MAESTRO_DB_HOST:-127.0.0.1}
DB_PORT=${MAESTRO_DB_PORT:-5432}
DB_USER=${MAESTRO_DB_USER:-postgres}
DB_PASSWORD=${MAESTRO_DB_PASSWORD:-postgres}
DB_NAME=${MAESTRO_DB_NAME:-maestro_adapter_test}
START_TIMEOUT=${MAESTRO_START_TIMEOUT:-60}
STOP_TIMEOUT=${MAESTRO_STOP_TIMEOUT:-15}
PG_TIMEOUT=${MAESTRO_PG_TIMEOUT:-30}
HEARTBEAT_INTERVAL=${MAESTRO_HEARTBEAT_INTERVAL:-3}
LOG_LEVEL=${MAESTRO_LOG_LEVEL:-2}
BUILD_NICE=${MAESTRO_BUILD_NICE:-10}
AGENT_NAMESPACE=${MAESTRO_AGENT_NAMESPACE:-open-cluster-management-agent}
AGENT_STATUS_SYNC_INTERVAL=${MAESTRO_AGENT_STATUS_SYNC_INTERVAL:-10s}
AGENT_LOG_LEVEL=${MAESTRO_AGENT_LOG_LEVEL:-2}
AGENT_START_TIMEOUT=${MAESTRO_AGENT_START_TIMEOUT:-60}
KUBE_SH="$SCRIPT_DIR/kube/kube.sh"
# The product module pins open-cluster-management.io/api: the CRD comes from there.
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)

PID_FILE="$STATE_DIR/maestro.pid"
LOG_FILE="$STATE_DIR/maestro.log"
BIN_LINK="$STATE_DIR/maestro"

log() { printf 'maestro.sh: %s\n' "$*" >&2; }
die() {
	log "ERROR: $*"
	exit 1
}

validate_settings() {
	local p
	for p in "$HTTP_PORT" "$GRPC_PORT" "$GRPC_BROKER_PORT" "$HEALTH_PORT" "$METRICS_PORT" "$DB_PORT" \
		"$START_TIMEOUT" "$STOP_TIMEOUT" "$PG_TIMEOUT" "$HEARTBEAT_INTERVAL" "$LOG_LEVEL" \
		"$AGENT_LOG_LEVEL" "$AGENT_START_TIMEOUT"; do
		[[ $p =~ ^[0-9]+$ ]] || die "invalid number '$p' in a MAESTRO_* port, timeout or log level setting"
	done
	# The name is interpolated into SQL (CREATE DATABASE), so keep it boring.
	[[ $DB_NAME =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || die "invalid MAESTRO_DB_NAME '$DB_NAME' (want [a-z_][a-z0-9_]*)"
	[[ $DB_USER =~ ^[a-zA-Z_][a-zA-Z0-9_]*$ ]] || die "invalid MAESTRO_DB_USER '$DB_USER'"
	[[ $BUILD_NICE =~ ^-?[0-9]+$ ]] || die "invalid MAESTRO_BUILD_NICE '$BUILD_NICE'"
	[[ $AGENT_STATUS_SYNC_INTERVAL =~ ^[0-9]+(ms|s|m)$ ]] ||
		die "invalid MAESTRO_AGENT_STATUS_SYNC_INTERVAL '$AGENT_STATUS_SYNC_INTERVAL' (want e.g. 10s)"
	[[ $AGENT_NAMESPACE =~ ^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$ ]] ||
		die "invalid MAESTRO_AGENT_NAMESPACE '$AGENT_NAMESPACE' (want an RFC 1123 label)"
	[[ $STATE_DIR == /* && $STATE_DIR != / ]] || die "MAESTRO_STATE_DIR must be an absolute path other than /, got '$STATE_DIR'"
}

# shellcheck source=deploy/local/lib.sh
. "$SCRIPT_DIR/lib.sh"

# ---------------------------------------------------------------------------
# build

# source_hash hashes everything that determines the binary: the Go toolchain,
# the build flags, both modules' go.mod/go.sum and non-test Go sources.
source_hash() {
	{
		go version
		echo "CGO_ENABLED=0 -trimpath -buildvcs=false GOOS=$(go env GOOS) GOARCH=$(go env GOARCH)"
		(
			cd "$SCRIPT_DIR"
			find maestro-server ocm-common-sqlparser -type f \
				\( -name '*.go' -o -name go.mod -o -name go.sum \) ! -name '*_test.go' -print0 |
				LC_ALL=C sort -z | xargs -0 sha256sum
		)
	} | sha256sum | cut -c1-16
}

cmd_build() {
	command -v go >/dev/null || die "go is not on PATH"
	mkdir -p "$CACHE_DIR"
	local hash bin
	hash=$(source_hash)
	bin="$CACHE_DIR/maestro-$hash"
	if [[ -x $bin ]]; then
		echo "$bin"
		return 0
	fi
	# Serialise concurrent builds (e.g. parallel `make` jobs or test runners).
	exec 9>"$CACHE_DIR/build.lock"
	flock 9
	if [[ ! -x $bin ]]; then
		log "building maestro ($hash: migration, server, agent) into $CACHE_DIR; the first build takes about 10 minutes"
		local start tmp
		start=$(now)
		tmp="$bin.tmp.$$"
		# GOWORK=off: a go.work elsewhere in the tree must not pull the product
		# module into this separate build module.
		(cd "$BUILD_MODULE" && GOWORK=off CGO_ENABLED=0 nice -n "$BUILD_NICE" go build -trimpath -buildvcs=false -o "$tmp" .) ||
			{
				rm -f "$tmp"
				die "go build failed"
			}
		mv -f "$tmp" "$bin"
		log "built in $(($(now) - start))s"
		# Binaries are ~120 MB: keep only the two newest builds.
		find "$CACHE_DIR" -maxdepth 1 -type f -regextype posix-extended -regex '.*/maestro-[0-9a-f]{16}' -printf '%T@ %p\n' |
			sort -rn | tail -n +3 | cut -d' ' -f2- | xargs -r rm -f --
	fi
	exec 9>&-
	echo "$bin"
}

# ---------------------------------------------------------------------------
# PostgreSQL

ensure_postgres() {
	if pg_isready -q -h "$DB_HOST" -p "$DB_PORT"; then
		return 0
	fi
	if [[ $DB_HOST != 127.0.0.1 && $DB_HOST != localhost ]]; then
		die "PostgreSQL at $DB_HOST:$DB_PORT is not ready, and it is not local, so not starting it"
	fi
	command -v pg_ctlcluster >/dev/null || die "PostgreSQL is not running on $DB_HOST:$DB_PORT and pg_ctlcluster is not installed"
	local version
	version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)
	[[ -n $version ]] || die "PostgreSQL is not running and no cluster is configured under /etc/postgresql"
	log "starting PostgreSQL $version/main"
	pg_ctlcluster --skip-systemctl-redirect "$version" main start ||
		die "pg_ctlcluster --skip-systemctl-redirect $version main start failed"
	local deadline=$(($(now) + PG_TIMEOUT))
	until pg_isready -q -h "$DB_HOST" -p "$DB_PORT"; do
		(($(now) < deadline)) || die "PostgreSQL did not become ready on $DB_HOST:$DB_PORT within ${PG_TIMEOUT}s"
		sleep 0.2
	done
}

psql_admin() {
	PGOPTIONS='--client-min-messages=warning' PGPASSWORD="$DB_PASSWORD" psql -X -q -v ON_ERROR_STOP=1 -h "$DB_HOST" -p "$DB_PORT" -U "$DB_USER" -d postgres "$@"
}

recreate_database() {
	log "recreating database $DB_NAME"
	# WITH (FORCE) drops leftover connections (PostgreSQL 13+).
	psql_admin -c "DROP DATABASE IF EXISTS \"$DB_NAME\" WITH (FORCE)" ||
		die "could not drop database $DB_NAME"
	psql_admin -c "CREATE DATABASE \"$DB_NAME\"" || die "could not create database $DB_NAME"
}

ensure_database() {
	local exists
	exists=$(psql_admin -tA -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'") ||
		die "could not query PostgreSQL"
	if [[ $exists != 1 ]]; then
		psql_admin -c "CREATE DATABASE \"$DB_NAME\"" || die "could not create database $DB_NAME"
	fi
}

write_db_files() {
	mkdir -p "$STATE_DIR"
	printf '%s' "$DB_HOST" >"$STATE_DIR/db.host"
	printf '%s' "$DB_PORT" >"$STATE_DIR/db.port"
	printf '%s' "$DB_USER" >"$STATE_DIR/db.user"
	printf '%s' "$DB_PASSWORD" >"$STATE_DIR/db.password"
	printf '%s' "$DB_NAME" >"$STATE_DIR/db.name"
}

db_flags() {
	printf '%s\n' \
		"--db-host-file=$STATE_DIR/db.host" \
		"--db-port-file=$STATE_DIR/db.port" \
		"--db-user-file=$STATE_DIR/db.user" \
		"--db-password-file=$STATE_DIR/db.password" \
		"--db-name-file=$STATE_DIR/db.name" \
		"--db-sslmode=disable"
}

# ---------------------------------------------------------------------------
# server process

# running_pid prints the pid from the pid file when that process is alive and
# is a maestro server (a recycled pid is not ours).
running_pid() {
	[[ -f $PID_FILE ]] || return 1
	local pid
	pid=$(<"$PID_FILE")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'maestro.* server ' || return 1
	echo "$pid"
}

healthy() {
	curl -fsS -o /dev/null --max-time 2 "http://$HOST:$HEALTH_PORT/healthcheck" 2>/dev/null
}

port_in_use() {
	# bash's /dev/tcp: succeeds when something accepts connections on the port
	(exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

show_log_tail() {
	if [[ -f $LOG_FILE ]]; then
		log "last lines of $LOG_FILE:"
		tail -n 40 "$LOG_FILE" >&2
	fi
}

wait_healthy() {
	local pid=$1 start=$2
	local deadline=$((start + START_TIMEOUT))
	while :; do
		if ! kill -0 "$pid" 2>/dev/null; then
			show_log_tail
			rm -f "$PID_FILE"
			die "maestro server (pid $pid) exited during startup"
		fi
		# Healthy means the instance is marked ready in the database, which after
		# a restart can be true before every listener is up: check those too.
		if healthy && port_in_use "$HTTP_PORT" && port_in_use "$GRPC_PORT" && port_in_use "$GRPC_BROKER_PORT"; then
			return 0
		fi
		if (($(now) >= deadline)); then
			show_log_tail
			die "maestro server (pid $pid) not healthy on http://$HOST:$HEALTH_PORT/healthcheck after ${START_TIMEOUT}s"
		fi
		sleep 0.2
	done
}

check_ports_free() {
	local p
	for p in "$HTTP_PORT" "$GRPC_PORT" "$GRPC_BROKER_PORT" "$HEALTH_PORT" "$METRICS_PORT"; do
		if port_in_use "$p"; then
			die "port $HOST:$p is already in use by another process (not the maestro in $PID_FILE); stop it or set MAESTRO_*_PORT"
		fi
	done
}

launch() {
	local bin=$1
	local -a dbf
	mapfile -t dbf < <(db_flags)
	log "running migrations"
	if ! "$bin" migration "${dbf[@]}" >>"$LOG_FILE" 2>&1; then
		show_log_tail
		die "maestro migration failed"
	fi
	ln -sfn "$bin" "$BIN_LINK"
	log "starting maestro server (log: $LOG_FILE)"
	local start
	start=$(now)
	# setsid: the server outlives this script and is not hit by a Ctrl-C aimed
	# at the caller's process group. Since this shell is not a process group
	# leader, setsid execs in place and $! is the server's pid.
	setsid "$BIN_LINK" server "${dbf[@]}" \
		--message-broker-type=grpc \
		--server-hostname="$HOST" \
		--http-server-bindport="$HTTP_PORT" \
		--grpc-server-bindport="$GRPC_PORT" \
		--grpc-broker-bindport="$GRPC_BROKER_PORT" \
		--health-check-server-bindport="$HEALTH_PORT" \
		--metrics-server-bindport="$METRICS_PORT" \
		--heartbeat-interval="$HEARTBEAT_INTERVAL" \
		-v="$LOG_LEVEL" \
		</dev/null >>"$LOG_FILE" 2>&1 &
	local pid=$!
	echo "$pid" >"$PID_FILE"
	wait_healthy "$pid" "$start"
	log "maestro server healthy (pid $pid) after $(($(now) - start))s"
}

cmd_start() {
	validate_settings
	mkdir -p "$STATE_DIR"
	local pid
	if pid=$(running_pid); then
		if healthy; then
			log "maestro server already running (pid $pid) and healthy"
			return 0
		fi
		# Probably still starting (a concurrent start): give it the deadline.
		log "maestro server (pid $pid) is running but not healthy yet; waiting"
		wait_healthy "$pid" "$(now)"
		return 0
	fi
	check_ports_free
	# A fresh database has no works: agents of an earlier run (and their
	# logs) go.
	agent_stop
	rm -rf "$STATE_DIR/agents"
	local bin
	bin=$(cmd_build)
	ensure_postgres
	recreate_database
	write_db_files
	# A fresh database gets a fresh log; keep the previous one for post-mortems.
	[[ -f $LOG_FILE ]] && mv -f "$LOG_FILE" "$LOG_FILE.prev"
	launch "$bin"
}

stop_server() {
	local pid
	if ! pid=$(running_pid); then
		rm -f "$PID_FILE"
		log "maestro server not running"
		return 0
	fi
	log "stopping maestro server (pid $pid)"
	terminate "$pid" "maestro server" "$STOP_TIMEOUT"
	rm -f "$PID_FILE"
	log "maestro server stopped"
}

# cmd_stop stops the agents too: ones a crashed test left behind would
# otherwise run on, reconnecting to whatever server next takes the port.
cmd_stop() {
	validate_settings
	agent_stop
	stop_server
}

cmd_restart() {
	validate_settings
	stop_server
	check_ports_free
	local bin
	bin=$(cmd_build)
	ensure_postgres
	ensure_database # keep the data: only create it if it is missing
	write_db_files
	launch "$bin"
}

cmd_consumer() {
	(($# > 0)) || die "usage: maestro.sh consumer NAME..."
	local name resp code body
	for name in "$@"; do
		# Consumer names are cluster names: RFC 1123 labels. Checking this also
		# keeps the JSON below well-formed.
		[[ $name =~ ^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$ ]] || die "invalid consumer name '$name' (want an RFC 1123 label)"
		resp=$(curl -sS -w '\n%{http_code}' --max-time 10 \
			-X POST -H 'Content-Type: application/json' \
			-d "{\"name\":\"$name\"}" \
			"http://$HOST:$HTTP_PORT/api/maestro/v1/consumers") ||
			die "could not reach maestro at http://$HOST:$HTTP_PORT"
		code=${resp##*$'\n'}
		body=${resp%$'\n'*}
		case $code in
		201 | 200) log "consumer $name registered" ;;
		# The server answers a duplicate with 409 and reason "This Consumer already exists".
		409) log "consumer $name already exists" ;;
		*)
			if grep -qi 'already exists' <<<"$body"; then
				log "consumer $name already exists"
			else
				die "registering consumer $name: HTTP $code: $body"
			fi
			;;
		esac
	done
}

cmd_env() {
	cat <<EOF
export MAESTRO_HTTP_ENDPOINT=http://$HOST:$HTTP_PORT
export MAESTRO_GRPC_ENDPOINT=$HOST:$GRPC_PORT
export MAESTRO_GRPC_BROKER_ENDPOINT=$HOST:$GRPC_BROKER_PORT
export MAESTRO_HEALTH_ENDPOINT=http://$HOST:$HEALTH_PORT/healthcheck
export MAESTRO_METRICS_ENDPOINT=http://$HOST:$METRICS_PORT/metrics
export MAESTRO_CTL=$SCRIPT_PATH
# The local server serves plaintext gRPC and http REST; the adapter and
# maestro-cli refuse that unless told it is meant.
export MAESTRO_INSECURE=true
EOF
	# This server's settings too, so that maestro.sh run by a test (restart,
	# agent start) acts on this server and not on the defaults' one.
	local v
	for v in STATE_DIR HTTP_PORT GRPC_PORT GRPC_BROKER_PORT HEALTH_PORT METRICS_PORT DB_HOST DB_PORT DB_NAME; do
		printf 'export MAESTRO_%s=%q\n' "$v" "${!v}"
	done
}

cmd_status() {
	local pid
	if pid=$(running_pid); then
		if healthy; then
			echo "running (pid $pid), healthy"
		else
			echo "running (pid $pid), not healthy"
			return 1
		fi
	else
		echo "not running"
		return 1
	fi
}

# ---------------------------------------------------------------------------
# agents: Maestro's real agent, one process per consumer

valid_consumer() {
	[[ $1 =~ ^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$ ]] || die "invalid consumer name '$1' (want an RFC 1123 label)"
}

agent_dir() { echo "$STATE_DIR/agents/$1"; }

# agent_pid NAME prints the pid of NAME's agent when it runs: the pid file's
# process is alive and is `maestro agent` for NAME from this state dir.
agent_pid() {
	local dir pid cmdline
	dir=$(agent_dir "$1")
	[[ -f $dir/agent.pid ]] || return 1
	pid=$(<"$dir/agent.pid")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	cmdline=$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null) || return 1
	[[ $cmdline == *" agent "* && $cmdline == *"--consumer-name=$1 "* && $cmdline == *"$dir/"* ]] || return 1
	echo "$pid"
}

# all_agents lists the consumers that have an agent directory here.
all_agents() {
	local d
	for d in "$STATE_DIR"/agents/*/; do
		[[ -d $d ]] && basename "$d"
	done
	return 0
}

# agent_crd_file prints the AppliedManifestWork CRD of the
# open-cluster-management.io/api version the product module pins.
agent_crd_file() {
	local dir file
	dir=$(cd "$REPO_ROOT" && GOWORK=off go list -m -f '{{.Dir}}' open-cluster-management.io/api 2>/dev/null) || dir=""
	if [[ -z $dir ]]; then
		# Not in the module cache yet.
		(cd "$REPO_ROOT" && GOWORK=off go mod download open-cluster-management.io/api) >&2 ||
			die "go mod download open-cluster-management.io/api (in $REPO_ROOT) failed"
		dir=$(cd "$REPO_ROOT" && GOWORK=off go list -m -f '{{.Dir}}' open-cluster-management.io/api) ||
			die "go list -m open-cluster-management.io/api (in $REPO_ROOT) failed"
	fi
	file="$dir/work/v1/0000_01_work.open-cluster-management.io_appliedmanifestworks.crd.yaml"
	[[ -r $file ]] || die "no AppliedManifestWork CRD at $file"
	echo "$file"
}

# listening_ports prints the local TCP ports something listens on (state 0A
# in /proc/net/tcp*), in decimal.
listening_ports() {
	local f
	for f in /proc/net/tcp /proc/net/tcp6; do
		[[ -r $f ]] || continue
		awk 'NR > 1 && $4 == "0A" { split($2, a, ":"); print a[2] }' "$f"
	done | while read -r hex; do echo $((16#$hex)); done
}

# AGENT_PORTS_TAKEN: ports handed out by free_port in this run, which the
# agents may not have bound yet.
AGENT_PORTS_TAKEN=" "

# free_port prints a port in 20000-32767 (below Linux's ephemeral range) that
# nothing listens on. The agent must be given one: its serving library
# panics on port 0. Another process may take it before the agent binds; the
# start then retries with another port (agent_start).
free_port() {
	local used p i
	used=" $(listening_ports | tr '\n' ' ')"
	for ((i = 0; i < 200; i++)); do
		p=$((20000 + RANDOM % 12768))
		[[ $used == *" $p "* || $AGENT_PORTS_TAKEN == *" $p "* ]] && continue
		AGENT_PORTS_TAKEN+="$p "
		echo "$p"
		return 0
	done
	die "no free port found for an agent's --listen"
}

# agent_launch BIN NAME KUBECONFIG starts NAME's agent in the background.
agent_launch() {
	local bin=$1 name=$2 kubeconfig=$3 dir port
	dir=$(agent_dir "$name")
	mkdir -p "$dir"
	port=$(free_port)
	# The agent reaches the server's gRPC broker, like an agent in a cluster.
	# The URL's authority (ignored by gRPC's passthrough resolver) is the
	# consumer's name: the agent names its AppliedManifestWorks, and picks
	# which ones it finalizes, by a hash of this URL, so agents with the same
	# URL would all finalize each other's (racing, and backing off for up to
	# a minute) on this shared kube-apiserver. In production each cluster
	# has its own API server and agent.
	printf 'url: passthrough://%s/%s:%s\n' "$name" "$HOST" "$GRPC_BROKER_PORT" >"$dir/grpc-source.yaml"
	if [[ -f $dir/agent.log ]]; then mv -f "$dir/agent.log" "$dir/agent.log.prev"; fi
	# Flags:
	# --listen: its health/metrics endpoint (HTTPS, self-signed), on a port of
	#   its own so that any number of agents (and stacks) coexist.
	# --appliedmanifestwork-eviction-grace-period above the agent's 100-year
	#   bound turns eviction off. Here many consumers' agents share one
	#   kube-apiserver, and the agent's id is a hash of the server address, the
	#   same for all of them: each would see the others' AppliedManifestWorks
	#   as orphans of its own and delete them (and what they applied) after the
	#   default 60 minutes. In production each cluster has its own agent.
	# TMPDIR and cwd are the agent's directory: it writes a self-signed
	# serving certificate into a new temporary directory on every start.
	# setsid: it outlives this script and a Ctrl-C aimed at the caller's
	# process group.
	rm -rf "$dir"/serving-cert-*
	(
		cd "$dir"
		TMPDIR=$dir exec setsid "$bin" agent \
			--consumer-name="$name" \
			--cloudevents-client-id="$name-work-agent" \
			--workload-source-driver=grpc \
			--workload-source-config="$dir/grpc-source.yaml" \
			--kubeconfig="$kubeconfig" \
			--namespace="$AGENT_NAMESPACE" \
			--listen="127.0.0.1:$port" \
			--status-sync-interval="$AGENT_STATUS_SYNC_INTERVAL" \
			--appliedmanifestwork-eviction-grace-period=876000h \
			-v="$AGENT_LOG_LEVEL" \
			</dev/null >"$dir/agent.log" 2>&1
	) &
	echo "$!" >"$dir/agent.pid"
}

# agent_subscribed NAME: the agent's log says the server accepted its
# subscription for NAME (the OCM SDK's gRPC transport logs this once the
# server's response header carried a subscription id, so the server has
# registered it; a resubscription after a reconnect logs it again).
agent_subscribed() {
	grep -F '"subscribed to grpc server"' "$(agent_dir "$1")/agent.log" 2>/dev/null |
		grep -qF "cluster_name:\\\"$1\\\""
}

agent_log_tail() {
	local f
	f="$(agent_dir "$1")/agent.log"
	[[ -s $f ]] || return 0
	log "last lines of $f:"
	tail -n 30 "$f" >&2
}

agent_start() {
	(($# > 0)) || die "usage: maestro.sh agent start NAME..."
	local name
	for name in "$@"; do valid_consumer "$name"; done
	healthy || die "maestro server is not healthy on http://$HOST:$HEALTH_PORT/healthcheck; run maestro.sh start"
	local kubeconfig bin crd out
	out=$("$KUBE_SH" status 2>&1) ||
		die "the control plane of deploy/local/kube/kube.sh (KUBE_STATE_DIR=${KUBE_STATE_DIR:-its default}) is not ready; run kube.sh start. kube.sh status said:"$'\n'"$out"
	kubeconfig=$("$KUBE_SH" env) || die "kube.sh env failed"
	kubeconfig=$(eval "$kubeconfig" && echo "$KUBECONFIG")
	[[ -r $kubeconfig ]] || die "no kubeconfig at $kubeconfig"
	bin=$(cmd_build)
	crd=$(agent_crd_file)
	"$KUBE_SH" crd "$crd" || die "installing the AppliedManifestWork CRD failed"
	"$KUBE_SH" namespace "$AGENT_NAMESPACE" || die "creating namespace $AGENT_NAMESPACE failed"
	cmd_consumer "$@"
	mkdir -p "$STATE_DIR/agents"
	local start pid
	start=$(now)
	local -a waiting=()
	for name in "$@"; do
		if pid=$(agent_pid "$name"); then
			log "agent $name already running (pid $pid)"
			continue
		fi
		agent_launch "$bin" "$name" "$kubeconfig"
		waiting+=("$name")
	done
	local deadline=$((start + AGENT_START_TIMEOUT))
	local binds
	for name in "${waiting[@]}"; do
		binds=0
		until agent_subscribed "$name"; do
			if ! pid=$(agent_pid "$name"); then
				# Lost the race for its port to another process: try another.
				if grep -q 'address already in use' "$(agent_dir "$name")/agent.log" 2>/dev/null && ((++binds < 5)); then
					log "agent $name: its port was taken meanwhile; starting it again on another"
					agent_launch "$bin" "$name" "$kubeconfig"
					continue
				fi
				agent_log_tail "$name"
				agent_stop "${waiting[@]}"
				die "agent $name exited during startup"
			fi
			if (($(now) >= deadline)); then
				agent_log_tail "$name"
				agent_stop "${waiting[@]}"
				die "agent $name (pid $pid) not subscribed to $HOST:$GRPC_BROKER_PORT within ${AGENT_START_TIMEOUT}s"
			fi
			sleep 0.1
		done
		log "agent $name subscribed to $HOST:$GRPC_BROKER_PORT (pid $(agent_pid "$name"), log: $(agent_dir "$name")/agent.log)"
	done
}

# agent_stop [NAME..]: SIGTERM to all first, so that they shut down in
# parallel, then wait for each (SIGKILL after the deadline).
agent_stop() {
	local name pid
	local -a names=("$@") pids=() stopping=()
	((${#names[@]} > 0)) || mapfile -t names < <(all_agents)
	for name in "${names[@]}"; do
		valid_consumer "$name"
		if pid=$(agent_pid "$name"); then
			kill -TERM "$pid" 2>/dev/null || true
			pids+=("$pid")
			stopping+=("$name")
		fi
	done
	local i
	for i in "${!pids[@]}"; do
		terminate "${pids[$i]}" "agent ${stopping[$i]}" "$STOP_TIMEOUT"
		rm -f "$(agent_dir "${stopping[$i]}")/agent.pid"
		log "agent ${stopping[$i]} stopped"
	done
}

agent_status() {
	local name pid rc=0
	local -a names=("$@")
	((${#names[@]} > 0)) || mapfile -t names < <(all_agents)
	for name in "${names[@]}"; do
		valid_consumer "$name"
		if pid=$(agent_pid "$name"); then
			echo "$name running pid=$pid log=$(agent_dir "$name")/agent.log"
		else
			echo "$name stopped pid= log=$(agent_dir "$name")/agent.log"
			rc=1
		fi
	done
	return "$rc"
}

cmd_agent() {
	validate_settings
	local sub=${1:-}
	(($# > 0)) && shift
	case $sub in
	start) agent_start "$@" ;;
	stop) agent_stop "$@" ;;
	status) agent_status "$@" ;;
	*) die "usage: maestro.sh agent start|stop|status NAME..." ;;
	esac
}

main() {
	local cmd=${1:-}
	(($# > 0)) && shift
	case $cmd in
	build)
		validate_settings
		cmd_build
		;;
	start) cmd_start ;;
	stop) cmd_stop ;;
	restart) cmd_restart ;;
	consumer) cmd_consumer "$@" ;;
	env) cmd_env ;;
	status) cmd_status ;;
	agent) cmd_agent "$@" ;;
	*)
		sed -n '2,/^set -euo/p' "$SCRIPT_PATH" | sed '$d' | sed 's/^# \{0,1\}//' >&2
		exit 2
		;;
	esac
}

main "$@"
