// Package maestrotest runs tests against a real Maestro server: it finds the
// server started by deploy/local/maestro.sh, registers consumers, and stands
// in for the Maestro agent on a consumer (a real agent needs a kube-apiserver).
//
// Typical use:
//
//	env := maestrotest.Require(t) // skips, or fails under REQUIRE_INTEGRATION=1
//	_ = maestrotest.RegisterConsumer(ctx, env.HTTPEndpoint, "cluster-1")
//	agent, _ := maestrotest.StartAgent(ctx, env.GRPCBrokerEndpoint, "cluster-1", maestrotest.AgentOptions{})
//	defer agent.Stop()
//
// The environment comes from `eval "$(deploy/local/maestro.sh env)"`.
package maestrotest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openshift-online/ocm-sdk-go/logging"
	ceclients "open-cluster-management.io/sdk-go/pkg/cloudevents/generic/clients"
)

// Environment variables printed by `deploy/local/maestro.sh env`.
const (
	EnvHTTPEndpoint       = "MAESTRO_HTTP_ENDPOINT"        // http://127.0.0.1:18000
	EnvGRPCEndpoint       = "MAESTRO_GRPC_ENDPOINT"        // 127.0.0.1:18090, for source clients
	EnvGRPCBrokerEndpoint = "MAESTRO_GRPC_BROKER_ENDPOINT" // 127.0.0.1:18091, for agents
	EnvHealthEndpoint     = "MAESTRO_HEALTH_ENDPOINT"      // http://127.0.0.1:18083/healthcheck
	EnvCtl                = "MAESTRO_CTL"                  // path of maestro.sh, for Restart
	// EnvRequireIntegration set to 1 turns a missing Maestro into a test
	// failure instead of a skip (CI sets it so nothing silently skips).
	EnvRequireIntegration = "REQUIRE_INTEGRATION"
)

// Env is where the local Maestro server listens.
type Env struct {
	HTTPEndpoint       string // REST API base URL
	GRPCEndpoint       string // gRPC server for source clients (host:port)
	GRPCBrokerEndpoint string // gRPC broker for agents (host:port)
	HealthEndpoint     string // optional: health check URL
	Ctl                string // optional: maestro.sh, used by Restart
}

// Endpoints reads the environment. ok is false when any of the HTTP, gRPC or
// gRPC broker endpoints is unset.
func Endpoints() (Env, bool) {
	e := Env{
		HTTPEndpoint:       strings.TrimRight(os.Getenv(EnvHTTPEndpoint), "/"),
		GRPCEndpoint:       os.Getenv(EnvGRPCEndpoint),
		GRPCBrokerEndpoint: os.Getenv(EnvGRPCBrokerEndpoint),
		HealthEndpoint:     os.Getenv(EnvHealthEndpoint),
		Ctl:                os.Getenv(EnvCtl),
	}
	return e, e.HTTPEndpoint != "" && e.GRPCEndpoint != "" && e.GRPCBrokerEndpoint != ""
}

// Require returns the environment of the local Maestro server. When it is not
// configured the test is skipped, or fails if REQUIRE_INTEGRATION=1. When a
// health endpoint is configured and does not answer 200, the test fails:
// configured but down is a broken setup, not a reason to skip.
func Require(t testing.TB) Env {
	t.Helper()
	e, ok := Endpoints()
	if !ok {
		msg := fmt.Sprintf("no Maestro server configured (%s, %s and %s unset); "+
			`run: deploy/local/maestro.sh start && eval "$(deploy/local/maestro.sh env)"`,
			EnvHTTPEndpoint, EnvGRPCEndpoint, EnvGRPCBrokerEndpoint)
		if os.Getenv(EnvRequireIntegration) == "1" {
			t.Fatalf("%s=1 but %s", EnvRequireIntegration, msg)
		}
		t.Skip(msg)
	}
	if e.HealthEndpoint != "" {
		// A server that answers but says 503 is usually only late with its
		// heartbeat: Maestro marks itself unready when its own heartbeat row in
		// PostgreSQL is older than 3 intervals, which happens for a few seconds
		// when the machine is saturated (seen while several test packages ran at
		// once), and a slow answer is the same saturation. Give either a minute;
		// a server that refuses the connection (not running) fails at once.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := e.checkHealth(ctx); err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("Maestro is configured but not healthy: %v (start it with deploy/local/maestro.sh start)", err)
			}
			wctx, wcancel := context.WithTimeout(context.Background(), time.Minute)
			defer wcancel()
			if err := e.WaitHealthy(wctx); err != nil {
				t.Fatalf("Maestro is configured but not healthy: %v (start it with deploy/local/maestro.sh start)", err)
			}
		}
	}
	return e
}

// errUnhealthy is the health endpoint answering, with a status other than 200.
type errUnhealthy struct {
	url    string
	status int
}

