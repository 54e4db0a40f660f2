package handlers

import (
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
)

// idpHandler builds the cluster's OAuth configuration (config.openshift.io/
// v1 OAuth, the singleton named "cluster") with the identity providers in
// the cluster's spec.identityProviders: a list in OpenShift's own
// identityProviders form, copied as is after checking that every entry has
// a unique name and a type. Without one the list is empty: the adapter owns
// the OAuth configuration, and a cluster with no providers has none.
//
// Providers refer to their credentials by Secret or ConfigMap name in
// openshift-config; the adapter passes those references on and never sees
// the credentials.
type idpHandler struct{ base }

func (h *idpHandler) Build(t Target) ([]*workv1.ManifestWork, error) { return h.build(t, h.objects) }

func (h *idpHandler) objects(wc *workContext) ([]object, []string, error) {
	c := wc.Cluster
	providers := []any{}
	if v, ok := lookup(c.Spec, "identityProviders"); ok {
		list, isList := v.([]any)
		if !isList {
			return nil, nil, events.Permanentf("adapter %s: cluster %s: spec.identityProviders is a %s, want a list", h.adapter, c.ID, jsonType(v))
		}
		names := make(map[string]int, len(list))
		for i, p := range list {
			pm, isObj := p.(map[string]any)
			if !isObj {
				return nil, nil, events.Permanentf("adapter %s: cluster %s: spec.identityProviders[%d] is a %s, want an object", h.adapter, c.ID, i, jsonType(p))
			}
			name, _ := pm["name"].(string)
			typ, _ := pm["type"].(string)
			if name == "" || typ == "" {
				return nil, nil, events.Permanentf("adapter %s: cluster %s: spec.identityProviders[%d] needs a name and a type", h.adapter, c.ID, i)
			}
			if j, dup := names[name]; dup {
				return nil, nil, events.Permanentf("adapter %s: cluster %s: spec.identityProviders[%d] and [%d] are both named %q", h.adapter, c.ID, j, i, name)
			}
			names[name] = i
		}
		providers = list
	}
	obj := object{
		"apiVersion": "config.openshift.io/v1",
		"kind":       "OAuth",
		"metadata":   map[string]any{"name": "cluster"},
		"spec":       map[string]any{"identityProviders": providers},
	}
	return []object{obj}, nil, nil
}
