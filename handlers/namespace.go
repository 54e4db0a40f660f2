package handlers

import (
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// ClusterInfoConfigMap is the name of the ConfigMap in the landing-zone
// namespace that carries the cluster's identity.
const ClusterInfoConfigMap = "hyperfleet-cluster-info"

// LabelClusterName labels the landing-zone Namespace with the cluster name.
const LabelClusterName = "hyperfleet.io/cluster-name"

// namespaceHandler builds the landing zone: the cluster's Namespace on the
// target and a ConfigMap with the cluster's identity, which later adapters
// (and people) read to know whose namespace it is.
type namespaceHandler struct{ base }

func (h *namespaceHandler) Build(t Target) ([]*workv1.ManifestWork, error) {
	return h.build(t, h.objects)
}

func (h *namespaceHandler) objects(wc *workContext) ([]object, []string, error) {
	c := wc.Cluster
	ns := &corev1.Namespace{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{
			Name:   wc.Namespace,
			Labels: map[string]string{LabelClusterName: DNSLabel(c.Name)},
		},
	}
	data := map[string]string{
		"cluster-id":   c.ID,
		"cluster-name": c.Name,
		"cluster-href": c.Href,
		"generation":   strconv.FormatInt(c.Generation, 10),
	}
	platform, ok, err := lookupString(c.Spec, "platform.type")
	if err != nil {
		return nil, nil, failure.Permanentf("adapter %s: cluster %s: %w", h.adapter, c.ID, err)
	}
	if ok {
		data["platform"] = platform
		// The region sits under the platform's own section, e.g.
		// spec.platform.gcp.region.
		region, ok, err := lookupString(c.Spec, "platform."+platform+".region")
		if err != nil {
			return nil, nil, failure.Permanentf("adapter %s: cluster %s: %w", h.adapter, c.ID, err)
		}
		if ok {
			data["region"] = region
		}
	}
	cm := &corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: ClusterInfoConfigMap, Namespace: wc.Namespace},
		Data:       data,
	}
	objs, err := toObjects(ns, cm)
	if err != nil {
		return nil, nil, failure.Permanent(err)
	}
	return objs, nil, nil
}
