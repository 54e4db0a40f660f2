package handlers

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// PullSecretName is the name of the pull secret in the landing-zone
// namespace.
const PullSecretName = "pull-secret"

// pullSecretHandler builds a kubernetes.io/dockerconfigjson Secret in the
// landing-zone namespace. The content is, in order of preference:
//
//  1. the cluster's spec.pullSecret: a dockerconfigjson object
//     ({"auths": {...}}), or a string holding that JSON or its base64;
//  2. the file Config.PullSecretFile, read once by New, for clusters that
//     carry none.
//
// Neither is a permanent error naming both places. The secret's value
// appears in no error and no report: only the manifest carries it.
type pullSecretHandler struct {
	base
	file     string
	fromFile []byte // canonical dockerconfigjson, nil without a file
}

func newPullSecretHandler(b base, file string) (*pullSecretHandler, error) {
	h := &pullSecretHandler{base: b, file: file}
	if file == "" {
		return h, nil
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("handlers config PullSecretFile: %w", err)
	}
	if h.fromFile, err = dockerConfigJSON(strings.TrimSpace(string(raw))); err != nil {
		return nil, fmt.Errorf("handlers config PullSecretFile %s: %w", file, err)
	}
	return h, nil
}

func (h *pullSecretHandler) Build(t Target) ([]*workv1.ManifestWork, error) {
	return h.build(t, h.objects)
}

func (h *pullSecretHandler) objects(wc *workContext) ([]object, []string, error) {
	var err error
	c := wc.Cluster
	var content []byte
	switch v, ok := lookup(c.Spec, "pullSecret"); {
	case ok:
		if content, err = dockerConfigJSON(v); err != nil {
			return nil, nil, failure.Permanent(fmt.Errorf("adapter %s: cluster %s: spec.pullSecret: %w", h.adapter, c.ID, err))
		}
	case h.fromFile != nil:
		content = h.fromFile
	default:
		return nil, nil, failure.Permanentf("adapter %s: cluster %s has no pull secret: spec.pullSecret is not set and no PullSecretFile is configured", h.adapter, c.ID)
	}
	secret := &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: PullSecretName, Namespace: wc.Namespace},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: content},
	}
	objs, err := toObjects(secret)
	if err != nil {
		return nil, nil, failure.Permanent(err)
	}
	return objs, nil, nil
}

// dockerConfigJSON checks a pull secret and returns it as compact JSON with
// sorted keys, so the same secret always gives the same manifest bytes.
// Errors describe the shape only, never the content.
func dockerConfigJSON(v any) ([]byte, error) {
	var obj map[string]any
	switch x := v.(type) {
	case map[string]any:
		obj = x
	case string:
		text := []byte(strings.TrimSpace(x))
		if len(text) == 0 {
			return nil, errors.New("is empty")
		}
		if text[0] != '{' {
			decoded, err := base64.StdEncoding.DecodeString(string(text))
			if err != nil {
				return nil, errors.New("is a string that is neither dockerconfigjson JSON nor its base64")
			}
			text = bytes.TrimSpace(decoded)
		}
		dec := json.NewDecoder(bytes.NewReader(text))
		dec.UseNumber()
		if err := dec.Decode(&obj); err != nil {
			// A syntax error's text quotes the offending character; only
			// its offset is safe to show.
			var se *json.SyntaxError
			switch {
			case errors.As(err, &se):
				return nil, fmt.Errorf("is not valid JSON (syntax error at byte %d)", se.Offset)
			case errors.Is(err, io.ErrUnexpectedEOF):
				return nil, errors.New("is not valid JSON (it ends early)")
			}
			return nil, errors.New("is not a JSON object")
		}
	default:
		return nil, fmt.Errorf("is a %s, want a dockerconfigjson object or string", jsonType(v))
	}
	auths, ok := obj["auths"].(map[string]any)
	if !ok {
		return nil, errors.New(`is not a dockerconfigjson: it has no "auths" object`)
	}
	if len(auths) == 0 {
		return nil, errors.New(`is not a usable dockerconfigjson: "auths" names no registry`)
	}
	out, err := json.Marshal(obj)
	if err != nil {
		return nil, errors.New("cannot be encoded as JSON")
	}
	return out, nil
}
