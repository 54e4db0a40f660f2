package handlers_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
	workv1 "open-cluster-management.io/api/work/v1"
	"sigs.k8s.io/yaml"

	"github.com/openshift-hyperfleet/maestro-adapter/handlers"
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// loadResource reads a fixture from testdata/resources.
func loadResource(tb testing.TB, name string) *hyperfleet.Resource {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "resources", name+".json"))
	if err != nil {
		tb.Fatal(err)
	}
	var r hyperfleet.Resource
	if err := json.Unmarshal(raw, &r); err != nil {
		tb.Fatalf("fixture %s: %v", name, err)
	}
	return &r
}

// target builds the target of a fixture: node pools get cluster-gen1 as
// their cluster.
func target(tb testing.TB, name string) handlers.Target {
	tb.Helper()
	r := loadResource(tb, name)
	if r.Kind == hyperfleet.KindNodePool {
		return handlers.Target{Resource: r, Cluster: loadResource(tb, "cluster-gen1")}
	}
	return handlers.Target{Resource: r}
}

// goldenConfigs are the configurations the golden files are built with.
func goldenConfigs() map[string]handlers.Config {
	return map[string]handlers.Config{
		handlers.TypeNamespace:  {Type: handlers.TypeNamespace},
		handlers.TypeNodePool:   {Type: handlers.TypeNodePool},
		handlers.TypePullSecret: {Type: handlers.TypePullSecret, PullSecretFile: filepath.Join("testdata", "pull-secret.json")},
		handlers.TypeIDP:        {Type: handlers.TypeIDP},
		handlers.TypeIngress:    {Type: handlers.TypeIngress, IngressReplicas: 3},
		handlers.TypeTemplate: {
			Type:        handlers.TypeTemplate,
			Name:        "cluster-settings",
			TemplateDir: filepath.Join("testdata", "templates"),
			Values:      map[string]any{"logLevel": "debug", "quota": map[string]any{"pods": 50}},
		},
	}
}

var clusterCases = []string{"cluster-gen1", "cluster-gen2", "cluster-deleting-gen3"}

func goldenCases(typ string) []string {
	if typ == handlers.TypeNodePool {
		return []string{"nodepool-gen1", "nodepool-gen2"}
	}
	return clusterCases
}

func newHandler(tb testing.TB, cfg handlers.Config) handlers.Handler {
	tb.Helper()
	h, err := handlers.New(cfg)
	if err != nil {
		tb.Fatalf("New(%+v): %v", cfg, err)
	}
	return h
}

