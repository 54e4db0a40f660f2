#!/usr/bin/env bash
# Runs a real Kubernetes control plane (etcd, kube-apiserver and a
# kube-controller-manager with the namespace and garbage-collector controllers;
# no scheduler, no kubelet) on this machine for tests: the Job delivery path
# creates Jobs against it, Maestro's real agent (deploy/local/maestro.sh agent)
# applies works to it, and deployment manifests are checked with server-side
# dry runs. Deleting a namespace really finishes (the namespace controller
# empties it, the garbage collector removes what owner references tie to a
# deleted owner). Nothing else reconciles: Jobs never get pods, so tests stand
# in for the pod and the status writer.
#
#   kube.sh build    build (or reuse) kube-apiserver and kube-controller-manager
#                    from the Go module proxy, install etcd from Debian's
#                    packages when missing; prints the two binaries' paths
#   kube.sh start    generate certificates and keys (once per state dir), start
#                    etcd on an empty data dir, kube-apiserver (wait for
#                    /readyz) and kube-controller-manager (wait for /healthz),
#                    write a kubeconfig. Does nothing when running.
#   kube.sh stop     stop kube-controller-manager, kube-apiserver, then etcd
#                    (SIGTERM, SIGKILL after a deadline)
#   kube.sh env      print `export KUBECONFIG=...` (and this stack's KUBE_*
#                    settings) for tests
#   kube.sh status   say what runs and whether it is ready
#   kube.sh crd FILE...       server-side apply CustomResourceDefinitions (YAML,
#                             one per file) and wait until they are Established
#   kube.sh namespace NAME... create namespaces that do not exist yet
#
# The admin user of the kubeconfig authenticates with a client certificate
# (CN=hyperfleet-admin, O=system:masters). Authorization is RBAC, so RBAC
# manifests mean something: impersonate another user (rest.Config.Impersonate,
# `kubectl --as`) to test what a service account may do.
# kube-controller-manager uses the same admin credentials (its controllers do
# not use per-controller service accounts).
#
# Settings (environment):
#   KUBE_CACHE_DIR       binary cache (default $HOME/.cache/hyperfleet-maestro-adapter)
#   KUBE_STATE_DIR       certs, keys, etcd data, logs, pid files, kubeconfig
#                        (default /tmp/hyperfleet-kube)
#   KUBE_APISERVER_PORT 16443, KUBE_ETCD_CLIENT_PORT 12379, KUBE_ETCD_PEER_PORT 12380,
#   KUBE_CONTROLLER_MANAGER_PORT 16257 (its /healthz, HTTPS)
#   KUBE_START_TIMEOUT 90 (s), KUBE_STOP_TIMEOUT 15 (s)
#   KUBE_ETCD            etcd binary (default: etcd on PATH, else installed with apt-get)
#   KUBE_BUILD_NICE 10   nice level of the build: it is long and the machine's
#                        cores are shared; idle cores still get used
#   KUBE_LOG_LEVEL 1     kube-apiserver and kube-controller-manager -v
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOOLS_MODULE="$SCRIPT_DIR/tools"
BUILD_PKGS=(k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager)

CACHE_DIR=${KUBE_CACHE_DIR:-$HOME/.cache/hyperfleet-maestro-adapter}
STATE_DIR=${KUBE_STATE_DIR:-/tmp/hyperfleet-kube}
HOST=127.0.0.1
APISERVER_PORT=${KUBE_APISERVER_PORT:-16443}
ETCD_CLIENT_PORT=${KUBE_ETCD_CLIENT_PORT:-12379}
ETCD_PEER_PORT=${KUBE_ETCD_PEER_PORT:-12380}
KCM_PORT=${KUBE_CONTROLLER_MANAGER_PORT:-16257}
START_TIMEOUT=${KUBE_START_TIMEOUT:-90}
STOP_TIMEOUT=${KUBE_STOP_TIMEOUT:-15}
BUILD_NICE=${KUBE_BUILD_NICE:-10}
LOG_LEVEL=${KUBE_LOG_LEVEL:-1}
# The service range only has to exist: nothing routes to it. Its first address
# is the `kubernetes` service's, which goes into the serving certificate.
SERVICE_CIDR=10.0.0.0/24
SERVICE_IP=10.0.0.1

