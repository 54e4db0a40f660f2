package handlers

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
	"time"

	yaml3 "go.yaml.in/yaml/v3"
	workv1 "open-cluster-management.io/api/work/v1"
	"sigs.k8s.io/yaml"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
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

// maxIncludeDepth bounds include recursion, which text/template's own
// depth limit does not see (every include is a new execution).
const maxIncludeDepth = 100

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
		return nil, nil, events.Permanent(fmt.Errorf("adapter %s: %w (%s)", h.adapter, errTimeout, h.timeout))
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
		return nil, nil, events.Permanent(fmt.Errorf("adapter %s: %w", h.adapter, err))
	}
	var (
		objs   []object
		origin []string
	)
	for _, file := range h.files {
		out := st.writer()
		if err := st.tmpl.ExecuteTemplate(out, file, data); err != nil {
			return nil, nil, events.Permanent(fmt.Errorf("adapter %s: template %s: %w", h.adapter, file, st.explain(err)))
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
				return nil, nil, events.Permanent(fmt.Errorf("adapter %s: template %s: %w", h.adapter, file, err))
			}
			if obj == nil {
				continue
			}
			if !probe {
				if err := h.allowed.check(obj); err != nil {
					return nil, nil, events.Permanent(fmt.Errorf("adapter %s: %s: %w", h.adapter, from, err))
				}
			}
			objs = append(objs, obj)
			origin = append(origin, from)
		}
	}
	return objs, origin, nil
}

// document is one YAML document of a rendered file.
type document struct {
	text []byte
	line int // 1-based line of the rendered file where it starts
}

var separatorRE = regexp.MustCompile(`^---[ \t]*(#.*)?$`)

