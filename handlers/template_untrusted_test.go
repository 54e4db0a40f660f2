package handlers_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openshift-hyperfleet/maestro-adapter/handlers"
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// clusterRoleBindingYAML is what an attacker who can write a cluster's
// spec would like the adapter to apply.
const clusterRoleBindingYAML = `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: pwn
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: cluster-admin
subjects:
- kind: ServiceAccount
  name: default
  namespace: default
`

func clusterWithSpec(t *testing.T, spec map[string]any) *hyperfleet.Resource {
	t.Helper()
	r := loadResource(t, "cluster-gen1")
	r.Spec = spec
	return r
}

// manifestObjects decodes the manifests of the one work Build returns.
func manifestObjects(t testing.TB, h handlers.Handler, r *hyperfleet.Resource) ([]map[string]any, error) {
	t.Helper()
	works, err := h.Build(handlers.Target{Resource: r})
	if err != nil {
		return nil, err
	}
	var objs []map[string]any
	for _, m := range works[0].Spec.Workload.Manifests {
		var obj map[string]any
		if err := json.Unmarshal(m.Raw, &obj); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, obj)
	}
	return objs, nil
}

// The case: a value that, printed as text, would end the document
// and start a ClusterRoleBinding. It must stay the note.
func TestTemplateValueCannotInjectObjects(t *testing.T) {
	note := "x\n---\n" + clusterRoleBindingYAML
	for _, allowed := range [][]string{nil, {"ConfigMap", "ClusterRoleBinding"}} {
		h := newHandler(t, handlers.Config{Type: handlers.TypeTemplate, AllowedKinds: allowed, TemplateDir: templateDir(t, map[string]string{
			"cm.yaml": configMapDoc + "data:\n  note: {{ .Resource.Spec.note }}\n",
		})})
		objs, err := manifestObjects(t, h, clusterWithSpec(t, map[string]any{"note": note}))
		if err != nil {
			t.Fatalf("allowed %v: %v", allowed, err)
		}
		if len(objs) != 1 || objs[0]["kind"] != "ConfigMap" {
			t.Fatalf("allowed %v: %d manifests %v, want the template's one ConfigMap", allowed, len(objs), objs)
		}
		if got := objs[0]["data"].(map[string]any)["note"]; got != note {
			t.Errorf("allowed %v: note %q, want the value verbatim", allowed, got)
		}
	}
}

