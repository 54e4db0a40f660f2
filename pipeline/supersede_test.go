package pipeline

import (
	"context"
	"sync"
	"testing"
	"time"

	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/embedded"
)

// racingReplica stands in for another replica that applies a newer
// generation of the same work right after this one's Apply returns: the
// race a broker redelivery after a replica's death makes possible.
type racingReplica struct {
	maestro.Delivery
	newer string
	once  sync.Once
	err   error
}

func (r *racingReplica) Apply(ctx context.Context, w *workv1.ManifestWork) (*workv1.ManifestWork, error) {
	got, err := r.Delivery.Apply(ctx, w)
	if err == nil {
		r.once.Do(func() {
			n := w.DeepCopy()
			n.Annotations[workmeta.AnnotationGeneration] = r.newer
			_, r.err = r.Delivery.Apply(ctx, n)
		})
	}
	return got, err
}

// A newer generation reaching the work while an event waits for its status
// makes the event superseded: acknowledged, and its (older) report is not
// published, so that it cannot land after the newer generation's.
func TestReportOlderThanTheWorkIsNotPublished(t *testing.T) {
	race := &racingReplica{newer: "2"}
	h := newHarness(t, harnessOpts{adapterType: "namespace",
		backend: embedded.Options{AgentDelay: 20 * time.Millisecond},
		wrap:    func(d maestro.Delivery) maestro.Delivery { race.Delivery = d; return race }})
	src := h.run(t, []*events.Message{snapshotMsg(t, "e1", "c1", 1)})
	if race.err != nil {
		t.Fatalf("the racing replica's apply: %v", race.err)
	}
	if o := src.Outcomes(); len(o) != 1 || o[0].Settlement != "ack" {
		t.Fatalf("outcomes %+v, want one ack", o)
	}
	if c := h.p.Stats().Counts(); c[Superseded] != 1 {
		t.Errorf("stats %v, want 1 superseded", c)
	}
	if reps := h.sink.reports(t); len(reps) != 0 {
		t.Errorf("%d reports published for generation 1 while the work holds generation 2: %+v", len(reps), reps)
	}
}
