// The suite's cases, one promise of the Delivery interface each, in the
// order Run lists them.

package deliverytest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/watch"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
)

func testCreate(t *testing.T, s *suite) {
	ctx := s.ctx(t)
	consumer := s.consumer()
	name := s.name(t, consumer)
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	evs, err := s.d.Watch(wctx)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}

	created := s.apply(t, ctx, newWork(t, consumer, name, 1, configMap("a", "v1")))
	if created.Name != name || created.Namespace != consumer {
		t.Fatalf("Apply returned %s/%s, want %s/%s", created.Namespace, created.Name, consumer, name)
	}
	if created.Generation < 1 {
		t.Fatalf("Apply returned generation %d, want the stored version (>= 1)", created.Generation)
	}

	deadline := time.After(s.env.Timeout)
	var seen *workv1.ManifestWork
	for seen == nil {
		select {
		case ev, ok := <-evs:
			if !ok {
				t.Fatal("watch closed early")
			}
			if ev.Type != watch.Modified && ev.Type != watch.Deleted {
				t.Fatalf("watch sent event type %q; the contract allows Modified and Deleted only", ev.Type)
			}
			if ev.Work != nil && ev.Work.Namespace == consumer && ev.Work.Name == name && appliedAt(ev.Work, 1) {
				seen = ev.Work
			}
		case <-deadline:
			t.Fatalf("no watch event showing %s/%s applied and available within %s", consumer, name, s.env.Timeout)
		}
	}

	got := s.waitApplied(t, ctx, consumer, name, 1)
	if got.Generation != created.Generation {
		t.Errorf("Get shows generation %d, Apply returned %d: Apply must return the version it stored", got.Generation, created.Generation)
	}
	if got.UID == "" {
		t.Error("stored work has no UID")
	}
	if got.Labels[workmeta.LabelAdapter] != "conformance" {
		t.Errorf("stored labels %v lost %s", got.Labels, workmeta.LabelAdapter)
	}
	if n := len(got.Status.ResourceStatus.Manifests); n != 1 {
		t.Errorf("stored work reports status for %d manifests, want 1", n)
	}
	if got.Spec.DeleteOption == nil {
		t.Error("stored work has no spec.deleteOption: Maestro ignores DeleteOptions, the work must say what deletion does")
	}
}

func testIdempotent(t *testing.T, s *suite) {
	ctx := s.ctx(t)
	consumer := s.consumer()
	name := s.name(t, consumer)
	s.apply(t, ctx, newWork(t, consumer, name, 1, configMap("a", "v1"), configMap("b", "v1")))
	before := s.waitApplied(t, ctx, consumer, name, 1)

	// The same work encoded differently: what a rebuilt work looks like.
	again := newWork(t, consumer, name, 1, configMap("a", "v1"), configMap("b", "v1"))
	for i := range again.Spec.Workload.Manifests {
		var v any
		_ = json.Unmarshal(again.Spec.Workload.Manifests[i].Raw, &v)
		again.Spec.Workload.Manifests[i].Raw, _ = json.MarshalIndent(v, "", "    ")
	}
	for i := range 2 {
		got := s.apply(t, ctx, again)
		if got.Generation != before.Generation {
			t.Fatalf("apply #%d of an unchanged work moved its version from %d to %d", i+2, before.Generation, got.Generation)
		}
	}
	after, err := s.d.Get(ctx, consumer, name)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if after.Generation != before.Generation {
		t.Fatalf("stored version moved from %d to %d after re-applying an unchanged work", before.Generation, after.Generation)
	}
}

func testNewerGeneration(t *testing.T, s *suite) {
	ctx := s.ctx(t)
	consumer := s.consumer()
	name := s.name(t, consumer)
	s.apply(t, ctx, newWork(t, consumer, name, 1, configMap("a", "v1")))
	first := s.waitApplied(t, ctx, consumer, name, 1)

	updated := s.apply(t, ctx, newWork(t, consumer, name, 2, configMap("a", "v2")))
	if updated.Generation <= first.Generation {
		t.Fatalf("update returned version %d, want more than %d", updated.Generation, first.Generation)
	}
	if v := updated.Annotations[workmeta.AnnotationGeneration]; v != "2" {
		t.Fatalf("update returned resource generation %q, want 2", v)
	}
	got := s.waitApplied(t, ctx, consumer, name, 2)
	if dataValue(got) != "v2" {
		t.Fatalf("stored manifest has value %q, want v2", dataValue(got))
	}
	if got.Generation != updated.Generation {
		t.Fatalf("stored version %d, Apply returned %d", got.Generation, updated.Generation)
	}
}

