package main

import (
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	workv1 "open-cluster-management.io/api/work/v1"
	"sigs.k8s.io/yaml"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro/remote"
)

// foreignKeyMarker marks labels and annotations the OCM SDK and Maestro
// add on their own; apply neither owns nor removes them (as
// maestro.SourceDelivery), so diff and build leave them out too.
const foreignKeyMarker = "open-cluster-management.io/"

// change is one difference between the stored work and the file.
type change struct {
	Change string `json:"change"` // added, removed, changed
	What   string `json:"what"`
	Before any    `json:"before,omitempty"`
	After  any    `json:"after,omitempty"`
}

// diffWorks lists what applying desired over stored would change, in the
// terms apply compares (maestro.SourceDelivery's upToDate): owned labels
// and annotations, and the spec with deleteOption defaulted. stored may be
// nil (apply would create the work).
func diffWorks(stored, desired *workv1.ManifestWork) []change {
	var out []change
	if stored == nil {
		for _, m := range desired.Spec.Workload.Manifests {
			out = append(out, change{Change: "added", What: "manifest " + manifestID(m.Raw), After: decode(m.Raw)})
		}
		return out
	}
	out = append(out, diffMap("metadata.labels", stored.Labels, desired.Labels)...)
	out = append(out, diffMap("metadata.annotations", stored.Annotations, desired.Annotations)...)

	type entry struct {
		id  string
		obj any
	}
	index := func(ms []workv1.Manifest) ([]entry, map[string]any) {
		var order []entry
		byID := map[string]any{}
		for _, m := range ms {
			e := entry{id: manifestID(m.Raw), obj: decode(m.Raw)}
			order = append(order, e)
			byID[e.id] = e.obj
		}
		return order, byID
	}
	sOrder, sByID := index(stored.Spec.Workload.Manifests)
	dOrder, dByID := index(desired.Spec.Workload.Manifests)
	for _, e := range dOrder {
		before, ok := sByID[e.id]
		switch {
		case !ok:
			out = append(out, change{Change: "added", What: "manifest " + e.id, After: e.obj})
		case !reflect.DeepEqual(before, e.obj):
			out = append(out, change{Change: "changed", What: "manifest " + e.id, Before: before, After: e.obj})
		}
	}
	for _, e := range sOrder {
		if _, ok := dByID[e.id]; !ok {
			out = append(out, change{Change: "removed", What: "manifest " + e.id, Before: e.obj})
		}
	}
	ids := func(es []entry, keep map[string]any) []string {
		var s []string
		for _, e := range es {
			if _, ok := keep[e.id]; ok {
				s = append(s, e.id)
			}
		}
		return s
	}
	if a, b := ids(sOrder, dByID), ids(dOrder, sByID); !reflect.DeepEqual(a, b) {
		out = append(out, change{Change: "changed", What: "manifest order", Before: a, After: b})
	}

	sSpec, dSpec := specRest(stored), specRest(desired)
	keys := map[string]bool{}
	for k := range sSpec {
		keys[k] = true
	}
	for k := range dSpec {
		keys[k] = true
	}
	for _, k := range sortedKeys(keys) {
		b, a := sSpec[k], dSpec[k]
		switch {
		case b == nil && a != nil:
			out = append(out, change{Change: "added", What: "spec." + k, After: a})
		case b != nil && a == nil:
			out = append(out, change{Change: "removed", What: "spec." + k, Before: b})
		case !reflect.DeepEqual(a, b):
			out = append(out, change{Change: "changed", What: "spec." + k, Before: b, After: a})
		}
	}
	return out
}

// specRest is the spec without the manifests, decoded, with deleteOption
// defaulted the way apply sends it.
func specRest(w *workv1.ManifestWork) map[string]any {
	spec := w.Spec.DeepCopy()
	spec.Workload = workv1.ManifestsTemplate{}
	if spec.DeleteOption == nil {
		spec.DeleteOption = &workv1.DeleteOption{PropagationPolicy: workv1.DeletePropagationPolicyTypeForeground}
	}
	raw, _ := json.Marshal(spec)
	m, _ := decode(raw).(map[string]any)
	delete(m, "workload")
	return m
}