// Every way a value reaches the text keeps it one scalar, while the
// functions see and produce what they did before.
func TestTemplateValuesRenderAsScalars(t *testing.T) {
	h := newHandler(t, handlers.Config{Type: handlers.TypeTemplate, TemplateDir: templateDir(t, map[string]string{
		"_h.tpl": "{{ define \"labels\" }}team: {{ .Resource.Spec.v | dnsLabel | quote }}\nnote: x{{ .Resource.Spec.v }}{{ end }}",
		"cm.yaml": configMapDoc + `  labels:
    {{- include "labels" . | nindent 4 }}
data:
  plain: {{ .Resource.Spec.v }}
  quoted: {{ .Resource.Spec.v | quote }}
  inside: "a {{ .Resource.Spec.v }} b"
  single: 'a{{ .Resource.Spec.v }}'
  concat: {{ .Resource.Name }}/{{ .Resource.Spec.v }}
  number: {{ .Resource.Spec.n }}
  bool: {{ .Deleting }}
  quotedNumber: {{ .Resource.Spec.n | quote }}
  printf: {{ printf "%s-%s" (include "labels" .) .Resource.Spec.v | quote }}
  block: |
    {{- .Resource.Spec.v | nindent 4 }}
  yamlText: |
    {{- toYaml .Resource.Spec.obj | nindent 4 }}
  json: {{ toJson .Resource.Spec.obj | quote }}
  flow: [{{ .Resource.Spec.v }}, {{ .Resource.Spec.n }}]
spec:
  obj: {{ toJson .Resource.Spec.obj }}
  nested:
    {{- toYaml .Resource.Spec.obj | nindent 4 }}
  {{ .Resource.Spec.key }}: key
`,
	})})
	v := "a: b\n---\n- c\n{{ .x }} &anchor *alias !!binary \"q\" 'r' # comment"
	obj := map[string]any{"k": v, "list": []any{"x", "---"}}
	objs, err := manifestObjects(t, h, clusterWithSpec(t, map[string]any{"v": v, "n": 3, "obj": obj, "key": "evil: true\nmore"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 1 {
		t.Fatalf("%d manifests, want 1", len(objs))
	}
	data := objs[0]["data"].(map[string]any)
	wantJSON, _ := json.Marshal(obj)
	want := map[string]any{
		"plain": v, "quoted": v, "inside": "a " + v + " b", "single": "a" + v, "concat": "hp-cluster-abc12/" + v,
		"number": float64(3), "bool": false, "quotedNumber": "3", "block": v + "\n", "json": string(wantJSON),
		"printf": "team: \"" + handlers.DNSLabel(v) + "\"\nnote: x" + v + "-" + v,
		"flow":   []any{v, float64(3)},
	}
	for k, w := range want {
		if fmt.Sprint(data[k]) != fmt.Sprint(w) {
			t.Errorf("data.%s = %#v, want %#v", k, data[k], w)
		}
	}
	if !strings.Contains(data["yamlText"].(string), "k: |-") {
		t.Errorf("yamlText %q is not toYaml's text", data["yamlText"])
	}
	spec := objs[0]["spec"].(map[string]any)
	for _, k := range []string{"obj", "nested"} {
		got, _ := json.Marshal(spec[k])
		if string(got) != string(wantJSON) {
			t.Errorf("spec.%s = %s, want the object itself %s", k, got, wantJSON)
		}
	}
	if spec["evil: true\nmore"] != "key" {
		t.Errorf("spec keys %v: a value printed as a key must be that one key", keysOf(spec))
	}
	labels := objs[0]["metadata"].(map[string]any)["labels"].(map[string]any)
	if labels["note"] != "x"+v || labels["team"] != handlers.DNSLabel(v) {
		t.Errorf("labels from include: %v", labels)
	}
}

func keysOf(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func TestTemplateAllowedKinds(t *testing.T) {
	// The Secret only appears when the spec asks for it: the kinds learned
	// at start (ConfigMap) do not include it.
	files := map[string]string{"a.yaml": configMapDoc + `{{- if .Resource.Spec.secret }}
---
apiVersion: v1
kind: Secret
metadata:
  name: extra
  namespace: {{ .Namespace }}
{{- end }}
`}
	learned := newHandler(t, handlers.Config{Type: handlers.TypeTemplate, TemplateDir: templateDir(t, files)})
	if _, err := learned.Build(handlers.Target{Resource: clusterWithSpec(t, map[string]any{})}); err != nil {
		t.Fatalf("a learned kind: %v", err)
	}
	_, err := learned.Build(handlers.Target{Resource: clusterWithSpec(t, map[string]any{"secret": true})})
	if err == nil || !failure.IsPermanent(err) {
		t.Fatalf("an unlearned kind: err %v, want a permanent error", err)
	}
	for _, w := range []string{"kind Secret is not allowed", "template a.yaml (document 2", "ConfigMap"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}

	listed := newHandler(t, handlers.Config{Type: handlers.TypeTemplate, TemplateDir: templateDir(t, files), AllowedKinds: []string{"ConfigMap", "Secret"}})
	if _, err := listed.Build(handlers.Target{Resource: clusterWithSpec(t, map[string]any{"secret": true})}); err != nil {
		t.Errorf("a listed kind: %v", err)
	}
	onlySecret := newHandler(t, handlers.Config{Type: handlers.TypeTemplate, TemplateDir: templateDir(t, files), AllowedKinds: []string{"Secret"}})
	_, err = onlySecret.Build(handlers.Target{Resource: clusterWithSpec(t, map[string]any{})})
	if err == nil || !strings.Contains(err.Error(), "kind ConfigMap is not allowed: not in TEMPLATE_ALLOWED_KINDS: Secret") {
		t.Errorf("an unlisted kind: %v", err)
	}

	// Cluster-wide power is never learned: the adapter does not start.
	_, err = handlers.New(handlers.Config{Type: handlers.TypeTemplate, TemplateDir: templateDir(t, map[string]string{"crb.yaml": clusterRoleBindingYAML})})
	if err == nil || !strings.Contains(err.Error(), "ClusterRoleBinding.rbac.authorization.k8s.io") || !strings.Contains(err.Error(), "TEMPLATE_ALLOWED_KINDS") {
		t.Errorf("a learned ClusterRoleBinding: %v", err)
	}
	crb := newHandler(t, handlers.Config{Type: handlers.TypeTemplate, TemplateDir: templateDir(t, map[string]string{"crb.yaml": clusterRoleBindingYAML}), AllowedKinds: []string{"ClusterRoleBinding"}})
	if _, err := crb.Build(handlers.Target{Resource: clusterWithSpec(t, map[string]any{})}); err != nil {
		t.Errorf("a listed ClusterRoleBinding: %v", err)
	}
	// A group-qualified entry allows that group only.
	other := newHandler(t, handlers.Config{Type: handlers.TypeTemplate, AllowedKinds: []string{"ClusterRoleBinding.example.com"},
		TemplateDir: templateDir(t, map[string]string{"crb.yaml": clusterRoleBindingYAML})})
	_, err = other.Build(handlers.Target{Resource: clusterWithSpec(t, map[string]any{})})
	if err == nil || !strings.Contains(err.Error(), "grants cluster-wide power") {
		t.Errorf("ClusterRoleBinding of rbac with only example.com's listed: %v", err)
	}
}

func TestBuildBounds(t *testing.T) {
	twoDocs := configMapDoc + "---\n" + strings.Replace(configMapDoc, "{{ .Resource.Name }}", "second", 1)
	h := newHandler(t, handlers.Config{Type: handlers.TypeTemplate, MaxManifests: 1, TemplateDir: templateDir(t, map[string]string{"a.yaml": twoDocs})})
	_, err := h.Build(handlers.Target{Resource: clusterWithSpec(t, nil)})
	if err == nil || !failure.IsPermanent(err) || !strings.Contains(err.Error(), "2 manifests, over MAX_MANIFESTS (1)") {
		t.Errorf("too many manifests: %v", err)
	}

	h = newHandler(t, handlers.Config{Type: handlers.TypeTemplate, MaxManifestBytes: 4096, TemplateDir: templateDir(t, map[string]string{
		"a.yaml": configMapDoc + "data:\n  note: {{ .Resource.Spec.note }}\n"})})
	if _, err := h.Build(handlers.Target{Resource: clusterWithSpec(t, map[string]any{"note": "small"})}); err != nil {
		t.Fatal(err)
	}
	_, err = h.Build(handlers.Target{Resource: clusterWithSpec(t, map[string]any{"note": strings.Repeat("x", 5000)})})
	if err == nil || !failure.IsPermanent(err) || !strings.Contains(err.Error(), "over MAX_MANIFEST_BYTES (4096") {
		t.Errorf("too many bytes: %v", err)
	}

	// The bytes bound holds for every type, e.g. the namespace adapter.
	ns := newHandler(t, handlers.Config{Type: handlers.TypeNamespace, MaxManifestBytes: 10})
	if _, err := ns.Build(target(t, "cluster-gen1")); err == nil || !strings.Contains(err.Error(), "MAX_MANIFEST_BYTES") {
		t.Errorf("namespace over the bound: %v", err)
	}
}

func TestTemplateTimeout(t *testing.T) {
	list := make([]any, 2000)
	h := newHandler(t, handlers.Config{
		Type: handlers.TypeTemplate, TemplateTimeout: 50 * time.Millisecond, MaxManifestBytes: 1 << 30,
		AllowedKinds: []string{"ConfigMap"},
		Values:       map[string]any{"list": list},
		TemplateDir: templateDir(t, map[string]string{"a.yaml": configMapDoc +
			"{{ range .Values.list }}{{ range $.Values.list }}{{ range $.Values.list }} {{ end }}{{ end }}{{ end }}\n"}),
	})
	start := time.Now()
	_, err := h.Build(handlers.Target{Resource: clusterWithSpec(t, nil)})
	if err == nil || !failure.IsPermanent(err) || !strings.Contains(err.Error(), "TEMPLATE_TIMEOUT (50ms)") {
		t.Errorf("endless render: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the render took %s, want it stopped near its 50ms timeout", took)
	}
}

// toYaml's lists may stand at their key's indentation, as Helm charts
// print them; maps and lists also nest deeper, and inside a block scalar
// they are text.
func TestTemplateToYamlLists(t *testing.T) {
	h := newHandler(t, handlers.Config{Type: handlers.TypeTemplate, TemplateDir: templateDir(t, map[string]string{
		"cm.yaml": configMapDoc + `spec:
  same:
  {{- toYaml .Resource.Spec.list | nindent 2 }}
  deeper:
    {{- toYaml .Resource.Spec.list | nindent 4 }}
  bare:
{{ toYaml .Resource.Spec.list | indent 2 }}
  empty: {{ toYaml .Resource.Spec.empty }}
  json: {{ toJson .Resource.Spec.list }}
data:
  text: |
    {{- toYaml .Resource.Spec.list | nindent 4 }}
`})})
	list := []any{"a: b", map[string]any{"k": "- x\n---"}}
	objs, err := manifestObjects(t, h, clusterWithSpec(t, map[string]any{"list": list, "empty": []any{}}))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := json.Marshal(list)
	spec := objs[0]["spec"].(map[string]any)
	for _, k := range []string{"same", "deeper", "bare", "json"} {
		if got, _ := json.Marshal(spec[k]); string(got) != string(want) {
			t.Errorf("spec.%s = %s, want %s", k, got, want)
		}
	}
	if got, _ := json.Marshal(spec["empty"]); string(got) != "[]" {
		t.Errorf("spec.empty = %s, want []", got)
	}
	text := objs[0]["data"].(map[string]any)["text"].(string)
	if !strings.HasPrefix(text, "- 'a: b'\n- k: |-\n") {
		t.Errorf("data.text = %q, want toYaml's text of the list", text)
	}
}

// A kind that comes from the resource cannot be learned at start.
func TestTemplateKindFromAValueMustBeListed(t *testing.T) {
	files := map[string]string{"a.yaml": "apiVersion: v1\nkind: {{ .Resource.Spec.kind }}\nmetadata:\n  name: x\n"}
	_, err := handlers.New(handlers.Config{Type: handlers.TypeTemplate, TemplateDir: templateDir(t, files)})
	if err == nil || !strings.Contains(err.Error(), "set TEMPLATE_ALLOWED_KINDS") {
		t.Fatalf("New: %v, want an error asking for TEMPLATE_ALLOWED_KINDS", err)
	}
	h := newHandler(t, handlers.Config{Type: handlers.TypeTemplate, TemplateDir: templateDir(t, files), AllowedKinds: []string{"ConfigMap"}})
	if _, err := h.Build(handlers.Target{Resource: clusterWithSpec(t, map[string]any{"kind": "ConfigMap"})}); err != nil {
		t.Errorf("a listed kind: %v", err)
	}
	_, err = h.Build(handlers.Target{Resource: clusterWithSpec(t, map[string]any{"kind": "ClusterRoleBinding"})})
	if err == nil || !strings.Contains(err.Error(), "kind ClusterRoleBinding is not allowed") {
		t.Errorf("an unlisted kind from the spec: %v", err)
	}
}

// Objects made per label are learned from the sample's label; a directory
// that makes nothing for the sample must list its kinds.
func TestTemplateLearnsFromASampleWithALabel(t *testing.T) {
	perLabel := map[string]string{"a.yaml": `{{- range $k, $v := .Resource.Labels }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ $k }}
{{- end }}
`}
	h := newHandler(t, handlers.Config{Type: handlers.TypeTemplate, TemplateDir: templateDir(t, perLabel)})
	objs, err := manifestObjects(t, h, loadResource(t, "cluster-gen1"))
	if err != nil || len(objs) != 3 {
		t.Fatalf("%d objects, err %v; want one ConfigMap per label (3)", len(objs), err)
	}
	perItem := map[string]string{"a.yaml": `{{- range .Resource.Spec.items }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ . }}
{{- end }}
`}
	if _, err := handlers.New(handlers.Config{Type: handlers.TypeTemplate, TemplateDir: templateDir(t, perItem)}); err == nil || !strings.Contains(err.Error(), "make no object for a sample resource") {
		t.Errorf("New: %v, want an error asking for TEMPLATE_ALLOWED_KINDS", err)
	}
}

// The template's own anchors and aliases keep working around values.
func TestTemplateAnchorsOfTheTemplate(t *testing.T) {
	h := newHandler(t, handlers.Config{Type: handlers.TypeTemplate, TemplateDir: templateDir(t, map[string]string{
		"cm.yaml": configMapDoc + `spec:
  a: &obj {{ toJson .Resource.Spec.obj }}
  b: *obj
  c: &note {{ .Resource.Spec.note }}
  d: *note
`})})
	objs, err := manifestObjects(t, h, clusterWithSpec(t, map[string]any{"obj": map[string]any{"k": "*x"}, "note": "&y z"}))
	if err != nil {
		t.Fatal(err)
	}
	spec := objs[0]["spec"].(map[string]any)
	a, _ := json.Marshal(spec["a"])
	b, _ := json.Marshal(spec["b"])
	if string(a) != `{"k":"*x"}` || string(b) != string(a) || spec["c"] != "&y z" || spec["d"] != "&y z" {
		t.Errorf("spec %v", spec)
	}
}

// toJson and toYaml results are strings to functions and builtins, as
// they were: eq, len and printf see their text.
func TestTemplateStructuredResultsAreStrings(t *testing.T) {
	h := newHandler(t, handlers.Config{Type: handlers.TypeTemplate, TemplateDir: templateDir(t, map[string]string{
		"cm.yaml": configMapDoc + `data:
  eq: {{ eq (toJson .Resource.Spec.obj) "{\"k\":\"v\"}" | quote }}
  len: {{ len (toYaml .Resource.Spec.obj) | quote }}
  printf: {{ printf "%s!" (toJson .Resource.Spec.obj) | quote }}
  again: {{ toJson (toYaml .Resource.Spec.obj) | quote }}
`})})
	objs, err := manifestObjects(t, h, clusterWithSpec(t, map[string]any{"obj": map[string]any{"k": "v"}}))
	if err != nil {
		t.Fatal(err)
	}
	data := objs[0]["data"].(map[string]any)
	want := map[string]any{"eq": "true", "len": "4", "printf": `{"k":"v"}!`, "again": `{"k":"v"}`}
	for k, w := range want {
		if data[k] != w {
			t.Errorf("data.%s = %#v, want %#v", k, data[k], w)
		}
	}
}