func marshalWorks(tb testing.TB, works []*workv1.ManifestWork) []byte {
	tb.Helper()
	out, err := yaml.Marshal(works)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

func TestGolden(t *testing.T) {
	for typ, cfg := range goldenConfigs() {
		h := newHandler(t, cfg)
		for _, name := range goldenCases(typ) {
			t.Run(typ+"/"+name, func(t *testing.T) {
				tg := target(t, name)
				works, err := h.Build(tg)
				if err != nil {
					t.Fatalf("Build: %v", err)
				}
				checkWorkInvariants(t, works, tg, cfg)
				got := marshalWorks(t, works)

				// Determinism: a second build, and a build by a second
				// handler from the same config, give the same bytes.
				again, err := h.Build(target(t, name))
				if err != nil {
					t.Fatalf("second Build: %v", err)
				}
				if b := marshalWorks(t, again); !bytes.Equal(got, b) {
					t.Fatalf("second build differs:\n%s\n---\n%s", got, b)
				}
				other, err := newHandler(t, cfg).Build(target(t, name))
				if err != nil {
					t.Fatal(err)
				}
				if b := marshalWorks(t, other); !bytes.Equal(got, b) {
					t.Fatalf("build by a second handler differs")
				}

				path := filepath.Join("testdata", "golden", typ, name+".yaml")
				if *update {
					if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(path, got, 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run go test ./handlers -run TestGolden -update to create it)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s differs from the build; review and rerun with -update if intended.\ngot:\n%s", path, got)
				}
			})
		}
	}
}

// checkWorkInvariants asserts what every work of every type must satisfy,
// independently of the golden files.
func checkWorkInvariants(t *testing.T, works []*workv1.ManifestWork, tg handlers.Target, cfg handlers.Config) {
	t.Helper()
	if len(works) != 1 {
		t.Fatalf("got %d works, want 1", len(works))
	}
	adapter := cfg.Name
	if adapter == "" {
		adapter = cfg.Type
	}
	cluster := tg.Cluster
	if cluster == nil {
		cluster = tg.Resource
	}
	gen := strconv.FormatInt(tg.Resource.Generation, 10)
	for _, w := range works {
		if errs := validation.IsDNS1123Label(w.Name); len(errs) > 0 {
			t.Errorf("work name %q: %v", w.Name, errs)
		}
		if w.Namespace != cluster.Name {
			t.Errorf("work namespace %q, want the consumer %q", w.Namespace, cluster.Name)
		}
		wantLabels := map[string]string{
			workmeta.LabelAdapter:      adapter,
			workmeta.LabelResourceKind: tg.Resource.Kind,
			workmeta.LabelResourceID:   tg.Resource.ID,
			workmeta.LabelClusterID:    cluster.ID,
		}
		for k, v := range wantLabels {
			if w.Labels[k] != v {
				t.Errorf("work label %s = %q, want %q", k, w.Labels[k], v)
			}
		}
		if w.Annotations[workmeta.AnnotationGeneration] != gen {
			t.Errorf("work generation annotation %q, want %s", w.Annotations[workmeta.AnnotationGeneration], gen)
		}
		if len(w.Spec.Workload.Manifests) == 0 {
			t.Fatal("work has no manifests")
		}
		if len(w.Spec.ManifestConfigs) != len(w.Spec.Workload.Manifests) {
			t.Errorf("%d manifestConfigs for %d manifests", len(w.Spec.ManifestConfigs), len(w.Spec.Workload.Manifests))
		}
		for i, m := range w.Spec.Workload.Manifests {
			var obj struct {
				Kind     string `json:"kind"`
				Metadata struct {
					Name        string            `json:"name"`
					Labels      map[string]string `json:"labels"`
					Annotations map[string]string `json:"annotations"`
				} `json:"metadata"`
			}
			if err := json.Unmarshal(m.Raw, &obj); err != nil {
				t.Fatalf("manifest %d: %v", i, err)
			}
			if obj.Metadata.Annotations[workmeta.AnnotationGeneration] != gen {
				t.Errorf("manifest %d (%s) generation annotation %q, want %s", i, obj.Kind, obj.Metadata.Annotations[workmeta.AnnotationGeneration], gen)
			}
			if obj.Metadata.Labels[workmeta.LabelResourceID] != tg.Resource.ID {
				t.Errorf("manifest %d (%s) lacks the resource-id label", i, obj.Kind)
			}
			mc := w.Spec.ManifestConfigs[i]
			if mc.ResourceIdentifier.Name != obj.Metadata.Name {
				t.Errorf("manifestConfig %d names %q, manifest is %q", i, mc.ResourceIdentifier.Name, obj.Metadata.Name)
			}
			if mc.UpdateStrategy == nil || mc.UpdateStrategy.Type != workv1.UpdateStrategyTypeServerSideApply {
				t.Errorf("manifestConfig %d: update strategy is not ServerSideApply", i)
			}
			if obj.Kind != "Secret" && obj.Kind != "ConfigMap" && len(mc.FeedbackRules) == 0 {
				t.Errorf("manifestConfig %d (%s) has no feedback rule", i, obj.Kind)
			}
		}
	}
}

// readSample reads a copy of a contract sample (CONTRACTS.md samples/).
func readSample(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join("testdata", "samples", name))
}
