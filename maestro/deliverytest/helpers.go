package deliverytest

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
)

// BenchWork is the work the backends' benchmarks apply, the size handlers
// build: a namespace and a deployment with status feedback, its image
// tagged with gen so that every generation changes the spec.
func BenchWork(b testing.TB, consumer, name string, gen int64) *workv1.ManifestWork {
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
		Labels:      map[string]string{workmeta.LabelAdapter: "bench"},
		Annotations: map[string]string{workmeta.AnnotationGeneration: strconv.FormatInt(gen, 10)},
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

// RunTracker runs a Tracker on d for the rest of the test or benchmark: it
// is stopped, and waited for, when tb ends.
func RunTracker(tb testing.TB, d maestro.Delivery, log *slog.Logger) *maestro.Tracker {
	tr := maestro.NewTracker(d, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = tr.Run(ctx) }()
	tb.Cleanup(func() { cancel(); <-done })
	return tr
}
