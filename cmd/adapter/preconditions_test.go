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

// TestRecordStatusesThenReplayWithoutAPI: adapter record --statuses keeps
// the cluster's status reports with each event, and a replay without any
// API evaluates cluster_statuses from them: PreconditionsNotMet while the
// recorded landing zone was not Available, delivered once it was.
func TestRecordStatusesThenReplayWithoutAPI(t *testing.T) {
	dir := t.TempDir()
	api := filepath.Join(dir, "api")
	clusterFile := filepath.Join(api, "clusters", "019466a0-8f8e-7abc-9def-0123456789ab")
	poolFile := filepath.Join(clusterFile, "nodepools", "019466a1-2b3c-7def-8abc-456789abcdef.json")
	for from, to := range map[string]string{
		filepath.Join("..", "..", "testdata", "api", "clusters", "019466a0-8f8e-7abc-9def-0123456789ab.json"):                                                      clusterFile + ".json",
		filepath.Join("..", "..", "testdata", "api", "clusters", "019466a0-8f8e-7abc-9def-0123456789ab", "nodepools", "019466a1-2b3c-7def-8abc-456789abcdef.json"): poolFile,
	} {
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	event, err := os.ReadFile(filepath.Join("..", "..", "testdata", "contracts", "sentinel-event-nodepool.json"))
	if err != nil {
		t.Fatal(err)
	}
	events := filepath.Join(dir, "event.json")
	if err := os.WriteFile(events, event, 0o644); err != nil {
		t.Fatal(err)
	}
	rec := filepath.Join(dir, "rec.jsonl")
	t.Setenv("ADAPTER_TYPE", "nodepool")
	t.Setenv("SOURCE", "file")
	t.Setenv("SOURCE_PATH", events)
	for _, available := range []string{"False", "True"} {
		statuses := `[{"adapter":"landing-zone","observed_generation":1,"conditions":[{"type":"Available","status":"` + available + `"}]}]`
		if err := os.WriteFile(filepath.Join(clusterFile, "statuses.json"), []byte(statuses), 0o644); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		if code := runMain([]string{"record", "--api-dir", api, "--statuses", "--out", rec}, &stdout, &stderr); code != exitOK {
			t.Fatalf("record: exit %d: %s", code, stderr.String())
		}
	}
	data, err := os.ReadFile(rec)
	if err != nil || strings.Count(string(data), `"cluster_statuses":[{"adapter":"landing-zone"`) != 2 {
		t.Fatalf("recording %s (%v) lacks the cluster's status reports", data, err)
	}

	t.Setenv("PRECONDITIONS", `cluster_statuses.exists(s, s.adapter == "landing-zone" && s.conditions.exists(c, c.type == "Available" && c.status == "True"))`)
	var stdout, stderr bytes.Buffer
	if code := runMain([]string{"replay", rec}, &stdout, &stderr); code != exitOK {
		t.Fatalf("replay: exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "replay: 2 events, preconditions_not_met 1, reconciled 1") {
		t.Fatalf("summary: %s", stderr.String())
	}
}
