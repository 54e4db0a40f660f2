package handlers

// The template adapter type: a directory of Go templates, loaded, checked
// and instrumented once (newTemplateHandler, instrument), rendered per event
// (render) within its bounds (limits.go). A render's values become tokens
// (templaterender.go), the rendered documents objects (templatedocs.go),
// the tokens values again (templatesubstitute.go); the functions templates
// call are in templatefuncs.go.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/template"
	"text/template/parse"
	"time"

	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// TemplateData is what the templates of a template adapter see. The
// template type renders every file of Config.TemplateDir into the
// manifests of one ManifestWork per resource.
//
// # Files
//
// Files ending in .yaml, .yml, .yaml.tmpl or .yml.tmpl are rendered in
// name order; each may hold several YAML documents separated by "---"
// lines, and documents that render empty (only whitespace or comments, e.g.
// behind an {{if}}) are skipped. Files whose name starts with "_" or ends
// in .tpl are helpers: parsed, so their {{define}} blocks can be used with
// {{template}} or {{include}}, but not rendered on their own. Other files
// are ignored. The directory is parsed once, when the adapter starts.
//
// Every rendered document must be a Kubernetes object with apiVersion,
// kind and metadata.name. Labels hyperfleet.io/adapter, resource-kind,
// resource-id, cluster-id and the annotation hyperfleet.io/generation are
// added to each; a manifest config asks for its .status back and applies
// it server-side.
//
// # Variables
//
//	.Resource            the resource of the event (cluster or node pool)
//	  .Resource.ID, .Name, .Kind, .Href, .Generation
//	  .Resource.Labels   map of labels, e.g. {{ .Resource.Labels.team }}
//	  .Resource.Spec     the spec as JSON, e.g. {{ .Resource.Spec.platform.type }}
//	  .Resource.OwnerReferences.ID   the owning cluster's id (node pools)
//	.Cluster             the cluster the work goes to; same fields. For a
//	                     cluster it is .Resource itself.
//	.Adapter.Name        the adapter name (Config.Name)
//	.Adapter.Type        "template"
//	.Consumer            the Maestro consumer (the work's namespace)
//	.Namespace           the landing-zone namespace on the target
//	.WorkName            the ManifestWork's name
//	.Generation          the resource's generation
//	.Deleting            true when the resource is marked for deletion
//	.Values              Config.Values, free-form
//
// Printing a missing map key (or a null) is an error naming the line:
// guard optional fields with default, with or if.
//
// # Values stay values
//
// The template text is trusted; what it prints is not (resource fields
// come from whoever may write to the HyperFleet API). Every action prints
// a token, the file is split at its own "---" lines, each document is
// parsed as one YAML document, and only then are the tokens replaced in
// the parsed tree (see renderState): a value fills the scalar it stands
// in and nothing else. It can never end a document, start a key or add an
// object. toYaml and toJson values become their YAML structure at their
// place, include keeps its helper's own text.
//
// # Functions
//
// Besides Go's built-ins (index, printf, eq, len, ...):
//
//	toJson v          v as compact JSON
//	toYaml v          v as YAML (pair with indent/nindent); a non-empty
//	                  list may stand at its key's indentation
//	default d v       v, or d when v is missing, nil, "", 0, false or empty
//	required msg v    v, or fail rendering with msg when v is empty
//	quote v           v as a double-quoted string
//	lower s, upper s, trim s
//	trunc n s         the first n characters of s
//	replace old new s
//	join sep list
//	b64enc s          base64 of s
//	indent n s        s with every line indented by n spaces
//	nindent n s       a newline, then indent n s
//	dnsLabel s        s as an RFC 1123 label, the way work names are made
//	include name v    the output of {{template name v}} as a string
//
// Template errors, invalid YAML, incomplete objects, kinds outside
// Config.AllowedKinds and renders past Config.TemplateTimeout or
// Config.MaxManifestBytes fail the event permanently, naming the file and,
// where known, the line. Builtins that compare or measure (eq, len) see
// include's output with its tokens; pass it through a function (trim) or
// compare the values themselves.
type TemplateData struct {
	Resource   *hyperfleet.Resource
	Cluster    *hyperfleet.Resource
	Adapter    TemplateAdapter
	Consumer   string
	Namespace  string
	WorkName   string
	Generation int64
	Deleting   bool
	Values     map[string]any
}

// TemplateAdapter identifies the adapter to templates.
type TemplateAdapter struct {
	Name string
	Type string
}

// templateHandler renders a directory of Go templates into one work.
type templateHandler struct {
	base
	dir     string
	tmpl    *template.Template
	files   []string // rendered files, in order
	values  map[string]any
	allowed kindSet
	timeout time.Duration
	docs    *documentCache
}

// outputFunc is the function appended to every action of every template
// (see instrument): it receives what the action would have printed.
const outputFunc = "output"