ETCD_PID="$STATE_DIR/etcd.pid"
ETCD_LOG="$STATE_DIR/etcd.log"
ETCD_DATA="$STATE_DIR/etcd-data"
APISERVER_PID="$STATE_DIR/kube-apiserver.pid"
APISERVER_LOG="$STATE_DIR/kube-apiserver.log"
APISERVER_LINK="$STATE_DIR/kube-apiserver"
PKI="$STATE_DIR/pki"
KUBECONFIG_FILE="$STATE_DIR/kubeconfig"
KCM_PID="$STATE_DIR/kube-controller-manager.pid"
KCM_LOG="$STATE_DIR/kube-controller-manager.log"
KCM_LINK="$STATE_DIR/kube-controller-manager"
KCM_CERT_DIR="$STATE_DIR/kube-controller-manager-certs"
# The controllers that make deletion finish: the namespace controller empties
# and finalizes a deleted namespace; the garbage collector deletes dependents
# of deleted owners (e.g. what an AppliedManifestWork owns, a Job's pods).
KCM_CONTROLLERS=namespace,garbagecollector

log() { printf 'kube.sh: %s\n' "$*" >&2; }
die() {
	log "ERROR: $*"
	exit 1
}
# shellcheck source=deploy/local/lib.sh
. "$SCRIPT_DIR/../lib.sh"
now_ms() { date +%s%3N; }
# since_ms START_MS prints the seconds since START_MS, to a tenth.
since_ms() {
	local d=$(($(now_ms) - $1))
	printf '%d.%ds' $((d / 1000)) $((d % 1000 / 100))
}

