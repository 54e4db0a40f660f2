package maestrotest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	workv1 "open-cluster-management.io/api/work/v1"
)

// These tests need no Maestro server.

func TestGuessResource(t *testing.T) {
	for kind, want := range map[string]string{
		"Deployment": "deployments", "Namespace": "namespaces", "Ingress": "ingresses",
		"NetworkPolicy": "networkpolicies", "Gateway": "gateways", "Endpoints": "endpoints", "": "",
	} {
		if got := guessResource(kind); got != want {
			t.Errorf("guessResource(%q) = %q, want %q", kind, got, want)
		}
	}
}

func testWork(gen int64, manifests ...map[string]interface{}) *workv1.ManifestWork {
	w := &workv1.ManifestWork{ObjectMeta: metav1.ObjectMeta{Name: "w", Namespace: "c", UID: "uid-1", Generation: gen}}
	for _, m := range manifests {
		u := unstructured.Unstructured{Object: m}
		raw, _ := u.MarshalJSON()
		w.Spec.Workload.Manifests = append(w.Spec.Workload.Manifests, workv1.Manifest{RawExtension: runtime.RawExtension{Raw: raw}})
	}
	return w
}

// The store must not let a status patch that was in flight write an older
// generation, or a non-deleting copy, over what the server sent since.
func TestAgentStoreRefusesStaleWrites(t *testing.T) {
	var notified []string
	s := newAgentStore(func(name string) { notified = append(notified, name) })
	ctx := context.Background()

	if err := s.HandleReceivedResource(ctx, testWork(1)); err != nil {
		t.Fatal(err)
	}
	inFlight, _, _ := s.Get(ctx, "c", "w") // what a status patch read
	if err := s.HandleReceivedResource(ctx, testWork(2)); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(inFlight); err == nil {
		t.Fatal("update with generation 1 over generation 2 was accepted")
	}

	current, _, _ := s.Get(ctx, "c", "w")
	deleting := testWork(2)
	deleting.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	deleting.Finalizers = []string{workv1.ManifestWorkFinalizer}
	if err := s.HandleReceivedResource(ctx, deleting); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(current); err == nil {
		t.Fatal("update that undoes a deletion was accepted")
	}
	got, ok, _ := s.Get(ctx, "c", "w")
	if !ok || got.DeletionTimestamp.IsZero() || len(got.Finalizers) != 1 {
		t.Fatalf("stored work = %+v, want it deleting with the finalizer", got)
	}
	if len(notified) != 3 {
		t.Errorf("notified %v, want one notification per received work", notified)
	}

	// A deletion without finalizers leaves the work deleting for the SDK's
	// deletion loop, which publishes Deleted and then calls Delete.
	gone := deleting.DeepCopy()
	gone.Finalizers = nil
	if err := s.HandleReceivedResource(ctx, gone); err != nil {
		t.Fatal(err)
	}
	if got, ok, _ := s.Get(ctx, "c", "w"); !ok || got.DeletionTimestamp.IsZero() || len(got.Finalizers) != 0 {
		t.Fatalf("stored work = %+v, want it deleting without finalizers", got)
	}
	if err := s.Delete(gone); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Get(ctx, "c", "w"); ok {
		t.Fatal("work still stored after the deletion loop deleted it")
	}
}

// A deletion of a work the agent never received must still be confirmed,
// as the SDK's store does, or Maestro keeps the work deleting for ever.
func TestAgentStoreKeepsDeletionsOfUnknownWorks(t *testing.T) {
	var notified []string
	s := newAgentStore(func(name string) { notified = append(notified, name) })
	ctx := context.Background()

	deleting := testWork(3)
	deleting.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	deleting.Finalizers = []string{workv1.ManifestWorkFinalizer}
	if err := s.HandleReceivedResource(ctx, deleting); err != nil {
		t.Fatal(err)
	}
	got, ok, _ := s.Get(ctx, "c", "w")
	if !ok || got.DeletionTimestamp.IsZero() || len(got.Finalizers) != 1 {
		t.Fatalf("stored work = %+v (stored %v), want it deleting with the finalizer", got, ok)
	}
	if !slices.Equal(notified, []string{"w"}) {
		t.Errorf("notified %v, want the agent told about the deletion", notified)
	}
}

// The SDK's deletion loop deletes a work it listed while deleting; if the
// source has created it anew since, the new incarnation must stay.
func TestAgentStoreDeleteKeepsARecreatedWork(t *testing.T) {
	s := newAgentStore(func(string) {})
	ctx := context.Background()

	deleting := testWork(2)
	deleting.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	if err := s.HandleReceivedResource(ctx, deleting); err != nil {
		t.Fatal(err)
	}
	listed, _, _ := s.Get(ctx, "c", "w")                               // what the deletion loop and a finalizer removal read
	if err := s.HandleReceivedResource(ctx, testWork(1)); err != nil { // created anew
		t.Fatal(err)
	}
	if err := s.Update(listed); err == nil {
		t.Fatal("a finalizer removal of the old incarnation overwrote the new one")
	}
	if err := s.Delete(listed); err != nil {
		t.Fatal(err)
	}
	got, ok, _ := s.Get(ctx, "c", "w")
	if !ok || !got.DeletionTimestamp.IsZero() || got.Generation != 1 {
		t.Fatalf("stored work = %+v (stored %v), want the new incarnation at generation 1", got, ok)
	}
}

