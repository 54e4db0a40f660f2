package handlers

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"

	configv1 "github.com/openshift/api/config/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// OAuthName is the name of the cluster's OAuth configuration, a singleton.
const OAuthName = "cluster"

// idpHandler builds the cluster's OAuth configuration (config.openshift.io/
// v1 OAuth, the singleton named "cluster") with the identity providers in
// the cluster's spec.identityProviders: a list in OpenShift's own
// identityProviders form, decoded into configv1.IdentityProvider so that a
// field OpenShift does not know, or a value of the wrong type, is refused
// here, naming the entry and the field, instead of by the API server on the
// target. Every entry needs a unique name and a type. Without a list the
// providers are empty: the adapter owns the OAuth configuration, and a
// cluster with no providers has none.
//
// Providers refer to their credentials by Secret or ConfigMap name in
// openshift-config; the adapter passes those references on and never sees
// the credentials.
type idpHandler struct{ base }

func (h *idpHandler) Build(t Target) ([]*workv1.ManifestWork, error) { return h.build(t, h.objects) }

func (h *idpHandler) objects(wc *workContext) ([]object, []string, error) {
	c := wc.Cluster
	fail := func(format string, args ...any) ([]object, []string, error) {
		return nil, nil, failure.Permanent(fmt.Errorf("adapter %s: cluster %s: %s", h.adapter, c.ID, fmt.Sprintf(format, args...)))
	}
	providers := []configv1.IdentityProvider{}
	if v, ok := lookup(c.Spec, "identityProviders"); ok {
		list, isList := v.([]any)
		if !isList {
			return fail("spec.identityProviders is a %s, want a list", jsonType(v))
		}
		names := make(map[string]int, len(list))
		for i, p := range list {
			if _, isObj := p.(map[string]any); !isObj {
				return fail("spec.identityProviders[%d] is a %s, want an object", i, jsonType(p))
			}
			var idp configv1.IdentityProvider
			if err := decodeStrict(p, &idp); err != nil {
				return fail("spec.identityProviders[%d]: %v", i, err)
			}
			if idp.Name == "" || idp.Type == "" {
				return fail("spec.identityProviders[%d] needs a name and a type", i)
			}
			if j, dup := names[idp.Name]; dup {
				return fail("spec.identityProviders[%d] and [%d] are both named %q", j, i, idp.Name)
			}
			names[idp.Name] = i
			providers = append(providers, idp)
		}
	}
	oauth := &configv1.OAuth{
		TypeMeta:   metav1.TypeMeta{APIVersion: configv1.GroupVersion.String(), Kind: "OAuth"},
		ObjectMeta: metav1.ObjectMeta{Name: OAuthName},
		Spec:       configv1.OAuthSpec{IdentityProviders: providers},
	}
	objs, err := toObjects(oauth)
	if err != nil {
		return nil, nil, failure.Permanent(err)
	}
	return objs, nil, nil
}

// decodeStrict decodes a piece of decoded JSON (a spec section) into an
// upstream type, refusing fields the type does not have: a misspelt field
// would otherwise vanish silently, and the API server on the target would
// refuse it anyway. The error names the field.
func decodeStrict(in any, out any) error {
	raw, err := json.Marshal(in)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("%w (want the fields of %s)", err, reflect.TypeOf(out).Elem().Name())
	}
	return nil
}
