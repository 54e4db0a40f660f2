package embedded_test

import (
	"testing"
	"time"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/deliverytest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/embedded"
)

func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts embedded.Options
	}{
		// The local default: the agent answers at once, and the store
		// refuses in-place manifest set changes like the pinned Maestro.
		{"Default", embedded.Options{}},
		// An agent that takes its time, so waits really wait.
		{"SlowAgent", embedded.Options{AgentDelay: 20 * time.Millisecond}},
		// A Maestro from mid-2026 that changes manifest sets in place.
		{"NewerMaestro", embedded.Options{AcceptManifestSetChange: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			deliverytest.Run(t, func(t *testing.T) (maestro.Delivery, deliverytest.Env) {
				opts := tc.opts
				opts.Logger = testLogger(t)
				b, err := embedded.New(opts)
				if err != nil {
					t.Fatalf("embedded.New: %v", err)
				}
				t.Cleanup(func() { _ = b.Close() })
				return b, deliverytest.Env{Consumers: []string{"cluster-a", "cluster-b"}, Timeout: 5 * time.Second}
			})
		})
	}
}
