package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	workv1 "open-cluster-management.io/api/work/v1"
)

func TestParseManifests(t *testing.T) {
	t.Parallel()
	list := `# a List and a plain object, with an empty document between
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: a, namespace: ns}
- apiVersion: v1
  kind: Secret
  metadata: {name: b, namespace: ns}
---
# only a comment
---
{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "c", "namespace": "ns"}}
`
	mf, err := parseManifests("list.yaml", []byte(list))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range mf.manifests {
		got = append(got, identityOf(m.obj).String()+"@"+m.where)
	}
	want := []string{"ConfigMap ns/a@list.yaml:1: items[0]", "Secret ns/b@list.yaml:1: items[1]", "Deployment.apps ns/c@list.yaml:14"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("manifests %v, want %v", got, want)
	}
	if mf.work != nil {
		t.Error("plain manifests read as a ManifestWork")
	}

	mf, err = parseManifests("work.yaml", []byte(manifestWorkFile))
	if err != nil {
		t.Fatal(err)
	}
	if mf.work == nil || mf.work.Name != "hyperfleet-cluster-1-nodepool" || len(mf.manifests) != 2 {
		t.Fatalf("ManifestWork file: work %v, %d manifests", mf.work, len(mf.manifests))
	}
	w, base, err := workFromFile(mf, "", "cluster-1")
	if err != nil || w.Namespace != "cluster-1" || w.Name != "hyperfleet-cluster-1-nodepool" || base.generation != 0 {
		t.Errorf("workFromFile = %+v, %+v, %v", w, base, err)
	}
}

func TestStateAndJudge(t *testing.T) {
	t.Parallel()
	work := func(gen int64, conds ...metav1.Condition) *workv1.ManifestWork {
		return &workv1.ManifestWork{ObjectMeta: metav1.ObjectMeta{Generation: gen}, Status: workv1.ManifestWorkStatus{Conditions: conds}}
	}
	c := func(typ string, st metav1.ConditionStatus, gen int64) metav1.Condition {
		return metav1.Condition{Type: typ, Status: st, ObservedGeneration: gen, Reason: "R", Message: "m"}
	}
	for _, tc := range []struct {
		name  string
		w     *workv1.ManifestWork
		state string
		cond  string
		v     verdict
	}{
		{"no status", work(1), stateInProgress, condApplied, pending},
		{"applied", work(1, c("Applied", "True", 1)), stateApplied, condApplied, met},
		{"applied, stale", work(2, c("Applied", "True", 1)), stateInProgress, condApplied, pending},
		{"applied, waiting for available", work(1, c("Applied", "True", 1), c("Available", "False", 1)), stateApplied, condAvailable, pending},
		{"available", work(1, c("Applied", "True", 1), c("Available", "True", 1)), stateAvailable, condAvailable, met},
		{"failed", work(1, c("Applied", "False", 1)), stateFailed, condAvailable, failed},
		{"failed before, now stale", work(2, c("Applied", "False", 1)), stateInProgress, condApplied, pending},
		{"degraded is applied", work(1, c("Applied", "True", 1), c("Available", "True", 1), c("Degraded", "True", 1)), stateDegraded, condApplied, met},
		{"degraded is not available", work(1, c("Applied", "True", 1), c("Available", "True", 1), c("Degraded", "True", 1)), stateDegraded, condAvailable, failed},
		{"gone", nil, stateDeleted, condDeleted, met},
		{"still there", work(1), stateInProgress, condDeleted, pending},
	} {
		if got := stateOf(tc.w); got != tc.state {
			t.Errorf("%s: state %s, want %s", tc.name, got, tc.state)
		}
		if got, _, _ := judge(tc.w, tc.cond, 0); got != tc.v {
			t.Errorf("%s: judge(%s) = %v, want %v", tc.name, tc.cond, got, tc.v)
		}
	}
	// A work older than the generation apply wrote is not judged yet.
	if v, _, _ := judge(work(1, c("Applied", "True", 1)), condApplied, 2); v != pending {
		t.Errorf("judge of generation 1 waiting for 2 = %v, want pending", v)
	}
}

func raw(s string) workv1.Manifest {
	return workv1.Manifest{RawExtension: runtime.RawExtension{Raw: []byte(s)}}
}