// splitDocuments cuts rendered YAML at "---" lines. The rendered text
// holds tokens in place of every value, so only the template's own
// separators are seen here.
func splitDocuments(out []byte) []document {
	var docs []document
	start, startLine, line := 0, 1, 1
	for pos := 0; pos <= len(out); {
		end := bytes.IndexByte(out[pos:], '\n')
		next := len(out) + 1
		if end >= 0 {
			end += pos
			next = end + 1
		} else {
			end = len(out)
		}
		if separatorRE.Match(bytes.TrimRight(out[pos:end], "\r")) {
			docs = append(docs, document{text: out[start:pos], line: startLine})
			start, startLine = min(next, len(out)), line+1
		}
		pos = next
		line++
	}
	return append(docs, document{text: out[start:], line: startLine})
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

var (
	kindLineRE       = regexp.MustCompile(`(?m)^kind:[ \t]*([A-Za-z0-9]+)[ \t]*(?:#.*)?$`)
	apiVersionLineRE = regexp.MustCompile(`(?m)^apiVersion:[ \t]*([A-Za-z0-9./-]+)[ \t]*(?:#.*)?$`)
)

// kindFromText is the kind and apiVersion a document states in its own
// top-level lines, for a sample render that could not be parsed; err
// when it states none (they come from values, say).
func (st *renderState) kindFromText(doc document, err error) (object, error) {
	k := kindLineRE.FindSubmatch(doc.text)
	v := apiVersionLineRE.FindSubmatch(doc.text)
	if k == nil || v == nil || bytes.Contains(k[1], []byte(st.prefix)) || bytes.Contains(v[1], []byte(st.prefix)) {
		return nil, err
	}
	return object{"apiVersion": string(v[1]), "kind": string(k[1])}, nil
}

// decodeDocument parses one rendered document as exactly one YAML
// document, puts the values in place of their tokens and returns the
// object; nil for an empty document.
func (st *renderState) decodeDocument(doc document) (object, error) {
	d, err := st.parseDocument(doc)
	if err != nil || d.body == nil {
		return nil, err
	}
	if obj, ok := st.fill(d); ok {
		return obj, nil
	}
	body := d.copy(d.body)
	if err := st.substitute(body); err != nil {
		return nil, fmt.Errorf("document at rendered line %d: %w", doc.line, err)
	}
	v, err := treeValue(body)
	if err != nil {
		return nil, fmt.Errorf("document at rendered line %d: %w", doc.line, err)
	}
	switch x := v.(type) {
	case nil:
		return nil, nil
	case map[string]any:
		return x, nil
	default:
		return nil, fmt.Errorf("document at rendered line %d is a %s, want a Kubernetes object", doc.line, jsonType(v))
	}
}

// treeValue is the value of a parsed tree as Kubernetes reads it: the tree
// is written out and re-read with Kubernetes' YAML reader, so that the
// template's own scalars mean what they meant to kubectl.
func treeValue(n *yaml3.Node) (any, error) {
	text, err := yaml3.Marshal(n)
	if err != nil {
		return nil, err
	}
	js, err := yaml.YAMLToJSON(text)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// # Values as tokens
//
// Values never become YAML text. Every action's output goes through
// outputFunc, which records the value and prints a token: "hfv", a
// random nonce of the render, the value's index, "z" — letters and digits
// only, so a token is always part of one YAML scalar. The rendered text
// is thus the template's own text with tokens; it is split into
// documents and each is parsed as YAML. Only then are the tokens replaced,
// in the parsed tree:
//
//   - a token that is a whole plain scalar takes the value's own form:
//     the node toYaml or toJson describe, or for text the one scalar it
//     reads as on a line of its own ("3" a number, "\"x\"" the string x),
//     or else the text as a string;
//   - a token inside a larger scalar, or in a quoted or block scalar, is
//     replaced by the value's text.
//
// A value can therefore never end a document, start a key or add an
// object: it only ever fills the scalar the template put it in.
// Functions see the values themselves (tokens are expanded back), and
// include's output, the template's own text, stays text (trustedText).

// trustedText is template text with tokens for its values: what include
// returns. It is printed as it is.
type trustedText string

// yamlText and jsonText are what toYaml and toJson return: the value's
// YAML or JSON text. They are strings to every function and builtin (eq,
// len, printf see the text, as before); printed by an action, the text
// becomes the value's structure at its place (substituteScalar).
type (
	yamlText string
	jsonText string
)

// structured reports whether v is toYaml's or toJson's text, and which.
func structured(v any) (text string, ok bool) {
	switch x := v.(type) {
	case yamlText:
		return string(x), true
	case jsonText:
		return string(x), true
	}
	return "", false
}

// emitted is one value recorded by a render.
type emitted struct {
	text string
	// structured: toYaml's or toJson's text, which stands for its
	// structure where it is a whole value.
	structured bool
	// seq: a non-empty toYaml list, printed as one "- token" entry that
	// the list replaces, so that it may stand at its key's own
	// indentation, as YAML allows a key's list to.
	seq bool
}

// renderState is one render of the files: the values its actions
// printed, the bounds it runs under, and the template set with functions
// bound to it.
type renderState struct {
	tmpl   *template.Template
	prefix string // "hfv" + nonce
	// docs parses the rendered documents; treePrefix is what the tokens
	// in its trees start with (documentCache.prefix) instead of prefix.
	docs       *documentCache
	treePrefix string
	values     []emitted
	maxBytes   int
	timeout    time.Duration
	deadline   time.Time
	probe      bool
	depth      int
}

func newRenderState(root *template.Template, docs *documentCache, maxBytes int, timeout time.Duration, probe bool) (*renderState, error) {
	prefix, err := newTokenPrefix()
	if err != nil {
		return nil, fmt.Errorf("template render nonce: %w", err)
	}
	st := &renderState{prefix: prefix, docs: docs, treePrefix: docs.prefix, maxBytes: maxBytes, timeout: timeout, probe: probe}
	if timeout > 0 {
		st.deadline = time.Now().Add(timeout)
	}
	tmpl, err := root.Clone()
	if err != nil {
		return nil, fmt.Errorf("template clone: %w", err)
	}
	st.tmpl = tmpl.Funcs(st.funcs())
	return st, nil
}

// errTimeout and errTooLarge end a render that runs past its bounds.
var (
	errTimeout  = errors.New("rendering took longer than TEMPLATE_TIMEOUT")
	errTooLarge = errors.New("rendered text is larger than MAX_MANIFEST_BYTES")
)

// newTokenPrefix is "hfv" and a random nonce: what the tokens of one
// render, or of one handler's parsed documents, start with.
func newTokenPrefix() (string, error) {
	var nonce [8]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return "", err
	}
	return "hfv" + hex.EncodeToString(nonce[:]), nil
}

func (st *renderState) check() error {
	if !st.deadline.IsZero() && time.Now().After(st.deadline) {
		return errTimeout
	}
	return nil
}

// boundedWriter collects rendered text and fails the render when it
// grows past the byte bound or the deadline passes (text/template stops
// at the first write error).
type boundedWriter struct {
	st  *renderState
	buf bytes.Buffer
}

func (st *renderState) writer() *boundedWriter { return &boundedWriter{st: st} }

func (w *boundedWriter) Write(p []byte) (int, error) {
	if err := w.st.check(); err != nil {
		return 0, err
	}
	if w.st.maxBytes > 0 && w.buf.Len()+len(p) > w.st.maxBytes {
		return 0, errTooLarge
	}
	return w.buf.Write(p)
}

// explain turns a render error into one naming the bound it hit, with
// tokens in it expanded.
func (st *renderState) explain(err error) error {
	switch {
	case errors.Is(err, errTimeout):
		return fmt.Errorf("%w (%s)", errTimeout, st.timeout)
	case errors.Is(err, errTooLarge):
		return fmt.Errorf("%w (%d bytes)", errTooLarge, st.maxBytes)
	case errors.Is(err, errMissing):
		// Name the line, not the instrumentation.
		if m := execLocationRE.FindStringSubmatch(err.Error()); m != nil {
			return fmt.Errorf("%s: %w", m[1], errMissing)
		}
	}
	return errors.New(st.expand(err.Error()))
}

var execLocationRE = regexp.MustCompile(`^template: (\S+?:\d+(?::\d+)?): `)

func (st *renderState) token(i int) string { return tokenText(st.prefix, i) }

func tokenText(prefix string, i int) string { return prefix + strconv.Itoa(i) + "z" }

// mint records a value and returns its token.
func (st *renderState) mint(e emitted) (string, error) {
	if err := st.check(); err != nil {
		return "", err
	}
	st.values = append(st.values, e)
	return st.token(len(st.values) - 1), nil
}

// expand replaces every token in s by its value's text.
func (st *renderState) expand(s string) string { return st.expandTokens(st.prefix, s) }

// expandTokens replaces every token with prefix in s by its value's text.
func (st *renderState) expandTokens(prefix, s string) string {
	if prefix == "" || !strings.Contains(s, prefix) {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, prefix)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		before := s[:i]
		rest := s[i+len(prefix):]
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		n, err := strconv.Atoi(rest[:j])
		if err != nil || j >= len(rest) || rest[j] != 'z' || n >= len(st.values) {
			// Not one of ours: keep the text.
			b.WriteString(before)
			b.WriteString(prefix)
			s = rest
			continue
		}
		if st.values[n].seq {
			// The list's own text replaces its "- token" entry.
			before = strings.TrimSuffix(before, "- ")
		}
		b.WriteString(before)
		b.WriteString(st.values[n].text)
		s = rest[j+1:]
	}
}

