package remote_test

import (
	"testing"
	"time"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/deliverytest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/maestrotest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/remote"
)

// TestConformance runs the Delivery conformance suite against the local
// Maestro server, with two registered consumers each served by a simulated
// agent. Every case gets its own source id, so cases (and concurrent runs)
// never see each other's works.
func TestConformance(t *testing.T) {
	env := maestrotest.Require(t)
	suffix := randomSuffix(t)
	consumers := []string{"remote-a-" + suffix, "remote-b-" + suffix}
	startAgents(t, env, maestrotest.AgentOptions{}, consumers...)
	n := 0
	deliverytest.Run(t, func(t *testing.T) (maestro.Delivery, deliverytest.Env) {
		n++
		b := newBackend(t, env, "conformance-"+suffix+"-"+string(rune('a'+n)), func(o *remote.Options) {
			o.Source.RetryInitial = 10 * time.Millisecond
			o.Source.RetryMax = 200 * time.Millisecond
		})
		return b, deliverytest.Env{Consumers: consumers, Timeout: 30 * time.Second}
	})
}
