package handlers

import (
	"fmt"
	"strings"

	operatorv1 "github.com/openshift/api/operator/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// Where the ingress adapter's IngressController lives on the target.
const (
	IngressControllerName      = "default"
	IngressControllerNamespace = "openshift-ingress-operator"
)

// ingressHandler builds the cluster's default IngressController
// (operator.openshift.io/v1) serving apps.{cluster-name}.{spec.dns.baseDomain}
// with Config.IngressReplicas replicas.
type ingressHandler struct {
	base
	replicas int32
}

func (h *ingressHandler) Build(t Target) ([]*workv1.ManifestWork, error) {
	return h.build(t, h.objects)
}

func (h *ingressHandler) objects(wc *workContext) ([]object, []string, error) {
	c := wc.Cluster
	baseDomain, ok, err := lookupString(c.Spec, "dns.baseDomain")
	if err != nil {
		return nil, nil, failure.Permanent(fmt.Errorf("adapter %s: cluster %s: %w", h.adapter, c.ID, err))
	}
	if !ok || baseDomain == "" {
		return nil, nil, failure.Permanentf("adapter %s: cluster %s has no spec.dns.baseDomain, which the ingress domain is built from", h.adapter, c.ID)
	}
	domain := "apps." + DNSLabel(c.Name) + "." + strings.TrimSuffix(strings.ToLower(baseDomain), ".")
	if problems := validation.IsDNS1123Subdomain(domain); len(problems) > 0 {
		return nil, nil, failure.Permanentf("adapter %s: cluster %s: ingress domain %q from spec.dns.baseDomain is not a DNS name: %s", h.adapter, c.ID, domain, strings.Join(problems, "; "))
	}
	replicas := h.replicas
	ic := &operatorv1.IngressController{
		TypeMeta:   metav1.TypeMeta{APIVersion: operatorv1.GroupVersion.String(), Kind: "IngressController"},
		ObjectMeta: metav1.ObjectMeta{Name: IngressControllerName, Namespace: IngressControllerNamespace},
		Spec:       operatorv1.IngressControllerSpec{Domain: domain, Replicas: &replicas},
	}
	objs, err := toObjects(ic)
	if err != nil {
		return nil, nil, failure.Permanent(err)
	}
	return objs, nil, nil
}
