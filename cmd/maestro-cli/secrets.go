package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	workv1 "open-cluster-management.io/api/work/v1"
)

// Secret values never reach the screen unless asked for (--show-secrets):
// diff and describe show a Secret's keys and the size of each value, as
// kubectl describe does. A value that differs between the two sides of a
// diff says so, so that masking does not hide a change.

// isSecret reports whether a decoded manifest is a core Secret.
func isSecret(obj map[string]any) bool {
	return obj["kind"] == "Secret" && obj["apiVersion"] == "v1"
}

// maskedValue is what stands for one value of a Secret.
func maskedValue(field string, v any, note string) string {
	s, _ := v.(string)
	n := len(s)
	if field == "data" {
		if raw, err := base64.StdEncoding.DecodeString(s); err == nil {
			n = len(raw)
		}
	}
	if note != "" {
		return fmt.Sprintf("<secret: %d bytes, %s>", n, note)
	}
	return fmt.Sprintf("<secret: %d bytes>", n)
}

// maskSecret returns a copy of obj with its data and stringData values
// masked; other may be the Secret on the other side of a diff (nil when
// there is none), whose differing values are told apart with note.
func maskSecret(obj, other map[string]any, note string) map[string]any {
	if !isSecret(obj) {
		return obj
	}
	out := make(map[string]any, len(obj))
	for k, v := range obj {
		out[k] = v
	}
	for _, field := range []string{"data", "stringData"} {
		m, ok := obj[field].(map[string]any)
		if !ok {
			continue
		}
		var otherField map[string]any
		if other != nil {
			otherField, _ = other[field].(map[string]any)
		}
		masked := make(map[string]any, len(m))
		for k, v := range m {
			n := ""
			if ov, present := otherField[k]; otherField != nil && present && ov != v {
				n = note
			}
			masked[k] = maskedValue(field, v, n)
		}
		out[field] = masked
	}
	return out
}

// maskChanges masks the Secrets among diff's changes.
func maskChanges(changes []change) []change {
	out := make([]change, len(changes))
	for i, c := range changes {
		before, _ := c.Before.(map[string]any)
		after, _ := c.After.(map[string]any)
		if before != nil && isSecret(before) {
			c.Before = maskSecret(before, after, "before")
		}
		if after != nil && isSecret(after) {
			c.After = maskSecret(after, before, "after")
		}
		out[i] = c
	}
	return out
}

// maskWork returns a copy of w whose Secret manifests are masked.
func maskWork(w *workv1.ManifestWork) *workv1.ManifestWork {
	out := w.DeepCopy()
	for i, m := range out.Spec.Workload.Manifests {
		var obj map[string]any
		if json.Unmarshal(m.Raw, &obj) != nil || !isSecret(obj) {
			continue
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false) // "<secret: ...>" as it reads
		if err := enc.Encode(maskSecret(obj, nil, "")); err != nil {
			continue
		}
		raw := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
		out.Spec.Workload.Manifests[i] = workv1.Manifest{RawExtension: runtime.RawExtension{Raw: raw}}
	}
	return out
}