func TestMergeAndDiff(t *testing.T) {
	t.Parallel()
	created := metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	stored := &workv1.ManifestWork{
		ObjectMeta: metav1.ObjectMeta{Name: "w", Namespace: "c", Generation: 4, CreationTimestamp: created,
			Labels: map[string]string{"keep": "1", "cloudevents.open-cluster-management.io/x": "sdk"}},
		Spec: workv1.ManifestWorkSpec{Workload: workv1.ManifestsTemplate{Manifests: []workv1.Manifest{
			raw(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"n"},"data":{"k":"1"}}`),
			raw(`{"apiVersion":"apps/v1beta1","kind":"Deployment","metadata":{"name":"d","namespace":"n"}}`),
		}}, DeleteOption: &workv1.DeleteOption{PropagationPolicy: workv1.DeletePropagationPolicyTypeForeground}},
	}
	file := &workv1.ManifestWork{
		ObjectMeta: metav1.ObjectMeta{Name: "w", Namespace: "c", Labels: map[string]string{"new": "2"}},
		Spec: workv1.ManifestWorkSpec{Workload: workv1.ManifestsTemplate{Manifests: []workv1.Manifest{
			raw(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","namespace":"n"},"spec":{"replicas":3}}`),
			raw(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"b","namespace":"n"}}`),
		}}},
	}
	merged := mergeWork(stored, file)
	var ids []string
	for _, m := range merged.Spec.Workload.Manifests {
		ids = append(ids, manifestID(m.Raw))
	}
	// The Deployment matches across API versions and is replaced in place.
	if strings.Join(ids, ",") != "ConfigMap n/a,Deployment.apps n/d,ConfigMap n/b" {
		t.Errorf("merged manifests %v", ids)
	}
	if !strings.Contains(string(merged.Spec.Workload.Manifests[1].Raw), `"replicas":3`) {
		t.Errorf("the file's Deployment did not win: %s", merged.Spec.Workload.Manifests[1].Raw)
	}
	if merged.Generation != 4 || !merged.CreationTimestamp.Equal(&created) {
		t.Errorf("merged basis %d %v, want the stored generation and creation time", merged.Generation, merged.CreationTimestamp)
	}
	if merged.Labels["keep"] != "1" || merged.Labels["new"] != "2" || len(merged.Labels) != 2 {
		t.Errorf("merged labels %v, want keep and new, without the SDK's", merged.Labels)
	}
	if merged.Spec.DeleteOption == nil {
		t.Error("the stored deleteOption was lost")
	}

	if d := diffWorks(stored, merged); len(d) != 3 {
		// new label, changed Deployment, added ConfigMap b
		out, _ := json.Marshal(d)
		t.Errorf("diff of stored and merged: %s, want 3 changes", out)
	}
	// Reordering is a change apply would make; SDK labels are not.
	reordered := stored.DeepCopy()
	reordered.Labels = map[string]string{"keep": "1"}
	ms := reordered.Spec.Workload.Manifests
	ms[0], ms[1] = ms[1], ms[0]
	d := diffWorks(stored, reordered)
	if len(d) != 1 || d[0].What != "manifest order" {
		t.Errorf("diff after reordering = %+v, want only the order", d)
	}
	// deleteOption unset in the file means Foreground, as apply sends it.
	noOption := stored.DeepCopy()
	noOption.Labels = map[string]string{"keep": "1"}
	noOption.Spec.DeleteOption = nil
	if d := diffWorks(stored, noOption); len(d) != 0 {
		t.Errorf("diff with deleteOption defaulted = %+v, want none", d)
	}

	if why := (basis{generation: 4, created: created.Time}).conflict(stored); why != "" {
		t.Errorf("same basis conflicts: %s", why)
	}
	if why := (basis{generation: 4, created: created.Add(time.Minute)}).conflict(stored); !strings.Contains(why, "created anew") {
		t.Errorf("recreated work: %q", why)
	}
	if why := (basis{generation: 3}).conflict(stored); !strings.Contains(why, "is at generation 4") {
		t.Errorf("newer work: %q", why)
	}
}

func TestLineDiff(t *testing.T) {
	t.Parallel()
	split := func(s string) []string { return strings.Split(s, " ") }
	for _, tc := range []struct{ a, b, want string }{
		{"a b c d e f g h i j", "a b c d E f g h i j k", "  b|  c|  d|- e|+ E|  f|  g|  h|  i|  j|+ k"},
		{"1 2 3 4 5 6 7 8 9 10 11 12 13 14 15", "1 two 3 4 5 6 7 8 9 10 11 12 13 fourteen 15",
			"  1|- 2|+ two|  3|  4|  5|  ...|  11|  12|  13|- 14|+ fourteen|  15"},
		{"same", "same", ""},
	} {
		if got := strings.Join(lineDiff(split(tc.a), split(tc.b)), "|"); got != tc.want {
			t.Errorf("lineDiff(%q, %q) =\n%q, want\n%q", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestRawFlag(t *testing.T) {
	t.Parallel()
	args := []string{"apply", "--results-path=/a", "-consumer", "c1", "--bogus"}
	if v, ok := rawFlag(args, "results-path"); !ok || v != "/a" {
		t.Errorf("results-path = %q %v", v, ok)
	}
	if v, ok := rawFlag(args, "consumer"); !ok || v != "c1" {
		t.Errorf("consumer = %q %v", v, ok)
	}
	if _, ok := rawFlag(args, "name"); ok {
		t.Error("found a flag that is not there")
	}
}
