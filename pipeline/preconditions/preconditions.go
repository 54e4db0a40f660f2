// Package preconditions gates an adapter's work on CEL expressions over the
// resource, its cluster, the adapter itself and, read only when an
// expression names them, the adapters' status reports: a node pool adapter
// waits until the cluster's landing zone is Available, an adapter acts
// only while the cluster is not Reconciled.
//
// Expressions are compiled and type-checked once, at start (Compile), so a
// typo fails the process before it takes any event; each event then
// evaluates every expression (Set.Evaluate).
package preconditions

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"sigs.k8s.io/yaml"

	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// The variables an expression sees.
const (
	// VarResource is the event's resource as the API returns it (a map:
	// kind, id, href, name, labels, spec, generation, owner_references,
	// status with its conditions, created_time, updated_time, deleted_time).
	VarResource = "resource"
	// VarCluster is the cluster the works go to: the resource itself for a
	// cluster, the owning cluster for a node pool.
	VarCluster = "cluster"
	// VarAdapter is {name, type} of this adapter.
	VarAdapter = "adapter"
	// VarStatuses is the list of every adapter's status report on the
	// resource (GET {resource href}/statuses), each {adapter,
	// observed_generation, conditions, data, ...}.
	VarStatuses = "statuses"
	// VarClusterStatuses is the same for the cluster.
	VarClusterStatuses = "cluster_statuses"
)

// costLimit bounds one evaluation (CEL's cost units, about one per list
// element visited): an expression over a few dozen reports costs a few
// hundred; one that runs away fails instead of holding an event.
const costLimit = 1_000_000

// Precondition is one named expression.
type Precondition struct {
	// Name identifies it in reports and errors; for expressions from
	// PRECONDITIONS it is the expression itself.
	Name       string `json:"name"`
	Expression string `json:"expression"`
}

func (p Precondition) String() string {
	if p.Name == p.Expression {
		return fmt.Sprintf("precondition %q", p.Expression)
	}
	return fmt.Sprintf("precondition %s (%q)", p.Name, p.Expression)
}

// Parse reads PRECONDITIONS: one expression per line (combine conditions
// on one line with &&; an expression that needs several lines belongs in
// a PRECONDITIONS_FILE). Blank lines and lines starting with # are
// skipped. Each is named by its text.
func Parse(text string) []Precondition {
	var out []Precondition
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, Precondition{Name: line, Expression: line})
	}
	return out
}

// LoadFile reads PRECONDITIONS_FILE: a YAML (or JSON) list of {name,
// expression}. Names must be set and unique; unknown fields are refused
// (a misspelt key must not silently drop a precondition).
func LoadFile(path string) ([]Precondition, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var list []Precondition
	if err := yaml.UnmarshalStrict(data, &list); err != nil {
		return nil, fmt.Errorf("%s: want a YAML list of {name, expression}: %w", path, err)
	}
	seen := map[string]bool{}
	for i, p := range list {
		switch {
		case strings.TrimSpace(p.Name) == "":
			return nil, fmt.Errorf("%s: entry %d has no name", path, i+1)
		case strings.TrimSpace(p.Expression) == "":
			return nil, fmt.Errorf("%s: precondition %s has no expression", path, p.Name)
		case seen[p.Name]:
			return nil, fmt.Errorf("%s: precondition %s is listed twice", path, p.Name)
		}
		seen[p.Name] = true
	}
	return list, nil
}

// Set is a compiled list of preconditions; all must hold. The zero or nil
// Set has none. It is safe for concurrent use.
type Set struct {
	checks []check
}

type check struct {
	Precondition
	prg cel.Program
	// needs names the variables the expression references, so that the
	// status reports are read only when some expression uses them.
	needs map[string]bool
}

// Compile parses and type-checks every expression. An error names the
// first bad one and what is wrong with it.
func Compile(list []Precondition) (*Set, error) {
	if len(list) == 0 {
		return &Set{}, nil
	}
	env, err := newEnv()
	if err != nil {
		return nil, err
	}
	s := &Set{}
	for _, p := range list {
		ast, iss := env.Compile(p.Expression)
		if iss.Err() != nil {
			return nil, fmt.Errorf("%s: %s", p, oneLine(iss.Err().Error()))
		}
		if t := ast.OutputType(); !t.IsExactType(types.BoolType) && !t.IsExactType(types.DynType) {
			return nil, fmt.Errorf("%s: the result is %s, want bool", p, t)
		}
		prg, err := env.Program(ast, cel.CostLimit(costLimit))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		c := check{Precondition: p, prg: prg, needs: map[string]bool{}}
		for _, ref := range ast.NativeRep().ReferenceMap() {
			c.needs[ref.Name] = true
		}
		s.checks = append(s.checks, c)
	}
	return s, nil
}

