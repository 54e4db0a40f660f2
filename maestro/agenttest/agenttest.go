// Package agenttest runs Maestro's real agent (`maestro agent`, the OCM work
// agent) for tests: one process per consumer, subscribed to the local Maestro
// server of deploy/local/maestro.sh and applying works to the local
// kube-apiserver of deploy/local/kube/kube.sh, which runs the namespace and
// garbage-collector controllers, so deletions really finish. Where a test
// needs no real cluster (fault injection, fast loops), maestro/maestrotest's
// simulated agent serves instead.
//
// Typical use:
//
//	agents := agenttest.Start(t, "cluster-1") // skips, or fails under REQUIRE_INTEGRATION=1
//	// deliver works to consumer "cluster-1" through agents.Maestro's endpoints,
//	// read what the agent applied through agents.Kube (a *rest.Config)
//
// The environment comes from
//
//	eval "$(deploy/local/maestro.sh env)"; eval "$(deploy/local/kube/kube.sh env)"
//
// and the agents are started and stopped through `maestro.sh agent`
// (MAESTRO_CTL), which builds the agent-enabled maestro binary if needed,
// installs the AppliedManifestWork CRD and registers the consumers.
package agenttest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro/jobs/kubetest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/maestrotest"
)

// Timeouts of the script runs. Starting covers building the maestro binary
// when the cache misses (about 10 minutes cold on 2 cores; `make test` builds
// it first, so normally this is seconds).
const (
	startTimeout = 15 * time.Minute
	stopTimeout  = 2 * time.Minute
)

// Agents are the real agents of one test.
type Agents struct {
	// Maestro is the server the agents subscribe to.
	Maestro maestrotest.Env
	// Kube is the admin config of the kube-apiserver they apply works to.
	Kube *rest.Config
	// Consumers are the consumers served, in the order given to Start.
	Consumers []string
	// LogFiles maps each consumer to its agent's log file.
	LogFiles map[string]string

	ctl     string
	environ []string
}

// Start registers each consumer in the local Maestro and starts one real
// agent per consumer, returning once every agent has subscribed. The agents
// are stopped when the test ends; when it failed, the end of each agent's
// log is logged first.
//
// When the local Maestro or kube-apiserver is not configured the test is
// skipped, or fails if REQUIRE_INTEGRATION=1 (see maestrotest.Require and
// kubetest.Require).
func Start(t testing.TB, consumers ...string) *Agents {
	t.Helper()
	return StartOn(t, Server{Env: maestrotest.Require(t)}, consumers...)
}

// Server is a Maestro server run by deploy/local/maestro.sh.
type Server struct {
	// Env holds its endpoints; Env.Ctl is the script (maestro.sh).
	Env maestrotest.Env
	// Settings are the script's settings that its endpoints do not say,
	// as NAME=value (e.g. MAESTRO_STATE_DIR of a server of the test's own).
	// The environment's are used otherwise.
	Settings []string
}

// StartOn is Start for a given server, e.g. a private one a test restarts.
func StartOn(t testing.TB, server Server, consumers ...string) *Agents {
	t.Helper()
	if len(consumers) == 0 {
		t.Fatal("agenttest.Start: no consumers given")
	}
	env := server.Env
	kube := kubetest.Require(t)
	if env.Ctl == "" {
		msg := fmt.Sprintf("%s is unset, so the agent script is unknown; "+
			`run: eval "$(deploy/local/maestro.sh env)"`, maestrotest.EnvCtl)
		if os.Getenv(maestrotest.EnvRequireIntegration) == "1" {
			t.Fatalf("%s=1 but %s", maestrotest.EnvRequireIntegration, msg)
		}
		t.Skip(msg)
	}
	vars, err := scriptEnv(env, kube)
	if err != nil {
		t.Fatalf("agenttest: %v", err)
	}
	a := &Agents{
		Maestro:   env,
		Kube:      kube,
		Consumers: append([]string(nil), consumers...),
		LogFiles:  map[string]string{},
		ctl:       env.Ctl,
		environ:   append(append(os.Environ(), vars...), server.Settings...),
	}
	// Registered before the start, so that agents a failed start left
	// running are stopped too.
	t.Cleanup(func() {
		if t.Failed() {
			a.logTails(t)
		}
		if out, err := a.run(stopTimeout, "stop"); err != nil {
			t.Errorf("agenttest: stopping the agents: %v\n%s", err, out)
		}
	})
	started := time.Now()
	if out, err := a.run(startTimeout, "start"); err != nil {
		t.Fatalf("agenttest: starting real agents for %v: %v\n%s", consumers, err, out)
	}
	out, err := a.run(time.Minute, "status")
	if err != nil {
		t.Fatalf("agenttest: agents not running right after start: %v\n%s", err, out)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		// NAME running pid=N log=FILE
		f := strings.Fields(line)
		if len(f) == 4 && strings.HasPrefix(f[3], "log=") {
			a.LogFiles[f[0]] = strings.TrimPrefix(f[3], "log=")
		}
	}
	t.Logf("agenttest: real agents for %v subscribed to %s after %s", consumers, env.GRPCBrokerEndpoint,
		time.Since(started).Round(time.Millisecond))
	return a
}