func testStaleGeneration(t *testing.T, s *suite) {
	ctx := s.ctx(t)
	consumer := s.consumer()
	name := s.name(t, consumer)
	s.apply(t, ctx, newWork(t, consumer, name, 2, configMap("a", "v2")))
	before := s.waitApplied(t, ctx, consumer, name, 2)

	got, err := s.d.Apply(ctx, newWork(t, consumer, name, 1, configMap("a", "v1")))
	if !errors.Is(err, workmeta.ErrStaleGeneration) {
		t.Fatalf("applying generation 1 over 2: error %v, want ErrStaleGeneration", err)
	}
	if got == nil || got.Annotations[workmeta.AnnotationGeneration] != "2" {
		t.Fatalf("stale apply should return the stored work at generation 2, got %s", describe(got))
	}
	after, err := s.d.Get(ctx, consumer, name)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if after.Generation != before.Generation || dataValue(after) != "v2" || after.Annotations[workmeta.AnnotationGeneration] != "2" {
		t.Fatalf("stale apply changed the work: before %s, after %s", describe(before), describe(after))
	}
}

func testDelete(t *testing.T, s *suite) {
	ctx := s.ctx(t)
	consumer := s.consumer()
	name := s.name(t, consumer)
	s.apply(t, ctx, newWork(t, consumer, name, 1, configMap("a", "v1")))
	s.waitApplied(t, ctx, consumer, name, 1)

	wctx, stop := context.WithCancel(ctx)
	defer stop()
	evs, err := s.d.Watch(wctx)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	if err := s.d.Delete(ctx, consumer, name); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	deadline := time.After(s.env.Timeout)
	for deleted := false; !deleted; {
		select {
		case ev, ok := <-evs:
			if !ok {
				t.Fatal("watch closed early")
			}
			deleted = ev.Type == watch.Deleted && ev.Work != nil && ev.Work.Namespace == consumer && ev.Work.Name == name
		case <-deadline:
			t.Fatalf("no Deleted event for %s/%s within %s", consumer, name, s.env.Timeout)
		}
	}
	// Soon after the Deleted event, not at once: Maestro publishes the
	// deletion to its watchers before the row is gone from what its REST
	// API reads (seen with the real and the stand-in agent), so a Get at
	// that moment can still find the work. Poll on a ticker: nothing to wait on.
	getDeadline := time.Now().Add(s.env.Timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := s.d.Get(ctx, consumer, name)
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(getDeadline) {
			t.Fatalf("Get %s after the Deleted event: error %v, want NotFound", s.env.Timeout, err)
		}
		<-tick.C
	}
	if err := s.d.Delete(ctx, consumer, name); err != nil {
		t.Fatalf("deleting the deleted work again: %v, want nil", err)
	}
}

func testDeleteMissing(t *testing.T, s *suite) {
	ctx := s.ctx(t)
	consumer := s.consumer()
	if err := s.d.Delete(ctx, consumer, s.name(t, consumer)); err != nil {
		t.Fatalf("deleting a work that never existed: %v, want nil", err)
	}
}

func testManifestSetChange(t *testing.T, s *suite) {
	ctx := s.ctx(t)
	consumer := s.consumer()
	name := s.name(t, consumer)
	steps := [][]string{
		{"a", "b"},      // initial
		{"a", "c"},      // remove b, add c
		{"a", "c", "d"}, // add
		{"d"},           // remove two
		{"e"},           // rename
	}
	for i, set := range steps {
		gen := int64(i + 1)
		var ms []map[string]any
		for _, n := range set {
			ms = append(ms, configMap(n, "v"+strconv.FormatInt(gen, 10)))
		}
		s.apply(t, ctx, newWork(t, consumer, name, gen, ms...))
		got := s.waitApplied(t, ctx, consumer, name, gen)
		if names := manifestNames(got); !slices.Equal(names, set) {
			t.Fatalf("step %d: stored manifests %v, want exactly %v", i, names, set)
		}
		var reported []string
		for _, m := range got.Status.ResourceStatus.Manifests {
			reported = append(reported, m.ResourceMeta.Name)
		}
		if !slices.Equal(reported, set) {
			t.Fatalf("step %d: status reports manifests %v, want %v", i, reported, set)
		}
	}
}