func newEnv() (*cel.Env, error) {
	obj := cel.MapType(cel.StringType, cel.DynType)
	return cel.NewEnv(
		cel.Variable(VarResource, obj),
		cel.Variable(VarCluster, obj),
		cel.Variable(VarAdapter, obj),
		cel.Variable(VarStatuses, cel.ListType(obj)),
		cel.Variable(VarClusterStatuses, cel.ListType(obj)),
		// resource.?status.?conditions.orValue([]): fields a new resource
		// does not have yet, without an error.
		cel.OptionalTypes(),
	)
}

// Len is the number of preconditions.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.checks)
}

// Input is what the expressions are evaluated over.
type Input struct {
	Resource    *hyperfleet.Resource
	Cluster     *hyperfleet.Resource
	AdapterName string
	AdapterType string
	// Statuses reads the status reports, for expressions naming statuses
	// or cluster_statuses (nil: such expressions fail permanently, naming
	// what to configure).
	Statuses hyperfleet.StatusReader
}

// Evaluate evaluates every precondition and returns those that do not
// hold (none: the adapter may act). Reading status reports fails as the
// reader's errors do (transient ones are retried like any API read); an
// expression that fails to evaluate, or gives no bool, is a permanent
// failure naming it.
func (s *Set) Evaluate(ctx context.Context, in Input) ([]Precondition, error) {
	if s.Len() == 0 {
		return nil, nil
	}
	cluster := in.Cluster
	if cluster == nil {
		cluster = in.Resource
	}
	vars := map[string]any{VarAdapter: map[string]any{"name": in.AdapterName, "type": in.AdapterType}}
	var err error
	if vars[VarResource], err = objectOf(in.Resource); err != nil {
		return nil, failure.Permanent(fmt.Errorf("preconditions: resource: %w", err))
	}
	if vars[VarCluster], err = objectOf(cluster); err != nil {
		return nil, failure.Permanent(fmt.Errorf("preconditions: cluster: %w", err))
	}
	// Read only what some expression names, once per event.
	reads := map[string]*hyperfleet.Resource{VarStatuses: in.Resource, VarClusterStatuses: cluster}
	for _, name := range []string{VarStatuses, VarClusterStatuses} {
		if !s.needs(name) {
			vars[name] = []any{}
			continue
		}
		if in.Statuses == nil {
			return nil, failure.Permanentf("preconditions: %s needs the adapters' status reports, but no HyperFleet API is configured (set HYPERFLEET_API_URL or --api-dir)", name)
		}
		items, err := in.Statuses.GetStatuses(ctx, reads[name].Href)
		if err != nil {
			// Wrapped as it came: transient errors are retried, and
			// hyperfleet.ErrNotFound (deleted since it was read) makes the
			// event gone.
			return nil, fmt.Errorf("preconditions: read %s of %s: %w", name, reads[name].Href, err)
		}
		list := make([]any, 0, len(items))
		for _, raw := range items {
			v, err := decodeJSON(raw)
			if err != nil {
				return nil, failure.Permanent(fmt.Errorf("preconditions: %s of %s: %w", name, reads[name].Href, err))
			}
			list = append(list, v)
		}
		vars[name] = list
	}

	var unmet []Precondition
	for _, c := range s.checks {
		out, _, err := c.prg.ContextEval(ctx, vars)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, failure.Permanent(fmt.Errorf("%s failed: %s", c.Precondition, oneLine(err.Error())))
		}
		held, ok := out.Value().(bool)
		if !ok {
			return nil, failure.Permanentf("%s gave %s, want a bool", c.Precondition, out.Type().TypeName())
		}
		if !held {
			unmet = append(unmet, c.Precondition)
		}
	}
	return unmet, nil
}

func (s *Set) needs(name string) bool {
	for _, c := range s.checks {
		if c.needs[name] {
			return true
		}
	}
	return false
}

// objectOf renders a resource as the map an expression sees: its API JSON.
func objectOf(r *hyperfleet.Resource) (any, error) {
	if r == nil {
		return map[string]any{}, nil
	}
	raw, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	return decodeJSON(raw)
}

// decodeJSON decodes JSON for CEL: integral numbers become int (CEL's int,
// so resource.generation == 2 and observed_generation comparisons hold
// exactly), others double.
func decodeJSON(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return numbers(v), nil
}

func numbers(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = numbers(e)
		}
		return t
	case []any:
		for i, e := range t {
			t[i] = numbers(e)
		}
		return t
	case json.Number:
		if i, err := t.Int64(); err == nil {
			return i
		}
		f, _ := t.Float64()
		return f
	}
	return v
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}
