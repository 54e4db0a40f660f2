package pipeline

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/events/recording"
	"github.com/openshift-hyperfleet/maestro-adapter/handlers"
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/pipeline/preconditions"
)

func compilePreconditions(t *testing.T, list []preconditions.Precondition) *preconditions.Set {
	t.Helper()
	s, err := preconditions.Compile(list)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func reasons(r hyperfleet.StatusReport) string {
	var parts []string
	for _, c := range r.Conditions {
		parts = append(parts, c.Type+"="+c.Status+"/"+c.Reason)
	}
	return strings.Join(parts, " ")
}

// TestPreconditionsHoldNodePoolUntilLandingZoneAvailable replays
// testdata/preconditions: a node pool whose cluster snapshot has no
// landing zone, then a landing zone not yet Available, is reported
// PreconditionsNotMet with nothing delivered and the event acknowledged;
// once the snapshot shows the landing zone Available it is delivered; its
// deletion proceeds whatever the landing zone says.
func TestPreconditionsHoldNodePoolUntilLandingZoneAvailable(t *testing.T) {
	list, err := preconditions.LoadFile(filepath.Join("..", "testdata", "preconditions", "landing-zone.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	set := compilePreconditions(t, list)
	h := newHarness(t, harnessOpts{adapterType: handlers.TypeNodePool,
		cfg:  func(c *Config) { c.Coalesce = false },
		deps: func(d *Deps) { d.Preconditions = set }})
	msgs, err := recording.Load(filepath.Join("..", "testdata", "preconditions", "nodepool-landing-zone.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	// Replayed one at a time, so that what is delivered after each event
	// can be checked.
	var worksAfter []int
	for _, m := range msgs {
		src := h.run(t, []*events.Message{m})
		for _, o := range src.Outcomes() {
			if o.Settlement != "ack" {
				t.Fatalf("%s: %s %s", o.TransportID, o.Settlement, o.Reason)
			}
		}
		worksAfter = append(worksAfter, len(allWorks(t, h)))
	}
	reps := h.sink.reports(t)
	if len(reps) != 4 {
		t.Fatalf("%d reports, want 4", len(reps))
	}
	notMet := "Applied=False/PreconditionsNotMet Available=False/PreconditionsNotMet Health=True/NoErrors"
	for i, want := range []string{
		notMet,
		notMet,
		"Applied=True/ManifestWorksApplied Available=True/ManifestWorksAvailable Health=True/Healthy Finalized=False/NotDeleting",
		"Applied=False/ResourceDeleting Available=False/ResourceDeleting Health=True/Healthy Finalized=True/CleanupConfirmed",
	} {
		if got := reasons(reps[i].Report); got != want {
			t.Errorf("report %d: %s\nwant %s", i+1, got, want)
		}
	}
	if msg := reps[0].Report.Condition("Applied").Message; msg != "Dependencies not satisfied: landing-zone-available" {
		t.Errorf("Applied message %q does not name the unmet precondition", msg)
	}
	if reps[0].Report.Data != nil {
		t.Errorf("a held-back report carries data %v; the contract sample has none", reps[0].Report.Data)
	}
	if got, want := fmt.Sprint(worksAfter), "[0 0 1 0]"; got != want {
		t.Errorf("works after each event %s, want %s", got, want)
	}
	if c := h.p.Stats().Counts(); c[PreconditionsNotMet] != 2 || c[Reconciled] != 2 {
		t.Errorf("outcomes %v, want 2 preconditions_not_met and 2 reconciled", c)
	}
}

// TestPreconditionsReadClusterStatusesFromAPIDir: an expression naming
// cluster_statuses reads the cluster's GET .../statuses, here from an
// API_DIR (DIR/clusters/<id>/statuses.json), on every event.
func TestPreconditionsReadClusterStatusesFromAPIDir(t *testing.T) {
	dir := t.TempDir()
	clusterDir := filepath.Join(dir, "clusters", "019466a0-8f8e-7abc-9def-0123456789ab")
	copyFile(t, filepath.Join("..", "testdata", "api", "clusters", "019466a0-8f8e-7abc-9def-0123456789ab.json"), clusterDir+".json")
	copyFile(t, filepath.Join("..", "testdata", "api", "clusters", "019466a0-8f8e-7abc-9def-0123456789ab", "nodepools", "019466a1-2b3c-7def-8abc-456789abcdef.json"),
		filepath.Join(clusterDir, "nodepools", "019466a1-2b3c-7def-8abc-456789abcdef.json"))
	writeStatuses := func(available string) {
		body := `{"kind":"AdapterStatusList","page":1,"size":1,"total":1,"items":[{"adapter":"landing-zone","observed_generation":1,
			"conditions":[{"type":"Available","status":"` + available + `","reason":"x","last_transition_time":"2026-08-20T10:15:30Z"}],
			"created_time":"2026-08-20T10:15:00Z","last_report_time":"2026-08-20T10:15:30Z"}]}`
		if err := os.WriteFile(filepath.Join(clusterDir, "statuses.json"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	reader := hyperfleet.DirReader{Dir: dir}
	set := compilePreconditions(t, []preconditions.Precondition{{Name: "landing-zone-available", Expression: `cluster_statuses.exists(s, s.adapter == "landing-zone" &&
		s.observed_generation == cluster.generation && s.conditions.exists(c, c.type == "Available" && c.status == "True"))`}})
	h := newHarness(t, harnessOpts{adapterType: handlers.TypeNodePool, reader: reader,
		deps: func(d *Deps) { d.Preconditions, d.Statuses = set, reader }})
	event := func(id string) *events.Message {
		return &events.Message{TransportID: id, Attempt: 1, Body: []byte(`{"specversion":"1.0","type":"com.redhat.hyperfleet.nodepool.reconcile","source":"test","id":"` + id + `",
			"data":{"id":"019466a1-2b3c-7def-8abc-456789abcdef","kind":"NodePool","generation":1,
			"owner_references":{"id":"019466a0-8f8e-7abc-9def-0123456789ab","kind":"Cluster","href":"/api/hyperfleet/v1/clusters/019466a0-8f8e-7abc-9def-0123456789ab"},
			"href":"/api/hyperfleet/v1/clusters/019466a0-8f8e-7abc-9def-0123456789ab/nodepools/019466a1-2b3c-7def-8abc-456789abcdef"}}`)}
	}

	writeStatuses("False")
	h.run(t, []*events.Message{event("e1")})
	writeStatuses("True")
	h.run(t, []*events.Message{event("e2")})
	reps := h.sink.reports(t)
	if len(reps) != 2 || reps[0].Report.Condition("Applied").Reason != handlers.ReasonPreconditionsNotMet || reps[1].Report.Condition("Available").Status != "True" {
		for _, r := range reps {
			t.Log(reasons(r.Report))
		}
		t.Fatalf("want PreconditionsNotMet, then delivered and Available")
	}

	// An expression that fails at run time dead-letters the event with a
	// reason naming it, and a Health=False report says the same.
	bad := compilePreconditions(t, []preconditions.Precondition{{Name: "typo-in-key", Expression: `cluster.spec.dns.baseDomian == "example.com"`}})
	h = newHarness(t, harnessOpts{adapterType: handlers.TypeNodePool, reader: reader, deps: func(d *Deps) { d.Preconditions = bad }})
	src := h.run(t, []*events.Message{event("e3")})
	out := src.Outcomes()
	if len(out) != 1 || out[0].Settlement != "dead-letter" || !strings.Contains(out[0].Reason, "typo-in-key") || out[0].Attempts != 1 {
		t.Fatalf("outcomes %+v, want one dead letter at the first attempt naming typo-in-key", out)
	}
	reps = h.sink.reports(t)
	if len(reps) != 1 || reps[0].Report.Condition("Health").Status != "False" || !strings.Contains(reps[0].Report.Condition("Health").Message, "typo-in-key") {
		t.Fatalf("failure report %+v", reps)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
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
