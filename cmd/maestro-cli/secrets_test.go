package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	workv1 "open-cluster-management.io/api/work/v1"
)

func secretManifest(t *testing.T, data, stringData map[string]string) workv1.Manifest {
	t.Helper()
	raw, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "Secret",
		"metadata": map[string]any{"name": "pull-secret", "namespace": "ns"}, "data": data, "stringData": stringData})
	if err != nil {
		t.Fatal(err)
	}
	return workv1.Manifest{RawExtension: runtime.RawExtension{Raw: raw}}
}

func workWith(ms ...workv1.Manifest) *workv1.ManifestWork {
	w := &workv1.ManifestWork{}
	w.Name, w.Namespace = "w", "c"
	w.Spec.Workload.Manifests = ms
	return w
}

// diff shows a changed Secret value as changed, but neither value.
func TestDiffMasksSecretValues(t *testing.T) {
	stored := workWith(secretManifest(t, map[string]string{".dockerconfigjson": "T0xEU0VDUkVU", "same": "c2FtZQ=="}, map[string]string{"token": "old-token"}))
	desired := workWith(secretManifest(t, map[string]string{".dockerconfigjson": "TkVXU0VDUkVUISE=", "same": "c2FtZQ=="}, map[string]string{"token": "new-token"}))
	changes := diffWorks(stored, desired)
	if len(changes) != 1 {
		t.Fatalf("%d changes, want the Secret's one: %+v", len(changes), changes)
	}
	var out bytes.Buffer
	printChanges(&out, "header", maskChanges(changes))
	text := out.String()
	for _, secret := range []string{"T0xEU0VDUkVU", "TkVXU0VDUkVUISE=", "c2FtZQ==", "old-token", "new-token", "OLDSECRET", "NEWSECRET"} {
		if strings.Contains(text, secret) {
			t.Errorf("diff shows %q:\n%s", secret, text)
		}
	}
	for _, want := range []string{".dockerconfigjson: '<secret: 9 bytes, before>'", ".dockerconfigjson: '<secret: 11 bytes, after>'", "same: '<secret: 4 bytes>'", "token: '<secret: 9 bytes, after>'"} {
		if !strings.Contains(text, want) {
			t.Errorf("diff lacks %q:\n%s", want, text)
		}
	}
	// Unmasked on request; the changes themselves were not touched.
	out.Reset()
	printChanges(&out, "header", changes)
	if !strings.Contains(out.String(), "TkVXU0VDUkVUISE=") {
		t.Errorf("--show-secrets output lacks the value:\n%s", out.String())
	}
}

func TestDescribeMasksSecretValues(t *testing.T) {
	cm, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "cm"}, "data": map[string]any{"k": "visible"}})
	w := workWith(secretManifest(t, map[string]string{"key": "c2VjcmV0"}, nil), workv1.Manifest{RawExtension: runtime.RawExtension{Raw: cm}})
	masked := maskWork(w)
	var raw []byte
	for _, m := range masked.Spec.Workload.Manifests {
		raw = append(raw, m.Raw...)
	}
	if strings.Contains(string(raw), "c2VjcmV0") || !strings.Contains(string(raw), "<secret: 6 bytes>") || !strings.Contains(string(raw), "visible") {
		t.Errorf("masked work: %s", raw)
	}
	if orig, _ := json.Marshal(w); !strings.Contains(string(orig), "c2VjcmV0") {
		t.Error("maskWork changed the work it was given")
	}
}
