package embedded_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro/embedded"
)

func applied(w *workv1.ManifestWork) bool {
	c := apimeta.FindStatusCondition(w.Status.Conditions, workv1.WorkApplied)
	return c != nil && c.ObservedGeneration == w.Generation
}

func deployment(name string, replicas int64, status map[string]any) map[string]any {
	d := map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": name, "namespace": "ns"},
		"spec":     map[string]any{"replicas": replicas},
	}
	if status != nil {
		d["status"] = status
	}
	return d
}

func feedbackConfig(group, resource, name string, rules ...workv1.FeedbackRule) workv1.ManifestConfigOption {
	return workv1.ManifestConfigOption{
		ResourceIdentifier: workv1.ResourceIdentifier{Group: group, Resource: resource, Name: name, Namespace: "ns"},
		FeedbackRules:      rules,
	}
}

func jsonPaths(paths ...workv1.JsonPath) workv1.FeedbackRule {
	return workv1.FeedbackRule{Type: workv1.JSONPathsType, JsonPaths: paths}
}

func values(m workv1.ManifestCondition) map[string]workv1.FieldValue {
	out := map[string]workv1.FieldValue{}
	for _, v := range m.StatusFeedbacks.Values {
		out[v.Name] = v.Value
	}
	return out
}

func TestAgentReportsStatusAndFeedback(t *testing.T) {
	s := newStore(t, embedded.StoreOptions{})
	c := s.ManifestWorks("cluster-a")
	w := work(t, "cluster-a", "w1",
		deployment("web", 3, nil),
		cm("settings"),
		deployment("own-status", 1, map[string]any{"readyReplicas": int64(0), "phase": "Pending"}),
	)
	w.Spec.ManifestConfigs = []workv1.ManifestConfigOption{
		feedbackConfig("apps", "deployments", "web",
			jsonPaths(
				workv1.JsonPath{Name: "ready", Path: ".status.readyReplicas"},
				workv1.JsonPath{Name: "available", Path: `.status.conditions[?(@.type=="Available")].status`},
				workv1.JsonPath{Name: "status", Path: ".status"},
				workv1.JsonPath{Name: "missing", Path: ".status.nothingHere"},
			),
			workv1.FeedbackRule{Type: workv1.WellKnownStatusType},
		),
		feedbackConfig("apps", "deployments", "own-status",
			jsonPaths(workv1.JsonPath{Name: "ready", Path: ".status.readyReplicas"}, workv1.JsonPath{Name: "phase", Path: ".status.phase"})),
	}
	mustCreate(t, c, w)
	runAgent(t, s, embedded.AgentOptions{})
	got := waitStored(t, c, "w1", applied)

	for _, typ := range []string{workv1.WorkApplied, workv1.WorkAvailable} {
		cond := apimeta.FindStatusCondition(got.Status.Conditions, typ)
		if cond == nil || cond.Status != metav1.ConditionTrue || cond.ObservedGeneration != got.Generation {
			t.Fatalf("%s condition %+v, want True at generation %d", typ, cond, got.Generation)
		}
	}
	if apimeta.IsStatusConditionTrue(got.Status.Conditions, workv1.WorkDegraded) {
		t.Fatal("Degraded on success")
	}
	ms := got.Status.ResourceStatus.Manifests
	if len(ms) != 3 {
		t.Fatalf("%d manifest statuses, want 3", len(ms))
	}
	web, settings, own := ms[0], ms[1], ms[2]
	if web.ResourceMeta != (workv1.ManifestResourceMeta{Ordinal: 0, Group: "apps", Version: "v1", Kind: "Deployment", Resource: "deployments", Name: "web", Namespace: "ns"}) {
		t.Errorf("resource meta %+v", web.ResourceMeta)
	}
	if settings.ResourceMeta.Resource != "configmaps" || settings.ResourceMeta.Ordinal != 1 {
		t.Errorf("resource meta %+v", settings.ResourceMeta)
	}
	if !apimeta.IsStatusConditionTrue(settings.Conditions, workv1.ManifestApplied) || !apimeta.IsStatusConditionTrue(settings.Conditions, workv1.ManifestAvailable) {
		t.Errorf("configmap conditions %+v", settings.Conditions)
	}
	// As Maestro's real agent: no rules, no values, and StatusFeedbackSynced
	// True with reason NoStatusFeedbackSynced.
	if len(settings.StatusFeedbacks.Values) != 0 {
		t.Errorf("configmap without feedback rules got feedback %+v", settings.StatusFeedbacks)
	}
	if c := apimeta.FindStatusCondition(settings.Conditions, "StatusFeedbackSynced"); c == nil || c.Status != metav1.ConditionTrue || c.Reason != "NoStatusFeedbackSynced" {
		t.Errorf("configmap without feedback rules: StatusFeedbackSynced = %+v, want True NoStatusFeedbackSynced", c)
	}

	v := values(web)
	if r := v["ready"]; r.Type != workv1.Integer || r.Integer == nil || *r.Integer != 3 {
		t.Errorf("ready = %+v, want Integer 3 (spec.replicas)", r)
	}
	if a := v["available"]; a.Type != workv1.String || a.String == nil || *a.String != "True" {
		t.Errorf("available = %+v, want String True", a)
	}
	if st := v["status"]; st.Type != workv1.JsonRaw || st.JsonRaw == nil {
		t.Errorf("status = %+v, want JsonRaw", st)
	} else {
		var obj map[string]any
		if err := json.Unmarshal([]byte(*st.JsonRaw), &obj); err != nil || obj["readyReplicas"] != float64(3) {
			t.Errorf("status JsonRaw %s does not hold readyReplicas 3 (%v)", *st.JsonRaw, err)
		}
	}
	if _, ok := v["missing"]; ok {
		t.Error("a path to nothing produced a value")
	}
	for _, name := range []string{"ReadyReplicas", "Replicas", "AvailableReplicas"} {
		if x := v[name]; x.Integer == nil || *x.Integer != 3 {
			t.Errorf("well-known %s = %+v, want 3", name, x)
		}
	}
	if !apimeta.IsStatusConditionTrue(web.Conditions, "StatusFeedbackSynced") {
		t.Errorf("StatusFeedbackSynced not True: %+v", web.Conditions)
	}

	// A manifest carrying its own status reports that.
	ov := values(own)
	if r := ov["ready"]; r.Integer == nil || *r.Integer != 0 {
		t.Errorf("own status ready = %+v, want 0", r)
	}
	if p := ov["phase"]; p.String == nil || *p.String != "Pending" {
		t.Errorf("own status phase = %+v, want Pending", p)
	}

	// A new generation is observed at that generation; unchanged condition
	// times are kept.
	before := apimeta.FindStatusCondition(got.Status.Conditions, workv1.WorkApplied).LastTransitionTime
	if _, err := c.Patch(context.Background(), "w1", types.MergePatchType, []byte(`{"metadata":{"labels":{"x":"y"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	got = waitStored(t, c, "w1", func(w *workv1.ManifestWork) bool { return w.Generation == 2 && applied(w) })
	if after := apimeta.FindStatusCondition(got.Status.Conditions, workv1.WorkApplied).LastTransitionTime; !after.Equal(&before) {
		t.Errorf("Applied lastTransitionTime moved from %s to %s without a transition", before, after)
	}
}

func TestAgentInjectedFailure(t *testing.T) {
	s := newStore(t, embedded.StoreOptions{})
	c := s.ManifestWorks("cluster-a")
	boom := errors.New("admission webhook denied the request")
	mustCreate(t, c, work(t, "cluster-a", "bad", cm("a")))
	mustCreate(t, c, work(t, "cluster-a", "good", cm("a")))
	runAgent(t, s, embedded.AgentOptions{Fail: func(w *workv1.ManifestWork) error {
		if w.Name == "bad" {
			return boom
		}
		return nil
	}})

	got := waitStored(t, c, "bad", applied)
	ap := apimeta.FindStatusCondition(got.Status.Conditions, workv1.WorkApplied)
	dg := apimeta.FindStatusCondition(got.Status.Conditions, workv1.WorkDegraded)
	if ap.Status != metav1.ConditionFalse || ap.Message != boom.Error() {
		t.Errorf("Applied %+v, want False with the failure's message", ap)
	}
	if dg == nil || dg.Status != metav1.ConditionTrue || dg.Message != boom.Error() {
		t.Errorf("Degraded %+v, want True with the failure's message", dg)
	}
	if apimeta.IsStatusConditionTrue(got.Status.Conditions, workv1.WorkAvailable) {
		t.Error("never-applied work reported Available")
	}
	if m := got.Status.ResourceStatus.Manifests[0]; apimeta.IsStatusConditionTrue(m.Conditions, workv1.ManifestApplied) {
		t.Errorf("manifest Applied on failure: %+v", m.Conditions)
	}
	if g := waitStored(t, c, "good", applied); !apimeta.IsStatusConditionTrue(g.Status.Conditions, workv1.WorkApplied) {
		t.Error("the failure leaked to another work")
	}
}

func TestAgentDelay(t *testing.T) {
	s := newStore(t, embedded.StoreOptions{})
	c := s.ManifestWorks("cluster-a")
	const delay = 50 * time.Millisecond
	runAgent(t, s, embedded.AgentOptions{Delay: delay})
	start := time.Now()
	mustCreate(t, c, work(t, "cluster-a", "w1", cm("a")))
	waitStored(t, c, "w1", applied)
	if took := time.Since(start); took < delay {
		t.Fatalf("status after %s, before the %s delay", took, delay)
	}
}

func TestAgentPicksUpWorksCreatedBeforeItStarted(t *testing.T) {
	s := newStore(t, embedded.StoreOptions{})
	c := s.ManifestWorks("cluster-a")
	mustCreate(t, c, work(t, "cluster-a", "early", cm("a")))
	if err := c.Delete(context.Background(), "early", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, c, work(t, "cluster-a", "kept", cm("a")))
	if w := mustGet(t, c, "kept"); len(w.Status.Conditions) != 0 {
		t.Fatalf("status %+v without an agent", w.Status.Conditions)
	}
	runAgent(t, s, embedded.AgentOptions{})
	waitStored(t, c, "kept", applied)
	// The deletion requested while no agent ran is confirmed too.
	waitGone(t, c, "early")
}
