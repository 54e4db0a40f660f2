package kubeapply

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	workv1 "open-cluster-management.io/api/work/v1"
)

func TestReady(t *testing.T) {
	obj := func(o map[string]any) *unstructured.Unstructured { return &unstructured.Unstructured{Object: o} }
	deployment := func(gen, observed int64, available string) *unstructured.Unstructured {
		return obj(map[string]any{
			"apiVersion": "apps/v1", "kind": "Deployment",
			"metadata": map[string]any{"name": "d", "generation": gen},
			"status": map[string]any{"observedGeneration": observed, "conditions": []any{
				map[string]any{"type": "Available", "status": available},
			}},
		})
	}
	deleting := obj(map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{
		"name": "c", "deletionTimestamp": "2026-01-01T00:00:00Z"}})
	for _, tc := range []struct {
		name string
		obj  *unstructured.Unstructured
		want bool
	}{
		{"missing", nil, false},
		{"a ConfigMap by existing", obj(map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "c"}}), true},
		{"being deleted", deleting, false},
		{"an Active Namespace", obj(map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "n"}, "status": map[string]any{"phase": "Active"}}), true},
		{"a Terminating Namespace", obj(map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "n"}, "status": map[string]any{"phase": "Terminating"}}), false},
		{"an available Deployment", deployment(2, 2, "True"), true},
		{"a Deployment whose latest spec is not observed", deployment(3, 2, "True"), false},
		{"an unavailable Deployment", deployment(2, 2, "False"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, why := ready(tc.obj)
			if got != tc.want {
				t.Fatalf("ready = %v (%s), want %v", got, why, tc.want)
			}
			if !got && why == "" {
				t.Fatal("not ready without saying why")
			}
		})
	}
}

// orphaned decides as the real agent and maestrotest's stand-in do.
func TestOrphaned(t *testing.T) {
	ref := objectRef{Version: "v1", Resource: "configmaps", Kind: "ConfigMap", Namespace: "ns", Name: "a"}
	rule := func(name string) *workv1.DeleteOption {
		return &workv1.DeleteOption{PropagationPolicy: workv1.DeletePropagationPolicyTypeSelectivelyOrphan,
			SelectivelyOrphan: &workv1.SelectivelyOrphan{OrphaningRules: []workv1.OrphaningRule{{Resource: "configmaps", Namespace: "ns", Name: name}}}}
	}
	for _, tc := range []struct {
		name string
		opt  *workv1.DeleteOption
		want bool
	}{
		{"no option", nil, false},
		{"Foreground", &workv1.DeleteOption{PropagationPolicy: workv1.DeletePropagationPolicyTypeForeground}, false},
		{"Orphan", &workv1.DeleteOption{PropagationPolicy: workv1.DeletePropagationPolicyTypeOrphan}, true},
		{"a rule naming it", rule("a"), true},
		{"a rule naming another", rule("b"), false},
		{"SelectivelyOrphan without rules", &workv1.DeleteOption{PropagationPolicy: workv1.DeletePropagationPolicyTypeSelectivelyOrphan}, false},
		// The agent applies the rules under any policy but Foreground and
		// Orphan (OCM's OwnedByTheWork), so do the stand-in and this.
		{"empty policy, a rule naming it", &workv1.DeleteOption{SelectivelyOrphan: rule("a").SelectivelyOrphan}, true},
		{"unknown policy, a rule naming it", &workv1.DeleteOption{PropagationPolicy: "Sometimes", SelectivelyOrphan: rule("a").SelectivelyOrphan}, true},
		{"empty policy, a rule naming another", &workv1.DeleteOption{SelectivelyOrphan: rule("b").SelectivelyOrphan}, false},
	} {
		if got := orphaned(tc.opt, ref); got != tc.want {
			t.Errorf("%s: orphaned = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// The record's Secret name is a hash: "a.b"+"c" and "a"+"b.c" stay apart,
// and long names still make a valid name.
func TestRecordName(t *testing.T) {
	if recordName("a.b", "c") == recordName("a", "b.c") {
		t.Fatal("two works share a record name")
	}
	if n := recordName(string(make([]byte, 300)), "x"); len(n) > 63 {
		t.Fatalf("record name %q is longer than a label", n)
	}
}
