package handlers_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
	workv1 "open-cluster-management.io/api/work/v1"
	"sigs.k8s.io/yaml"

	"github.com/openshift-hyperfleet/maestro-adapter/handlers"
	"github.com/openshift-hyperfleet/maestro-adapter/handlers/crdtest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/jobs/kubetest"
)

// TestServerSideDryRun sends every workload manifest of every golden work
// to the local kube-apiserver, with the OpenShift and HyperShift CRDs of
// the pinned versions installed, as a server-side apply with dryRun=All
// and the work's field manager: what the agent does, minus the write. A
// handler that emits a field or value the schema refuses fails here rather
// than on a management cluster.
//
// Namespaced manifests are sent to a fresh test namespace instead of their
// own (the landing zone, openshift-ingress-operator): a dry run creates no
// Namespace, and the namespace does not change what the schema accepts.
func TestServerSideDryRun(t *testing.T) {
	cfg := kubetest.Require(t)
	crdtest.Install(t, cfg)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ns := kubetest.Namespace(t, cs)
	dc := dynamic.NewForConfigOrDie(cfg)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(discovery.NewDiscoveryClientForConfigOrDie(cfg)))

	files, err := filepath.Glob(filepath.Join("testdata", "golden", "*", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no golden files")
	}
	sent := 0
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var works []workv1.ManifestWork
		if err := yaml.Unmarshal(raw, &works); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, w := range works {
			managers := map[string]string{}
			for _, c := range w.Spec.ManifestConfigs {
				if c.UpdateStrategy != nil && c.UpdateStrategy.ServerSideApply != nil {
					managers[c.ResourceIdentifier.Resource+"/"+c.ResourceIdentifier.Name] = c.UpdateStrategy.ServerSideApply.FieldManager
				}
			}
			for i, m := range w.Spec.Workload.Manifests {
				obj := &unstructured.Unstructured{}
				if err := obj.UnmarshalJSON(m.Raw); err != nil {
					t.Fatalf("%s: work %s manifest %d: %v", file, w.Name, i, err)
				}
				name := strings.TrimSuffix(file, ".yaml") + "/" + obj.GetKind() + "/" + obj.GetName()
				t.Run(name, func(t *testing.T) {
					gvk := obj.GroupVersionKind()
					mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
					if err != nil {
						t.Fatalf("%s is not served: %v", gvk, err)
					}
					res := dc.Resource(mapping.Resource)
					var ri dynamic.ResourceInterface = res
					if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
						obj.SetNamespace(ns)
						ri = res.Namespace(ns)
					}
					manager := managers[mapping.Resource.Resource+"/"+obj.GetName()]
					if manager == "" {
						t.Fatalf("no server-side-apply manifestConfig names %s %s", mapping.Resource.Resource, obj.GetName())
					}
					body, err := json.Marshal(obj.Object)
					if err != nil {
						t.Fatal(err)
					}
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					force := true
					got, err := ri.Patch(ctx, obj.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{
						DryRun: []string{metav1.DryRunAll}, FieldManager: manager, Force: &force,
					})
					if err != nil {
						t.Fatalf("the API server refuses %s %s: %v", gvk.Kind, obj.GetName(), err)
					}
					// The dry run answers with the object as it would be stored:
					// the fields the handler set survive pruning and defaulting.
					spec, _, _ := unstructured.NestedMap(obj.Object, "spec")
					gotSpec, _, _ := unstructured.NestedMap(got.Object, "spec")
					for k := range spec {
						if _, ok := gotSpec[k]; !ok {
							t.Errorf("spec.%s was dropped by the server", k)
						}
					}
				})
				sent++
			}
		}
	}
	t.Logf("%d manifests of %d golden files dry-run applied", sent, len(files))
}

// TestUpstreamVersions holds handlers' version constants to the versions
// go.mod pins, which crdtest reads the CRDs from.
func TestUpstreamVersions(t *testing.T) {
	for module, want := range map[string]string{
		handlers.OpenShiftAPIModule:  handlers.OpenShiftAPIVersion,
		handlers.HyperShiftAPIModule: handlers.HyperShiftAPIVersion,
	} {
		m, err := crdtest.Module(module)
		if err != nil {
			t.Fatal(err)
		}
		if m.Version != want {
			t.Errorf("go.mod pins %s %s, handlers says %s", module, m.Version, want)
		}
	}
}
