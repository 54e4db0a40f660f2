package pipeline

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/handlers"
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
)

// specReader serves the recorded cluster with its spec replaced: what
// someone who may write the cluster's spec in the HyperFleet API sends.
// It fakes our own ResourceReader seam, as hyperfleet.DirReader does.
type specReader struct {
	spec map[string]any
}

func (r specReader) GetResource(ctx context.Context, href string) (*hyperfleet.Resource, error) {
	res, err := hyperfleet.DirReader{Dir: filepath.Join("..", "testdata", "api")}.GetResource(ctx, href)
	if err != nil {
		return nil, err
	}
	res.Spec = r.spec
	return res, nil
}

const injectedBinding = `x
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: pwn
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{kind: ServiceAccount, name: default, namespace: default}]
`

func writeTemplates(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func clusterEvent(t *testing.T) []*events.Message {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("..", "testdata", "contracts", "sentinel-event-cluster.json"))
	if err != nil {
		t.Fatal(err)
	}
	return []*events.Message{{TransportID: "m", Body: body, Attempt: 1}}
}

// The injection, end to end: the work Maestro gets holds the
// template's one ConfigMap, with the note as its value.
func TestTemplateValueCannotInjectThroughThePipeline(t *testing.T) {
	dir := writeTemplates(t, map[string]string{"cm.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: {{ .Namespace }}
data:
  note: {{ .Resource.Spec.note }}
`})
	h := newHarness(t, harnessOpts{adapterType: handlers.TypeTemplate,
		handlerCfg: func(c *handlers.Config) { c.TemplateDir = dir },
		reader:     specReader{spec: map[string]any{"note": injectedBinding}}})
	src := h.run(t, clusterEvent(t))
	if o := src.Outcomes(); len(o) != 1 || o[0].Settlement != "ack" {
		t.Fatalf("outcome %+v", o)
	}
	w, err := h.backend.Get(context.Background(), "hp-cluster-abc12", "hyperfleet-hp-cluster-abc12-template")
	if err != nil {
		t.Fatal(err)
	}
	ms := w.Spec.Workload.Manifests
	if len(ms) != 1 {
		t.Fatalf("the work holds %d manifests, want the template's one ConfigMap", len(ms))
	}
	var cm struct {
		Kind string
		Data map[string]string
	}
	if err := json.Unmarshal(ms[0].Raw, &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Kind != "ConfigMap" || cm.Data["note"] != injectedBinding {
		t.Errorf("manifest %s, want the ConfigMap with the note verbatim", ms[0].Raw)
	}
}

// A kind the allow-list does not hold fails the event permanently: one
// attempt, dead-lettered, and a Health=False report naming the kind and
// the file.
func TestUnlistedKindIsAPermanentHealthFalse(t *testing.T) {
	dir := writeTemplates(t, map[string]string{"10-rbac.yaml": `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: viewers
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{kind: Group, name: viewers, apiGroup: rbac.authorization.k8s.io}]
`})
	h := newHarness(t, harnessOpts{adapterType: handlers.TypeTemplate,
		handlerCfg: func(c *handlers.Config) { c.TemplateDir, c.AllowedKinds = dir, []string{"ConfigMap"} }})
	src := h.run(t, clusterEvent(t))
	o := src.Outcomes()
	if len(o) != 1 || o[0].Settlement != "dead-letter" || o[0].Attempts != 1 {
		t.Fatalf("outcome %+v, want one attempt, dead-lettered", o)
	}
	reps := h.sink.reports(t)
	if len(reps) != 1 {
		t.Fatalf("%d reports, want 1", len(reps))
	}
	health := reps[0].Report.Condition(hyperfleet.ConditionHealth)
	if health.Status != "False" {
		t.Fatalf("health %+v, want False", health)
	}
	for _, want := range []string{"ClusterRoleBinding", "10-rbac.yaml", "TEMPLATE_ALLOWED_KINDS"} {
		if !strings.Contains(health.Message, want) {
			t.Errorf("Health message %q does not name %s", health.Message, want)
		}
	}
	if _, err := h.backend.Get(context.Background(), "hp-cluster-abc12", "hyperfleet-hp-cluster-abc12-template"); err == nil {
		t.Error("a work was delivered for the refused render")
	}
}