func testConcurrentAppliers(t *testing.T, s *suite) {
	ctx := s.ctx(t)
	consumer := s.consumer()
	for round := range 6 {
		name := s.name(t, consumer)
		base := int64(0)
		if round%2 == 1 {
			// Half the rounds race over an existing work, half over none.
			base = 1
			s.apply(t, ctx, newWork(t, consumer, name, base, configMap("a", "v1")))
		}
		older, newer := base+1, base+2
		start := make(chan struct{})
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, gen := range []int64{older, newer} {
			w := newWork(t, consumer, name, gen, configMap("a", "v"+strconv.FormatInt(gen, 10)))
			wg.Go(func() {
				<-start
				_, errs[i] = s.d.Apply(ctx, w)
			})
		}
		close(start)
		wg.Wait()
		if errs[1] != nil {
			t.Fatalf("round %d: applying the newer generation %d failed: %v", round, newer, errs[1])
		}
		if errs[0] != nil && !errors.Is(errs[0], workmeta.ErrStaleGeneration) {
			t.Fatalf("round %d: applying the older generation %d: %v, want nil or ErrStaleGeneration", round, older, errs[0])
		}
		got := s.waitApplied(t, ctx, consumer, name, newer)
		if want := "v" + strconv.FormatInt(newer, 10); dataValue(got) != want {
			t.Fatalf("round %d: stored value %q, want %q", round, dataValue(got), want)
		}
	}
}

func testInvalid(t *testing.T, s *suite) {
	ctx := s.ctx(t)
	consumer := s.consumer()
	name := s.name(t, consumer)
	bad := newWork(t, consumer, name, 1, map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{}})
	_, err := s.d.Apply(ctx, bad)
	if err == nil {
		t.Fatal("applying a manifest without a name succeeded")
	}
	if !failure.IsPermanent(err) {
		t.Fatalf("applying a manifest without a name: %v is not Permanent", err)
	}
	if !strings.Contains(err.Error(), "name") {
		t.Errorf("error %q does not say what is wrong (the name)", err)
	}
	if _, err := s.d.Get(ctx, consumer, name); !apierrors.IsNotFound(err) {
		t.Fatalf("Get after the refused apply: %v, want NotFound", err)
	}
}

func testWatchCloses(t *testing.T, s *suite) {
	ctx := s.ctx(t)
	wctx, stop := context.WithCancel(ctx)
	evs, err := s.d.Watch(wctx)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	stop()
	deadline := time.After(s.env.Timeout)
	for {
		select {
		case _, ok := <-evs:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("watch channel still open %s after its context ended", s.env.Timeout)
		}
	}
}

func testConsumersApart(t *testing.T, s *suite) {
	if len(s.env.Consumers) < 2 {
		t.Skip("needs two consumers")
	}
	ctx := s.ctx(t)
	a, b := s.env.Consumers[0], s.env.Consumers[1]
	name := s.name(t, a)
	t.Cleanup(func() { // the same work on b, deleted too
		ctx, cancel := context.WithTimeout(context.Background(), s.env.Timeout)
		defer cancel()
		_ = s.d.Delete(ctx, b, name)
	})
	// The same work name on two consumers, applied from many goroutines at
	// once: a backend sharing state between consumers mixes them up.
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		consumer := []string{a, b}[i%2]
		w := newWork(t, consumer, name, 1, configMap("x", "for-"+consumer))
		wg.Go(func() {
			if _, err := s.d.Apply(ctx, w); err != nil {
				errs <- fmt.Errorf("apply to %s: %w", consumer, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, consumer := range []string{a, b} {
		got := s.waitApplied(t, ctx, consumer, name, 1)
		if got.Namespace != consumer || dataValue(got) != "for-"+consumer {
			t.Fatalf("work %s/%s holds %q (namespace %q), want for-%s", consumer, name, dataValue(got), got.Namespace, consumer)
		}
	}
}
