package handlers

import (
	"bytes"
	"encoding/base64"
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
// A missing map key prints "<no value>", which is refused as an error
// naming the line: guard optional fields with default, with or if.
//
// # Functions
//
// Besides Go's built-ins (index, printf, eq, len, ...):
//
//	toJson v          v as compact JSON
//	toYaml v          v as YAML (pair with indent/nindent)
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
// Template errors, invalid YAML and incomplete objects fail the event
// permanently, naming the file and, where known, the line.
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
	dir    string
	tmpl   *template.Template
	files  []string // rendered files, in order
	values map[string]any
}

func newTemplateHandler(b base, cfg Config) (*templateHandler, error) {
	entries, err := os.ReadDir(cfg.TemplateDir)
	if err != nil {
		return nil, fmt.Errorf("handlers config TemplateDir: %w", err)
	}
	h := &templateHandler{base: b, dir: cfg.TemplateDir, values: cfg.Values}
	root := template.New("").Option("missingkey=default")
	root.Funcs(templateFuncs(root))
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
	h.tmpl = root
	return h, nil
}

func hasAnySuffix(s string, suffixes ...string) bool {
	return slices.ContainsFunc(suffixes, func(x string) bool { return strings.HasSuffix(s, x) })
}

func (h *templateHandler) Build(t Target) ([]*workv1.ManifestWork, error) {
	return h.build(t, h.objects)
}

func (h *templateHandler) objects(wc *workContext) ([]object, []string, error) {
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
	var (
		objs   []object
		origin []string
		buf    bytes.Buffer
	)
	for _, file := range h.files {
		buf.Reset()
		if err := h.tmpl.ExecuteTemplate(&buf, file, data); err != nil {
			return nil, nil, events.Permanent(fmt.Errorf("adapter %s: template %s: %w", h.adapter, file, err))
		}
		for i, doc := range splitDocuments(buf.Bytes()) {
			obj, err := decodeDocument(doc)
			if err != nil {
				return nil, nil, events.Permanent(fmt.Errorf("adapter %s: template %s: %w", h.adapter, file, err))
			}
			if obj == nil {
				continue
			}
			objs = append(objs, obj)
			origin = append(origin, fmt.Sprintf("template %s (document %d, rendered line %d)", file, i+1, doc.line))
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

// splitDocuments cuts rendered YAML at "---" lines.
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

// decodeDocument parses one document into an object; nil for an empty one.
func decodeDocument(doc document) (object, error) {
	if i := bytes.Index(doc.text, []byte("<no value>")); i >= 0 {
		line := doc.line + bytes.Count(doc.text[:i], []byte("\n"))
		return nil, fmt.Errorf("rendered line %d prints <no value>: a field the template reads is missing (guard it with default, with or if)", line)
	}
	js, err := yaml.YAMLToJSON(doc.text)
	if err != nil {
		// Make the parser's document-relative line absolute.
		msg := yamlLineRE.ReplaceAllStringFunc(err.Error(), func(m string) string {
			n, _ := strconv.Atoi(strings.TrimPrefix(m, "line "))
			return fmt.Sprintf("rendered line %d", doc.line+n-1)
		})
		return nil, fmt.Errorf("invalid YAML in the document at rendered line %d: %s", doc.line, msg)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
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

// templateFuncs are the functions templates may call (see TemplateData).
// include needs the template set it runs in.
func templateFuncs(root *template.Template) template.FuncMap {
	return template.FuncMap{
		"toJson": func(v any) (string, error) {
			b, err := json.Marshal(v)
			return string(b), err
		},
		"toYaml": func(v any) (string, error) {
			b, err := yaml.Marshal(v)
			return strings.TrimSuffix(string(b), "\n"), err
		},
		"default": func(def, v any) any {
			if isEmpty(v) {
				return def
			}
			return v
		},
		"required": func(msg string, v any) (any, error) {
			if isEmpty(v) {
				return nil, errors.New(msg)
			}
			return v, nil
		},
		"quote": func(v any) string { return strconv.Quote(toString(v)) },
		"lower": func(v any) string { return strings.ToLower(toString(v)) },
		"upper": func(v any) string { return strings.ToUpper(toString(v)) },
		"trim":  func(v any) string { return strings.TrimSpace(toString(v)) },
		"trunc": func(n int, v any) string {
			s := []rune(toString(v))
			if n < 0 || n >= len(s) {
				return string(s)
			}
			return string(s[:n])
		},
		"replace": func(old, new string, v any) string { return strings.ReplaceAll(toString(v), old, new) },
		"join": func(sep string, v any) (string, error) {
			rv := reflect.ValueOf(v)
			if v == nil {
				return "", nil
			}
			if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
				return "", fmt.Errorf("join: want a list, got %s", jsonType(v))
			}
			parts := make([]string, rv.Len())
			for i := range parts {
				parts[i] = toString(rv.Index(i).Interface())
			}
			return strings.Join(parts, sep), nil
		},
		"b64enc":   func(v any) string { return base64.StdEncoding.EncodeToString([]byte(toString(v))) },
		"indent":   func(n int, v any) string { return indent(n, toString(v)) },
		"nindent":  func(n int, v any) string { return "\n" + indent(n, toString(v)) },
		"dnsLabel": func(v any) string { return DNSLabel(toString(v)) },
		"include": func(name string, data any) (string, error) {
			var b strings.Builder
			err := root.ExecuteTemplate(&b, name, data)
			return b.String(), err
		},
	}
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
