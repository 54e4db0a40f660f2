package pipeline

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
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

// apiResources is the HyperFleet API as the pipeline reads it: one resource
// whose generation a test moves on, as a user's update does.
type apiResources struct {
	mu       sync.Mutex
	gen      int64
	resource []byte // the resource's JSON, as snapshotMsg records it
	read     atomic.Int64
}

func newAPIResources(t *testing.T, clusterID string, gen int64) *apiResources {
	return &apiResources{gen: gen, resource: snapshotMsg(t, "api", clusterID, gen).Snapshot}
}

func (a *apiResources) GetResource(_ context.Context, href string) (*hyperfleet.Resource, error) {
	a.read.Add(1)
	a.mu.Lock()
	defer a.mu.Unlock()
	res, err := hyperfleet.ParseResource(a.resource, href)
	if err != nil || res.Href != href {
		return nil, hyperfleet.ErrNotFound
	}
	res.Generation = a.gen
	return res, nil
}

func (a *apiResources) setGeneration(gen int64) {
	a.mu.Lock()
	a.gen = gen
	a.mu.Unlock()
}

// generationReads counts the pre-report reads that go to Maestro. It must
// be the outermost wrapper: maestro.WorkGeneration finds it by type.
type generationReads struct {
	maestro.Delivery
	n atomic.Int64
}

func (g *generationReads) WorkGeneration(ctx context.Context, consumer, name string) (int64, bool, error) {
	g.n.Add(1)
	return maestro.WorkGeneration(ctx, g.Delivery, consumer, name)
}

// The check before a report asks the API first: while the API still serves
// the event's generation no replica can have delivered a newer one, and
// Maestro is not read at all. Once the API has moved on, Maestro is read,
// and the report is held back only when the newer generation is really
// delivered.
func TestReportCheckAsksTheAPIBeforeMaestro(t *testing.T) {
	const cluster = "019466a0-8f8e-7abc-9def-0123456789ab"
	event := func(id string, gen int64) *events.Message {
		m := snapshotMsg(t, id, cluster, gen)
		m.Snapshot = nil // read from the API
		return m
	}

	t.Run("API at the event's generation: no Maestro read", func(t *testing.T) {
		api := newAPIResources(t, cluster, 1)
		reads := &generationReads{}
		h := newHarness(t, harnessOpts{adapterType: "namespace", reader: api,
			wrap: func(d maestro.Delivery) maestro.Delivery { reads.Delivery = d; return reads }})
		h.run(t, []*events.Message{event("e1", 1)})
		if reps := h.sink.reports(t); len(reps) != 1 || reps[0].Report.ObservedGeneration != 1 {
			t.Fatalf("reports %+v, want one at generation 1", reps)
		}
		if n := reads.n.Load(); n != 0 {
			t.Errorf("%d generation reads went to Maestro, want none", n)
		}
		if n := api.read.Load(); n != 2 {
			t.Errorf("the API was read %d times, want 2 (the resource, then the check)", n)
		}
	})

	t.Run("API and Maestro moved on: superseded", func(t *testing.T) {
		api := newAPIResources(t, cluster, 1)
		reads := &generationReads{}
		race := &racingReplica{newer: "2"}
		h := newHarness(t, harnessOpts{adapterType: "namespace", reader: api,
			backend: embedded.Options{AgentDelay: 20 * time.Millisecond},
			wrap: func(d maestro.Delivery) maestro.Delivery {
				race.Delivery = d
				reads.Delivery = &apiMovesOn{Delivery: race, api: api, gen: 2}
				return reads
			}})
		h.run(t, []*events.Message{event("e1", 1)})
		if race.err != nil {
			t.Fatalf("the racing replica's apply: %v", race.err)
		}
		if c := h.p.Stats().Counts(); c[Superseded] != 1 {
			t.Errorf("stats %v, want 1 superseded", c)
		}
		if reps := h.sink.reports(t); len(reps) != 0 {
			t.Errorf("%d reports published for generation 1 while the work holds generation 2: %+v", len(reps), reps)
		}
		if reads.n.Load() == 0 {
			t.Error("the API moved on, yet Maestro was not read")
		}
	})

	t.Run("API moved on, Maestro not yet: reported", func(t *testing.T) {
		api := newAPIResources(t, cluster, 1)
		reads := &generationReads{}
		h := newHarness(t, harnessOpts{adapterType: "namespace", reader: api,
			wrap: func(d maestro.Delivery) maestro.Delivery {
				reads.Delivery = &apiMovesOn{Delivery: d, api: api, gen: 2}
				return reads
			}})
		h.run(t, []*events.Message{event("e1", 1)})
		if reps := h.sink.reports(t); len(reps) != 1 || reps[0].Report.ObservedGeneration != 1 {
			t.Fatalf("reports %+v, want one at generation 1 (Maestro holds it; generation 2 is not delivered)", reps)
		}
		if reads.n.Load() == 0 {
			t.Error("the API moved on, yet Maestro was not read")
		}
	})

	t.Run("API stops answering: Maestro decides, within the bound", func(t *testing.T) {
		api := hangingAPI{newAPIResources(t, cluster, 1)}
		reads := &generationReads{}
		h := newHarness(t, harnessOpts{adapterType: "namespace", reader: api,
			wrap: func(d maestro.Delivery) maestro.Delivery { reads.Delivery = d; return reads }})
		start := time.Now()
		h.run(t, []*events.Message{event("e1", 1)})
		if reps := h.sink.reports(t); len(reps) != 1 || reps[0].Report.ObservedGeneration != 1 {
			t.Fatalf("reports %+v, want one at generation 1", reps)
		}
		if reads.n.Load() == 0 {
			t.Error("the API did not answer, yet Maestro was not read")
		}
		if took := time.Since(start); took > apiCheckTimeout+10*time.Second {
			t.Errorf("the event took %s: the API's silence held it past apiCheckTimeout (%s)", took, apiCheckTimeout)
		}
	})
}

// hangingAPI answers the first read (the event's) and holds every later
// one until its context ends: an API that stopped answering mid-event.
type hangingAPI struct {
	*apiResources
}

func (h hangingAPI) GetResource(ctx context.Context, href string) (*hyperfleet.Resource, error) {
	if h.read.Load() == 0 {
		return h.apiResources.GetResource(ctx, href)
	}
	h.read.Add(1)
	<-ctx.Done()
	return nil, ctx.Err()
}

// apiMovesOn moves the API's resource to gen after the event's apply: a
// user's update arriving while the event runs.
type apiMovesOn struct {
	maestro.Delivery
	api *apiResources
	gen int64
}

func (a *apiMovesOn) Apply(ctx context.Context, w *workv1.ManifestWork) (*workv1.ManifestWork, error) {
	got, err := a.Delivery.Apply(ctx, w)
	a.api.setGeneration(a.gen)
	return got, err
}