func newTemplateHandler(b base, cfg Config) (*templateHandler, error) {
	entries, err := os.ReadDir(cfg.TemplateDir)
	if err != nil {
		return nil, fmt.Errorf("handlers config TemplateDir: %w", err)
	}
	docs, err := newDocumentCache()
	if err != nil {
		return nil, fmt.Errorf("handlers config TemplateDir: %w", err)
	}
	h := &templateHandler{base: b, dir: cfg.TemplateDir, values: cfg.Values, timeout: cfg.templateTimeout(), docs: docs}
	root := template.New("").Option("missingkey=default")
	// The functions are bound again per render (render); these only let
	// the templates parse.
	root.Funcs((&renderState{}).funcs())
	for _, e := range entries { // ReadDir sorts by name
		name := e.Name()
		if e.IsDir() {
			continue
		}
		helper := strings.HasPrefix(name, "_") || strings.HasSuffix(name, ".tpl")
		rendered := !helper && hasAnySuffix(name, ".yaml", ".yml", ".yaml.tmpl", ".yml.tmpl")
		if !helper && !rendered {
			continue
		}
		text, err := os.ReadFile(filepath.Join(cfg.TemplateDir, name))
		if err != nil {
			return nil, fmt.Errorf("handlers config TemplateDir: %w", err)
		}
		if _, err := root.New(name).Parse(string(text)); err != nil {
			return nil, fmt.Errorf("handlers config TemplateDir %s: %w", cfg.TemplateDir, err)
		}
		if rendered {
			h.files = append(h.files, name)
		}
	}
	if len(h.files) == 0 {
		return nil, fmt.Errorf("handlers config TemplateDir %s: no *.yaml, *.yml, *.yaml.tmpl or *.yml.tmpl file to render", cfg.TemplateDir)
	}
	instrument(root)
	h.tmpl = root
	if h.allowed, err = h.allowedKinds(cfg.AllowedKinds); err != nil {
		return nil, err
	}
	return h, nil
}

func hasAnySuffix(s string, suffixes ...string) bool {
	return slices.ContainsFunc(suffixes, func(x string) bool { return strings.HasSuffix(s, x) })
}

// instrument appends outputFunc to the pipeline of every action that
// prints, in every template of the set, so that no value reaches the
// rendered text: each becomes a token, and the tokens are replaced by
// their values only once the text is parsed as YAML (see renderState).
func instrument(root *template.Template) {
	seen := map[*parse.Tree]bool{}
	for _, t := range root.Templates() {
		if t.Tree == nil || t.Tree.Root == nil || seen[t.Tree] {
			continue
		}
		seen[t.Tree] = true
		instrumentList(t.Tree, t.Tree.Root)
	}
}

func instrumentList(tree *parse.Tree, list *parse.ListNode) {
	if list == nil {
		return
	}
	for _, n := range list.Nodes {
		switch n := n.(type) {
		case *parse.ActionNode:
			if len(n.Pipe.Decl) > 0 { // {{ $x := ... }} prints nothing
				continue
			}
			n.Pipe.Cmds = append(n.Pipe.Cmds, &parse.CommandNode{
				NodeType: parse.NodeCommand,
				Pos:      n.Pos,
				Args:     []parse.Node{parse.NewIdentifier(outputFunc).SetTree(tree).SetPos(n.Pos)},
			})
		case *parse.IfNode:
			instrumentList(tree, n.List)
			instrumentList(tree, n.ElseList)
		case *parse.RangeNode:
			instrumentList(tree, n.List)
			instrumentList(tree, n.ElseList)
		case *parse.WithNode:
			instrumentList(tree, n.List)
			instrumentList(tree, n.ElseList)
		}
	}
}

func (h *templateHandler) Build(t Target) ([]*workv1.ManifestWork, error) {
	return h.build(t, h.objects)
}

// objects renders for wc within the timeout. The render itself stops at
// its next write or function call past the deadline; a loop that does
// neither is left to finish on its own, but the event does not wait for it.
func (h *templateHandler) objects(wc *workContext) ([]object, []string, error) {
	type result struct {
		objs   []object
		origin []string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		objs, origin, err := h.render(wc, false)
		done <- result{objs, origin, err}
	}()
	timer := time.NewTimer(h.timeout + h.timeout/2)
	defer timer.Stop()
	select {
	case r := <-done:
		return r.objs, r.origin, r.err
	case <-timer.C:
		return nil, nil, failure.Permanent(fmt.Errorf("adapter %s: %w (%s)", h.adapter, errTimeout, h.timeout))
	}
}

// render executes every file for wc. A probe render (allowedKinds) lets
// missing values and required pass, to see which kinds the files make.
func (h *templateHandler) render(wc *workContext, probe bool) ([]object, []string, error) {
	data := TemplateData{
		Resource:   wc.Resource,
		Cluster:    wc.Cluster,
		Adapter:    TemplateAdapter{Name: h.adapter, Type: h.typ},
		Consumer:   wc.Consumer,
		Namespace:  wc.Namespace,
		WorkName:   wc.WorkName,
		Generation: wc.Resource.Generation,
		Deleting:   wc.Resource.Deleting(),
		Values:     h.values,
	}
	st, err := newRenderState(h.tmpl, h.docs, h.limits.manifestBytes, h.timeout, probe)
	if err != nil {
		return nil, nil, failure.Permanent(fmt.Errorf("adapter %s: %w", h.adapter, err))
	}
	var (
		objs   []object
		origin []string
	)
	for _, file := range h.files {
		out := st.writer()
		if err := st.tmpl.ExecuteTemplate(out, file, data); err != nil {
			return nil, nil, failure.Permanent(fmt.Errorf("adapter %s: template %s: %w", h.adapter, file, st.explain(err)))
		}
		for i, doc := range splitDocuments(out.buf.Bytes()) {
			from := fmt.Sprintf("template %s (document %d, rendered line %d)", file, i+1, doc.line)
			obj, err := st.decodeDocument(doc)
			if err != nil && probe {
				// The sample lacks what the document needs (a list
				// toYaml puts at its key's indentation, say): its kind
				// is still the template's own text.
				obj, err = st.kindFromText(doc, err)
			}
			if err != nil {
				return nil, nil, failure.Permanent(fmt.Errorf("adapter %s: template %s: %w", h.adapter, file, err))
			}
			if obj == nil {
				continue
			}
			if !probe {
				if err := h.allowed.check(obj); err != nil {
					return nil, nil, failure.Permanent(fmt.Errorf("adapter %s: %s: %w", h.adapter, from, err))
				}
			}
			objs = append(objs, obj)
			origin = append(origin, from)
		}
	}
	return objs, origin, nil
}