func diffMap(what string, stored, desired map[string]string) []change {
	var out []change
	keys := map[string]bool{}
	for k := range stored {
		if !strings.Contains(k, foreignKeyMarker) {
			keys[k] = true
		}
	}
	for k := range desired {
		keys[k] = true
	}
	for _, k := range sortedKeys(keys) {
		b, hadB := stored[k]
		a, hasA := desired[k]
		item := fmt.Sprintf("%s[%s]", what, k)
		switch {
		case !hadB:
			out = append(out, change{Change: "added", What: item, After: a})
		case !hasA:
			out = append(out, change{Change: "removed", What: item, Before: b})
		case a != b:
			out = append(out, change{Change: "changed", What: item, Before: b, After: a})
		}
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func decode(raw []byte) any {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return string(raw)
	}
	return v
}

func manifestID(raw []byte) string {
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(raw); err != nil {
		return "(undecodable manifest)"
	}
	return identityOf(obj).String()
}

// printChanges writes the changes for a person: one line per change, and
// a line diff of the YAML for changed objects.
func printChanges(out io.Writer, header string, changes []change) {
	fmt.Fprintln(out, header)
	sign := map[string]string{"added": "+", "removed": "-", "changed": "~"}
	for _, c := range changes {
		switch {
		case isScalar(c.Before) && isScalar(c.After):
			switch c.Change {
			case "added":
				fmt.Fprintf(out, "+ %s: %q\n", c.What, c.After)
			case "removed":
				fmt.Fprintf(out, "- %s: %q\n", c.What, c.Before)
			default:
				fmt.Fprintf(out, "~ %s: %q -> %q\n", c.What, c.Before, c.After)
			}
		default:
			fmt.Fprintf(out, "%s %s\n", sign[c.Change], c.What)
			for _, l := range lineDiff(yamlLines(c.Before), yamlLines(c.After)) {
				fmt.Fprintf(out, "    %s\n", l)
			}
		}
	}
	if len(changes) == 0 {
		fmt.Fprintln(out, "no differences")
	} else {
		fmt.Fprintf(out, "%d differences\n", len(changes))
	}
}

func isScalar(v any) bool {
	switch v.(type) {
	case nil, string:
		return true
	}
	return false
}

func yamlLines(v any) []string {
	if v == nil {
		return nil
	}
	data, err := yaml.Marshal(v)
	if err != nil {
		return []string{fmt.Sprint(v)}
	}
	return strings.Split(strings.TrimRight(string(data), "\n"), "\n")
}

// lineDiff is a small LCS line diff: "  " unchanged, "- " removed, "+ "
// added, with up to three lines of context around changes.
func lineDiff(a, b []string) []string {
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var all []string
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			all = append(all, "  "+a[i])
			i++
			j++
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			all = append(all, "- "+a[i])
			i++
		default:
			all = append(all, "+ "+b[j])
			j++
		}
	}
	const context = 3
	keep := make([]bool, len(all))
	for k, l := range all {
		if !strings.HasPrefix(l, "  ") {
			for c := max(0, k-context); c <= min(len(all)-1, k+context); c++ {
				keep[c] = true
			}
		}
	}
	var out []string
	skipped := false
	for k, l := range all {
		if !keep[k] {
			skipped = true
			continue
		}
		if skipped && len(out) > 0 {
			out = append(out, "  ...")
		}
		skipped = false
		out = append(out, l)
	}
	return out
}

// cmdDiff shows what apply of the file would change.
func cmdDiff(inv *invocation) (*outcome, error) {
	o := inv.o
	desired, base, stored, err := fileAndStored(inv)
	if err != nil {
		return nil, err
	}

	changes := diffWorks(stored, desired)
	shown := changes
	if !o.ShowSecrets {
		shown = maskChanges(changes)
	}
	header := fmt.Sprintf("ManifestWork %s/%s", o.Consumer, desired.Name)
	switch {
	case stored == nil:
		header += fmt.Sprintf(" does not exist: apply would create it with %d manifests", len(desired.Spec.Workload.Manifests))
	default:
		header += fmt.Sprintf(" (stored generation %d) -> %s", stored.Generation, o.ManifestFile)
	}
	if why := base.conflict(stored); why != "" {
		header += fmt.Sprintf("\nnote: %s: apply would refuse the file (Conflict)", why)
	}
	if inv.g.Output == "table" {
		printChanges(inv.stdout, header, shown)
	} else if err := inv.printObject(map[string]any{
		"manifestWorkName": desired.Name, "consumer": o.Consumer, "exists": stored != nil, "changes": nonNil(shown),
	}); err != nil {
		return nil, err
	}
	out := &outcome{status: stateSucceeded, code: exitOK, work: stored,
		message: fmt.Sprintf("ManifestWork %s/%s: no differences from %s", o.Consumer, desired.Name, o.ManifestFile)}
	if len(changes) > 0 {
		out.code = exitDifferent
		out.message = fmt.Sprintf("ManifestWork %s/%s: %d differences from %s", o.Consumer, desired.Name, len(changes), o.ManifestFile)
	}
	return out, nil
}

func nonNil(c []change) []change {
	if c == nil {
		return []change{}
	}
	return c
}

// storedWork reads the work, nil when it does not exist.
// fileAndStored is how diff and build start: load the manifest file as a
// work, check the consumer, and fetch the stored work of the same name (nil
// when there is none).
func fileAndStored(inv *invocation) (*workv1.ManifestWork, basis, *workv1.ManifestWork, error) {
	o := inv.o
	file, base, _, err := loadWork(inv.stdin, o.ManifestFile, o.Name, o.Consumer)
	if err != nil {
		return nil, base, nil, err
	}
	inv.o.Name = file.Name
	r, err := inv.reader()
	if err != nil {
		return nil, base, nil, err
	}
	defer r.Close()
	if err := inv.checkConsumer(r); err != nil {
		return nil, base, nil, err
	}
	stored, err := storedWork(inv, r, file.Name)
	return file, base, stored, err
}

func storedWork(inv *invocation, r *remote.Reader, name string) (*workv1.ManifestWork, error) {
	rec, err := r.Get(inv.ctx, inv.o.Consumer, name)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return rec.Work, nil
}
