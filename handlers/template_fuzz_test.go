package handlers_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/openshift-hyperfleet/maestro-adapter/handlers"
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// fuzzTemplates print resource fields in every way the functions allow:
// plain, quoted, inside strings, in flow lists, through include,
// indent, nindent, toYaml and toJson, in ranges.
var fuzzTemplates = map[string]string{
	"_helpers.tpl": `{{ define "labels" -}}
team: {{ .Resource.Labels.team | dnsLabel | quote }}
note: {{ .Resource.Spec.note | trunc 40 | dnsLabel | quote }}
{{- end }}`,
	"10-cm.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: fuzz-settings
  namespace: {{ .Namespace }}
  labels:
    {{- include "labels" . | nindent 4 }}
data:
  note: {{ .Resource.Spec.note }}
  quoted: {{ .Resource.Spec.note | quote }}
  inside: "prefix {{ .Resource.Spec.note }} suffix"
  single: 'x{{ .Resource.Spec.note }}'
  upper: {{ upper .Resource.Spec.note }}
  defaulted: {{ .Resource.Spec.missing | default .Resource.Spec.note }}
  joined: {{ join "," .Resource.Spec.list }}
  b64: {{ b64enc .Resource.Spec.note }}
  trunc: {{ trunc 10 .Resource.Spec.note }}
  replaced: {{ replace "a" "b" .Resource.Spec.note }}
  json: {{ toJson .Resource.Spec.note }}
  yamlText: {{ toYaml .Resource.Spec.note | quote }}
  label: {{ dnsLabel .Resource.Spec.note }}
  printf: {{ printf "%s/%s" .Resource.Spec.note .Resource.Name }}
  team: {{ .Resource.Labels.team }}
  block: |
    {{- .Resource.Spec.note | nindent 4 }}
  indented: |
{{ .Resource.Spec.note | indent 4 }}
  yaml: {{ toYaml .Resource.Spec.note | nindent 4 }}
  flow: [{{ .Resource.Spec.note }}, {{ .Resource.Spec.note | quote }}]
  {{- range $i, $v := .Resource.Spec.list }}
  item{{ $i }}: {{ $v }}
  {{- end }}
---
# {{ .Resource.Spec.note }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: fuzz-agent
  namespace: {{ .Namespace }}
  annotations:
    note: {{ .Resource.Spec.note | quote }}
`,
}

// manifestShape is what a value must not change: per manifest, its kind,
// name and the paths of its keys (values not included).
func manifestShape(objs []map[string]any) string {
	var b strings.Builder
	for _, obj := range objs {
		md := obj["metadata"].(map[string]any)
		fmt.Fprintf(&b, "%s/%s:", obj["kind"], md["name"])
		var paths []string
		var walk func(prefix string, v any)
		walk = func(prefix string, v any) {
			switch x := v.(type) {
			case map[string]any:
				for _, k := range slices.Sorted(maps.Keys(x)) {
					paths = append(paths, prefix+"."+k)
					walk(prefix+"."+k, x[k])
				}
			case []any:
				for i, e := range x {
					walk(fmt.Sprintf("%s[%d]", prefix, i), e)
				}
			}
		}
		walk("", obj)
		fmt.Fprintf(&b, "%s\n", strings.Join(paths, " "))
	}
	return b.String()
}

func fuzzResource(note, item, team string) *hyperfleet.Resource {
	return &hyperfleet.Resource{
		Kind: hyperfleet.KindCluster, ID: "fuzz-cluster", Name: "fuzz-cluster", Generation: 1,
		Href:   hyperfleet.APIPrefix + "clusters/fuzz-cluster",
		Labels: map[string]string{"team": team},
		Spec:   map[string]any{"note": note, "list": []any{item, note}},
	}
}

// FuzzTemplateValues renders resource fields the API would pass on
// (anything JSON can carry) and checks that the manifests have the shape
// they have for benign values: the template's own objects, names and keys.
// The only errors allowed are the bounds (bytes, render time), for huge
// values.
func FuzzTemplateValues(f *testing.F) {
	h, err := handlers.New(handlers.Config{Type: handlers.TypeTemplate, TemplateDir: templateDir(f, fuzzTemplates)})
	if err != nil {
		f.Fatal(err)
	}
	benign, err := manifestObjects(f, h, fuzzResource("benign", "a", "platform"))
	if err != nil {
		f.Fatal(err)
	}
	want := manifestShape(benign)
	if len(benign) != 2 {
		f.Fatalf("benign values make %d manifests, want 2", len(benign))
	}
	for _, seed := range []string{
		"x\n---\n" + clusterRoleBindingYAML,
		"a: b", "key: value\nother: 1", "- item", "{a: 1}", "[1, 2]", "\"quoted\"", "'single'", `"unterminated`,
		"{{ .Resource.ID }}", "{{", "}}", "&anchor value", "*alias", "<<: *alias", "!!binary aGk=", "!tag x",
		"# comment", "", " ", "\t", "null", "~", "true", "yes", "0777", "1e3", "...\n---", "--- |\n  x",
		"|\n  literal", ">\n  folded", "%YAML 1.2\n---", "\r\n---\r\n", "\x00\x01", "héllo ✓",
		strings.Repeat("a: b\n---\n", 2000), strings.Repeat("x", 300000),
	} {
		f.Add(seed, "item", "team")
	}
	f.Add("note", "x\n---\nkind: Secret", "a: b")
	f.Fuzz(func(t *testing.T, note, item, team string) {
		// The API's JSON carries valid UTF-8 only.
		note, item, team = strings.ToValidUTF8(note, "?"), strings.ToValidUTF8(item, "?"), strings.ToValidUTF8(team, "?")
		objs, err := manifestObjects(t, h, fuzzResource(note, item, team))
		if err != nil {
			bound := strings.Contains(err.Error(), "MAX_MANIFEST_BYTES") || strings.Contains(err.Error(), "TEMPLATE_TIMEOUT")
			if failure.IsPermanent(err) && bound && len(note)+len(item)+len(team) > 10000 {
				return
			}
			t.Fatalf("note %.200q item %.200q team %.200q: %v", note, item, team, err)
		}
		if got := manifestShape(objs); got != want {
			t.Fatalf("note %.200q item %.200q team %.200q: shape\n%s\nwant\n%s", note, item, team, got, want)
		}
		data := objs[0]["data"].(map[string]any)
		if data["quoted"] != note || data["inside"] != "prefix "+note+" suffix" {
			t.Errorf("note %.200q: quoted %.200q, inside %.200q: not the value itself", note, data["quoted"], data["inside"])
		}
	})
}