validate_settings() {
	local p
	for p in "$APISERVER_PORT" "$ETCD_CLIENT_PORT" "$ETCD_PEER_PORT" "$KCM_PORT" "$START_TIMEOUT" "$STOP_TIMEOUT" "$LOG_LEVEL"; do
		[[ $p =~ ^[0-9]+$ ]] || die "invalid number '$p' in a KUBE_* port, timeout or log level setting"
	done
	[[ $BUILD_NICE =~ ^-?[0-9]+$ ]] || die "invalid KUBE_BUILD_NICE '$BUILD_NICE'"
	[[ $STATE_DIR == /* ]] || die "KUBE_STATE_DIR must be an absolute path, got '$STATE_DIR'"
	[[ $STATE_DIR != / ]] || die "KUBE_STATE_DIR must not be /"
}

# ---------------------------------------------------------------------------
# build

# kubernetes_version prints the k8s.io/kubernetes version the tools module
# requires (e.g. v1.36.3): the binary reports it (ldflags below).
kubernetes_version() {
	local v
	v=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v[0-9]/ { print $2; exit }' "$TOOLS_MODULE/go.mod")
	[[ $v =~ ^v([0-9]+)\.([0-9]+)\.[0-9]+ ]] || die "no k8s.io/kubernetes requirement in $TOOLS_MODULE/go.mod"
	echo "$v"
}

# ldflags sets the version variables that the release build sets (hack/lib/
# version.sh); without them the server reports v0.0.0-master. The build date is
# left out: it would change the binary on every build for no benefit.
ldflags() {
	local v=$1 major minor pkg out="-s -w"
	[[ $v =~ ^v([0-9]+)\.([0-9]+)\. ]]
	major=${BASH_REMATCH[1]}
	minor=${BASH_REMATCH[2]}
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		out+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
		out+=" -X $pkg.gitTreeState=archive"
	done
	echo "$out"
}

# source_hash covers everything that determines the binaries: toolchain, build
# flags, and the tools module's go.mod/go.sum (the module has no sources).
source_hash() {
	local v
	v=$(kubernetes_version)
	{
		go version
		echo "CGO_ENABLED=0 -trimpath GOOS=$(go env GOOS) GOARCH=$(go env GOARCH) ${BUILD_PKGS[*]}"
		ldflags "$v"
		(cd "$TOOLS_MODULE" && sha256sum go.mod go.sum)
	} | sha256sum | cut -c1-16
}

# cached_bin NAME prints the cache path of binary NAME (kube-apiserver,
# kube-controller-manager) for the current sources.
cached_bin() {
	echo "$CACHE_DIR/$1-$(kubernetes_version)-$(source_hash)"
}

# build_binaries builds kube-apiserver and kube-controller-manager when either
# is missing from the cache. One `go build` of both packages compiles what
# they share (most of k8s.io/kubernetes/pkg) once.
build_binaries() {
	command -v go >/dev/null || die "go is not on PATH"
	mkdir -p "$CACHE_DIR"
	local version api kcm
	version=$(kubernetes_version)
	api=$(cached_bin kube-apiserver)
	kcm=$(cached_bin kube-controller-manager)
	[[ -x $api && -x $kcm ]] && return 0
	# Serialise concurrent builds (parallel make jobs or test runners): one
	# builds, the others wait and reuse the result.
	exec 9>"$CACHE_DIR/kube-build.lock"
	flock 9
	if [[ ! -x $api || ! -x $kcm ]]; then
		log "building kube-apiserver and kube-controller-manager $version into $CACHE_DIR; the first build takes 10-15 minutes"
		local start tmp
		start=$(now)
		tmp=$(mktemp -d "$CACHE_DIR/kube-build.tmp.XXXXXX")
		# GOWORK=off: a go.work elsewhere must not pull the product module into
		# this build. -mod=readonly: go.sum is complete; never rewrite it here.
		# -o DIR/ with several packages writes one binary per package.
		if ! (cd "$TOOLS_MODULE" && GOWORK=off CGO_ENABLED=0 nice -n "$BUILD_NICE" \
			go build -mod=readonly -trimpath -ldflags "$(ldflags "$version")" -o "$tmp/" "${BUILD_PKGS[@]}"); then
			rm -rf "$tmp"
			die "go build of ${BUILD_PKGS[*]} failed"
		fi
		mv -f "$tmp/kube-apiserver" "$api"
		mv -f "$tmp/kube-controller-manager" "$kcm"
		rmdir "$tmp"
		log "built kube-apiserver and kube-controller-manager in $(($(now) - start))s"
	fi
	exec 9>&-
}

# etcd_bin prints the etcd binary, installing Debian's etcd-server when there
# is none. The package's service (if an init system starts it) listens on the
# default ports 2379/2380; ours uses others and its own data dir.
etcd_bin() {
	if [[ -n ${KUBE_ETCD:-} ]]; then
		[[ -x $KUBE_ETCD ]] || die "KUBE_ETCD=$KUBE_ETCD is not an executable file"
		echo "$KUBE_ETCD"
		return 0
	fi
	if command -v etcd >/dev/null; then
		command -v etcd
		return 0
	fi
	command -v apt-get >/dev/null || die "etcd is not on PATH and apt-get is missing: install etcd 3.4+ or set KUBE_ETCD"
	local sudo=()
	if ((EUID != 0)); then
		command -v sudo >/dev/null || die "etcd is not on PATH; run 'apt-get install etcd-server' as root or set KUBE_ETCD"
		sudo=(sudo)
	fi
	log "installing etcd-server with apt-get"
	if ! DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q etcd-server >&2; then
		DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get update -q >&2 || die "apt-get update failed"
		DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q etcd-server >&2 ||
			die "apt-get install etcd-server failed"
	fi
	command -v etcd >/dev/null || die "etcd-server installed, but there is no etcd on PATH"
	command -v etcd
}

cmd_build() {
	validate_settings
	etcd_bin >/dev/null
	build_binaries
	cached_bin kube-apiserver
	cached_bin kube-controller-manager
}

# ---------------------------------------------------------------------------
# certificates and keys

# gen_pki writes, once per state dir: a CA; the API server's serving cert for
# 127.0.0.1/localhost and the in-cluster names; the admin client cert
# (O=system:masters bypasses RBAC); the service-account signing key pair.
# A partial set (an interrupted run) is regenerated as a whole.
gen_pki() {
	local f complete=1
	for f in ca.crt ca.key apiserver.crt apiserver.key admin.crt admin.key sa.key sa.pub; do
		[[ -s $PKI/$f ]] || complete=0
	done
	((complete)) && return 0
	command -v openssl >/dev/null || die "openssl is not on PATH"
	log "generating CA, serving and client certificates and the service-account key in $PKI"
	rm -rf "$PKI"
	mkdir -p "$PKI"
	chmod 700 "$PKI"
	local tmp
	tmp=$(mktemp -d "$STATE_DIR/pki.tmp.XXXXXX")
	(
		set -e
		cd "$tmp"
		umask 077
		openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
			-keyout ca.key -out ca.crt -subj "/CN=hyperfleet-kube-ca" \
			-addext "basicConstraints=critical,CA:TRUE" \
			-addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
		openssl req -newkey rsa:2048 -nodes -sha256 -keyout apiserver.key -out apiserver.csr \
			-subj "/CN=kube-apiserver"
		printf '%s\n' \
			"basicConstraints=critical,CA:FALSE" \
			"keyUsage=critical,digitalSignature,keyEncipherment" \
			"extendedKeyUsage=serverAuth" \
			"subjectAltName=IP:$HOST,IP:$SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" \
			>apiserver.ext
		openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 3650 \
			-extfile apiserver.ext -out apiserver.crt
		openssl req -newkey rsa:2048 -nodes -sha256 -keyout admin.key -out admin.csr \
			-subj "/O=system:masters/CN=hyperfleet-admin"
		printf '%s\n' \
			"basicConstraints=critical,CA:FALSE" \
			"keyUsage=critical,digitalSignature,keyEncipherment" \
			"extendedKeyUsage=clientAuth" \
			>admin.ext
		openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 3650 \
			-extfile admin.ext -out admin.crt
		openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key
		openssl pkey -in sa.key -pubout -out sa.pub
		rm -f ./*.csr ./*.ext ./*.srl
	) >"$STATE_DIR/openssl.log" 2>&1 || {
		cat "$STATE_DIR/openssl.log" >&2
		rm -rf "$tmp"
		die "openssl failed generating the certificates"
	}
	mv "$tmp"/* "$PKI/"
	rmdir "$tmp"
}

# write_kubeconfig embeds the certificates, so the file can be copied or
# mounted elsewhere on its own.
write_kubeconfig() {
	local tmp="$KUBECONFIG_FILE.tmp.$$"
	(
		umask 077
		cat >"$tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: hyperfleet-kube
  cluster:
    server: https://$HOST:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 <"$PKI/ca.crt")
users:
- name: hyperfleet-admin
  user:
    client-certificate-data: $(base64 -w0 <"$PKI/admin.crt")
    client-key-data: $(base64 -w0 <"$PKI/admin.key")
contexts:
- name: hyperfleet-kube
  context:
    cluster: hyperfleet-kube
    user: hyperfleet-admin
current-context: hyperfleet-kube
EOF
	)
	mv -f "$tmp" "$KUBECONFIG_FILE"
}

# ---------------------------------------------------------------------------
# processes

# running_pid PIDFILE NAME prints the pid from the pid file when that process
# is alive, is NAME and was started for this state dir (a recycled pid, or the
# same program run by someone else, is not ours).
running_pid() {
	local file=$1 name=$2 pid cmdline
	[[ -f $file ]] || return 1
	pid=$(<"$file")
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	[[ $cmdline == *"$name"* && $cmdline == *"$STATE_DIR"* ]] || return 1
	echo "$pid"
}

port_in_use() {
	# bash's /dev/tcp: succeeds when something accepts connections on the port
	(exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

etcd_healthy() {
	curl -fsS --max-time 2 "http://$HOST:$ETCD_CLIENT_PORT/health" 2>/dev/null | grep -q '"health": *"true"'
}

# apiserver_ready asks /readyz as the admin user: ready means the storage, the
# RBAC bootstrap roles and the built-in priority classes are in place.
apiserver_ready() {
	curl -fsS --max-time 2 -o /dev/null \
		--cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
		"https://$HOST:$APISERVER_PORT/readyz" 2>/dev/null
}

# kcm_healthy asks kube-controller-manager's /healthz, which it serves without
# authentication (--authorization-always-allow-paths' default) over HTTPS with
# a self-signed certificate (hence -k; it listens on loopback only).
kcm_healthy() {
	[[ $(curl -fsSk --max-time 2 "https://$HOST:$KCM_PORT/healthz" 2>/dev/null) == ok ]]
}

# show_logs NAME prints what explains a failed start of NAME: the end of its
# log (the store's too, briefly, when the API server failed) and the checks
# /readyz still fails.
show_logs() {
	local name=$1 out
	if [[ $name == kube-apiserver ]]; then
		tail_log "$ETCD_LOG" 10
		tail_log "$APISERVER_LOG" 30
		if out=$(curl -sS --max-time 2 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
			"https://$HOST:$APISERVER_PORT/readyz?verbose" 2>&1); then
			log "kube-apiserver /readyz?verbose, failing checks:"
			grep -v '^\[+\]' <<<"$out" >&2 || true
		fi
	elif [[ $name == kube-controller-manager ]]; then
		tail_log "$KCM_LOG" 40
	else
		tail_log "$ETCD_LOG" 30
	fi
}

# tail_log FILE LINES
tail_log() {
	[[ -s $1 ]] || return 0
	log "last lines of $1:"
	# The API server logs its ~200 flags first; they are noise here.
	grep -v '\] FLAG: --' "$1" | tail -n "$2" >&2 || true
}

# wait_for NAME PID DEADLINE CHECK: polls CHECK until it succeeds; fails when
# the process exits or the deadline passes.
wait_for() {
	local name=$1 pid=$2 deadline=$3 check=$4
	until "$check"; do
		if ! kill -0 "$pid" 2>/dev/null; then
			show_logs "$name"
			die "$name (pid $pid) exited during startup"
		fi
		if (($(now) >= deadline)); then
			show_logs "$name"
			die "$name (pid $pid) not ready within ${START_TIMEOUT}s"
		fi
		sleep 0.2
	done
}

start_etcd() {
	local etcd=$1 deadline=$2
	# A fresh store per start, like a fresh cluster: tests see no leftovers
	# (namespaces stuck in Terminating, say) from earlier runs.
	rm -rf "$ETCD_DATA"
	log "starting etcd $("$etcd" --version 2>/dev/null | awk '/etcd Version/ { print $3 }') (log: $ETCD_LOG)"
	# setsid: the daemon outlives this script and is not hit by a Ctrl-C aimed
	# at the caller's process group. 8>&-: it must not hold the start lock.
	# ETCD_* variables in the caller's environment would override nothing (flags
	# win) but make etcd warn, so they are cleared.
	local -a unset=() v
	for v in $(compgen -e | grep '^ETCD_' || true); do unset+=(-u "$v"); done
	env "${unset[@]}" setsid "$etcd" \
		--name=hyperfleet-kube \
		--data-dir="$ETCD_DATA" \
		--listen-client-urls="http://$HOST:$ETCD_CLIENT_PORT" \
		--advertise-client-urls="http://$HOST:$ETCD_CLIENT_PORT" \
		--listen-peer-urls="http://$HOST:$ETCD_PEER_PORT" \
		--initial-advertise-peer-urls="http://$HOST:$ETCD_PEER_PORT" \
		--initial-cluster="hyperfleet-kube=http://$HOST:$ETCD_PEER_PORT" \
		--initial-cluster-state=new \
		--logger=zap --log-outputs=stderr \
		</dev/null >"$ETCD_LOG" 2>&1 8>&- &
	local pid=$!
	echo "$pid" >"$ETCD_PID"
	wait_for etcd "$pid" "$deadline" etcd_healthy
}

start_apiserver() {
	local bin=$1 deadline=$2
	ln -sfn "$bin" "$APISERVER_LINK"
	log "starting kube-apiserver $(basename "$bin") (log: $APISERVER_LOG)"
	# --endpoint-reconciler-type=none: the `kubernetes` service's endpoints
	# would be the advertise address, and a loopback one is invalid there (the
	# reconciler logs that every 10 s); nothing routes to the service anyway.
	# Admission: the defaults, minus ServiceAccount. That one rejects every pod
	# whose service account does not exist, and the controller that creates
	# each namespace's `default` account does not run here (envtest makes the
	# same choice). The other default plugins need no controller.
	# --requestheader-*: published in kube-system/extension-apiserver-
	# authentication, where servers that delegate authentication to this one
	# (Maestro's agent) look for them and log an error every few seconds when
	# missing. No proxy has a certificate with the allowed name, so no request
	# is authenticated by header.
	setsid "$APISERVER_LINK" \
		--etcd-servers="http://$HOST:$ETCD_CLIENT_PORT" \
		--bind-address="$HOST" \
		--advertise-address="$HOST" \
		--secure-port="$APISERVER_PORT" \
		--cert-dir="$STATE_DIR" \
		--tls-cert-file="$PKI/apiserver.crt" \
		--tls-private-key-file="$PKI/apiserver.key" \
		--client-ca-file="$PKI/ca.crt" \
		--service-account-issuer=https://kubernetes.default.svc.cluster.local \
		--service-account-key-file="$PKI/sa.pub" \
		--service-account-signing-key-file="$PKI/sa.key" \
		--service-cluster-ip-range="$SERVICE_CIDR" \
		--authorization-mode=RBAC \
		--requestheader-client-ca-file="$PKI/ca.crt" \
		--requestheader-allowed-names=front-proxy-client \
		--requestheader-username-headers=X-Remote-User \
		--requestheader-group-headers=X-Remote-Group \
		--requestheader-extra-headers-prefix=X-Remote-Extra- \
		--endpoint-reconciler-type=none \
		--disable-admission-plugins=ServiceAccount \
		--allow-privileged=true \
		--profiling=false \
		-v="$LOG_LEVEL" \
		</dev/null >"$APISERVER_LOG" 2>&1 8>&- &
	local pid=$!
	echo "$pid" >"$APISERVER_PID"
	wait_for kube-apiserver "$pid" "$deadline" apiserver_ready
}

start_controller_manager() {
	local bin=$1 deadline=$2
	ln -sfn "$bin" "$KCM_LINK"
	mkdir -p "$KCM_CERT_DIR"
	log "starting kube-controller-manager $(basename "$bin") with controllers $KCM_CONTROLLERS (log: $KCM_LOG)"
	# The admin kubeconfig (system:masters) for everything: the controllers
	# act with it (no per-controller service accounts, whose tokens would need
	# the token controller), and it delegates authentication/authorization of
	# its own HTTPS endpoint to the API server with it. No leader election:
	# one instance per API server, and no lease left behind to wait out after
	# a restart. --authentication-skip-lookup with --client-ca-file: the API
	# server runs without a front proxy, so the request-header CA its
	# extension-apiserver-authentication configmap would name is missing, and
	# the lookup logs an error every few seconds.
	setsid "$KCM_LINK" \
		--kubeconfig="$KUBECONFIG_FILE" \
		--authentication-kubeconfig="$KUBECONFIG_FILE" \
		--authentication-skip-lookup \
		--client-ca-file="$PKI/ca.crt" \
		--authorization-kubeconfig="$KUBECONFIG_FILE" \
		--controllers="$KCM_CONTROLLERS" \
		--leader-elect=false \
		--use-service-account-credentials=false \
		--bind-address="$HOST" \
		--secure-port="$KCM_PORT" \
		--cert-dir="$KCM_CERT_DIR" \
		--profiling=false \
		-v="$LOG_LEVEL" \
		</dev/null >"$KCM_LOG" 2>&1 8>&- &
	local pid=$!
	echo "$pid" >"$KCM_PID"
	wait_for kube-controller-manager "$pid" "$deadline" kcm_healthy
}

cmd_start() {
	validate_settings
	mkdir -p "$STATE_DIR"
	chmod 700 "$STATE_DIR"
	# Serialise concurrent starts and stops on this state dir.
	exec 8>"$STATE_DIR/.lock"
	flock 8
	local start deadline etcd_pid api_pid
	start=$(now)
	deadline=$((start + START_TIMEOUT))
	local kcm_pid
	if api_pid=$(running_pid "$APISERVER_PID" kube-apiserver) && etcd_pid=$(running_pid "$ETCD_PID" etcd); then
		wait_for kube-apiserver "$api_pid" "$deadline" apiserver_ready
		write_kubeconfig
		if kcm_pid=$(running_pid "$KCM_PID" kube-controller-manager); then
			wait_for kube-controller-manager "$kcm_pid" "$deadline" kcm_healthy
		else
			# Only the controller manager is missing (it died, or an older
			# kube.sh started this plane): add it, keeping the store.
			port_in_use "$KCM_PORT" &&
				die "port $HOST:$KCM_PORT is in use by a process that is not ours; stop it or set KUBE_CONTROLLER_MANAGER_PORT"
			build_binaries
			deadline=$(($(now) + START_TIMEOUT))
			trap 'stop_one "$KCM_PID" kube-controller-manager' EXIT
			start_controller_manager "$(cached_bin kube-controller-manager)" "$deadline"
			trap - EXIT
			kcm_pid=$(<"$KCM_PID")
		fi
		log "already running (kube-apiserver pid $api_pid, etcd pid $etcd_pid, kube-controller-manager pid $kcm_pid) and ready"
		return 0
	fi
	# Half a control plane (etcd or the API server died): start over cleanly.
	stop_all
	local p
	for p in "$ETCD_CLIENT_PORT" "$ETCD_PEER_PORT" "$APISERVER_PORT" "$KCM_PORT"; do
		port_in_use "$p" &&
			die "port $HOST:$p is in use by a process that is not ours (state dir $STATE_DIR); stop it or set KUBE_APISERVER_PORT / KUBE_ETCD_CLIENT_PORT / KUBE_ETCD_PEER_PORT / KUBE_CONTROLLER_MANAGER_PORT"
	done
	local bin kcm etcd
	build_binaries
	bin=$(cached_bin kube-apiserver)
	kcm=$(cached_bin kube-controller-manager)
	etcd=$(etcd_bin)
	# The build may have taken minutes: the deadline is for starting.
	start=$(now)
	deadline=$((start + START_TIMEOUT))
	local start_ms
	start_ms=$(now_ms)
	gen_pki
	# Logs are per start: a failure shows only this attempt's lines.
	rm -f "$ETCD_LOG" "$APISERVER_LOG" "$KCM_LOG" "$KUBECONFIG_FILE"
	# A failed start leaves nothing running (the logs stay for a look).
	trap stop_all EXIT
	start_etcd "$etcd" "$deadline"
	start_apiserver "$bin" "$deadline"
	# The controller manager reads the kubeconfig.
	write_kubeconfig
	log "kube-apiserver ready on https://$HOST:$APISERVER_PORT after $(since_ms "$start_ms")"
	start_controller_manager "$kcm" "$deadline"
	trap - EXIT
	log "control plane ready after $(since_ms "$start_ms"); KUBECONFIG=$KUBECONFIG_FILE"
}

# stop_one PIDFILE NAME: SIGTERM, then SIGKILL after the deadline.
stop_one() {
	local file=$1 name=$2 pid
	if ! pid=$(running_pid "$file" "$name"); then
		rm -f "$file"
		return 0
	fi
	log "stopping $name (pid $pid)"
	terminate "$pid" "$name" "$STOP_TIMEOUT"
	rm -f "$file"
}

# stop_all stops the API server's clients first, then it, then its store.
stop_all() {
	stop_one "$KCM_PID" kube-controller-manager
	stop_one "$APISERVER_PID" kube-apiserver
	stop_one "$ETCD_PID" etcd
}

cmd_stop() {
	validate_settings
	[[ -d $STATE_DIR ]] || {
		log "not running (no $STATE_DIR)"
		return 0
	}
	exec 8>"$STATE_DIR/.lock"
	flock 8
	stop_all
	log "stopped"
}

cmd_env() {
	validate_settings
	printf 'export KUBECONFIG=%q\n' "$KUBECONFIG_FILE"
	# The settings too, so that kube.sh (or maestro.sh agent) run by a test
	# acts on this control plane and not on the defaults' one.
	printf 'export KUBE_STATE_DIR=%q KUBE_APISERVER_PORT=%q KUBE_ETCD_CLIENT_PORT=%q KUBE_ETCD_PEER_PORT=%q KUBE_CONTROLLER_MANAGER_PORT=%q\n' \
		"$STATE_DIR" "$APISERVER_PORT" "$ETCD_CLIENT_PORT" "$ETCD_PEER_PORT" "$KCM_PORT"
}

cmd_status() {
	validate_settings
	local pid rc=0
	if pid=$(running_pid "$ETCD_PID" etcd); then
		if etcd_healthy; then
			log "etcd running (pid $pid), healthy"
		else
			log "etcd running (pid $pid), NOT healthy"
			rc=1
		fi
	else
		log "etcd not running"
		rc=1
	fi
	if pid=$(running_pid "$APISERVER_PID" kube-apiserver); then
		if apiserver_ready; then
			log "kube-apiserver running (pid $pid), ready on https://$HOST:$APISERVER_PORT"
		else
			log "kube-apiserver running (pid $pid), NOT ready"
			rc=1
		fi
	else
		log "kube-apiserver not running"
		rc=1
	fi
	if pid=$(running_pid "$KCM_PID" kube-controller-manager); then
		if kcm_healthy; then
			log "kube-controller-manager running (pid $pid), healthy, controllers $KCM_CONTROLLERS"
		else
			log "kube-controller-manager running (pid $pid), NOT healthy"
			rc=1
		fi
	else
		log "kube-controller-manager not running"
		rc=1
	fi
	return "$rc"
}

# ---------------------------------------------------------------------------
# objects: CRDs and namespaces, through the API with curl (no kubectl needed)

# kube_api METHOD PATH CURL-ARGS...: a request as the admin user; prints the
# body, then a line with the HTTP status code. The user agent is not curl's,
# for which the API server would pretty-print its JSON.
kube_api() {
	local method=$1 path=$2
	shift 2
	curl -sS --max-time 20 -A kube.sh -w '\n%{http_code}' -X "$method" \
		--cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
		"$@" "https://$HOST:$APISERVER_PORT$path"
}

require_apiserver() {
	running_pid "$APISERVER_PID" kube-apiserver >/dev/null && apiserver_ready ||
		die "kube-apiserver is not running or not ready (state dir $STATE_DIR); run kube.sh start"
}

# crd_name FILE prints metadata.name of the one CustomResourceDefinition in
# FILE (YAML); it refuses anything else.
crd_name() {
	local file=$1
	[[ -r $file ]] || die "cannot read $file"
	grep -q '^kind: CustomResourceDefinition *$' "$file" || die "$file is not a CustomResourceDefinition"
	# A `---` after the first content line starts a second document.
	awk '/^[^#-]/ { content = 1 } /^---/ && content { more = 1 } END { exit more }' "$file" ||
		die "$file holds more than one document; give one CRD per file"
	awk '/^metadata:/ { m = 1; next } m && /^[^ #]/ { m = 0 } m && /^  name:/ { print $2; exit }' "$file"
}

cmd_crd() {
	(($# > 0)) || die "usage: kube.sh crd FILE..."
	validate_settings
	require_apiserver
	local file name resp code deadline
	local -a names=()
	for file in "$@"; do
		name=$(crd_name "$file")
		[[ $name =~ ^[a-z0-9.-]+$ ]] || die "no valid metadata.name in $file (got '$name')"
		# Server-side apply: creates or updates, idempotent.
		resp=$(kube_api PATCH "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/$name?fieldManager=kube.sh&force=true" \
			-H 'Content-Type: application/apply-patch+yaml' --data-binary "@$file") ||
			die "applying CRD $name: request failed"
		code=${resp##*$'\n'}
		[[ $code == 200 || $code == 201 ]] || die "applying CRD $name from $file: HTTP $code: ${resp%$'\n'*}"
		names+=("$name")
	done
	deadline=$(($(now) + START_TIMEOUT))
	for name in "${names[@]}"; do
		until kube_api GET "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/$name" 2>/dev/null |
			tr -d ' \n' | grep -q '"type":"Established","status":"True"'; do
			(($(now) < deadline)) || die "CRD $name not Established within ${START_TIMEOUT}s"
			sleep 0.2
		done
		log "CRD $name established"
	done
}

cmd_namespace() {
	(($# > 0)) || die "usage: kube.sh namespace NAME..."
	validate_settings
	require_apiserver
	local name resp code
	for name in "$@"; do
		[[ $name =~ ^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$ ]] || die "invalid namespace name '$name' (want an RFC 1123 label)"
		resp=$(kube_api POST /api/v1/namespaces -H 'Content-Type: application/json' \
			--data-binary "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":\"$name\"}}") ||
			die "creating namespace $name: request failed"
		code=${resp##*$'\n'}
		case $code in
		201) log "namespace $name created" ;;
		409) ;; # already exists
		*) die "creating namespace $name: HTTP $code: ${resp%$'\n'*}" ;;
		esac
	done
}

# ---------------------------------------------------------------------------
# main

usage() {
	sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2
	exit 2
}

main() {
	(($# >= 1)) || usage
	local cmd=$1
	shift
	case $cmd in
	crd) cmd_crd "$@" ;;
	namespace) cmd_namespace "$@" ;;
	*)
		(($# == 0)) || usage
		case $cmd in
		build) cmd_build ;;
		start) cmd_start ;;
		stop) cmd_stop ;;
		env) cmd_env ;;
		status) cmd_status ;;
		*) usage ;;
		esac
		;;
	esac
}

main "$@"
