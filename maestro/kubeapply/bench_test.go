package kubeapply_test

import (
	"context"
	"log/slog"
	"strconv"
	"testing"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/deliverytest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/jobs/kubetest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/kubeapply"
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

// BenchmarkKubernetesApply measures Apply followed by waiting (through a
// Tracker) until the work is reported applied at that generation, what the
// pipeline does per work, on the local kube-apiserver, with the namespace
// adapter's work (a Namespace and a ConfigMap in it, the namespace's phase
// fed back). deliverytest.BenchWork's Deployment has no selector, which a
// real API server refuses. Create makes a namespace per iteration: run it
// with a bounded -benchtime (e.g. 50x).
func BenchmarkKubernetesApply(b *testing.B) {
	logger := slog.New(slog.DiscardHandler)
	setup := func(b *testing.B) (*kubeapply.Delivery, *maestro.Tracker) {
		cfg := kubetest.Require(b)
		cs := kubernetes.NewForConfigOrDie(cfg)
		ns := kubetest.Namespace(b, cs)
		d, err := kubeapply.New(context.Background(), cfg, kubeapply.Options{Namespace: ns, FieldManager: "kubeapply-bench",
			DeletePropagation: metav1.DeletePropagationBackground, Logger: logger})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { deleteAllAndClose(b, cs, ns, d) })
		return d, deliverytest.RunTracker(b, d, logger)
	}
	applyAndWait := func(b *testing.B, d *kubeapply.Delivery, tr *maestro.Tracker, w *workv1.ManifestWork, gen int64) {
		ctx := context.Background()
		if _, err := d.Apply(ctx, w); err != nil {
			b.Fatal(err)
		}
		if _, err := tr.Await(ctx, w.Namespace, w.Name, appliedAt(gen)); err != nil {
			b.Fatal(err)
		}
	}
	prefix := randomName("b")

	b.Run("Create", func(b *testing.B) {
		d, tr := setup(b)
		i := 0
		for b.Loop() {
			applyAndWait(b, d, tr, benchWork(b, "cluster-a", prefix+"-"+strconv.Itoa(i), 1), 1)
			i++
		}
	})
	b.Run("Update", func(b *testing.B) {
		d, tr := setup(b)
		applyAndWait(b, d, tr, benchWork(b, "cluster-a", prefix+"-u", 1), 1)
		gen := int64(1)
		for b.Loop() {
			gen++
			applyAndWait(b, d, tr, benchWork(b, "cluster-a", prefix+"-u", gen), gen)
		}
	})
	b.Run("Unchanged", func(b *testing.B) {
		d, tr := setup(b)
		applyAndWait(b, d, tr, benchWork(b, "cluster-a", prefix+"-n", 1), 1)
		w := benchWork(b, "cluster-a", prefix+"-n", 1)
		for b.Loop() {
			applyAndWait(b, d, tr, w, 1)
		}
	})
}

func benchWork(b testing.TB, consumer, name string, gen int64) *workv1.ManifestWork {
	ns := "hf-" + name
	w := newWork(b, consumer, name, gen, namespace(ns),
		configMap(ns, "cluster-info", map[string]any{"generation": strconv.FormatInt(gen, 10)}))
	w.Spec.ManifestConfigs = []workv1.ManifestConfigOption{{
		ResourceIdentifier: workv1.ResourceIdentifier{Resource: "namespaces", Name: ns},
		FeedbackRules:      []workv1.FeedbackRule{{Type: workv1.JSONPathsType, JsonPaths: []workv1.JsonPath{{Name: "phase", Path: ".status.phase"}}}},
	}}
	return w
}
