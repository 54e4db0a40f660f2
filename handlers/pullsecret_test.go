package handlers_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/handlers"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// secretContent returns the decoded .dockerconfigjson of the work's Secret.
func secretContent(t *testing.T, w *workv1.ManifestWork) string {
	t.Helper()
	var s struct {
		Type string            `json:"type"`
		Data map[string][]byte `json:"data"`
	}
	if err := json.Unmarshal(w.Spec.Workload.Manifests[0].Raw, &s); err != nil {
		t.Fatal(err)
	}
	if s.Type != "kubernetes.io/dockerconfigjson" {
		t.Errorf("secret type %q", s.Type)
	}
	return string(s.Data[".dockerconfigjson"])
}

func TestPullSecretSources(t *testing.T) {
	const canonical = `{"auths":{"quay.io":{"auth":"c3BlYy11c2VyOnNwZWMtcGFzcw=="}}}`
	forms := map[string]any{
		"object":      map[string]any{"auths": map[string]any{"quay.io": map[string]any{"auth": "c3BlYy11c2VyOnNwZWMtcGFzcw=="}}},
		"json string": `  {"auths": {"quay.io": {"auth": "c3BlYy11c2VyOnNwZWMtcGFzcw=="}}}` + "\n",
		"base64":      base64.StdEncoding.EncodeToString([]byte(`{"auths":{"quay.io":{"auth":"c3BlYy11c2VyOnNwZWMtcGFzcw=="}}}`)),
	}
	withFile := newHandler(t, handlers.Config{Type: handlers.TypePullSecret, PullSecretFile: "testdata/pull-secret.json"})
	for name, v := range forms {
		c := loadResource(t, "cluster-gen1")
		c.Spec["pullSecret"] = v
		works, err := withFile.Build(handlers.Target{Resource: c})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// The cluster's own secret wins over the configured file, and every
		// form gives the same bytes.
		if got := secretContent(t, works[0]); got != canonical {
			t.Errorf("%s: content %s, want %s", name, got, canonical)
		}
	}

	// Without spec.pullSecret the file is used.
	works, err := withFile.Build(handlers.Target{Resource: loadResource(t, "cluster-gen1")})
	if err != nil {
		t.Fatal(err)
	}
	if got := secretContent(t, works[0]); !strings.Contains(got, "ZmlsZS11c2Vy") {
		t.Errorf("content %s is not the file's", got)
	}
}

func TestPullSecretNeverInErrors(t *testing.T) {
	const secret = "c3VwZXItc2VjcmV0LXRva2Vu" // what must never leak
	bad := map[string]any{
		"truncated json":  `{"auths": {"quay.io": {"auth": "` + secret,
		"syntax error":    `{"auths": {"quay.io": {"auth": ` + secret + `}}}`,
		"not base64":      secret + "!!",
		"base64 not json": base64.StdEncoding.EncodeToString([]byte(secret)),
		"no auths":        map[string]any{"token": secret},
		"empty auths":     `{"auths": {}, "x": "` + secret + `"}`,
		"wrong type":      []any{secret},
		"number":          42.0,
	}
	h := newHandler(t, handlers.Config{Type: handlers.TypePullSecret})
	for name, v := range bad {
		c := loadResource(t, "cluster-gen1")
		c.Spec["pullSecret"] = v
		_, err := h.Build(handlers.Target{Resource: c})
		if err == nil {
			t.Errorf("%s: Build succeeded", name)
			continue
		}
		if !failure.IsPermanent(err) || !strings.Contains(err.Error(), "spec.pullSecret") {
			t.Errorf("%s: error %v should be permanent and name spec.pullSecret", name, err)
		}
		if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), secret[:8]) {
			t.Errorf("%s: error reveals the secret: %v", name, err)
		}
	}
}