func (e errUnhealthy) Error() string { return fmt.Sprintf("GET %s: HTTP %d", e.url, e.status) }

func (e Env) checkHealth(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.HealthEndpoint, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return errUnhealthy{url: e.HealthEndpoint, status: resp.StatusCode}
	}
	return nil
}

// WaitHealthy polls the health endpoint until it answers 200 or ctx ends.
func (e Env) WaitHealthy(ctx context.Context) error {
	if e.HealthEndpoint == "" {
		return fmt.Errorf("%s is not set", EnvHealthEndpoint)
	}
	// Poll on a ticker until healthy or ctx ends; there is nothing to wait on.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := e.checkHealth(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("maestro not healthy: %w (last error: %v)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// Restart restarts the Maestro server, keeping its database, through
// `maestro.sh restart`, and returns once it is healthy again. Connected
// clients see the connection drop and reconnect by themselves.
func (e Env) Restart(ctx context.Context) error {
	if e.Ctl == "" {
		return fmt.Errorf("%s is not set; cannot restart Maestro", EnvCtl)
	}
	cmd := exec.CommandContext(ctx, e.Ctl, "restart")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s restart: %w\n%s", e.Ctl, err, out)
	}
	return nil
}

// SetReconnectDelay makes every cloudevents client in the process (source
// clients and simulated agents alike) wait a fixed d before reconnecting to a
// restarted Maestro, instead of the 5-10 s a real agent waits (see init in
// reconnect.go), for tests that restart Maestro and should not wait that long.
// Call it from TestMain before any client starts (it writes an SDK package
// variable that running clients read).
func SetReconnectDelay(d time.Duration) {
	ceclients.DelayFn = func() time.Duration { return d }
}

// RegisterConsumer creates the consumer (a cluster) on the Maestro server.
// A consumer that already exists is not an error.
func RegisterConsumer(ctx context.Context, httpEndpoint, name string) error {
	body, err := json.Marshal(map[string]string{"name": name})
	if err != nil {
		return err
	}
	url := strings.TrimRight(httpEndpoint, "/") + "/api/maestro/v1/consumers"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("register consumer %q: %w", name, err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusOK:
		return nil
	// Maestro answers a duplicate with 409 {"reason":"This Consumer already exists"}.
	case resp.StatusCode == http.StatusConflict,
		bytes.Contains(bytes.ToLower(answer), []byte("already exists")):
		return nil
	default:
		return fmt.Errorf("register consumer %q: POST %s: HTTP %d: %s", name, url, resp.StatusCode, bytes.TrimSpace(answer))
	}
}

// Logger returns an ocm-sdk-go logger (what Maestro's source client wants)
// that writes to t.Log. It goes quiet once the test has finished, because the
// client's goroutines may still log then and t.Log would panic.
func Logger(t testing.TB) logging.Logger {
	l := &testLogger{t: t}
	t.Cleanup(func() {
		l.mu.Lock()
		l.done = true
		l.mu.Unlock()
	})
	return l
}

type testLogger struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (l *testLogger) logf(level, format string, args ...interface{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return
	}
	l.t.Logf("maestro-client %s: %s", level, fmt.Sprintf(format, args...))
}

func (l *testLogger) DebugEnabled() bool { return false }
func (l *testLogger) InfoEnabled() bool  { return true }
func (l *testLogger) WarnEnabled() bool  { return true }
func (l *testLogger) ErrorEnabled() bool { return true }
func (l *testLogger) Debug(_ context.Context, format string, args ...interface{}) {
}
func (l *testLogger) Info(_ context.Context, format string, args ...interface{}) {
	l.logf("info", format, args...)
}
func (l *testLogger) Warn(_ context.Context, format string, args ...interface{}) {
	l.logf("warn", format, args...)
}
func (l *testLogger) Error(_ context.Context, format string, args ...interface{}) {
	l.logf("error", format, args...)
}

// Fatal logs and fails the test (rather than exiting the test binary).
func (l *testLogger) Fatal(_ context.Context, format string, args ...interface{}) {
	l.logf("fatal", format, args...)
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.done {
		l.t.Errorf("maestro-client fatal: %s", fmt.Sprintf(format, args...))
	}
}

// SlogLogger logs through t, so output shows with the failing test only;
// goroutines that outlive the test (a watch being drained) log nowhere.
func SlogLogger(t testing.TB) *slog.Logger {
	w := &tWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// TestLogf is an AgentOptions.Logf that logs through t with prefix while
// the test runs, and nowhere after (the agent's goroutines outlive it).
func TestLogf(t testing.TB, prefix string) func(format string, args ...any) {
	var mu sync.Mutex
	done := false
	t.Cleanup(func() { mu.Lock(); done = true; mu.Unlock() })
	return func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if !done {
			t.Logf(prefix+format, args...)
		}
	}
}

type tWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}
