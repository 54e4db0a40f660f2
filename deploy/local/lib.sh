# Shell helpers shared by deploy/local/maestro.sh and deploy/local/kube/kube.sh.
# Sourced, not run; the sourcing script defines log().

now() { date +%s; }

# terminate PID NAME TIMEOUT: SIGTERM, then SIGKILL once TIMEOUT seconds have
# passed; then wait (up to 5 s) until the kernel has reaped it, so that its
# ports are free for a following start.
terminate() {
	local pid=$1 name=$2 timeout=$3
	kill -TERM "$pid" 2>/dev/null || true
	local deadline=$(($(now) + timeout))
	while kill -0 "$pid" 2>/dev/null; do
		if (($(now) >= deadline)); then
			log "$name did not exit within ${timeout}s; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
			break
		fi
		sleep 0.1
	done
	deadline=$(($(now) + 5))
	while kill -0 "$pid" 2>/dev/null && (($(now) < deadline)); do sleep 0.1; done
}
