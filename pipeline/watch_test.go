package pipeline

import (
	"context"
	"testing"
	"time"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/embedded"
)

// When the agent reports after the pipeline stopped waiting, the status
// watcher reports the change on its own: Available goes Unknown → True
// without a new Sentinel event.
func TestWatchStatusReportsLateAgentStatus(t *testing.T) {
	h := newHarness(t, harnessOpts{adapterType: "namespace",
		cfg:     func(c *Config) { c.StatusTimeout = 20 * time.Millisecond },
		backend: embedded.Options{AgentDelay: 300 * time.Millisecond}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); _ = h.p.WatchStatus(ctx) }()

	h.run(t, []*events.Message{snapshotMsgWithAPI(t)})
	first := h.sink.reports(t)
	if len(first) != 1 || conditions(first[0].Report)["Available"] != "Unknown" {
		t.Fatalf("first report: %+v", first)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		reps := h.sink.reports(t)
		if n := len(reps); n > 1 && conditions(reps[n-1].Report)["Available"] == "True" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no report with Available=True after the agent reported: %+v", reps)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition with a deadline
	}
	cancel()
	<-watchDone
}

// snapshotMsgWithAPI is the sample cluster event; WatchStatus re-reads the
// resource from the harness's API directory, which has that cluster.
func snapshotMsgWithAPI(t *testing.T) *events.Message {
	m := snapshotMsg(t, "e1", "019466a0-8f8e-7abc-9def-0123456789ab", 1)
	m.Snapshot = nil
	return m
}
