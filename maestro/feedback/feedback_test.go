package feedback

import (
	"strconv"
	"strings"
	"testing"

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
