package handlers_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/openshift-hyperfleet/maestro-adapter/handlers"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// templateDir writes files into a fresh directory.
func templateDir(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const configMapDoc = `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Resource.Name }}
  namespace: {{ .Namespace }}
`

func TestTemplateRenderErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"required fails", map[string]string{"a.yaml": configMapDoc + "data:\n  x: {{ required \"Values.x is required\" .Values.x }}\n"},
			[]string{"template a.yaml", "a.yaml:7", "Values.x is required"}},
		{"invalid yaml", map[string]string{"b.yaml.tmpl": configMapDoc + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: [name: x\n"},
			[]string{"template b.yaml.tmpl", "invalid YAML in the document at rendered line 7", "rendered line 8"}},
		{"no apiVersion", map[string]string{"c.yaml": configMapDoc + "---\n# second\nkind: Secret\nmetadata:\n  name: s\n"},
			[]string{"template c.yaml (document 2, rendered line 7)", "no apiVersion"}},
		{"no name", map[string]string{"c.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {}\n"},
			[]string{"template c.yaml (document 1, rendered line 1)", "no metadata.name"}},
		{"missing value", map[string]string{"d.yaml": configMapDoc + "data:\n  region: {{ .Resource.Spec.nowhere }}\n"},
			[]string{"template d.yaml", "d.yaml:7:", "prints a missing or null value"}},
		{"not an object", map[string]string{"e.yaml": "- a\n- b\n"},
			[]string{"template e.yaml", "is a list, want a Kubernetes object"}},
		{"duplicate object", map[string]string{"f.yaml": configMapDoc, "g.yaml": configMapDoc},
			[]string{"template g.yaml (document 1, rendered line 1)", "is already in template f.yaml"}},
		{"number label", map[string]string{"h.yaml": configMapDoc + "  labels:\n    tier: 1\n"},
			[]string{"template h.yaml", "metadata.labels.tier is a number, want a string"}},
		{"name with colon and space", map[string]string{"j.yaml": "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: \"system:bad name\"\n"},
			[]string{"template j.yaml", "whitespace"}},
		{"invalid object name", map[string]string{"i.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Not_Valid\n"},
			[]string{"template i.yaml", `"Not_Valid"`}},
		{"feedback not a map", map[string]string{"k.yaml": configMapDoc + "  annotations:\n    hyperfleet.io/feedback: nope\n"},
			[]string{"template k.yaml", "annotation hyperfleet.io/feedback: want a YAML map of name to JSONPath"}},
		{"feedback bad path", map[string]string{"l.yaml": configMapDoc + "  annotations:\n    hyperfleet.io/feedback: 'ready: .status.conditions[?(@.type=='\n"},
			[]string{"template l.yaml", "hyperfleet.io/feedback: ready: path"}},
		{"feedback relative path", map[string]string{"m.yaml": configMapDoc + "  annotations:\n    hyperfleet.io/feedback: 'phase: status.phase'\n"},
			[]string{"template m.yaml", "must start with ."}},
		{"feedback on a secret", map[string]string{"n.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  annotations:\n    hyperfleet.io/feedback: 'data: .data'\n"},
			[]string{"template n.yaml", "a Secret's status is never reported"}},
		{"feedback names name", map[string]string{"o.yaml": configMapDoc + "  annotations:\n    hyperfleet.io/feedback: 'name: .metadata.name'\n"},
			[]string{"template o.yaml", `"name" cannot name a value`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Listed kinds: the handler must start, so the render fails at Build.
			h := newHandler(t, handlers.Config{Type: handlers.TypeTemplate, TemplateDir: templateDir(t, tt.files),
				AllowedKinds: []string{"ConfigMap", "Secret", "ClusterRole"}})
			_, err := h.Build(handlers.Target{Resource: loadResource(t, "cluster-gen1")})
			if err == nil {
				t.Fatal("Build succeeded, want an error")
			}
			if !failure.IsPermanent(err) {
				t.Errorf("error %v is not permanent", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestTemplateDocumentsAndHelpers(t *testing.T) {
	dir := templateDir(t, map[string]string{
		"_helpers.tpl": `{{ define "name" }}{{ .Resource.Name | upper | lower }}-cfg{{ end }}`,
		"x.tpl":        "this helper file is never rendered: {{ .Nothing }}",
		"notes.txt":    "ignored",
		"10-a.yml": `# only a comment
---
{{- if .Deleting }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: goodbye
{{- end }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "name" . }}
  namespace: {{ .Namespace }}
data:
  work: {{ .WorkName }}
  consumer: {{ .Consumer }}
  adapter: {{ .Adapter.Name }}/{{ .Adapter.Type }}
  generation: {{ .Generation | quote }}
  trunc: {{ trunc 4 .Resource.Name }}
  b64: {{ b64enc "hi" }}
  joined: {{ join "," .Resource.Spec.networking.serviceNetwork }}
  json: {{ toJson .Resource.Labels | quote }}
  replaced: {{ replace "-" "_" .Resource.Name }}
---
`,
		"20-b.yml.tmpl": `apiVersion: v1
kind: ConfigMap
metadata:
  name: second
  namespace: {{ .Namespace }}
`,
	})
	h := newHandler(t, handlers.Config{Type: handlers.TypeTemplate, TemplateDir: dir})
	works, err := h.Build(handlers.Target{Resource: loadResource(t, "cluster-gen1")})
	if err != nil {
		t.Fatal(err)
	}
	ms := works[0].Spec.Workload.Manifests
	if len(ms) != 2 {
		t.Fatalf("got %d manifests, want 2 (empty and conditional documents skipped, helpers not rendered)", len(ms))
	}
	var cm struct {
		Metadata struct{ Name string }
		Data     map[string]string
	}
	if err := json.Unmarshal(ms[0].Raw, &cm); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"work": "hyperfleet-hp-cluster-abc12-template", "consumer": "hp-cluster-abc12", "adapter": "template/template",
		"generation": "1", "trunc": "hp-c", "b64": "aGk=", "joined": "10.96.0.0/12",
		"json": `{"environment":"test","shard":"1","team":"platform"}`, "replaced": "hp_cluster_abc12",
	}
	if cm.Metadata.Name != "hp-cluster-abc12-cfg" {
		t.Errorf("name %q", cm.Metadata.Name)
	}
	for k, v := range want {
		if cm.Data[k] != v {
			t.Errorf("data.%s = %q, want %q", k, cm.Data[k], v)
		}
	}

	// The conditional document appears for a deleting cluster.
	works, err = h.Build(handlers.Target{Resource: loadResource(t, "cluster-deleting-gen3")})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(works[0].Spec.Workload.Manifests); n != 3 {
		t.Errorf("deleting: %d manifests, want 3", n)
	}
}

// TestTemplateParsedOnce shows that templates are compiled by New, not per
// event: changing the files afterwards changes nothing.
func TestTemplateParsedOnce(t *testing.T) {
	dir := templateDir(t, map[string]string{"a.yaml": configMapDoc})
	h := newHandler(t, handlers.Config{Type: handlers.TypeTemplate, TemplateDir: dir})
	if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("{{ broken"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "b.yaml"), []byte(configMapDoc), 0o600); err != nil {
		t.Fatal(err)
	}
	works, err := h.Build(handlers.Target{Resource: loadResource(t, "cluster-gen1")})
	if err != nil {
		t.Fatalf("Build after the files changed: %v", err)
	}
	if n := len(works[0].Spec.Workload.Manifests); n != 1 {
		t.Errorf("%d manifests, want the 1 parsed at start", n)
	}
}

func TestTemplateForNodePools(t *testing.T) {
	dir := templateDir(t, map[string]string{"np.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ dnsLabel .Resource.Name }}-sizing
  namespace: {{ .Namespace }}
data:
  cluster: {{ .Cluster.Name }}
  owner: {{ .Resource.OwnerReferences.ID }}
  nodes: {{ .Resource.Spec.nodeCount | quote }}
  machine: {{ .Resource.Spec.platform.gcp.machineType }}
`})
	h := newHandler(t, handlers.Config{Type: handlers.TypeTemplate, Name: "np-sizing", TemplateDir: dir, Kinds: []string{"NodePool"}})
	cluster := loadResource(t, "cluster-gen1")
	works, err := h.Build(handlers.Target{Resource: loadResource(t, "nodepool-gen2"), Cluster: cluster})
	if err != nil {
		t.Fatal(err)
	}
	w := works[0]
	if w.Name != "hp-cluster-abc12-np-sizing-worker-pool-1" {
		t.Errorf("work name %q, want pattern B", w.Name)
	}
	raw := string(w.Spec.Workload.Manifests[0].Raw)
	for _, s := range []string{`"nodes":"5"`, `"machine":"n2-standard-8"`, `"owner":"` + cluster.ID + `"`, `"hyperfleet.io/generation":"2"`} {
		if !strings.Contains(raw, s) {
			t.Errorf("manifest %s lacks %s", raw, s)
		}
	}
}

// TestConcurrentBuild runs one handler from many goroutines, as the
// pipeline does; run with -race.
func TestConcurrentBuild(t *testing.T) {
	cfgs := goldenConfigs()
	for _, typ := range []string{handlers.TypeTemplate, handlers.TypeNodePool, handlers.TypeNamespace} {
		h := newHandler(t, cfgs[typ])
		name := goldenCases(typ)[0]
		want := marshalWorks(t, must(h.Build(target(t, name))))
		var wg sync.WaitGroup
		errs := make(chan string, 8)
		for range 8 {
			tg := target(t, name)
			wg.Go(func() {
				works, err := h.Build(tg)
				if err != nil {
					errs <- err.Error()
					return
				}
				got, _ := json.Marshal(works)
				wantJSON, _ := json.Marshal(must(h.Build(tg)))
				if string(got) != string(wantJSON) {
					errs <- "concurrent builds differ"
				}
			})
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Errorf("%s: %s", typ, e)
		}
		if again := marshalWorks(t, must(h.Build(target(t, name)))); string(again) != string(want) {
			t.Errorf("%s: output changed after concurrent builds", typ)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func TestTemplateRBACNames(t *testing.T) {
	h := newHandler(t, handlers.Config{Type: handlers.TypeTemplate, AllowedKinds: []string{"ClusterRole.rbac.authorization.k8s.io"}, TemplateDir: templateDir(t, map[string]string{
		"rbac.yaml": "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: system:hyperfleet:viewer\nrules: []\n",
	})})
	works, err := h.Build(handlers.Target{Resource: loadResource(t, "cluster-gen1")})
	if err != nil {
		t.Fatalf("a ClusterRole named system:...: %v", err)
	}
	id := works[0].Spec.ManifestConfigs[0].ResourceIdentifier
	if id.Group != "rbac.authorization.k8s.io" || id.Resource != "clusterroles" || id.Name != "system:hyperfleet:viewer" {
		t.Errorf("resource identifier %+v", id)
	}
}
