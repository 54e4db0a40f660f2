package feedback

import (
	"strconv"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	workv1 "open-cluster-management.io/api/work/v1"
)

// These tests need no cluster.

// Value reads the whole object, as the real agent's StatusReader does
// (TestRealAgentFeedbackMatchesStandIn in maestro/agenttest compares the
// two on a real cluster).
func TestValue(t *testing.T) {
	obj := map[string]interface{}{
		"apiVersion": "v1", "kind": "Thing",
		"metadata": map[string]interface{}{"name": "t1"},
		"status": map[string]interface{}{
			"phase":         "Running",
			"readyReplicas": int64(3),
			"half":          float64(0.5),
			"ready":         true,
			"nothing":       nil,
			"big":           strings.Repeat("x", MaxJSONBytes),
			"conditions": []interface{}{
				map[string]interface{}{"type": "Ready", "status": "True"},
				map[string]interface{}{"type": "Complete", "status": "False"},
			},
		},
	}
	for _, c := range []struct {
		path string
		want *workv1.FieldValue // nil: no value
		err  bool
	}{
		{path: ".status.phase", want: &workv1.FieldValue{Type: workv1.String, String: ptr("Running")}},
		{path: ".metadata.name", want: &workv1.FieldValue{Type: workv1.String, String: ptr("t1")}},
		{path: ".status.readyReplicas", want: &workv1.FieldValue{Type: workv1.Integer, Integer: ptr(int64(3))}},
		{path: ".status.ready", want: &workv1.FieldValue{Type: workv1.Boolean, Boolean: ptr(true)}},
		{path: ".status.half", want: &workv1.FieldValue{Type: workv1.JsonRaw, JsonRaw: ptr("0.5")}},
		{path: `.status.conditions[?(@.type=="Ready")].status`, want: &workv1.FieldValue{Type: workv1.String, String: ptr("True")}},
		{path: ".status.conditions[1]", want: &workv1.FieldValue{Type: workv1.JsonRaw, JsonRaw: ptr(`{"status":"False","type":"Complete"}`)}},
		{path: ".status.conditions[*].status", want: &workv1.FieldValue{Type: workv1.JsonRaw, JsonRaw: ptr(`["True","False"]`)}},
		{path: ".phase"},                           // relative to status: nothing at the top
		{path: ".status.missing"},                  // no value, no error
		{path: ".status.nothing"},                  // null
		{path: ".status", err: true},               // over MaxJSONBytes
		{path: ".status.conditions[?(", err: true}, // does not parse
	} {
		got, err := Value(obj, workv1.JsonPath{Name: "v", Path: c.path})
		if (err != nil) != c.err {
			t.Errorf("Value(%q) error %v, want error %v", c.path, err, c.err)
			continue
		}
		switch {
		case c.want == nil && got != nil:
			t.Errorf("Value(%q) = %s, want no value", c.path, show(got.Value))
		case c.want != nil && (got == nil || !equalFieldValue(got.Value, *c.want)):
			t.Errorf("Value(%q) = %+v, want %s", c.path, got, show(*c.want))
		}
	}
}

func ptr[T any](v T) *T { return &v }

func equalFieldValue(a, b workv1.FieldValue) bool {
	return show(a) == show(b)
}

func show(v workv1.FieldValue) string {
	switch {
	case v.String != nil:
		return string(v.Type) + ":" + *v.String
	case v.JsonRaw != nil:
		return string(v.Type) + ":" + *v.JsonRaw
	case v.Integer != nil:
		return string(v.Type) + ":" + strconv.FormatInt(*v.Integer, 10)
	case v.Boolean != nil:
		if *v.Boolean {
			return string(v.Type) + ":true"
		}
		return string(v.Type) + ":false"
	}
	return string(v.Type) + ":<nil>"
}

// Rules matches as the agent does: group and resource exactly, name and
// namespace exactly or by "*".
func TestRules(t *testing.T) {
	rule := func(name string) workv1.FeedbackRule {
		return workv1.FeedbackRule{Type: workv1.JSONPathsType, JsonPaths: []workv1.JsonPath{{Name: name, Path: ".status"}}}
	}
	configs := []workv1.ManifestConfigOption{
		{ResourceIdentifier: workv1.ResourceIdentifier{Group: "apps", Resource: "deployments", Name: "web", Namespace: "ns"}, FeedbackRules: []workv1.FeedbackRule{rule("exact")}},
		{ResourceIdentifier: workv1.ResourceIdentifier{Group: "apps", Resource: "deployments", Name: "*", Namespace: "*"}, FeedbackRules: []workv1.FeedbackRule{rule("any")}},
		{ResourceIdentifier: workv1.ResourceIdentifier{Resource: "deployments", Name: "web", Namespace: "ns"}, FeedbackRules: []workv1.FeedbackRule{rule("core")}},
	}
	var names []string
	for _, r := range Rules(configs, Resource{Group: "apps", Resource: "deployments", Name: "web", Namespace: "ns"}) {
		names = append(names, r.JsonPaths[0].Name)
	}
	if strings.Join(names, ",") != "exact,any" {
		t.Errorf("rules for apps/deployments ns/web = %v, want exact,any", names)
	}
	if got := Rules(configs, Resource{Group: "apps", Resource: "statefulsets", Name: "web", Namespace: "ns"}); len(got) != 0 {
		t.Errorf("rules for a statefulset = %+v, want none", got)
	}
}

// Evaluate derives StatusFeedbackSynced as the agent does.
func TestEvaluateCondition(t *testing.T) {
	deploy := map[string]interface{}{"status": map[string]interface{}{"replicas": int64(2), "readyReplicas": int64(2)}}
	gvk := schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}

	_, c, err := Evaluate(deploy, gvk, nil)
	if err != nil || c.Type != ConditionSynced || c.Status != metav1.ConditionTrue || c.Reason != "NoStatusFeedbackSynced" {
		t.Errorf("no rules: %+v, %v; want True NoStatusFeedbackSynced", c, err)
	}

	res, c, err := Evaluate(deploy, gvk, []workv1.FeedbackRule{{Type: workv1.WellKnownStatusType}})
	if err != nil || c.Status != metav1.ConditionTrue || c.Reason != "StatusFeedbackSynced" || len(res.Values) != 2 {
		t.Errorf("well-known: %+v, %+v, %v; want True StatusFeedbackSynced with 2 values", res, c, err)
	}

	res, c, err = Evaluate(deploy, gvk, []workv1.FeedbackRule{{Type: workv1.JSONPathsType, JsonPaths: []workv1.JsonPath{
		{Name: "replicas", Path: ".status.replicas"},
		{Name: "bad", Path: ".status[?("},
		{Name: "old", Path: ".status.replicas", Version: "v1beta1"},
	}}})
	if err == nil || c.Status != metav1.ConditionFalse || c.Reason != "StatusFeedbackSyncFailed" ||
		!strings.HasPrefix(c.Message, "Sync status feedback failed with error [") ||
		!strings.Contains(c.Message, "bad") || !strings.Contains(c.Message, "old") {
		t.Errorf("failing rules: %+v, %v; want False StatusFeedbackSyncFailed naming bad and old", c, err)
	}
	if len(res.Values) != 1 || res.Values[0].Name != "replicas" {
		t.Errorf("failing rules: values %+v, want the good one (replicas)", res.Values)
	}
}
