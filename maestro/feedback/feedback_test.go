package feedback

import (
	"math/rand/v2"
	"regexp"
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

// Rules resolves as the agent does (OCM's FindManifestConfiguration): the
// feedback rules of the first matching config that has any, never those of
// several; group and resource exactly, name and namespace exactly or as a
// "*" pattern.
func TestRules(t *testing.T) {
	rule := func(name string) workv1.FeedbackRule {
		return workv1.FeedbackRule{Type: workv1.JSONPathsType, JsonPaths: []workv1.JsonPath{{Name: name, Path: ".status"}}}
	}
	id := func(group, resource, ns, name string) workv1.ResourceIdentifier {
		return workv1.ResourceIdentifier{Group: group, Resource: resource, Namespace: ns, Name: name}
	}
	strategy := &workv1.UpdateStrategy{Type: workv1.UpdateStrategyTypeServerSideApply}
	configs := []workv1.ManifestConfigOption{
		{ResourceIdentifier: id("apps", "deployments", "ns", "web")}, // matches, sets nothing
		{ResourceIdentifier: id("apps", "deployments", "ns", "w*b"), FeedbackRules: []workv1.FeedbackRule{rule("glob")}},
		{ResourceIdentifier: id("apps", "deployments", "*", "*"), FeedbackRules: []workv1.FeedbackRule{rule("any")}, UpdateStrategy: strategy},
		{ResourceIdentifier: id("", "deployments", "ns", "web"), FeedbackRules: []workv1.FeedbackRule{rule("core")}},
		{ResourceIdentifier: id("apps", "statefulsets", "team-*", "db-*-0"), FeedbackRules: []workv1.FeedbackRule{rule("sts")}},
	}
	names := func(rules []workv1.FeedbackRule) string {
		var out []string
		for _, r := range rules {
			out = append(out, r.JsonPaths[0].Name)
		}
		return strings.Join(out, ",")
	}
	for _, c := range []struct {
		r    Resource
		want string
	}{
		{Resource{Group: "apps", Resource: "deployments", Namespace: "ns", Name: "web"}, "glob"},
		{Resource{Group: "apps", Resource: "deployments", Namespace: "ns", Name: "api"}, "any"},
		{Resource{Resource: "deployments", Namespace: "ns", Name: "web"}, "core"},
		{Resource{Group: "apps", Resource: "statefulsets", Namespace: "team-a", Name: "db-main-0"}, "sts"},
		{Resource{Group: "apps", Resource: "statefulsets", Namespace: "team-a", Name: "db-main-1"}, ""},
		{Resource{Group: "apps", Resource: "statefulsets", Namespace: "other", Name: "db-main-0"}, ""},
	} {
		if got := names(Rules(configs, c.r)); got != c.want {
			t.Errorf("rules for %+v = %q, want %q", c.r, got, c.want)
		}
	}
	// Each setting from the first config that sets it: the feedback rules
	// of the second config, the update strategy of the third.
	got, ok := Config(configs, Resource{Group: "apps", Resource: "deployments", Namespace: "ns", Name: "web"})
	if !ok || names(got.FeedbackRules) != "glob" || got.UpdateStrategy != strategy {
		t.Errorf("config for ns/web = %+v (ok %v), want glob's rules and any's strategy", got, ok)
	}
	if _, ok := Config(configs, Resource{Resource: "configmaps", Namespace: "ns", Name: "web"}); ok {
		t.Error("config for a configmap: ok, want none")
	}
}

// agentWildcardMatch is the agent's own match (OCM pkg/work/helper
// wildcardMatch), the reference wildcardMatch must agree with.
func agentWildcardMatch(resource, target string) bool {
	if resource == target || target == "*" {
		return true
	}
	pattern := "^" + regexp.QuoteMeta(target) + "$"
	pattern = strings.ReplaceAll(pattern, "\\*", ".*")
	re, err := regexp.Compile(pattern)
	if err != nil {
		return false
	}
	return re.MatchString(resource)
}

// wildcardMatch agrees with the agent's regular expression on every pair
// drawn from a small alphabet (where "*" and repeats make the tricky cases:
// overlapping parts, a pattern longer than the value, "**").
func TestWildcardMatchIsTheAgents(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	word := func(alphabet string, max int) string {
		b := make([]byte, rng.IntN(max+1))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	matched := 0
	for i := 0; i < 200000; i++ {
		value, pattern := word("ab.-", 7), word("ab*.", 6)
		want := agentWildcardMatch(value, pattern)
		if got := wildcardMatch(value, pattern); got != want {
			t.Fatalf("wildcardMatch(%q, %q) = %v, the agent's %v", value, pattern, got, want)
		}
		if want {
			matched++
		}
	}
	if matched < 1000 {
		t.Fatalf("only %d of the pairs matched: the cases say little", matched)
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