// wholeToken reports the value s, text of a parsed tree, is exactly the
// token of.
func (st *renderState) wholeToken(s string) (int, bool) {
	rest, ok := strings.CutPrefix(s, st.treePrefix)
	if !ok || !strings.HasSuffix(rest, "z") {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(rest, "z"))
	if err != nil || n < 0 || n >= len(st.values) || tokenText(st.treePrefix, n) != s {
		return 0, false
	}
	return n, true
}

// str is v as text, the way templates print it, with tokens expanded.
func (st *renderState) str(v any) string {
	switch x := v.(type) {
	case trustedText:
		return st.expand(string(x))
	case yamlText:
		return string(x)
	case jsonText:
		return string(x)
	}
	return st.expand(toString(v))
}

// plain is v with the render's own types resolved to what they stand for.
func (st *renderState) plain(v any) any {
	switch x := v.(type) {
	case trustedText:
		return st.expand(string(x))
	case yamlText, jsonText:
		// The value the text describes, as toJson or toYaml of it again
		// would need it.
		text, _ := structured(x)
		js, err := yaml.YAMLToJSON([]byte(text))
		if err != nil {
			return text
		}
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.UseNumber()
		var out any
		if dec.Decode(&out) != nil {
			return text
		}
		return out
	}
	return v
}

// sampleValue stands for what a sample render lacks (sampleContext).
const sampleValue = "sample-value"

// errMissing is what printing a missing or null value fails with.
var errMissing = errors.New("prints a missing or null value: a field the template reads is missing (guard it with default, with or if)")

