package agenttest_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro/agenttest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/maestrotest"
)

// TestReconnectAfterMaestroRestart restarts a Maestro server of the test's
// own (so no other test is disturbed) under three real agents and three
// simulated ones, and times how long after the restart began each consumer's
// subscription is registered again, as the server logs it. The simulated
// agents must come back as the real ones do: each within one first backoff
// step (5-10 s) of the disconnect, not one by one as when they shared the
// SDK's process-wide backoff sequence (10, 34, 63... s).
func TestReconnectAfterMaestroRestart(t *testing.T) {
	// The shared server's environment decides skip or fail; the test then
	// runs one of its own with the same script.
	shared := maestrotest.Require(t)
	m := startPrivateMaestro(t, shared)
	suffix := randomSuffix(t)
	real := []string{"real-a-" + suffix, "real-b-" + suffix, "real-c-" + suffix}
	simulated := []string{"sim-a-" + suffix, "sim-b-" + suffix, "sim-c-" + suffix}
	agenttest.StartOn(t, agenttest.Server{Env: m.env, Settings: m.settings}, real...)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, c := range simulated {
		if err := maestrotest.RegisterConsumer(ctx, m.env.HTTPEndpoint, c); err != nil {
			t.Fatal(err)
		}
		a, err := maestrotest.StartAgent(context.Background(), m.env.GRPCBrokerEndpoint, c,
			maestrotest.AgentOptions{Logf: maestrotest.TestLogf(t, "simulated agent: ")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(a.Stop)
	}
	all := append(append([]string(nil), real...), simulated...)
	if _, err := m.waitRegistered(ctx, all, nil, time.Now(), time.Minute); err != nil {
		t.Fatalf("before the restart: %v", err)
	}
	before := m.registrations(t)

	began := time.Now()
	if err := m.ctl(ctx, "restart"); err != nil {
		t.Fatal(err)
	}
	healthy := time.Since(began)
	back, err := m.waitRegistered(ctx, all, before, began, 3*time.Minute)
	for _, c := range all {
		if d, ok := back[c]; ok {
			t.Logf("%s resubscribed %s after the restart began (server healthy after %s)",
				c, d.Round(100*time.Millisecond), healthy.Round(100*time.Millisecond))
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	// A first backoff step is under 10 s; the restart itself takes a few.
	// Under the shared sequence the third simulated agent waited 60 s or more.
	const bound = 30 * time.Second
	var late []string
	for _, c := range simulated {
		if back[c] > bound {
			late = append(late, fmt.Sprintf("%s after %s", c, back[c].Round(100*time.Millisecond)))
		}
	}
	if len(late) > 0 {
		t.Errorf("simulated agents resubscribed later than %s after the restart began, unlike the real ones: %s",
			bound, strings.Join(late, ", "))
	}
}

// privateMaestro is a Maestro server of this test's own, run by
// deploy/local/maestro.sh on free ports with its own state dir and database.
type privateMaestro struct {
	env      maestrotest.Env
	settings []string
	log      string
}

func startPrivateMaestro(t *testing.T, shared maestrotest.Env) *privateMaestro {
	t.Helper()
	script := shared.Ctl
	if script == "" {
		var err error
		if script, err = filepath.Abs(filepath.Join("..", "..", "deploy", "local", "maestro.sh")); err != nil {
			t.Fatal(err)
		}
	}
	// Five free ports, held together so that they differ.
	var ports []string
	var ls []net.Listener
	for range 5 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		_, p, _ := net.SplitHostPort(l.Addr().String())
		ports = append(ports, p)
	}
	for _, l := range ls {
		_ = l.Close()
	}
	dir := t.TempDir()
	m := &privateMaestro{
		settings: []string{
			"MAESTRO_STATE_DIR=" + dir,
			"MAESTRO_HTTP_PORT=" + ports[0],
			"MAESTRO_GRPC_PORT=" + ports[1],
			"MAESTRO_GRPC_BROKER_PORT=" + ports[2],
			"MAESTRO_HEALTH_PORT=" + ports[3],
			"MAESTRO_METRICS_PORT=" + ports[4],
			// Fixed, so runs do not pile up databases; `start` recreates it.
			"MAESTRO_DB_NAME=maestro_adapter_agent_reconnect_test",
		},
		log: filepath.Join(dir, "maestro.log"),
	}
	m.env = maestrotest.Env{
		HTTPEndpoint:       "http://127.0.0.1:" + ports[0],
		GRPCEndpoint:       "127.0.0.1:" + ports[1],
		GRPCBrokerEndpoint: "127.0.0.1:" + ports[2],
		HealthEndpoint:     "http://127.0.0.1:" + ports[3] + "/healthcheck",
		Ctl:                script,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	if err := m.ctl(ctx, "start"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := m.ctl(ctx, "stop"); err != nil {
			t.Errorf("stopping the private Maestro: %v", err)
		}
	})
	return m
}

func (m *privateMaestro) ctl(ctx context.Context, cmd string) error {
	c := exec.CommandContext(ctx, m.env.Ctl, cmd)
	c.Env = append(os.Environ(), m.settings...)
	out, err := c.CombinedOutput()
	if err != nil {
		return fmt.Errorf("maestro.sh %s: %w\n%s", cmd, err, out)
	}
	return nil
}

// registrations counts, per consumer, the subscriptions the server's log
// says it registered ("registering subscriber" ... clusterName="C").
func (m *privateMaestro) registrations(t testing.TB) map[string]int {
	t.Helper()
	n, err := m.countRegistrations()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (m *privateMaestro) countRegistrations() (map[string]int, error) {
	data, err := os.ReadFile(m.log)
	if err != nil {
		return nil, err
	}
	n := map[string]int{}
	for _, line := range bytes.Split(data, []byte("\n")) {
		if !bytes.Contains(line, []byte(`"registering subscriber"`)) {
			continue
		}
		_, rest, ok := bytes.Cut(line, []byte(`clusterName="`))
		if !ok {
			continue
		}
		name, _, _ := bytes.Cut(rest, []byte(`"`))
		n[string(name)]++
	}
	return n, nil
}

// waitRegistered polls the server's log until each consumer has more
// registrations than in before (nil: at least one), and returns when each
// was first seen so, measured from start; it gives up timeout after start.
func (m *privateMaestro) waitRegistered(ctx context.Context, consumers []string, before map[string]int, start time.Time, timeout time.Duration) (map[string]time.Duration, error) {
	back := map[string]time.Duration{}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		n, err := m.countRegistrations()
		if err != nil {
			return back, err
		}
		for _, c := range consumers {
			if _, seen := back[c]; !seen && n[c] > before[c] {
				back[c] = time.Since(start)
			}
		}
		if len(back) == len(consumers) {
			return back, nil
		}
		if time.Since(start) > timeout {
			var missing []string
			for _, c := range consumers {
				if _, seen := back[c]; !seen {
					missing = append(missing, c)
				}
			}
			sort.Strings(missing)
			return back, fmt.Errorf("no (new) subscription registered within %s for %v", timeout, missing)
		}
		select {
		case <-ctx.Done():
			return back, ctx.Err()
		case <-tick.C:
		}
	}
}
