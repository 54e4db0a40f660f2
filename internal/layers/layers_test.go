package layers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// layers lists our packages from the bottom up, as paths relative to the
// module root. A package belongs to the longest entry that is its path or a
// folder above it. It may import packages of its own entry (events/rabbitmq
// imports events) and of entries in lower layers; nothing else.
var layers = []struct {
	name    string
	entries []string
}{
	{"leaves", []string{"internal/failure", "internal/backoff", "internal/workmeta", "internal/layers", "redact", "lifecycle"}},
	{"domain types", []string{"hyperfleet"}},
	{"parts", []string{"events", "hyperfleet/apiclient", "handlers", "maestro"}},
	{"composition", []string{"pipeline"}},
	{"programs", []string{"cmd", "internal/bench", "deploy"}},
}

// TestImportsPointDown checks every package of the module against the
// table.
func TestImportsPointDown(t *testing.T) {
	graph := importGraph(t)
	if len(graph) < 10 {
		t.Fatalf("go list found only %d packages: %v", len(graph), graph)
	}
	for _, v := range violations(graph) {
		t.Error(v)
	}
}

// TestViolationsNamed: the check fails on an upward import, a sideways one
// and a package the table does not place, and passes what it should.
func TestViolationsNamed(t *testing.T) {
	got := violations(map[string][]string{
		"hyperfleet":           {"internal/failure"},       // down: fine
		"events/rabbitmq":      {"events", "redact"},       // own entry, down: fine
		"hyperfleet/apiclient": {"hyperfleet"},             // a deeper entry, down: fine
		"handlers":             {"maestro/remote"},         // sideways
		"internal/backoff":     {"pipeline"},               // upward
		"events":               {"hyperfleet/apiclient"},   // sideways (the longest entry wins)
		"newfolder/thing":      nil,                        // not in the table
		"cmd/adapter":          {"pipeline", "hyperfleet"}, // down: fine
	})
	want := []string{
		"events (parts) imports hyperfleet/apiclient (parts): sideways, between two entries of one layer",
		"handlers (parts) imports maestro/remote (parts): sideways, between two entries of one layer",
		"internal/backoff (leaves) imports pipeline (composition): upward",
		"newfolder/thing: in no entry of the layer table (internal/layers/layers_test.go); add it where it belongs",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("violations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// entryOf is the table entry that holds pkg and its layer's index.
func entryOf(pkg string) (entry string, layer int, ok bool) {
	for i, l := range layers {
		for _, e := range l.entries {
			if (pkg == e || strings.HasPrefix(pkg, e+"/")) && len(e) > len(entry) {
				entry, layer, ok = e, i, true
			}
		}
	}
	return entry, layer, ok
}

// violations names every import in graph (package -> the packages of
// ours it imports) that the table does not allow, sorted.
func violations(graph map[string][]string) []string {
	var out []string
	for pkg, imports := range graph {
		entry, layer, ok := entryOf(pkg)
		if !ok {
			out = append(out, fmt.Sprintf("%s: in no entry of the layer table (internal/layers/layers_test.go); add it where it belongs", pkg))
			continue
		}
		for _, imp := range imports {
			ientry, ilayer, ok := entryOf(imp)
			switch {
			case !ok || ientry == entry || ilayer < layer:
				// Unplaced packages are reported on their own.
			case ilayer > layer:
				out = append(out, fmt.Sprintf("%s (%s) imports %s (%s): upward", pkg, layers[layer].name, imp, layers[ilayer].name))
			default:
				out = append(out, fmt.Sprintf("%s (%s) imports %s (%s): sideways, between two entries of one layer", pkg, layers[layer].name, imp, layers[ilayer].name))
			}
		}
	}
	sort.Strings(out)
	return out
}

// importGraph asks go list for the module's packages and the packages of
// ours each imports outside its tests, as paths relative to the module
// root.
func importGraph(t *testing.T) map[string][]string {
	t.Helper()
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports,Module", "./...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list in %s: %v\n%s", root, err, stderr.String())
	}
	graph := map[string][]string{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			ImportPath string
			Imports    []string
			Module     *struct{ Path string }
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		if p.Module == nil {
			t.Fatalf("go list: %s has no module", p.ImportPath)
		}
		prefix := p.Module.Path + "/"
		pkg := strings.TrimPrefix(p.ImportPath, prefix)
		graph[pkg] = []string{}
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, prefix) {
				graph[pkg] = append(graph[pkg], strings.TrimPrefix(imp, prefix))
			}
		}
	}
	return graph
}
