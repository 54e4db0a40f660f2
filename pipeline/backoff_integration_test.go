package pipeline

// Retry scheduling through a real Maestro server (see
// remote_integration_test.go for the set-up): an event waiting out its
// backoff holds its resource but not a concurrency slot.

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/events/recording"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/maestrotest"
)

// hiccup fails the first Apply of each listed resource transiently, as a
// Maestro blip would, and records every Apply of those resources. It wraps
// our own Delivery seam: the real backend does the rest.
type hiccup struct {
	maestro.Delivery
	sink *captureSink

	mu      sync.Mutex
	failed  map[string]bool // resource id → first Apply failed already
	applies map[string][]apply
}

type apply struct {
	generation string
	// reportsBefore is how many status events the sink held when this
	// Apply began.
	reportsBefore int
}

func (h *hiccup) Apply(ctx context.Context, w *workv1.ManifestWork) (*workv1.ManifestWork, error) {
	id := w.Labels[workmeta.LabelResourceID]
	h.mu.Lock()
	failed, watched := h.failed[id]
	if watched {
		h.sink.mu.Lock()
		n := len(h.sink.events)
		h.sink.mu.Unlock()
		h.applies[id] = append(h.applies[id], apply{generation: w.Annotations[workmeta.AnnotationGeneration], reportsBefore: n})
		h.failed[id] = true
	}
	h.mu.Unlock()
	if watched && !failed {
		return nil, failure.Transient(errors.New("maestro hiccup (injected)"))
	}
	return h.Delivery.Apply(ctx, w)
}

func (h *hiccup) appliesOf(id string) []apply {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]apply(nil), h.applies[id]...)
}

// With one slot, a resource whose first try fails transiently waits 8-16 s
// for its next try; meanwhile three other resources are delivered,
// reported and acknowledged. Its own newer event waits for it (one at a
// time per resource), and its retry counts as its second attempt. Then, at
// shutdown, an event waiting for its retry goes back to the source at once
// instead of holding the shutdown until its timer fires.
func TestRemoteRetryBackoffFreesTheSlot(t *testing.T) {
	env := maestrotest.Require(t)
	consumer := "pl-backoff-" + remoteSuffix(t)
	startRemoteAgent(t, env, consumer, nil)
	const slow, waiting = "backoff-slow", "backoff-waiting"
	flaky := &hiccup{failed: map[string]bool{slow: false, waiting: false}, applies: map[string][]apply{}}
	h := newRemoteHarness(t, remoteHarnessOpts{env: env, adapterType: "namespace", consumer: consumer,
		cfg: func(c *Config) {
			c.Concurrency = 1
			c.MaxAttempts = 3
			// backoff.Delay jitters into [d/2, d]: the retry comes 8-16 s
			// after the failure, far longer than three healthy events take.
			c.RetryBaseDelay, c.RetryMaxDelay = 16*time.Second, 16*time.Second
		},
		wrap: func(d maestro.Delivery) maestro.Delivery { flaky.Delivery = d; return flaky }})
	flaky.sink = h.sink

	healthy := []string{"backoff-a", "backoff-b", "backoff-c"}
	msgs := []*events.Message{clusterMsg(t, "slow-1", slow, 1, nil, false)}
	for _, c := range healthy {
		msgs = append(msgs, clusterMsg(t, "ok-"+c, c, 1, nil, false))
	}
	msgs = append(msgs, clusterMsg(t, "slow-2", slow, 2, nil, false))
	outcomes := h.run(t, msgs...)
	for _, o := range outcomes {
		if o.Settlement != "ack" {
			t.Errorf("%s settled %s (%s), want ack", o.TransportID, o.Settlement, o.Reason)
		}
	}

	tries := flaky.appliesOf(slow)
	if len(tries) != 3 || tries[0].generation != "1" || tries[1].generation != "1" || tries[2].generation != "2" {
		t.Fatalf("applies of the slow resource %+v, want generation 1 (failed), 1 (retry), then 2", tries)
	}
	// Every healthy resource was reported before the slow one's retry
	// began: they ran in the slot it had given up.
	reported := map[string]int{}
	for i, env := range h.sink.reports(t) {
		if i < tries[1].reportsBefore {
			reported[env.Resource.ID]++
		}
	}
	for _, c := range healthy {
		if reported[c] != 1 {
			t.Errorf("%s not reported before the slow resource's retry (reports before it: %v)", c, reported)
		}
	}
	byGen := reportsByGeneration(t, h.sink)
	for _, gen := range []int64{1, 2} {
		if rep, ok := byGen[slow][gen]; !ok || conditions(rep)["Available"] != "True" {
			t.Errorf("slow resource at generation %d: report %+v", gen, rep)
		}
	}

	// Shutdown while an event waits for its retry.
	src := recording.NewSource([]*events.Message{clusterMsg(t, "waiting-1", waiting, 1, nil, false)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.p.Run(ctx, src) }()
	waitCond(t, 30*time.Second, "the first try to fail", func() bool { return len(flaky.appliesOf(waiting)) == 1 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second): // the retry timer is at least 8 s
		t.Fatal("Run still waiting for a retry timer after shutdown")
	}
	if o := src.Outcomes(); len(o) != 1 || o[0].Settlement != "requeue" {
		t.Fatalf("outcome %+v, want the waiting event requeued", o)
	}
	if n := len(flaky.appliesOf(waiting)); n != 1 {
		t.Fatalf("%d tries of the waiting event, want 1 (none after shutdown)", n)
	}
}