// run runs `maestro.sh agent SUB CONSUMERS...`.
func (a *Agents) run(timeout time.Duration, sub string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, a.ctl, append([]string{"agent", sub}, a.Consumers...)...)
	cmd.Env = a.environ
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return append(stdout.Bytes(), stderr.Bytes()...), err
	}
	return stdout.Bytes(), nil
}

// logTails logs the last lines of each agent's log.
func (a *Agents) logTails(t testing.TB) {
	for _, c := range a.Consumers {
		file := a.LogFiles[c]
		if file == "" {
			continue
		}
		lines, err := lastLines(file, 40, "")
		if err != nil {
			t.Logf("agenttest: agent %s: %v", c, err)
			continue
		}
		t.Logf("agenttest: last lines of agent %s's log %s:\n%s", c, file, strings.Join(lines, "\n"))
	}
}

// lastLines returns the last n lines of file that contain match (every
// line when match is empty).
func lastLines(file string, n int, match string) ([]string, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if !strings.Contains(sc.Text(), match) {
			continue
		}
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return lines, sc.Err()
}

// ControllerManagerLines returns the last n lines of kube.sh's
// kube-controller-manager log (in KUBE_STATE_DIR) that mention subject:
// what the namespace controller and the garbage collector said about a
// deletion that hung. For a test's failure message; a problem reading the
// log is said in its place.
func ControllerManagerLines(subject string, n int) string {
	dir := os.Getenv("KUBE_STATE_DIR")
	if dir == "" {
		return "(KUBE_STATE_DIR is not set: no log to read)"
	}
	lines, err := lastLines(filepath.Join(dir, "kube-controller-manager.log"), n, subject)
	if err != nil {
		lines = append(lines, "reading the log: "+err.Error())
	}
	if len(lines) == 0 {
		return "(nothing)"
	}
	return strings.Join(lines, "\n")
}

// scriptEnv returns the settings that point maestro.sh at the servers the
// test uses, taken from the endpoints Require read: the script only runs
// agents on this machine, against its own Maestro and kube-apiserver.
func scriptEnv(env maestrotest.Env, kube *rest.Config) ([]string, error) {
	var vars []string
	ports := []struct{ endpoint, setting string }{
		{env.HTTPEndpoint, "MAESTRO_HTTP_PORT"},
		{env.GRPCBrokerEndpoint, "MAESTRO_GRPC_BROKER_PORT"},
		{env.HealthEndpoint, "MAESTRO_HEALTH_PORT"},
		{kube.Host, "KUBE_APISERVER_PORT"},
	}
	for _, p := range ports {
		if p.endpoint == "" {
			continue
		}
		port, err := localPort(p.endpoint)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.setting, err)
		}
		vars = append(vars, p.setting+"="+port)
	}
	// kube.sh keeps the kubeconfig in its state dir; `kube.sh env` exports
	// KUBE_STATE_DIR too, but an environment without it still names the dir.
	if os.Getenv("KUBE_STATE_DIR") == "" {
		if kc := os.Getenv(kubetest.EnvKubeconfig); filepath.Base(kc) == "kubeconfig" {
			vars = append(vars, "KUBE_STATE_DIR="+filepath.Dir(kc))
		}
	}
	return vars, nil
}

// localPort returns the port of a URL or host:port on 127.0.0.1.
func localPort(endpoint string) (string, error) {
	hostport := endpoint
	if strings.Contains(endpoint, "://") {
		u, err := url.Parse(endpoint)
		if err != nil {
			return "", err
		}
		hostport = u.Host
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", fmt.Errorf("endpoint %q: %w", endpoint, err)
	}
	if host != "127.0.0.1" {
		return "", fmt.Errorf("endpoint %q is not on 127.0.0.1, where deploy/local's scripts run the servers", endpoint)
	}
	return port, nil
}
