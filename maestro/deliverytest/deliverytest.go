// The suite's entry (Env, Run) and the helpers its cases (cases.go) share.

// Package deliverytest is the conformance suite every maestro.Delivery
// backend runs: the embedded one, the real Maestro one, and whatever comes
// next. Each case states one promise of the Delivery interface (or of
// Maestro's semantics the pipeline relies on) and fails if the backend
// breaks it.
package deliverytest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
)

// Env describes the backend under test.
type Env struct {
	// Consumers are consumer names the backend delivers to (for a real
	// Maestro: registered consumers). At least one; with two or more the
	// suite also checks that works of different consumers stay apart.
	Consumers []string
	// Timeout bounds each wait for the agent: status after an apply, the
	// work gone after a delete. Default 10s.
	Timeout time.Duration
}

// Run runs the suite. newDelivery is called once per case and should
// register its own cleanup with t.Cleanup.
func Run(t *testing.T, newDelivery func(t *testing.T) (maestro.Delivery, Env)) {
	cases := []struct {
		name string
		f    func(t *testing.T, s *suite)
	}{
		{"CreateReportsStatusViaGetAndWatch", testCreate},
		{"ApplyingTheSameWorkTwiceDoesNotUpdate", testIdempotent},
		{"NewerGenerationUpdates", testNewerGeneration},
		{"StaleGenerationChangesNothing", testStaleGeneration},
		{"DeleteReportsDeleted", testDelete},
		{"DeletingAMissingWorkIsNil", testDeleteMissing},
		{"ManifestSetChangesEndWithExactlyTheNewSet", testManifestSetChange},
		{"ConcurrentAppliersEndAtTheNewerGeneration", testConcurrentAppliers},
		{"InvalidWorkIsPermanent", testInvalid},
		{"WatchClosesWhenContextEnds", testWatchCloses},
		{"ConsumersStayApart", testConsumersApart},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, env := newDelivery(t)
			if len(env.Consumers) == 0 {
				t.Fatal("deliverytest: Env.Consumers is empty")
			}
			if env.Timeout == 0 {
				env.Timeout = 10 * time.Second
			}
			c.f(t, &suite{d: d, env: env})
		})
	}
}

type suite struct {
	d   maestro.Delivery
	env Env
}

func (s *suite) consumer() string { return s.env.Consumers[0] }

// ctx is bounded by a few agent timeouts: no case should hang the run.
func (s *suite) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 6*s.env.Timeout)
	t.Cleanup(cancel)
	return ctx
}

// name returns a work name unique to this run, deleted at cleanup.
func (s *suite) name(t *testing.T, consumer string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "conformance-" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.env.Timeout)
		defer cancel()
		_ = s.d.Delete(ctx, consumer, name)
	})
	return name
}

// configMap is a manifest; its data carries the value that identifies a
// version of the work.
func configMap(name, value string) map[string]any {
	return map[string]any{
		"apiVersion": "v1",
		"kind":       "ConfigMap",
		"metadata":   map[string]any{"name": name, "namespace": "conformance"},
		"data":       map[string]any{"value": value},
	}
}

// newWork builds a work at a resource generation from manifests.
func newWork(t *testing.T, consumer, name string, gen int64, manifests ...map[string]any) *workv1.ManifestWork {
	t.Helper()
	w := &workv1.ManifestWork{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   consumer,
			Labels:      map[string]string{workmeta.LabelAdapter: "conformance"},
			Annotations: map[string]string{workmeta.AnnotationGeneration: strconv.FormatInt(gen, 10)},
		},
	}
	for _, m := range manifests {
		raw, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("encoding manifest: %v", err)
		}
		w.Spec.Workload.Manifests = append(w.Spec.Workload.Manifests, workv1.Manifest{RawExtension: runtime.RawExtension{Raw: raw}})
	}
	return w
}

// appliedAt reports whether w is applied and available at its current
// version and carries resource generation gen.
func appliedAt(w *workv1.ManifestWork, gen int64) bool {
	if w == nil || w.Annotations[workmeta.AnnotationGeneration] != strconv.FormatInt(gen, 10) {
		return false
	}
	for _, t := range []string{workv1.WorkApplied, workv1.WorkAvailable} {
		c := apimeta.FindStatusCondition(w.Status.Conditions, t)
		if c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != w.Generation {
			return false
		}
	}
	return true
}

// waitGet polls Get until ok accepts the result (nil: not found), failing
// the test after Timeout.
func (s *suite) waitGet(t *testing.T, ctx context.Context, consumer, name, what string, ok func(*workv1.ManifestWork) bool) *workv1.ManifestWork {
	t.Helper()
	deadline := time.Now().Add(s.env.Timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	var last *workv1.ManifestWork
	var lastErr error
	for {
		w, err := s.d.Get(ctx, consumer, name)
		switch {
		case apierrors.IsNotFound(err):
			w, err = nil, nil
			fallthrough
		case err == nil:
			if ok(w) {
				return w
			}
			last = w
		default:
			lastErr = err
		}
		if time.Now().After(deadline) {
			t.Fatalf("work %s/%s: %s: not within %s; last seen %s, last error %v", consumer, name, what, s.env.Timeout, describe(last), lastErr)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("work %s/%s: %s: %v", consumer, name, what, ctx.Err())
		case <-tick.C:
		}
	}
}

func (s *suite) waitApplied(t *testing.T, ctx context.Context, consumer, name string, gen int64) *workv1.ManifestWork {
	t.Helper()
	return s.waitGet(t, ctx, consumer, name, fmt.Sprintf("applied at generation %d", gen),
		func(w *workv1.ManifestWork) bool { return appliedAt(w, gen) })
}

func (s *suite) apply(t *testing.T, ctx context.Context, w *workv1.ManifestWork) *workv1.ManifestWork {
	t.Helper()
	got, err := s.d.Apply(ctx, w)
	if err != nil {
		t.Fatalf("Apply %s/%s: %v", w.Namespace, w.Name, err)
	}
	if got == nil {
		t.Fatalf("Apply %s/%s returned no work", w.Namespace, w.Name)
	}
	return got
}

func describe(w *workv1.ManifestWork) string {
	if w == nil {
		return "nothing (not found)"
	}
	var conds []string
	for _, c := range w.Status.Conditions {
		conds = append(conds, fmt.Sprintf("%s=%s@%d", c.Type, c.Status, c.ObservedGeneration))
	}
	return fmt.Sprintf("generation %d, resource generation %s, manifests %v, conditions %v",
		w.Generation, w.Annotations[workmeta.AnnotationGeneration], manifestNames(w), conds)
}

// manifestNames lists the manifests' names in order.
func manifestNames(w *workv1.ManifestWork) []string {
	var out []string
	for _, m := range w.Spec.Workload.Manifests {
		var obj struct {
			Metadata struct{ Name string } `json:"metadata"`
		}
		_ = json.Unmarshal(m.Raw, &obj)
		out = append(out, obj.Metadata.Name)
	}
	return out
}

// dataValue is data.value of the work's first manifest.
func dataValue(w *workv1.ManifestWork) string {
	if len(w.Spec.Workload.Manifests) == 0 {
		return ""
	}
	var obj struct {
		Data map[string]string `json:"data"`
	}
	_ = json.Unmarshal(w.Spec.Workload.Manifests[0].Raw, &obj)
	return obj.Data["value"]
}
