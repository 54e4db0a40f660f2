package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	workv1 "open-cluster-management.io/api/work/v1"
	"sigs.k8s.io/yaml"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro/maestrotest"
)

func TestDiff(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	consumer := w.consumer(maestrotest.AgentOptions{})
	file := w.file("cms.yaml", twoConfigMaps)
	results := filepath.Join(w.dir, "results.json")

	// Nothing stored: everything would be added.
	r := w.cli("diff", "--name", "d", "--consumer", consumer, "-f", file).want(t, exitDifferent)
	containsAll(t, "stdout", r.stdout, "does not exist: apply would create it with 2 manifests", "+ manifest ConfigMap default/cm-a", "+ manifest ConfigMap default/cm-b")

	w.cli("apply", "-f", file, "--consumer", consumer, "--name", "d", "--watch").want(t, exitOK)
	r = w.cli("diff", "--name", "d", "--consumer", consumer, "-f", file, "--results-path", results).want(t, exitOK)
	containsAll(t, "stdout", r.stdout, "no differences")
	if got := readStatusResult(t, results); got.Status != stateSucceeded || !strings.Contains(got.Message, "no differences") {
		t.Errorf("results = %+v", got)
	}

	changed := strings.Replace(twoConfigMaps, "key: two", "key: deux", 1)
	changed = strings.Replace(changed, "name: cm-a", "name: cm-c", 1)
	w.file("changed.yaml", changed)
	r = w.cli("diff", "--name", "d", "--consumer", consumer, "-f", filepath.Join(w.dir, "changed.yaml")).want(t, exitDifferent)
	containsAll(t, "stdout", r.stdout,
		"(stored generation 1)",
		"+ manifest ConfigMap default/cm-c",
		"~ manifest ConfigMap default/cm-b", "-   key: two", "+   key: deux",
		"- manifest ConfigMap default/cm-a",
		"3 differences")

	r = w.cli("diff", "--name", "d", "--consumer", consumer, "-f", filepath.Join(w.dir, "changed.yaml"), "-o", "json").want(t, exitDifferent)
	var out struct {
		Exists  bool
		Changes []change
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || !out.Exists || len(out.Changes) != 3 {
		t.Fatalf("diff -o json = %s (%v), want 3 changes", r.stdout, err)
	}

	// Labels and the delete option count, as apply would change them.
	withMeta := w.file("meta.yaml", strings.Replace(manifestWorkFile, "name: hyperfleet-cluster-1-nodepool", "name: d", 1))
	r = w.cli("diff", "--consumer", consumer, "-f", withMeta).want(t, exitDifferent)
	containsAll(t, "stdout", r.stdout, `+ metadata.labels[hyperfleet.io/adapter]: "nodepool"`, "+ spec.manifestConfigs")
}

// build merges by group/kind/namespace/name and carries the generation it
// read; apply of the result refuses once another writer has moved on.
func TestBuild(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	consumer := w.consumer(maestrotest.AgentOptions{})
	w.cli("apply", "-f", w.file("cms.yaml", twoConfigMaps), "--consumer", consumer, "--name", "merged", "--watch").want(t, exitOK)

	// cm-b changes in place, cm-c is new, cm-b in another namespace is
	// another object; cm-a is not mentioned and stays.
	add := `apiVersion: v1
kind: ConfigMap
metadata:
  name: cm-c
  namespace: default
data:
  key: three
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cm-b
  namespace: default
data:
  key: two-updated
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cm-b
  namespace: other
`
	r := w.cli("build", "--name", "merged", "--consumer", consumer, "-f", w.file("add.yaml", add)).want(t, exitOK)
	var built workv1.ManifestWork
	if err := yaml.UnmarshalStrict([]byte(r.stdout), &built); err != nil {
		t.Fatalf("build output is not a ManifestWork: %v\n%s", err, r.stdout)
	}
	var got []string
	for _, m := range built.Spec.Workload.Manifests {
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(m.Raw); err != nil {
			t.Fatal(err)
		}
		data, _, _ := unstructured.NestedString(obj.Object, "data", "key")
		got = append(got, obj.GetNamespace()+"/"+obj.GetName()+"="+data)
	}
	want := []string{"default/cm-a=one", "default/cm-b=two-updated", "default/cm-c=three", "other/cm-b="}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("merged manifests %v, want %v", got, want)
	}
	if built.Generation != 1 || built.Name != "merged" || built.Namespace != consumer {
		t.Errorf("built %s/%s generation %d, want %s/merged generation 1", built.Namespace, built.Name, built.Generation, consumer)
	}

	// The build output applies (generation 2) ...
	buildFile := w.file("built.yaml", r.stdout)
	w.cli("apply", "-f", buildFile, "--consumer", consumer, "--watch").want(t, exitOK)
	stored := workJSON(t, w.cli("get", "--name", "merged", "--consumer", consumer, "-o", "json").want(t, exitOK).stdout)
	// Generation 2, or generation 1 of a new work: this Maestro refuses to
	// change a work's manifest set in place, so apply recreates it.
	if len(stored.Spec.Workload.Manifests) != 4 {
		t.Errorf("after applying the build: %d manifests, want 4", len(stored.Spec.Workload.Manifests))
	}
	// ... once: it was built from generation 1, and the work moved on.
	r = w.cli("apply", "-f", buildFile, "--consumer", consumer, "--results-path", filepath.Join(w.dir, "r.json")).want(t, exitUsage)
	containsAll(t, "error line", r.errorLine(t, "apply"), "built.yaml", "work "+consumer+"/merged", "metadata", "another writer")
	if res := readStatusResult(t, filepath.Join(w.dir, "r.json")); res.Reason != reasonConflict {
		t.Errorf("results reason %q, want %s", res.Reason, reasonConflict)
	}
	r = w.cli("diff", "--consumer", consumer, "-f", buildFile).want(t, exitOK)
	containsAll(t, "diff", r.stdout, "no differences", "note: the file carries metadata", "apply would refuse the file (Conflict)")

	// Another build, then another writer changes a value in place (a patch:
	// the same work at the next generation): the build is refused.
	r = w.cli("build", "--name", "merged", "--consumer", consumer, "-f", filepath.Join(w.dir, "add.yaml")).want(t, exitOK)
	second := w.file("built2.yaml", r.stdout)
	var other []string
	for _, l := range strings.Split(r.stdout, "\n") {
		if !strings.HasPrefix(l, "  generation:") && !strings.HasPrefix(l, "  creationTimestamp:") {
			other = append(other, strings.Replace(l, "key: three", "key: drei", 1))
		}
	}
	w.cli("apply", "-f", w.file("other.yaml", strings.Join(other, "\n")), "--consumer", consumer).want(t, exitOK)
	r = w.cli("apply", "-f", second, "--consumer", consumer).want(t, exitUsage)
	containsAll(t, "error line", r.errorLine(t, "apply"), "built2.yaml", "the file carries metadata.generation", "but the work is at generation", "another writer changed it")

	// A work that does not exist builds from the file alone, as JSON.
	r = w.cli("build", "--name", "fresh", "--consumer", consumer, "-f", filepath.Join(w.dir, "add.yaml"), "-o", "json").want(t, exitOK)
	fresh := workJSON(t, r.stdout)
	if fresh.Generation != 0 || len(fresh.Spec.Workload.Manifests) != 3 {
		t.Errorf("fresh build = generation %d with %d manifests, want 0 and 3", fresh.Generation, len(fresh.Spec.Workload.Manifests))
	}
}
