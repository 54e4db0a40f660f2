package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro/maestrotest"
)

func TestMain(m *testing.M) {
	// The OCM SDK waits 5-10 s before reconnecting a client; nothing here
	// should wait that long.
	maestrotest.SetReconnectDelay(500 * time.Millisecond)
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// world is one test's corner of the local Maestro: its own source id (so
// list sees only its works) and consumers with simulated agents.
type world struct {
	t        *testing.T
	maestro  maestrotest.Env
	sourceID string
	dir      string
}

// newWorld requires the local Maestro (fails under REQUIRE_INTEGRATION=1
// when it is missing).
func newWorld(t *testing.T) *world {
	t.Helper()
	env := maestrotest.Require(t)
	return &world{t: t, maestro: env, sourceID: "cli-test-" + suffix(t), dir: t.TempDir()}
}

func suffix(t testing.TB) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// consumer registers a fresh consumer and runs an agent on it for the rest
// of the test.
func (w *world) consumer(opts maestrotest.AgentOptions) string {
	w.t.Helper()
	return w.consumerNamed("cli-"+suffix(w.t), opts)
}

// consumerNamed is consumer with a name chosen by the caller (so an
// agent's Fail can know it before the agent starts).
func (w *world) consumerNamed(name string, opts maestrotest.AgentOptions) string {
	w.t.Helper()
	w.register(name)
	w.agent(name, opts)
	return name
}

func (w *world) register(name string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := maestrotest.RegisterConsumer(ctx, w.maestro.HTTPEndpoint, name); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) agent(consumer string, opts maestrotest.AgentOptions) *maestrotest.Agent {
	w.t.Helper()
	if opts.Logf == nil {
		opts.Logf = maestrotest.TestLogf(w.t, "agent: ")
	}
	// The stand-in: the CLI's exit codes and waits are tested against agents
	// told to fail, degrade or answer late (opts), which the real agent cannot be.
	a, err := maestrotest.StartAgent(context.Background(), w.maestro.GRPCBrokerEndpoint, consumer, opts)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(a.Stop)
	return a
}

// env is the environment the CLI sees: the local Maestro and this world's
// source id. Extra pairs override.
func (w *world) env(extra ...string) map[string]string {
	m := map[string]string{
		"MAESTRO_GRPC_ENDPOINT": w.maestro.GRPCEndpoint,
		"MAESTRO_HTTP_ENDPOINT": w.maestro.HTTPEndpoint,
		"MAESTRO_SOURCE_ID":     w.sourceID,
		"MAESTRO_INSECURE":      "true", // the local Maestro serves plaintext
	}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	return m
}

// file writes content to a file in the test's directory.
func (w *world) file(name, content string) string {
	w.t.Helper()
	return writeFile(w.t, w.dir, name, content)
}

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// cli runs the CLI in-process with the world's environment.
func (w *world) cli(args ...string) res {
	w.t.Helper()
	return runCLI(w.t, w.env(), args...)
}

// res is one run's exit code and output.
type res struct {
	code           int
	stdout, stderr string
	took           time.Duration
}

func runCLI(t testing.TB, env map[string]string, args ...string) res {
	t.Helper()
	return runCLIWithStdin(t, env, "", args...)
}

func runCLIWithStdin(t testing.TB, env map[string]string, stdin string, args ...string) res {
	t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	code := run(ctx, args, strings.NewReader(stdin), &out, &errb, func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
	r := res{code: code, stdout: out.String(), stderr: errb.String(), took: time.Since(start)}
	t.Logf("maestro-cli %s -> exit %d in %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, r.took.Round(time.Millisecond), r.stdout, r.stderr)
	return r
}

// want fails the test unless the run exited with code.
func (r res) want(t testing.TB, code int) res {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	return r
}

// errorLine returns the one line a failed run prints about the failure and
// fails the test unless there is exactly one, and it is the last line.
func (r res) errorLine(t testing.TB, cmd string) string {
	t.Helper()
	var found []string
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	for _, l := range lines {
		if strings.HasPrefix(l, "maestro-cli ") || strings.HasPrefix(l, "maestro-cli:") {
			found = append(found, l)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one error line on stderr, got %d:\n%s", len(found), r.stderr)
	}
	if last := lines[len(lines)-1]; last != found[0] {
		t.Fatalf("the error line is not the last line of stderr:\n%s", r.stderr)
	}
	prefix := "maestro-cli " + cmd + ": "
	if cmd == "" {
		prefix = "maestro-cli: "
	}
	if !strings.HasPrefix(found[0], prefix) {
		t.Fatalf("error line %q does not start with %q", found[0], prefix)
	}
	return found[0]
}

func containsAll(t testing.TB, what, s string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(s, w) {
			t.Errorf("%s does not contain %q:\n%s", what, w, s)
		}
	}
}

// workJSON decodes a ManifestWork printed with -o json.
func workJSON(t testing.TB, s string) *workv1.ManifestWork {
	t.Helper()
	var w workv1.ManifestWork
	if err := json.Unmarshal([]byte(s), &w); err != nil {
		t.Fatalf("stdout is not a ManifestWork in JSON: %v\n%s", err, s)
	}
	return &w
}

// readStatusResult reads a maestro-format results file.
func readStatusResult(t testing.TB, path string) statusResult {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("results file: %v", err)
	}
	var r statusResult
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("results file is not a StatusResult: %v\n%s", err, data)
	}
	return r
}

// readAdapterResult reads a status-reporter-format results file.
func readAdapterResult(t testing.TB, path string) adapterResult {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("results file: %v", err)
	}
	var r adapterResult
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("results file is not an adapter result: %v\n%s", err, data)
	}
	return r
}

// closedAddr returns a local address nothing listens on.
func closedAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

const twoConfigMaps = `# plain manifests, two documents
apiVersion: v1
kind: ConfigMap
metadata:
  name: cm-a
  namespace: default
data:
  key: one
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cm-b
  namespace: default
data:
  key: two
`