// output is outputFunc: what an action prints.
func (st *renderState) output(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		if st.probe {
			return st.mint(emitted{text: sampleValue})
		}
		return "", errMissing
	case trustedText:
		return string(x), nil
	}
	if text, ok := structured(v); ok {
		return st.mintStructured(v, text)
	}
	return st.mint(emitted{text: st.str(v)})
}

// mintStructured records a toYaml or toJson value: a token, or "- token"
// for a non-empty toYaml list (see emitted.seq).
func (st *renderState) mintStructured(v any, text string) (string, error) {
	_, isYAML := v.(yamlText)
	seq := isYAML && strings.HasPrefix(text, "- ")
	tok, err := st.mint(emitted{text: text, structured: true, seq: seq})
	if seq {
		tok = "- " + tok
	}
	return tok, err
}

// placed is indent and nindent: the value keeps its own form, placed at
// the indentation the template asks for.
func (st *renderState) placed(prefix string, n int, v any) (any, error) {
	pad := strings.Repeat(" ", max(n, 0))
	switch x := v.(type) {
	case trustedText:
		return trustedText(prefix + indent(n, string(x))), nil
	}
	if text, ok := structured(v); ok {
		tok, err := st.mintStructured(v, text)
		return trustedText(prefix + pad + tok), err
	}
	tok, err := st.mint(emitted{text: st.str(v)})
	return trustedText(prefix + pad + tok), err
}

// substitute puts the values in place of the tokens in a parsed tree.
func (st *renderState) substitute(n *yaml3.Node) error {
	if strings.Contains(n.Anchor, st.treePrefix) || strings.Contains(n.Tag, st.treePrefix) {
		return fmt.Errorf("line %d: a value is printed into a YAML anchor or tag", n.Line)
	}
	if n.Kind == yaml3.SequenceNode && len(n.Content) == 1 && n.Content[0].Kind == yaml3.ScalarNode && n.Content[0].Style == 0 {
		if i, ok := st.wholeToken(n.Content[0].Value); ok && st.values[i].seq {
			return st.replaceNode(n, st.values[i].text)
		}
	}
	switch n.Kind {
	case yaml3.DocumentNode, yaml3.SequenceNode, yaml3.MappingNode:
		for _, c := range n.Content {
			if err := st.substitute(c); err != nil {
				return err
			}
		}
	case yaml3.ScalarNode:
		return st.substituteScalar(n)
	}
	return nil
}

func (st *renderState) substituteScalar(n *yaml3.Node) error {
	if !strings.Contains(n.Value, st.treePrefix) {
		return nil
	}
	if i, ok := st.wholeToken(n.Value); ok && n.Style == 0 {
		e := st.values[i]
		if e.structured {
			return st.replaceNode(n, e.text)
		}
		scalarFromText(n, e.text)
		return nil
	}
	n.Value = st.expandTokens(st.treePrefix, n.Value)
	if n.Style&yaml3.TaggedStyle == 0 {
		n.Tag = "!!str"
	}
	// Double quotes carry any text (the emitter's block styles do not:
	// a leading tab breaks them).
	n.Style = n.Style&yaml3.TaggedStyle | yaml3.DoubleQuotedStyle
	return nil
}

// replaceNode makes n the node toYaml's or toJson's text describes. The
// text is a marshaller's, so it is one YAML document, whatever the value
// holds.
func (st *renderState) replaceNode(n *yaml3.Node, text string) error {
	var doc yaml3.Node
	// toJson's text may hold characters YAML refuses (toYaml's cannot:
	// its marshaller refuses them), always inside JSON strings.
	if err := yaml3.Unmarshal([]byte(escapeForYAML(text)), &doc); err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	if len(doc.Content) != 1 {
		return fmt.Errorf("line %d: toYaml or toJson printed %d YAML values, want 1", n.Line, len(doc.Content))
	}
	line, col, anchor := n.Line, n.Column, n.Anchor
	*n = *doc.Content[0]
	// The template may alias the node by its anchor.
	n.Line, n.Column, n.Anchor = line, col, anchor
	return nil
}

// scalarFromText makes n the one scalar text reads as on a line of its
// own, or else the string text. It never makes a collection, an anchor, an
// alias or a tag.
func scalarFromText(n *yaml3.Node, text string) {
	if tag, value, style, ok := simpleScalar(text); ok {
		n.Tag, n.Value, n.Style = tag, value, style
		return
	}
	parseScalarText(n, text)
}

