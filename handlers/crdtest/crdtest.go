// Package crdtest installs into the local test kube-apiserver the
// CustomResourceDefinitions of the kinds the built-in handlers build:
// OAuth and IngressController from github.com/openshift/api, NodePool from
// github.com/openshift/hypershift/api, read from those modules at exactly
// the versions go.mod pins (the versions the handlers are compiled
// against), from the Go module cache.
//
// Typical use, with kubetest:
//
//	cfg := kubetest.Require(t)
//	crdtest.Install(t, cfg)
//
// CRDs are cluster-wide; installing is idempotent (server-side apply), so
// tests and helpers sharing one kube-apiserver may all call Install.
package crdtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

// CRD is one CustomResourceDefinition and where it comes from.
type CRD struct {
	// Module is the Go module holding the manifest.
	Module string
	// File is the manifest's path inside the module.
	File string
	// Override, if set, is a partial CRD (a manual override in the same
	// module) whose versions' subresources are merged into File's.
	Override string
	// DropAnnotations are annotation keys removed before installing.
	DropAnnotations []string
}

// CRDs are the definitions Install installs.
var CRDs = []CRD{
	{Module: "github.com/openshift/api", File: "config/v1/zz_generated.crd-manifests/0000_10_config-operator_01_oauths.crd.yaml"},
	{Module: "github.com/openshift/api", File: "operator/v1/zz_generated.crd-manifests/0000_50_ingress_00_ingresscontrollers.crd.yaml"},
	{
		// HyperShift ships NodePool only as per-feature-set CRDs; the
		// ungated one is what a management cluster with the default
		// feature set serves. Its marker annotation has an empty name part
		// after the '/', which the API server refuses; the scale
		// subresource lives in a manual override.
		Module:          "github.com/openshift/hypershift/api",
		File:            "hypershift/v1beta1/zz_generated.featuregated-crd-manifests/nodepools.hypershift.openshift.io/AAA_ungated.yaml",
		Override:        "hypershift/v1beta1/manual-override-crd-manifests/nodepools.hypershift.openshift.io/hypershift.openshift.io_nodepools_scale_subresource.yaml",
		DropAnnotations: []string{"feature-gate.release.openshift.io/"},
	},
}

// FieldManager is the server-side-apply field manager Install uses.
const FieldManager = "crdtest"

