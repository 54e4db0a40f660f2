package main

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	workv1 "open-cluster-management.io/api/work/v1"
	"sigs.k8s.io/yaml"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro/maestrotest"
)

// get, list and describe in every output format, and list's --status.
func TestGetListDescribe(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	consumer := "cli-" + suffix(t)
	w.consumerNamed(consumer, maestrotest.AgentOptions{Fail: func(mw *workv1.ManifestWork) error {
		if mw.Name == maestrotest.WorkID(w.sourceID, consumer, "bad") {
			return errors.New("quota exceeded")
		}
		return nil
	}})
	w.cli("apply", "-f", w.file("work.yaml", manifestWorkFile), "--consumer", consumer, "--name", "good", "--watch").want(t, exitOK)
	w.cli("apply", "-f", w.file("cms.yaml", twoConfigMaps), "--consumer", consumer, "--name", "bad", "--watch").want(t, exitCondition)

	t.Run("get", func(t *testing.T) {
		table := w.cli("get", "--name", "good", "--consumer", consumer).want(t, exitOK).stdout
		containsAll(t, "get table", table, "CONSUMER", "GENERATION", "STATE", consumer, "good", "Available", "True")

		asJSON := workJSON(t, w.cli("get", "--name", "good", "--consumer", consumer, "-o", "json").want(t, exitOK).stdout)
		var asYAML workv1.ManifestWork
		if err := yaml.UnmarshalStrict([]byte(w.cli("get", "--name", "good", "--consumer", consumer, "--output", "yaml").want(t, exitOK).stdout), &asYAML); err != nil {
			t.Fatalf("get -o yaml is not a ManifestWork: %v", err)
		}
		for _, got := range []*workv1.ManifestWork{asJSON, &asYAML} {
			if got.Kind != "ManifestWork" || got.Name != "good" || got.Namespace != consumer || len(got.Status.Conditions) == 0 || len(got.Status.ResourceStatus.Manifests) != 2 {
				t.Errorf("get output = %+v, want the work with its status", got)
			}
		}
		if r := w.cli("get", "--name", "missing", "--consumer", consumer); r.code != exitNotFound {
			t.Errorf("get of a missing work: exit %d, want %d", r.code, exitNotFound)
		}
	})

	t.Run("list", func(t *testing.T) {
		table := w.cli("list", "--consumer", consumer).want(t, exitOK).stdout
		containsAll(t, "list table", table, "good", "bad", "Available", "Failed")

		var list workv1.ManifestWorkList
		if err := json.Unmarshal([]byte(w.cli("list", "--consumer", consumer, "-o", "json").want(t, exitOK).stdout), &list); err != nil {
			t.Fatal(err)
		}
		if list.Kind != "ManifestWorkList" || len(list.Items) != 2 || list.Items[0].Name != "bad" || list.Items[1].Name != "good" {
			t.Errorf("list -o json = %+v, want bad and good, sorted", list)
		}
		// Without --consumer: every consumer of this source.
		containsAll(t, "list all", w.cli("list", "-o", "yaml").want(t, exitOK).stdout, "name: good", "name: bad")

		for _, tc := range []struct {
			status string
			want   []string
			not    []string
		}{
			{"Applied", []string{"good"}, []string{"bad"}},
			{"Available", []string{"good"}, []string{"bad"}},
			{"Failed", []string{"bad"}, []string{"good"}},
			{"Degraded", nil, []string{"good", "bad"}},
			{"Failed,Available", []string{"good", "bad"}, nil},
		} {
			out := w.cli("list", "--consumer", consumer, "--status", tc.status).want(t, exitOK).stdout
			containsAll(t, "list --status "+tc.status, out, tc.want...)
			for _, n := range tc.not {
				if strings.Contains(out, "  "+n+"  ") {
					t.Errorf("list --status %s lists %s:\n%s", tc.status, n, out)
				}
			}
		}
		r := w.cli("list", "--status", "Happy").want(t, exitUsage)
		containsAll(t, "error line", r.errorLine(t, "list"), `--status "Happy"`, "Applied", "Available")
	})

	t.Run("describe", func(t *testing.T) {
		out := w.cli("describe", "--name", "good", "--consumer", consumer).want(t, exitOK).stdout
		containsAll(t, "describe", out,
			"Name:", "good", "Consumer:", consumer, "Source:", w.sourceID, "Generation:", "State:", "Available",
			"Created:", " ago)", "Labels:", "hyperfleet.io/adapter=nodepool", "Delete option:", "Foreground",
			"Conditions:", "Applied", "AppliedManifestWorkComplete", "Manifests (2):", "Deployment", "pool-controller", "ConfigMap",
			"Status feedback:", "ReadyReplicas=2", "Manifest configs:", "apps/deployments")
		bad := w.cli("describe", "--name", "bad", "--consumer", consumer).want(t, exitOK).stdout
		containsAll(t, "describe bad", bad, "State:", "Failed", "quota exceeded")
		if got := workJSON(t, w.cli("describe", "--name", "good", "--consumer", consumer, "-o", "json").want(t, exitOK).stdout); got.Name != "good" {
			t.Errorf("describe -o json = %+v", got)
		}
	})
}

func TestWait(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	consumer := w.consumer(maestrotest.AgentOptions{})
	file := w.file("cms.yaml", twoConfigMaps)
	results := filepath.Join(w.dir, "results.json")

	w.cli("apply", "-f", file, "--consumer", consumer, "--name", "waited").want(t, exitOK)
	for _, cond := range []string{"Applied", "Available"} {
		r := w.cli("wait", "--name", "waited", "--consumer", consumer, "--condition", cond, "--watch", "--results-path", results).want(t, exitOK)
		containsAll(t, "stdout", r.stdout, "waited", "Available")
		if got := readStatusResult(t, results); got.Status != cond || len(got.Resources) != 2 {
			t.Errorf("results = %+v, want %s with two resources", got, cond)
		}
	}

	// A work that does not exist is waited for; nothing comes, time runs out.
	r := w.cli("wait", "--name", "never", "--consumer", consumer, "--condition", "Applied", "--timeout", "1s",
		"--results-path", results, "--results-format", "status-reporter").want(t, exitTimeout)
	containsAll(t, "stderr (progress)", r.stderr, "does not exist", "waiting_for=Applied")
	containsAll(t, "error line", r.errorLine(t, "wait"), "timed out after 1s", consumer+"/never", "does not exist")
	if got := readAdapterResult(t, results); got.Status != "failure" || got.Reason != reasonTimeout {
		t.Errorf("results = %+v, want failure/Timeout", got)
	}

	// Deleted: at once for a missing work; after a deletion otherwise.
	w.cli("wait", "--name", "never", "--consumer", consumer, "--condition", "Deleted").want(t, exitOK)
	w.cli("delete", "--name", "waited", "--consumer", consumer).want(t, exitOK)
	start := time.Now()
	w.cli("wait", "--name", "waited", "--consumer", consumer, "--condition", "Deleted", "--results-path", results).want(t, exitOK)
	t.Logf("wait --condition Deleted took %s", time.Since(start))
	if got := readStatusResult(t, results); got.Status != "Deleted" {
		t.Errorf("results = %+v, want Deleted", got)
	}

	r = w.cli("wait", "--name", "waited", "--consumer", consumer, "--condition", "Happy").want(t, exitUsage)
	containsAll(t, "error line", r.errorLine(t, "wait"), `--condition "Happy"`, "Applied, Available, Deleted")
	r = w.cli("wait", "--name", "waited", "--consumer", consumer).want(t, exitUsage)
	containsAll(t, "error line", r.errorLine(t, "wait"), "--condition is required")
}
