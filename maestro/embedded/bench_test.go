package embedded_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/embedded"
)

// benchWork is a work the size handlers build: a namespace and a
// deployment with status feedback.
func benchWork(b *testing.B, consumer, name string, gen int64) *workv1.ManifestWork {
	b.Helper()
	ns := map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "hf-" + name}}
	dep := map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "web", "namespace": "hf-" + name, "labels": map[string]any{"app": "web"}},
		"spec": map[string]any{"replicas": int64(2), "template": map[string]any{"spec": map[string]any{
			"containers": []any{map[string]any{"name": "web", "image": "quay.io/example/web:" + strconv.FormatInt(gen, 10)}},
		}}},
	}
	w := &workv1.ManifestWork{ObjectMeta: metav1.ObjectMeta{
		Name: name, Namespace: consumer,
		Labels:      map[string]string{maestro.LabelAdapter: "bench"},
		Annotations: map[string]string{maestro.AnnotationGeneration: strconv.FormatInt(gen, 10)},
	}}
	for _, m := range []map[string]any{ns, dep} {
		raw, err := json.Marshal(m)
		if err != nil {
			b.Fatal(err)
		}
		w.Spec.Workload.Manifests = append(w.Spec.Workload.Manifests, workv1.Manifest{RawExtension: runtime.RawExtension{Raw: raw}})
	}
	w.Spec.ManifestConfigs = []workv1.ManifestConfigOption{{
		ResourceIdentifier: workv1.ResourceIdentifier{Group: "apps", Resource: "deployments", Name: "web", Namespace: "hf-" + name},
		FeedbackRules: []workv1.FeedbackRule{{Type: workv1.JSONPathsType, JsonPaths: []workv1.JsonPath{
			{Name: "ready", Path: ".status.readyReplicas"},
		}}},
	}}
	return w
}

func appliedAt(gen int64) func(*workv1.ManifestWork) bool {
	want := strconv.FormatInt(gen, 10)
	return func(w *workv1.ManifestWork) bool {
		if w == nil || w.Annotations[maestro.AnnotationGeneration] != want {
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
		tr := maestro.NewTracker(be, logger)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = tr.Run(ctx) }()
		b.Cleanup(func() { cancel(); <-done; _ = be.Close() })
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
			applyAndWait(b, be, tr, benchWork(b, "cluster-a", "w"+strconv.Itoa(i), 1), 1)
			i++
		}
	})
	b.Run("Update", func(b *testing.B) {
		be, tr := setup(b)
		applyAndWait(b, be, tr, benchWork(b, "cluster-a", "w", 1), 1)
		b.ReportAllocs()
		gen := int64(1)
		for b.Loop() {
			gen++
			applyAndWait(b, be, tr, benchWork(b, "cluster-a", "w", gen), gen)
		}
	})
	b.Run("Unchanged", func(b *testing.B) {
		be, tr := setup(b)
		applyAndWait(b, be, tr, benchWork(b, "cluster-a", "w", 1), 1)
		w := benchWork(b, "cluster-a", "w", 1)
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
				applyAndWait(b, be, tr, benchWork(b, "cluster-"+strconv.FormatInt(i%4, 10), "w"+strconv.FormatInt(i, 10), 1), 1)
			}
		})
	})
}
