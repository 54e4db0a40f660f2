package remote_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro/maestrotest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/remote"
)

func TestMain(m *testing.M) {
	// The OCM SDK waits 5-10 s (then 25-50 s) before reconnecting a client
	// to a restarted Maestro; tests that meet a restart should not.
	maestrotest.SetReconnectDelay(500 * time.Millisecond)
	os.Exit(m.Run())
}

// testLogger logs through t (see maestrotest.SlogLogger).
func testLogger(t testing.TB) *slog.Logger { return maestrotest.SlogLogger(t) }

func randomSuffix(t testing.TB) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// newBackend connects a Backend to the local Maestro as sourceID; mutate
// adjusts the options first.
func newBackend(t testing.TB, env maestrotest.Env, sourceID string, mutate func(*remote.Options)) *remote.Backend {
	t.Helper()
	opts := remote.Options{
		GRPCEndpoint: env.GRPCEndpoint,
		HTTPEndpoint: env.HTTPEndpoint,
		SourceID:     sourceID,
		Insecure:     true, // the local Maestro serves plaintext
		Logger:       testLogger(t),
		DialTimeout:  5 * time.Second,
	}
	if mutate != nil {
		mutate(&opts)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := remote.New(ctx, opts)
	if err != nil {
		t.Fatalf("remote.New: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// startAgents registers each consumer and runs a simulated agent on it for
// the rest of the test.
func startAgents(t testing.TB, env maestrotest.Env, opts maestrotest.AgentOptions, consumers ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range consumers {
		if err := maestrotest.RegisterConsumer(ctx, env.HTTPEndpoint, c); err != nil {
			t.Fatal(err)
		}
		o := opts
		if o.Logf == nil {
			o.Logf = maestrotest.TestLogf(t, "agent: ")
		}
		// The stand-in: the backend's races, restarts and failure paths need an
		// agent that can be told to fail or wait (opts) and many cheap consumers;
		// maestro/agenttest proves the stand-in against the real agent.
		agent, err := maestrotest.StartAgent(context.Background(), env.GRPCBrokerEndpoint, c, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(agent.Stop)
	}
}
