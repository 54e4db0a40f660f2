package agenttest_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/agenttest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/deliverytest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/maestrotest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/remote"
)

// deadline bounds each wait; the real agent takes well under a second to
// apply and a few to delete a namespace, on a busy 2-core machine too.
const deadline = 90 * time.Second

// TestRealAgentAppliesAndDeletes delivers a work holding a Namespace and a
// ConfigMap in it through the project's Maestro client to Maestro's real
// agent, checks the objects in the kube-apiserver and the feedback, then
// deletes the work: the Namespace must be gone completely (finalized by
// kube-controller-manager's namespace controller) and the watch must report
// the work Deleted.
func TestRealAgentAppliesAndDeletes(t *testing.T) {
	suffix := randomSuffix(t)
	consumer := "agenttest-" + suffix
	agents := agenttest.Start(t, consumer)
	cs, err := kubernetes.NewForConfig(agents.Kube)
	if err != nil {
		t.Fatal(err)
	}
	logger := maestrotest.SlogLogger(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	be, err := remote.New(ctx, remote.Options{
		GRPCEndpoint: agents.Maestro.GRPCEndpoint,
		HTTPEndpoint: agents.Maestro.HTTPEndpoint,
		SourceID:     "agenttest-" + suffix,
		Logger:       logger,
		Insecure:     true, // the local Maestro serves plaintext
	})
	if err != nil {
		t.Fatalf("remote.New: %v", err)
	}
	t.Cleanup(func() { _ = be.Close() })
	tracker := deliverytest.RunTracker(t, be, logger)

	ns := "agenttest-ns-" + suffix
	work := namespaceWork(t, consumer, "agenttest-"+suffix, ns)

	// Apply -> Applied and Available, with the namespace's phase fed back.
	applied := time.Now()
	exp := tracker.Expect(consumer, work.Name)
	stored, err := be.Apply(ctx, work)
	if err != nil {
		exp.Cancel()
		t.Fatalf("Apply: %v", err)
	}
	wctx, wcancel := context.WithTimeout(ctx, deadline)
	got, err := exp.Await(wctx, stored, availableWithPhase)
	wcancel()
	if err != nil {
		t.Fatalf("work %s/%s not Applied+Available with feedback from the real agent: %v; last seen %s",
			consumer, work.Name, err, describe(got))
	}
	t.Logf("apply -> Available (with feedback) through the real agent: %s", time.Since(applied).Round(time.Millisecond))

	// The objects are in the kube-apiserver, owned by the agent's
	// AppliedManifestWork.
	gotNS, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("namespace %s not in the kube-apiserver: %v", ns, err)
	}
	if gotNS.Labels["hyperfleet.io/test"] != suffix {
		t.Errorf("namespace %s labels = %v, want hyperfleet.io/test=%s", ns, gotNS.Labels, suffix)
	}
	if !ownedByAppliedManifestWork(gotNS.OwnerReferences) {
		t.Errorf("namespace %s owner references = %+v, want an AppliedManifestWork", ns, gotNS.OwnerReferences)
	}
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "settings", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("configmap %s/settings not in the kube-apiserver: %v", ns, err)
	}
	if cm.Data["greeting"] != "hello "+suffix {
		t.Errorf("configmap %s/settings data = %v, want greeting=%q", ns, cm.Data, "hello "+suffix)
	}

	// Delete -> the namespace goes completely, and the work is reported
	// Deleted.
	events := tracker.Subscribe(ctx)
	deleted := time.Now()
	if err := be.Delete(ctx, consumer, work.Name); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	// The namespace's own end is timed apart: the agent notices it on its
	// finalizer's exponential requeue (50 ms doubling), so the Deleted event
	// may come some seconds after.
	gone := make(chan error, 1)
	var nsGone time.Duration
	go func() {
		err := waitNamespaceGone(ctx, cs, ns, deadline)
		nsGone = time.Since(deleted)
		gone <- err
	}()
	var sawDeleted time.Duration
	timeout := time.After(deadline)
	for sawDeleted == 0 {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("tracker subscription closed early")
			}
			if ev.Type == watch.Deleted && ev.Work != nil && ev.Work.Namespace == consumer && ev.Work.Name == work.Name {
				sawDeleted = time.Since(deleted)
			}
		case <-timeout:
			nsNow, nsErr := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			t.Fatalf("no Deleted event for work %s/%s within %s; namespace %s: %s", consumer, work.Name, deadline, ns, nsState(nsNow, nsErr))
		}
	}
	if err := <-gone; err != nil {
		t.Fatal(err)
	}
	t.Logf("delete -> namespace NotFound after %s, work reported Deleted after %s through the real agent",
		nsGone.Round(time.Millisecond), sawDeleted.Round(time.Millisecond))
	// Maestro's REST API may still show the work for a moment after the
	// watch said Deleted; it must be gone soon after.
	until := time.Now().Add(10 * time.Second)
	for {
		_, err := be.Get(ctx, consumer, work.Name)
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(until) {
			t.Fatalf("Get 10 s after the Deleted event: error %v, want NotFound", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// namespaceWork is a work of a Namespace and a ConfigMap in it, with a
// feedback rule on the namespace's phase.
func namespaceWork(t *testing.T, consumer, name, ns string) *workv1.ManifestWork {
	t.Helper()
	suffix := name[len("agenttest-"):]
	manifests := []map[string]any{
		{
			"apiVersion": "v1", "kind": "Namespace",
			"metadata": map[string]any{"name": ns, "labels": map[string]any{"hyperfleet.io/test": suffix}},
		},
		{
			"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": "settings", "namespace": ns},
			"data":     map[string]any{"greeting": "hello " + suffix},
		},
	}
	w := &workv1.ManifestWork{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   consumer,
			Labels:      map[string]string{workmeta.LabelAdapter: "agenttest"},
			Annotations: map[string]string{workmeta.AnnotationGeneration: "1"},
		},
	}
	for _, m := range manifests {
		raw, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		w.Spec.Workload.Manifests = append(w.Spec.Workload.Manifests, workv1.Manifest{RawExtension: runtime.RawExtension{Raw: raw}})
	}
	w.Spec.ManifestConfigs = []workv1.ManifestConfigOption{{
		ResourceIdentifier: workv1.ResourceIdentifier{Resource: "namespaces", Name: ns},
		FeedbackRules: []workv1.FeedbackRule{{Type: workv1.JSONPathsType, JsonPaths: []workv1.JsonPath{
			{Name: "phase", Path: ".status.phase"},
		}}},
	}}
	return w
}

// availableWithPhase: Applied and Available True at the work's generation,
// and the namespace's phase fed back as Active.
func availableWithPhase(w *workv1.ManifestWork) bool {
	if w == nil {
		return false
	}
	for _, typ := range []string{workv1.WorkApplied, workv1.WorkAvailable} {
		c := apimeta.FindStatusCondition(w.Status.Conditions, typ)
		if c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != w.Generation {
			return false
		}
	}
	for _, m := range w.Status.ResourceStatus.Manifests {
		if m.ResourceMeta.Kind != "Namespace" {
			continue
		}
		for _, v := range m.StatusFeedbacks.Values {
			if v.Name == "phase" && v.Value.String != nil && *v.Value.String == string(corev1.NamespaceActive) {
				return true
			}
		}
	}
	return false
}

func ownedByAppliedManifestWork(refs []metav1.OwnerReference) bool {
	for _, r := range refs {
		if r.Kind == "AppliedManifestWork" && r.APIVersion == workv1.GroupVersion.String() {
			return true
		}
	}
	return false
}

// waitNamespaceGone polls until the namespace is NotFound.
func waitNamespaceGone(ctx context.Context, cs kubernetes.Interface, ns string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		got, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("namespace %s not gone within %s: %s\nkube-controller-manager about it:\n%s",
				ns, timeout, nsState(got, err), agenttest.ControllerManagerLines(ns, 20))
		case <-tick.C:
		}
	}
}

func nsState(ns *corev1.Namespace, err error) string {
	switch {
	case apierrors.IsNotFound(err):
		return "NotFound"
	case err != nil:
		return "error " + err.Error()
	default:
		return fmt.Sprintf("phase %s, deletionTimestamp %v, finalizers %v, conditions %+v",
			ns.Status.Phase, ns.DeletionTimestamp, ns.Spec.Finalizers, ns.Status.Conditions)
	}
}

func describe(w *workv1.ManifestWork) string {
	if w == nil {
		return "nothing (not found)"
	}
	b, _ := json.Marshal(w.Status)
	return fmt.Sprintf("generation %d, status %s", w.Generation, b)
}

func randomSuffix(t testing.TB) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
