package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro/maestrotest"
)

func TestDelete(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	consumer := w.consumer(maestrotest.AgentOptions{})
	file := w.file("cms.yaml", twoConfigMaps)
	for _, name := range []string{"one", "two", "three"} {
		w.cli("apply", "-f", file, "--consumer", consumer, "--name", name, "--watch").want(t, exitOK)
	}
	results := filepath.Join(w.dir, "results.json")

	t.Run("watch waits for the agent's confirmation", func(t *testing.T) {
		r := w.cli("delete", "--name", "one", "--consumer", consumer, "--watch", "--results-path", results).want(t, exitOK)
		containsAll(t, "stdout", r.stdout, "one", "Deleted")
		containsAll(t, "stderr (progress)", r.stderr, "deletion requested", "being deleted", "condition met: Deleted")
		t.Logf("delete --watch took %s", r.took)
		w.cli("get", "--name", "one", "--consumer", consumer).want(t, exitNotFound)
		if got := readStatusResult(t, results); got.Status != "Deleted" || got.ManifestWorkName != "one" {
			t.Errorf("results = %+v, want Deleted for one", got)
		}
	})

	t.Run("a missing work is not an error", func(t *testing.T) {
		r := w.cli("delete", "--name", "never-was", "--consumer", consumer, "--watch", "-o", "json", "--results-path", results).want(t, exitOK)
		var out struct{ Deletions []deletion }
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || len(out.Deletions) != 1 || out.Deletions[0].Result != "NotFound" {
			t.Errorf("stdout %q (%v), want one NotFound deletion", r.stdout, err)
		}
		if got := readStatusResult(t, results); got.Status != "Deleted" || got.Message == "" {
			t.Errorf("results = %+v, want Deleted with a message saying it did not exist", got)
		}
	})

	t.Run("--all with --name deletes only that work, whole", func(t *testing.T) {
		w.cli("delete", "--name", "two", "--consumer", consumer, "--all", "--watch").want(t, exitOK)
		list := w.cli("list", "--consumer", consumer).want(t, exitOK)
		containsAll(t, "list", list.stdout, "three")
		if contains := w.cli("get", "--name", "two", "--consumer", consumer); contains.code != exitNotFound {
			t.Errorf("two still exists")
		}
	})

	t.Run("without --watch the deletion is requested and wait sees it through", func(t *testing.T) {
		r := w.cli("delete", "--name", "three", "--consumer", consumer, "--results-path", results).want(t, exitOK)
		containsAll(t, "stdout", r.stdout, "three", "Deleting")
		if got := readStatusResult(t, results); got.Status != "InProgress" {
			t.Errorf("results status %q, want InProgress (deletion requested, not confirmed)", got.Status)
		}
		w.cli("wait", "--name", "three", "--consumer", consumer, "--condition", "Deleted", "--timeout", "30s").want(t, exitOK)
	})

	t.Run("--all without --name deletes every work of this source on the consumer", func(t *testing.T) {
		for _, name := range []string{"four", "five"} {
			w.cli("apply", "-f", file, "--consumer", consumer, "--name", name).want(t, exitOK)
		}
		// Another source's work on the same consumer is not touched.
		runCLI(t, w.env("MAESTRO_SOURCE_ID", w.sourceID+"-b"), "apply", "-f", file, "--consumer", consumer, "--name", "four").want(t, exitOK)

		r := w.cli("delete", "--all", "--consumer", consumer, "--watch", "-o", "json").want(t, exitOK)
		var out struct{ Deletions []deletion }
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || len(out.Deletions) != 2 {
			t.Fatalf("stdout %q (%v), want two deletions", r.stdout, err)
		}
		for _, d := range out.Deletions {
			if d.Result != "Deleted" {
				t.Errorf("deletion %+v, want Deleted", d)
			}
		}
		if r := w.cli("list", "--consumer", consumer); r.code != exitOK || !containsLine(r.stdout, "No works found.") {
			t.Errorf("works left after delete --all:\n%s", r.stdout)
		}
		runCLI(t, w.env("MAESTRO_SOURCE_ID", w.sourceID+"-b"), "get", "--name", "four", "--consumer", consumer).want(t, exitOK)
	})

	t.Run("--watch runs out of time when the agent does not confirm", func(t *testing.T) {
		slow := w.consumer(maestrotest.AgentOptions{Delay: 10 * time.Minute})
		w.cli("apply", "-f", file, "--consumer", slow, "--name", "stuck").want(t, exitOK)
		r := w.cli("delete", "--name", "stuck", "--consumer", slow, "--watch", "--timeout", "2s", "--results-path", results).want(t, exitTimeout)
		containsAll(t, "error line", r.errorLine(t, "delete"), "timed out after 2s", slow+"/stuck", "Deleted", "being deleted")
		if got := readStatusResult(t, results); got.Status != "Failed" || got.Reason != reasonTimeout {
			t.Errorf("results = %+v, want Failed/Timeout", got)
		}
	})
}

func containsLine(s, line string) bool {
	for _, l := range strings.Split(s, "\n") {
		if l == line {
			return true
		}
	}
	return false
}
