package remote_test

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/deliverytest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/maestrotest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/remote"
)

// appliedAt: Applied and Available True at the work's current version,
// built from resource generation gen.
func appliedAt(gen int64) func(*workv1.ManifestWork) bool {
	want := strconv.FormatInt(gen, 10)
	return func(w *workv1.ManifestWork) bool {
		if w == nil || w.Annotations[workmeta.AnnotationGeneration] != want {
			return false
		}
		for _, typ := range []string{workv1.WorkApplied, workv1.WorkAvailable} {
			c := apimeta.FindStatusCondition(w.Status.Conditions, typ)
			if c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != w.Generation {
				return false
			}
		}
		return true
	}
}

// BenchmarkRemoteApply measures, through the real Maestro server and a
// simulated agent, Apply followed by waiting (through a Tracker on the
// watch) until the agent's status says Applied and Available at that
// generation: the latency the pipeline sees per work. Create makes a new
// work each time; Update patches one work to the next generation;
// Unchanged re-applies the same work (a read, no write).
func BenchmarkRemoteApply(b *testing.B) {
	env := maestrotest.Require(b)
	maestrotest.SetReconnectDelay(500 * time.Millisecond)
	suffix := randomSuffix(b)
	consumer := "bench-" + suffix
	startAgents(b, env, maestrotest.AgentOptions{Logf: func(string, ...any) {}}, consumer)
	logger := slog.New(slog.DiscardHandler)
	n := 0
	setup := func(b *testing.B) (*remote.Backend, *maestro.Tracker) {
		n++
		be := newBackend(b, env, "bench-"+suffix+"-"+strconv.Itoa(n), func(o *remote.Options) { o.Logger = logger })
		tr := deliverytest.RunTracker(b, be, logger)
		return be, tr
	}
	var took []time.Duration
	applyAndWait := func(b *testing.B, be *remote.Backend, tr *maestro.Tracker, w *workv1.ManifestWork, gen int64) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		start := time.Now()
		if _, err := be.Apply(ctx, w); err != nil {
			b.Fatal(err)
		}
		if _, err := tr.Await(ctx, w.Namespace, w.Name, appliedAt(gen)); err != nil {
			b.Fatalf("work %s/%s not applied at generation %d: %v", w.Namespace, w.Name, gen, err)
		}
		took = append(took, time.Since(start))
	}
	// report adds the median and 99th percentile latency of the loop.
	report := func(b *testing.B) {
		if len(took) == 0 {
			return
		}
		slices.Sort(took)
		b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(took[(len(took)*99)/100].Microseconds())/1000, "p99-ms")
		took = took[:0]
	}
	// cleanup deletes the works a sub-benchmark made on the shared server.
	cleanup := func(b *testing.B, be *remote.Backend, names func() []string) {
		b.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for _, name := range names() {
				_ = be.Delete(ctx, consumer, name)
			}
		})
	}

	b.Run("Create", func(b *testing.B) {
		be, tr := setup(b)
		var names []string
		cleanup(b, be, func() []string { return names })
		for b.Loop() {
			name := "c" + strconv.Itoa(len(names))
			names = append(names, name)
			applyAndWait(b, be, tr, deliverytest.BenchWork(b, consumer, name, 1), 1)
		}
		report(b)
	})
	b.Run("Update", func(b *testing.B) {
		be, tr := setup(b)
		cleanup(b, be, func() []string { return []string{"u"} })
		applyAndWait(b, be, tr, deliverytest.BenchWork(b, consumer, "u", 1), 1)
		took = took[:0]
		gen := int64(1)
		for b.Loop() {
			gen++
			applyAndWait(b, be, tr, deliverytest.BenchWork(b, consumer, "u", gen), gen)
		}
		report(b)
	})
	b.Run("Unchanged", func(b *testing.B) {
		be, tr := setup(b)
		cleanup(b, be, func() []string { return []string{"same"} })
		applyAndWait(b, be, tr, deliverytest.BenchWork(b, consumer, "same", 1), 1)
		took = took[:0]
		w := deliverytest.BenchWork(b, consumer, "same", 1)
		for b.Loop() {
			applyAndWait(b, be, tr, w, 1)
		}
		report(b)
	})
}