func TestBuildStatus(t *testing.T) {
	deploy := map[string]interface{}{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]interface{}{"name": "web", "namespace": "ns"},
		"spec":     map[string]interface{}{"replicas": int64(2)},
	}
	w := testWork(4, deploy)
	w.Spec.ManifestConfigs = []workv1.ManifestConfigOption{{
		ResourceIdentifier: workv1.ResourceIdentifier{Group: "apps", Resource: "deployments", Name: "web", Namespace: "ns"},
		FeedbackRules: []workv1.FeedbackRule{{Type: workv1.JSONPathsType, JsonPaths: []workv1.JsonPath{
			{Name: "ready", Path: ".status.readyReplicas"}, {Name: "conditions", Path: ".status.conditions"},
		}}},
	}}
	a := &Agent{opts: AgentOptions{Logf: t.Logf}}

	st := a.buildStatus(w)
	for _, typ := range []string{workv1.WorkApplied, workv1.WorkAvailable} {
		c := meta.FindStatusCondition(st.Conditions, typ)
		if c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != 4 {
			t.Errorf("%s = %+v", typ, c)
		}
	}
	if len(st.ResourceStatus.Manifests) != 1 {
		t.Fatalf("manifests = %+v", st.ResourceStatus.Manifests)
	}
	m := st.ResourceStatus.Manifests[0]
	if m.ResourceMeta.Resource != "deployments" || m.ResourceMeta.Group != "apps" || m.ResourceMeta.Name != "web" {
		t.Errorf("resource meta = %+v", m.ResourceMeta)
	}
	if len(m.StatusFeedbacks.Values) != 2 || *m.StatusFeedbacks.Values[0].Value.Integer != 2 ||
		m.StatusFeedbacks.Values[1].Value.Type != workv1.JsonRaw {
		t.Errorf("feedback = %+v", m.StatusFeedbacks.Values)
	}
	if c := meta.FindStatusCondition(m.Conditions, ConditionFeedbackSynced); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("%s = %+v, want True", ConditionFeedbackSynced, c)
	}
	// A rule that cannot be evaluated: the other values still come, and
	// the condition says what failed.
	w.Spec.ManifestConfigs[0].FeedbackRules[0].JsonPaths = append(w.Spec.ManifestConfigs[0].FeedbackRules[0].JsonPaths,
		workv1.JsonPath{Name: "bad", Path: ".status[?("})
	m = a.buildStatus(w).ResourceStatus.Manifests[0]
	if c := meta.FindStatusCondition(m.Conditions, ConditionFeedbackSynced); c == nil || c.Status != metav1.ConditionFalse ||
		!strings.Contains(c.Message, "bad") || len(m.StatusFeedbacks.Values) != 2 {
		t.Errorf("with an unparsable path: %s = %+v, feedback %+v", ConditionFeedbackSynced, c, m.StatusFeedbacks.Values)
	}

	a.opts.Fail = func(*workv1.ManifestWork) error { return errors.New("quota exceeded") }
	st = a.buildStatus(w)
	if c := meta.FindStatusCondition(st.Conditions, workv1.WorkApplied); c == nil || c.Status != metav1.ConditionFalse || c.Message != "quota exceeded" {
		t.Errorf("Applied on failure = %+v", c)
	}

	a.opts.Fail = func(*workv1.ManifestWork) error { return Degraded("slow") }
	st = a.buildStatus(w)
	if c := meta.FindStatusCondition(st.Conditions, workv1.WorkDegraded); c == nil || c.Status != metav1.ConditionTrue || c.Message != "slow" {
		t.Errorf("Degraded = %+v", c)
	}
	if !meta.IsStatusConditionTrue(st.Conditions, workv1.WorkAvailable) {
		t.Errorf("a degraded work should stay Available: %+v", st.Conditions)
	}
}

func TestEndpoints(t *testing.T) {
	t.Setenv(EnvHTTPEndpoint, "http://127.0.0.1:1/")
	t.Setenv(EnvGRPCEndpoint, "127.0.0.1:2")
	t.Setenv(EnvGRPCBrokerEndpoint, "")
	if _, ok := Endpoints(); ok {
		t.Fatal("Endpoints ok without a broker endpoint")
	}
	t.Setenv(EnvGRPCBrokerEndpoint, "127.0.0.1:3")
	e, ok := Endpoints()
	if !ok || e.HTTPEndpoint != "http://127.0.0.1:1" || e.GRPCBrokerEndpoint != "127.0.0.1:3" {
		t.Fatalf("Endpoints() = %+v, %v", e, ok)
	}
}
