package preconditions

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

func sample(t testing.TB, name string) *hyperfleet.Resource {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "contracts", name))
	if err != nil {
		t.Fatal(err)
	}
	r, err := hyperfleet.ParseResource(data, name)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// fakeStatuses stands in for the HyperFleet API's GET .../statuses (the
// client itself is tested against HTTP in package hyperfleet); it counts
// reads per href.
type fakeStatuses struct {
	mu    sync.Mutex
	by    map[string][]json.RawMessage
	reads map[string]int
	err   error
}

func (f *fakeStatuses) GetStatuses(_ context.Context, href string) ([]json.RawMessage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.reads == nil {
		f.reads = map[string]int{}
	}
	f.reads[href]++
	return f.by[href], f.err
}

func mustCompile(t *testing.T, list ...Precondition) *Set {
	t.Helper()
	s, err := Compile(list)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCompileRefusesBadExpressionsNamingThem(t *testing.T) {
	for _, tc := range []struct {
		p    Precondition
		want string
	}{
		{Precondition{Name: "syntax", Expression: "resource.status.conditions.exists(c, "}, "precondition syntax"},
		{Precondition{Name: "typo", Expression: "resorce.generation > 1"}, "undeclared reference to 'resorce'"},
		{Precondition{Name: "not-bool", Expression: "resource.generation + 1 == 2 ? 'a' : 'b'"}, "the result is string, want bool"},
		{Precondition{Name: "int", Expression: "size(statuses)"}, "want bool"},
	} {
		_, err := Compile([]Precondition{{Name: "fine", Expression: "true"}, tc.p})
		if err == nil {
			t.Errorf("%s: compiled, want an error", tc.p.Name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.p.Name) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %q, want one line naming it and containing %q", tc.p.Name, err, tc.want)
		}
	}
	// PRECONDITIONS' entries are named by their text.
	_, err := Compile(Parse("true\nresource.nope("))
	if err == nil || !strings.Contains(err.Error(), `precondition "resource.nope("`) {
		t.Errorf("error %v, want it to quote the expression", err)
	}
}

func TestEvaluateClusterConditions(t *testing.T) {
	cluster := sample(t, "cluster-get-response.json") // Reconciled=True, Adapter1Successful=True
	pool := sample(t, "nodepool-get-response.json")   // Reconciled=False
	ctx := context.Background()

	s := mustCompile(t,
		Precondition{Name: "adapter1-available", Expression: `cluster.status.conditions.exists(c, c.type == "Adapter1Successful" && c.status == "True")`},
		Precondition{Name: "cluster-not-reconciled", Expression: `!cluster.status.conditions.exists(c, c.type == "Reconciled" && c.status == "True")`},
		Precondition{Name: "own-generation", Expression: `resource.generation == 1 && resource.owner_references.id == cluster.id`},
		Precondition{Name: "adapter", Expression: `adapter.name == "np" && adapter.type == "nodepool"`},
	)
	unmet, err := s.Evaluate(ctx, Input{Resource: pool, Cluster: cluster, AdapterName: "np", AdapterType: "nodepool"})
	if err != nil {
		t.Fatal(err)
	}
	if len(unmet) != 1 || unmet[0].Name != "cluster-not-reconciled" {
		t.Fatalf("unmet %v, want only cluster-not-reconciled", unmet)
	}
	// Optional fields a new resource lacks, without an error.
	s = mustCompile(t, Precondition{Name: "opt", Expression: `resource.?status.?conditions.orValue([]).size() == 0`})
	bare := *cluster
	bare.Status = nil
	if unmet, err := s.Evaluate(ctx, Input{Resource: &bare}); err != nil || len(unmet) != 0 {
		t.Fatalf("optional: %v, %v", unmet, err)
	}
}

// TestEvaluateReadsStatusesOnlyWhenNamed: no expression names statuses, no
// read; cluster_statuses reads the cluster's once, whatever the number of
// expressions naming it.
func TestEvaluateReadsStatusesOnlyWhenNamed(t *testing.T) {
	cluster := sample(t, "cluster-get-response.json")
	pool := sample(t, "nodepool-get-response.json")
	ctx := context.Background()
	reader := &fakeStatuses{by: map[string][]json.RawMessage{
		cluster.Href: {json.RawMessage(`{"adapter":"landing-zone","observed_generation":1,"conditions":[{"type":"Available","status":"False"}]}`)},
	}}
	in := Input{Resource: pool, Cluster: cluster, Statuses: reader}

	if _, err := mustCompile(t, Precondition{Name: "plain", Expression: "cluster.generation >= 1"}).Evaluate(ctx, in); err != nil {
		t.Fatal(err)
	}
	if len(reader.reads) != 0 {
		t.Fatalf("reads %v, want none", reader.reads)
	}

	landingZone := `cluster_statuses.exists(s, s.adapter == "landing-zone" && s.observed_generation == cluster.generation && s.conditions.exists(c, c.type == "Available" && c.status == "True"))`
	s := mustCompile(t,
		Precondition{Name: "landing-zone-available", Expression: landingZone},
		Precondition{Name: "landing-zone-reported", Expression: `cluster_statuses.exists(s, s.adapter == "landing-zone")`},
		Precondition{Name: "own-none", Expression: `size(statuses) == 0`},
	)
	unmet, err := s.Evaluate(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if len(unmet) != 1 || unmet[0].Name != "landing-zone-available" {
		t.Fatalf("unmet %v, want landing-zone-available", unmet)
	}
	if reader.reads[cluster.Href] != 1 || reader.reads[pool.Href] != 1 {
		t.Fatalf("reads %v, want one of each", reader.reads)
	}

	reader.by[cluster.Href] = []json.RawMessage{json.RawMessage(`{"adapter":"landing-zone","observed_generation":1,"conditions":[{"type":"Available","status":"True"}]}`)}
	if unmet, err := s.Evaluate(ctx, in); err != nil || len(unmet) != 0 {
		t.Fatalf("after the landing zone turned Available: unmet %v, %v", unmet, err)
	}
}

func TestEvaluateErrors(t *testing.T) {
	cluster := sample(t, "cluster-get-response.json")
	ctx := context.Background()

	// A run-time error is permanent and names the expression.
	s := mustCompile(t, Precondition{Name: "missing-key", Expression: `resource.spec.nope == "x"`})
	_, err := s.Evaluate(ctx, Input{Resource: cluster})
	if err == nil || !failure.IsPermanent(err) || !strings.Contains(err.Error(), "missing-key") || !strings.Contains(err.Error(), "no such key") {
		t.Fatalf("err = %v, want a permanent error naming missing-key", err)
	}

	// A dyn result that is no bool, likewise.
	s = mustCompile(t, Precondition{Name: "dyn", Expression: `resource.spec.dns.baseDomain`})
	if _, err := s.Evaluate(ctx, Input{Resource: cluster}); err == nil || !failure.IsPermanent(err) || !strings.Contains(err.Error(), "want a bool") {
		t.Fatalf("err = %v, want a permanent error: not a bool", err)
	}

	// A failed statuses read keeps its class (transient here).
	s = mustCompile(t, Precondition{Name: "st", Expression: `size(statuses) > 0`})
	boom := errors.New("HTTP 503")
	_, err = s.Evaluate(ctx, Input{Resource: cluster, Statuses: &fakeStatuses{err: boom}})
	if !errors.Is(err, boom) || failure.IsPermanent(err) {
		t.Fatalf("err = %v, want the transient read error", err)
	}
	_, err = s.Evaluate(ctx, Input{Resource: cluster})
	if err == nil || !failure.IsPermanent(err) || !strings.Contains(err.Error(), "HYPERFLEET_API_URL") {
		t.Fatalf("no reader: err = %v, want a permanent error saying what to set", err)
	}
}

func TestParseAndLoadFile(t *testing.T) {
	got := Parse("# wait for the landing zone\n  a == b  \n\nc\n")
	if len(got) != 2 || got[0].Expression != "a == b" || got[0].Name != "a == b" || got[1].Expression != "c" {
		t.Fatalf("Parse: %+v", got)
	}
	dir := t.TempDir()
	write := func(body string) string {
		f := filepath.Join(dir, "p.yaml")
		if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return f
	}
	list, err := LoadFile(write("- name: lz\n  expression: |\n    cluster.generation > 0 &&\n    true\n"))
	if err != nil || len(list) != 1 || list[0].Name != "lz" || !strings.Contains(list[0].Expression, "&&\ntrue") {
		t.Fatalf("LoadFile: %+v, %v", list, err)
	}
	if _, err := Compile(list); err != nil {
		t.Fatalf("a multi-line expression: %v", err)
	}
	for body, want := range map[string]string{
		"- name: a\n  expresion: x\n": "unknown field",
		"- expression: x\n":           "no name",
		"- name: a\n":                 "no expression",
		"- {name: a, expression: x}\n- {name: a, expression: y}\n": "listed twice",
		"name: a\n": "want a YAML list",
	} {
		if _, err := LoadFile(write(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", body, err, want)
		}
	}
}

// BenchmarkEvaluate: one event's evaluation of the README's landing-zone
// precondition (the resource and cluster turned into CEL values included).
func BenchmarkEvaluate(b *testing.B) {
	cluster := sample(b, "cluster-get-response.json")
	pool := sample(b, "nodepool-get-response.json")
	s, err := Compile([]Precondition{{Name: "lz", Expression: `cluster.status.conditions.exists(c, c.type == "LandingZoneSuccessful" && c.status == "True" && c.observed_generation == cluster.generation)`}})
	if err != nil {
		b.Fatal(err)
	}
	in := Input{Resource: pool, Cluster: cluster}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Evaluate(context.Background(), in); err != nil {
			b.Fatal(err)
		}
	}
}

// TestREADMEExamplesCompile: the README's Preconditions section shows
// expressions that compile, and that hold on a cluster whose landing zone
// is Available.
func TestREADMEExamplesCompile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	section := string(data)
	if i := strings.Index(section, "## Preconditions"); i >= 0 {
		section = section[i:]
	}
	start := strings.Index(section, "```yaml\n")
	end := strings.Index(section[start+8:], "```")
	if start < 0 || end < 0 {
		t.Fatal("no yaml example in the README's Preconditions section")
	}
	file := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(file, []byte(section[start+8:start+8+end]), 0o644); err != nil {
		t.Fatal(err)
	}
	list, err := LoadFile(file)
	if err != nil || len(list) != 2 {
		t.Fatalf("README example: %v, %v", list, err)
	}
	envLine := section[strings.Index(section, "PRECONDITIONS='")+len("PRECONDITIONS='"):]
	list = append(list, Parse(envLine[:strings.Index(envLine, "'\n")])...)
	s := mustCompile(t, list...)

	cluster := sample(t, "cluster-get-response.json")
	cluster.Status = json.RawMessage(`{"conditions":[{"type":"LandingZoneSuccessful","status":"True","observed_generation":1},{"type":"Reconciled","status":"True"}]}`)
	reports := &fakeStatuses{by: map[string][]json.RawMessage{cluster.Href: {json.RawMessage(`{"adapter":"landing-zone","observed_generation":1,"conditions":[{"type":"Available","status":"True"}]}`)}}}
	unmet, err := s.Evaluate(context.Background(), Input{Resource: sample(t, "nodepool-get-response.json"), Cluster: cluster, Statuses: reports})
	if err != nil {
		t.Fatal(err)
	}
	if len(unmet) != 1 || !strings.Contains(unmet[0].Expression, "Reconciled") {
		t.Fatalf("unmet %v, want only the not-Reconciled example (the cluster is Reconciled)", unmet)
	}
}
