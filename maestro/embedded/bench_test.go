package embedded_test

import (
	"context"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/deliverytest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/embedded"
)

func appliedAt(gen int64) func(*workv1.ManifestWork) bool {
	want := strconv.FormatInt(gen, 10)
	return func(w *workv1.ManifestWork) bool {
		if w == nil || w.Annotations[workmeta.AnnotationGeneration] != want {
			return false
		}
		c := apimeta.FindStatusCondition(w.Status.Conditions, workv1.WorkApplied)
		return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == w.Generation
	}
}

// BenchmarkEmbeddedApply measures Apply followed by waiting (through a
// Tracker) until the agent reports the work applied at that generation:
// what the pipeline does per work.
func BenchmarkEmbeddedApply(b *testing.B) {
	logger := slog.New(slog.DiscardHandler)
	setup := func(b *testing.B) (*embedded.Backend, *maestro.Tracker) {
		be, err := embedded.New(embedded.Options{Logger: logger})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = be.Close() })
		tr := deliverytest.RunTracker(b, be, logger)
		return be, tr
	}
	applyAndWait := func(b *testing.B, be *embedded.Backend, tr *maestro.Tracker, w *workv1.ManifestWork, gen int64) {
		ctx := context.Background()
		if _, err := be.Apply(ctx, w); err != nil {
			b.Fatal(err)
		}
		if _, err := tr.Await(ctx, w.Namespace, w.Name, appliedAt(gen)); err != nil {
			b.Fatal(err)
		}
	}

	b.Run("Create", func(b *testing.B) {
		be, tr := setup(b)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			applyAndWait(b, be, tr, deliverytest.BenchWork(b, "cluster-a", "w"+strconv.Itoa(i), 1), 1)
			i++
		}
	})
	b.Run("Update", func(b *testing.B) {
		be, tr := setup(b)
		applyAndWait(b, be, tr, deliverytest.BenchWork(b, "cluster-a", "w", 1), 1)
		b.ReportAllocs()
		gen := int64(1)
		for b.Loop() {
			gen++
			applyAndWait(b, be, tr, deliverytest.BenchWork(b, "cluster-a", "w", gen), gen)
		}
	})
	b.Run("Unchanged", func(b *testing.B) {
		be, tr := setup(b)
		applyAndWait(b, be, tr, deliverytest.BenchWork(b, "cluster-a", "w", 1), 1)
		w := deliverytest.BenchWork(b, "cluster-a", "w", 1)
		b.ReportAllocs()
		for b.Loop() {
			applyAndWait(b, be, tr, w, 1)
		}
	})
	b.Run("CreateParallel", func(b *testing.B) {
		be, tr := setup(b)
		var n atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := n.Add(1)
				applyAndWait(b, be, tr, deliverytest.BenchWork(b, "cluster-"+strconv.FormatInt(i%4, 10), "w"+strconv.FormatInt(i, 10), 1), 1)
			}
		})
	})
}
