package handlers

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	yaml3 "go.yaml.in/yaml/v3"

	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
)

// TestScalarJSONIsTreeValue holds scalarJSON, the shortcut of fill, to
// what the full path (treeValue) makes of the same scalar in an object.
func TestScalarJSONIsTreeValue(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var nodes []*yaml3.Node
	str := func(s string) {
		nodes = append(nodes, &yaml3.Node{Kind: yaml3.ScalarNode, Tag: "!!str", Style: yaml3.DoubleQuotedStyle, Value: s})
	}
	for _, s := range []string{"", " ", "  a  ", "\n", "\t", "a\n", "\na", " \n ", "a\n\nb\n", "\n\n", "a\tb", "\t\n\t", "a: b", "- a", "#", "'", `"`, `\`, `\n`, "~", "null", "true", "yes", "1", "-0", "0x1f", "1e3",
		".inf", "2001-12-14", "<<", "*a", "&a", "!a", "|", ">", "%", "@", "`", "{a: 1}", "[1]", "---", "...", "a,b", "? a"} {
		str(s)
	}
	for range 3000 {
		b := make([]byte, rng.IntN(40))
		for i := range b {
			b[i] = byte(0x20 + rng.IntN(0x7f-0x20))
		}
		str(string(b))
	}
	for range 600 { // long lines the writer may fold, with runs of spaces, tabs and line feeds
		b := make([]byte, 60+rng.IntN(400))
		for i := range b {
			switch rng.IntN(12) {
			case 0, 1, 2:
				b[i] = ' '
			case 3:
				b[i] = '\n'
			case 4:
				b[i] = '\t'
			default:
				b[i] = byte(0x20 + rng.IntN(0x7f-0x20))
			}
		}
		str(string(b))
	}
	for range 3000 { // short text with line feeds and tabs at either end
		b := make([]byte, rng.IntN(12))
		for i := range b {
			const ends = " \t\na-#:'\"\\"
			b[i] = ends[rng.IntN(len(ends))]
		}
		str(string(b))
	}
	for _, text := range []string{"", "0", "-0", "7", "-7", "123456789012345678", "-123456789012345678",
		"true", "True", "TRUE", "false", "False", "FALSE", "null", "Null", "NULL", "abc", `"x"`, "'y'"} {
		n := &yaml3.Node{Kind: yaml3.ScalarNode}
		scalarFromText(n, text)
		nodes = append(nodes, n)
	}
	taken := 0
	for _, n := range nodes {
		got, ok := scalarJSON(n)
		if !ok {
			continue
		}
		taken++
		key := &yaml3.Node{Kind: yaml3.ScalarNode, Tag: "!!str", Value: "k"}
		v, err := treeValue(&yaml3.Node{Kind: yaml3.MappingNode, Tag: "!!map", Content: []*yaml3.Node{key, n}})
		if err != nil {
			t.Errorf("%s %q style %d: full path: %v", n.Tag, n.Value, n.Style, err)
			continue
		}
		want := v.(map[string]any)["k"]
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s %q style %d: scalarJSON %#v, the full path %#v", n.Tag, n.Value, n.Style, got, want)
		}
	}
	if taken < len(nodes)-10 {
		t.Errorf("scalarJSON took %d of %d nodes", taken, len(nodes))
	}
}