// establishTimeout bounds the wait for the CRDs to be served. A new CRD is
// Established within a second or two; this only covers a busy machine.
const establishTimeout = 60 * time.Second

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// Install applies CRDs to the server of cfg and waits until every one is
// Established, failing the test otherwise.
func Install(t testing.TB, cfg *rest.Config) {
	t.Helper()
	objs, err := Load()
	if err != nil {
		t.Fatalf("crdtest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), establishTimeout)
	defer cancel()
	if err := Apply(ctx, cfg, objs); err != nil {
		t.Fatalf("crdtest: %v", err)
	}
}

// Load reads CRDs from the module cache and prepares them for installing.
func Load() ([]*unstructured.Unstructured, error) {
	dirs := map[string]string{}
	out := make([]*unstructured.Unstructured, 0, len(CRDs))
	for _, c := range CRDs {
		dir, ok := dirs[c.Module]
		if !ok {
			m, err := Module(c.Module)
			if err != nil {
				return nil, err
			}
			dir = m.Dir
			dirs[c.Module] = dir
		}
		obj, err := readObject(filepath.Join(dir, c.File))
		if err != nil {
			return nil, err
		}
		if obj.GetKind() != "CustomResourceDefinition" {
			return nil, fmt.Errorf("%s in %s is a %s, not a CustomResourceDefinition", c.File, c.Module, obj.GetKind())
		}
		if ann := obj.GetAnnotations(); len(c.DropAnnotations) > 0 && ann != nil {
			for _, k := range c.DropAnnotations {
				delete(ann, k)
			}
			obj.SetAnnotations(ann)
		}
		if c.Override != "" {
			over, err := readObject(filepath.Join(dir, c.Override))
			if err != nil {
				return nil, err
			}
			if err := mergeSubresources(obj, over); err != nil {
				return nil, fmt.Errorf("%s: override %s: %w", c.File, c.Override, err)
			}
		}
		out = append(out, obj)
	}
	return out, nil
}

// Apply server-side applies the CRDs and waits until each is Established
// (its names accepted and its API served) or ctx ends.
func Apply(ctx context.Context, cfg *rest.Config, objs []*unstructured.Unstructured) error {
	// The upstream CRDs draw server warnings (format "int32" on a
	// string); they say nothing about the test.
	cfg = rest.CopyConfig(cfg)
	cfg.WarningHandler = rest.NoWarnings{}
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("dynamic client for %s: %w", cfg.Host, err)
	}
	crds := dc.Resource(crdResource)
	for _, obj := range objs {
		raw, err := json.Marshal(obj.Object)
		if err != nil {
			return fmt.Errorf("encode CRD %s: %w", obj.GetName(), err)
		}
		force := true
		if _, err := crds.Patch(ctx, obj.GetName(), types.ApplyPatchType, raw, metav1.PatchOptions{FieldManager: FieldManager, Force: &force}); err != nil {
			return fmt.Errorf("apply CRD %s: %w", obj.GetName(), err)
		}
	}
	for _, obj := range objs {
		if err := waitEstablished(ctx, crds, obj.GetName()); err != nil {
			return err
		}
	}
	return nil
}

func waitEstablished(ctx context.Context, crds dynamic.ResourceInterface, name string) error {
	var last string
	for {
		got, err := crds.Get(ctx, name, metav1.GetOptions{})
		switch {
		case err == nil:
			if established(got) {
				return nil
			}
			last = "not Established yet"
		case apierrors.IsNotFound(err):
			last = "not found"
		default:
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("CRD %s is not Established: %w (last: %s)", name, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func established(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

// mergeSubresources copies the subresources of each version in over into
// the version of the same name in obj (a manual override holds only those).
func mergeSubresources(obj, over *unstructured.Unstructured) error {
	versions, _, err := unstructured.NestedSlice(obj.Object, "spec", "versions")
	if err != nil {
		return err
	}
	overVersions, _, err := unstructured.NestedSlice(over.Object, "spec", "versions")
	if err != nil {
		return err
	}
	for _, ov := range overVersions {
		ovm, _ := ov.(map[string]any)
		subs, _ := ovm["subresources"].(map[string]any)
		found := false
		for _, v := range versions {
			vm, _ := v.(map[string]any)
			if vm["name"] != ovm["name"] {
				continue
			}
			found = true
			into, _ := vm["subresources"].(map[string]any)
			if into == nil {
				into = map[string]any{}
			}
			for k, s := range subs {
				into[k] = s
			}
			vm["subresources"] = into
		}
		if !found {
			return fmt.Errorf("version %v is not in the CRD", ovm["name"])
		}
	}
	return unstructured.SetNestedSlice(obj.Object, versions, "spec", "versions")
}

func readObject(path string) (*unstructured.Unstructured, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var obj map[string]any
	if err := yaml.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &unstructured.Unstructured{Object: obj}, nil
}

// ModuleInfo is what the go command says of a module of the build.
type ModuleInfo struct {
	Path    string
	Version string
	// Dir is the module's directory in the module cache.
	Dir string
}

// Module asks the go command (run in the current directory, inside the
// product module) which version of module the build uses and where the
// module cache holds it, downloading it (checked against go.sum) if the
// cache lacks it.
func Module(module string) (ModuleInfo, error) {
	var m ModuleInfo
	if err := goJSON(&m, "list", "-m", "-json", module); err != nil {
		return m, err
	}
	if m.Version == "" {
		return m, fmt.Errorf("go list -m %s: no version (is it required in go.mod?)", module)
	}
	if m.Dir == "" {
		if err := goJSON(&m, "mod", "download", "-json", module+"@"+m.Version); err != nil {
			return m, err
		}
		if m.Dir == "" {
			return m, fmt.Errorf("go mod download %s@%s: no directory", module, m.Version)
		}
	}
	return m, nil
}

func goJSON(into any, args ...string) error {
	cmd := exec.Command("go", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	if err := json.Unmarshal(out, into); err != nil {
		return fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return nil
}
