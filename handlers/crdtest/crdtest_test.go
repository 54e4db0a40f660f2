package crdtest_test

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/openshift-hyperfleet/maestro-adapter/handlers/crdtest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/jobs/kubetest"
)

// TestLoad: the three CRDs come from the module cache, the NodePool one
// without the annotation the API server refuses and with its scale
// subresource.
func TestLoad(t *testing.T) {
	objs, err := crdtest.Load()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		names[o.GetName()] = o
	}
	for _, n := range []string{"oauths.config.openshift.io", "ingresscontrollers.operator.openshift.io", "nodepools.hypershift.openshift.io"} {
		if names[n] == nil {
			t.Errorf("CRD %s not loaded (got %d CRDs)", n, len(objs))
		}
	}
	np := names["nodepools.hypershift.openshift.io"]
	if np == nil {
		t.FailNow()
	}
	if _, ok := np.GetAnnotations()["feature-gate.release.openshift.io/"]; ok {
		t.Error("the NodePool CRD keeps the feature-gate annotation")
	}
	versions, _, _ := unstructured.NestedSlice(np.Object, "spec", "versions")
	var scale, status bool
	for _, v := range versions {
		vm := v.(map[string]any)
		if vm["name"] != "v1beta1" {
			continue
		}
		_, scale, _ = unstructured.NestedMap(vm, "subresources", "scale")
		_, status, _ = unstructured.NestedMap(vm, "subresources", "status")
	}
	if !scale || !status {
		t.Errorf("NodePool v1beta1 subresources: scale %v, status %v; want both", scale, status)
	}
}

// TestInstall installs the CRDs twice (the second is a no-op) and finds
// the NodePool API served with its scale subresource.
func TestInstall(t *testing.T) {
	cfg := kubetest.Require(t)
	crdtest.Install(t, cfg)
	crdtest.Install(t, cfg)
	dc := dynamic.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	crd, err := dc.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}).
		Get(ctx, "nodepools.hypershift.openshift.io", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	applied := false
	for _, m := range crd.GetManagedFields() {
		applied = applied || m.Manager == crdtest.FieldManager && m.Operation == metav1.ManagedFieldsOperationApply
	}
	if !applied {
		t.Errorf("managed fields %+v: no Apply by %s", crd.GetManagedFields(), crdtest.FieldManager)
	}
	if _, err := dc.Resource(schema.GroupVersionResource{Group: "hypershift.openshift.io", Version: "v1beta1", Resource: "nodepools"}).
		List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
		t.Errorf("NodePools are not served: %v", err)
	}
}