// parseScalarText is scalarFromText by the YAML reader itself.
func parseScalarText(n *yaml3.Node, text string) {
	n.Tag, n.Value, n.Style = "!!str", text, yaml3.DoubleQuotedStyle
	if strings.ContainsAny(text, "\n\r") {
		return
	}
	var doc yaml3.Node
	if err := yaml3.Unmarshal([]byte(text), &doc); err != nil {
		return
	}
	if len(doc.Content) == 0 { // empty or a comment: YAML reads null
		n.Tag, n.Value, n.Style = "!!null", "null", 0
		return
	}
	c := doc.Content[0]
	if c.Kind != yaml3.ScalarNode || c.Anchor != "" || c.Style&(yaml3.TaggedStyle|yaml3.LiteralStyle|yaml3.FoldedStyle) != 0 {
		return
	}
	switch c.Tag {
	case "!!int", "!!float", "!!bool", "!!null":
		n.Tag, n.Value, n.Style = c.Tag, c.Value, 0
	case "!!str":
		n.Value = c.Value
	}
}

// simpleScalar is scalarFromText's result for the texts most values are
// (a name, an id, a decimal number, true, a quoted string of printable
// ASCII), found without parsing: ok false for any other text. Each case is
// what the YAML reader makes of the text, spelled out (go.yaml.in/yaml/v3's
// scanner and resolve; TestSimpleScalarIsScalarFromText compares them).
// Parsing every value was most of the cost of a render.
func simpleScalar(text string) (tag, value string, style yaml3.Style, ok bool) {
	if text == "" {
		return "!!null", "null", 0, true
	}
	switch c := text[0]; {
	case c == '"' || c == '\'':
		// One quoted scalar: nothing inside that the reader treats
		// specially (its quote, an escape in double quotes, a line break).
		if len(text) < 2 || text[len(text)-1] != c {
			return "", "", 0, false
		}
		inner := text[1 : len(text)-1]
		special := "'"
		if c == '"' {
			special = "\"\\"
		}
		if !printableASCII(inner) || strings.ContainsAny(inner, special) {
			return "", "", 0, false
		}
		return "!!str", inner, yaml3.DoubleQuotedStyle, true
	case c == '-' || c >= '0' && c <= '9':
		if decimalInt(text) {
			return "!!int", text, 0, true
		}
		// A name or id starting with a digit (a UUID, say) is a string
		// when a dash stands where no number or date has one: after
		// the first character, not after an exponent's e or a 0b or 0o
		// prefix, and not as a date's after four digits.
		if c == '-' || !plainName(text) || datePrefix(text) {
			return "", "", 0, false
		}
		for i := 1; i < len(text); i++ {
			if text[i] == '-' && strings.IndexByte("0123456789acdfACDF", text[i-1]) >= 0 {
				return "!!str", text, yaml3.DoubleQuotedStyle, true
			}
		}
		return "", "", 0, false
	case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		if !plainName(text) {
			return "", "", 0, false
		}
		// What resolve makes of a plain scalar starting with a letter:
		// only these words are not strings.
		switch text {
		case "true", "True", "TRUE", "false", "False", "FALSE":
			return "!!bool", text, 0, true
		case "null", "Null", "NULL":
			return "!!null", text, 0, true
		}
		return "!!str", text, yaml3.DoubleQuotedStyle, true
	}
	return "", "", 0, false
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// decimalInt reports whether s is -?(0|[1-9][0-9]*) with at most 18
// digits: an int64 however it is read.
func decimalInt(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" || len(s) > 18 || (s[0] == '0' && len(s) > 1) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// plainName reports whether text is one plain scalar that is all of text:
// no comment (" #"), key (": ", a final ':') or surrounding space, nothing
// but letters, digits and a few marks. The caller checks the first byte.
func plainName(text string) bool {
	for i := 0; i < len(text); i++ {
		if !plainNameByte(text[i]) {
			return false
		}
	}
	return !strings.Contains(text, ": ") && !strings.HasSuffix(text, ":") && !strings.HasSuffix(text, " ")
}

// datePrefix reports whether text starts with four digits and a dash, as
// the timestamps YAML resolves do.
func datePrefix(text string) bool {
	if len(text) < 5 || text[4] != '-' {
		return false
	}
	for i := range 4 {
		if text[i] < '0' || text[i] > '9' {
			return false
		}
	}
	return true
}

// plainNameByte is a byte simpleScalar lets into a plain scalar.
func plainNameByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("-._/:=+@ ", c) >= 0
}

// funcs are the functions templates may call (see TemplateData), bound to
// this render.
func (st *renderState) funcs() template.FuncMap {
	return template.FuncMap{
		outputFunc: st.output,
		"toJson": func(v any) (jsonText, error) {
			b, err := json.Marshal(st.plain(v))
			return jsonText(b), err
		},
		"toYaml": func(v any) (yamlText, error) {
			v = st.plain(v)
			b, err := yaml.Marshal(v)
			if err != nil {
				// The YAML reader refuses characters JSON leaves as they
				// are (DEL, C1 controls): JSON with those escaped is YAML.
				if js, jerr := json.Marshal(v); jerr == nil {
					return yamlText(escapeForYAML(string(js))), nil
				}
				return "", err
			}
			return yamlText(strings.TrimSuffix(string(b), "\n")), nil
		},
		"default": func(def, v any) any {
			if isEmpty(st.plain(v)) {
				return def
			}
			return v
		},
		"required": func(msg string, v any) (any, error) {
			if isEmpty(st.plain(v)) {
				if st.probe {
					return sampleValue, nil
				}
				return nil, errors.New(msg)
			}
			return v, nil
		},
		"quote": func(v any) string { return strconv.Quote(st.str(v)) },
		"lower": func(v any) string { return strings.ToLower(st.str(v)) },
		"upper": func(v any) string { return strings.ToUpper(st.str(v)) },
		"trim": func(v any) any {
			if x, ok := v.(trustedText); ok {
				return trustedText(strings.TrimSpace(string(x)))
			}
			return strings.TrimSpace(st.str(v))
		},
		"trunc": func(n int, v any) string {
			s := []rune(st.str(v))
			if n < 0 || n >= len(s) {
				return string(s)
			}
			return string(s[:n])
		},
		"replace": func(old, new string, v any) string { return strings.ReplaceAll(st.str(v), old, new) },
		"join": func(sep string, v any) (string, error) {
			v = st.plain(v)
			rv := reflect.ValueOf(v)
			if v == nil {
				return "", nil
			}
			if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
				return "", fmt.Errorf("join: want a list, got %s", jsonType(v))
			}
			parts := make([]string, rv.Len())
			for i := range parts {
				parts[i] = st.str(rv.Index(i).Interface())
			}
			return strings.Join(parts, sep), nil
		},
		"b64enc":   func(v any) string { return base64.StdEncoding.EncodeToString([]byte(st.str(v))) },
		"indent":   func(n int, v any) (any, error) { return st.placed("", n, v) },
		"nindent":  func(n int, v any) (any, error) { return st.placed("\n", n, v) },
		"dnsLabel": func(v any) string { return DNSLabel(st.str(v)) },
		"include": func(name string, data any) (trustedText, error) {
			if err := st.check(); err != nil {
				return "", err
			}
			if st.depth >= maxIncludeDepth {
				return "", fmt.Errorf("include %q: nested more than %d deep", name, maxIncludeDepth)
			}
			st.depth++
			defer func() { st.depth-- }()
			out := st.writer()
			err := st.tmpl.ExecuteTemplate(out, name, data)
			return trustedText(out.buf.String()), err
		},
	}
}

// escapeForYAML escapes, in JSON text, the characters a YAML reader does
// not accept in a document (they can only occur inside JSON strings).
func escapeForYAML(js string) string {
	var b strings.Builder
	for _, r := range js {
		if r == 0x7f || (r >= 0x80 && r <= 0x9f && r != 0x85) || r == 0xfeff || r == 0xfffe || r == 0xffff {
			fmt.Fprintf(&b, "\\u%04x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func indent(n int, s string) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(s, "\n", "\n"+pad)
}

// toString prints v the way templates do, with nil as "".
func toString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return fmt.Sprint(v)
	}
}

// isEmpty is Helm's notion of empty, which default and required share.
func isEmpty(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String, reflect.Slice, reflect.Map, reflect.Array:
		return rv.Len() == 0
	case reflect.Bool:
		return !rv.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return rv.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return rv.Float() == 0
	case reflect.Pointer, reflect.Interface:
		return rv.IsNil()
	}
	return false
}