// shapeTemplates put tokens everywhere the YAML lets them stand: keys,
// anchors and aliases, merge keys, flow and block collections, quoted,
// block and tagged scalars, toYaml and toJson structure, a range.
var shapeTemplates = map[string]string{
	"_h.tpl": `{{ define "labels" }}team: {{ .Resource.Labels.team }}
note: {{ .Resource.Spec.note | quote }}{{ end }}`,
	"10-values.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Resource.Name }}
  namespace: {{ .Namespace }}
  labels:
    {{- include "labels" . | nindent 4 }}
data:
  plain: {{ .Resource.Spec.note }}
  quoted: {{ .Resource.Spec.note | quote }}
  inside: "a {{ .Resource.Spec.note }} b"
  single: 'x{{ .Resource.Spec.note }}'
  block: |
    {{- .Resource.Spec.note | nindent 4 }}
  num: {{ .Resource.Spec.num }}
  flag: {{ .Deleting }}
  gen: {{ .Generation }}
  flow: [{{ .Resource.Spec.note }}, {{ .Resource.Spec.item | quote }}]
  own: yes
  own-num: 0777
  own-date: 2001-12-14
spec:
  labels:
  {{- range $k, $v := .Resource.Labels }}
  - {{ $v }}
  {{- end }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: structured
data:
  tagged: !!str {{ .Resource.Spec.note }}
  yaml: {{ toYaml .Resource.Spec.note }}
  json: {{ toJson .Resource.Spec.item }}
`,
	"20-anchors.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: anchors
  annotations: &base
    a: {{ .Resource.Spec.note }}
    b: fixed
data:
  <<: *base
  c: *base
  d: {{ .Resource.Spec.item }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: keyed
data:
  {{ .Resource.Spec.key }}: keyed
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: lists
data:
  list: |
    x
spec:
  items:
  - {{ .Resource.Spec.item }}
  - {{ toYaml .Resource.Spec.list }}
  more:
  {{- toYaml .Resource.Spec.list | nindent 2 }}
  nums: [1, 2.0, {{ .Resource.Spec.num }}]
`,
}

// TestFillIsTheFullPath renders the same resources through fill and
// through the full path only and wants the same works, for values of
// every kind (words, numbers, YAML syntax, lists).
func TestFillIsTheFullPath(t *testing.T) {
	dir := t.TempDir()
	for name, text := range shapeTemplates {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{dir, filepath.Join("testdata", "templates")} {
		cfg := Config{Type: TypeTemplate, Name: "shapes", TemplateDir: d, Values: map[string]any{"quota": map[string]any{"pods": 5}}}
		handler := func(full bool) *templateHandler {
			h, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			th := h.(*templateHandler)
			th.docs.full = full
			return th
		}
		fast, full := handler(false), handler(true)
		rng := rand.New(rand.NewPCG(5, 6))
		words := []any{"", "a", "my-cluster", "us-east1", "true", "False", "null", "~", "yes", "0", "-0", "42", "0777", "1e3", "1.5",
			"a: b", "- x", "x\n---\nkind: Secret", "&a b", "*a", "<<", "#c", " a ", "\"q\"", "'s'", "héllo", "a\tb", 7, 2.5, true, nil,
			[]any{"a", 1}, map[string]any{"k": "v"}}
		const chars = "ab01 -:#'\"\\.{}[],&*!|>%@`~\n\t"
		random := func() any {
			if rng.IntN(2) == 0 {
				return words[rng.IntN(len(words))]
			}
			b := make([]byte, rng.IntN(12))
			for i := range b {
				b[i] = chars[rng.IntN(len(chars))]
			}
			return string(b)
		}
		for i := range 400 {
			r := &hyperfleet.Resource{
				Kind: hyperfleet.KindCluster, ID: fmt.Sprintf("c%d", i), Name: fmt.Sprintf("c%d", i), Generation: int64(i),
				Href:   hyperfleet.APIPrefix + fmt.Sprintf("clusters/c%d", i),
				Labels: map[string]string{"team": fmt.Sprint(random())},
				Spec: map[string]any{"note": random(), "item": random(), "num": random(), "key": random(),
					"list": []any{random(), random()}, "platform": map[string]any{"type": random()}},
			}
			if i%3 == 0 {
				r.Labels["extra"] = fmt.Sprint(random())
			}
			tg := Target{Resource: r}
			gotWorks, gotErr := fast.Build(tg)
			wantWorks, wantErr := full.Build(tg)
			if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
				t.Fatalf("%s, spec %#v: fill: %v; full path: %v", d, r.Spec, gotErr, wantErr)
			}
			if !reflect.DeepEqual(gotWorks, wantWorks) {
				t.Fatalf("%s, spec %#v: the works differ", d, r.Spec)
			}
		}
		if n := fast.filled(); n == 0 {
			t.Errorf("%s: no document was filled: the comparison says nothing", d)
		}
	}
}

// filled counts the cached documents that have a shape.
func (h *templateHandler) filled() int {
	h.docs.mu.Lock()
	defer h.docs.mu.Unlock()
	n := 0
	for _, d := range h.docs.docs {
		if d.shape != nil {
			n++
		}
	}
	return n
}

// TestDocumentCacheBounds: a template whose text changes with every
// value keeps its cache within bounds.
func TestDocumentCacheBounds(t *testing.T) {
	c, err := newDocumentCache()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 * maxCachedDocuments {
		c.put([]byte(strings.Repeat("x", i)), &parsedDocument{})
		if len(c.docs) > maxCachedDocuments || c.text > maxCachedText {
			t.Fatalf("after %d documents: %d cached, %d bytes", i+1, len(c.docs), c.text)
		}
	}
	c.put(make([]byte, maxCachedText+1), &parsedDocument{})
	if c.text > maxCachedText {
		t.Errorf("a document over the bound was cached: %d bytes", c.text)
	}
}
