package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReplayWithPreconditions replays testdata/preconditions through the
// command: the node pool is reported PreconditionsNotMet until its
// cluster's snapshot shows the landing zone Available, then delivered,
// then deleted; every event is acknowledged (exit 0).
func TestReplayWithPreconditions(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "preconditions")
	var stdout, stderr bytes.Buffer
	code := runMain([]string{"replay", "--adapter", "nodepool", "--preconditions-file", filepath.Join(dir, "landing-zone.yaml"),
		filepath.Join(dir, "nodepool-landing-zone.jsonl")}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		var ev struct {
			Data struct {
				Report struct {
					Conditions []struct{ Type, Status, Reason string }
				}
			}
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatal(err)
		}
		c := ev.Data.Report.Conditions[0]
		got = append(got, c.Type+"="+c.Status+"/"+c.Reason)
	}
	want := []string{"Applied=False/PreconditionsNotMet", "Applied=False/PreconditionsNotMet", "Applied=True/ManifestWorksApplied", "Applied=False/ResourceDeleting"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("reports %v, want %v", got, want)
	}
	if !strings.Contains(stderr.String(), "replay: 4 events, preconditions_not_met 2, reconciled 2") {
		t.Fatalf("summary: %s", stderr.String())
	}
}

// TestInvalidPreconditionExitsTwoNamingIt: a precondition that does not
// compile or type-check stops the start with exit 2, before any event,
// naming the setting and the expression.
func TestInvalidPreconditionExitsTwoNamingIt(t *testing.T) {
	recording := filepath.Join("..", "..", "testdata", "recordings", "nodepool.jsonl")
	file := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(file, []byte("- name: landing-zone-available\n  expression: cluster.status.conditions.exists(c, c.type == 'LandingZoneSuccessful')  && clutser.generation > 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env, value string
		want       []string
	}{
		{"PRECONDITIONS", "true\nsize(cluster_statuses)", []string{"PRECONDITIONS:", `precondition "size(cluster_statuses)"`, "the result is int, want bool"}},
		{"PRECONDITIONS_FILE", file, []string{"PRECONDITIONS_FILE (--preconditions-file):", "landing-zone-available", "undeclared reference to 'clutser'"}},
	} {
		t.Run(tc.env, func(t *testing.T) {
			t.Setenv(tc.env, tc.value)
			var stdout, stderr bytes.Buffer
			if code := runMain([]string{"replay", "--adapter", "nodepool", recording}, &stdout, &stderr); code != exitUsage {
				t.Fatalf("exit %d, want 2: %s", code, stderr.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr %q does not contain %q", stderr.String(), w)
				}
			}
			if stdout.Len() != 0 {
				t.Errorf("events were handled: %s", stdout.String())
			}
		})
	}
}
