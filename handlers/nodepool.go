package handlers

import (
	"fmt"
	"strings"

	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
)

// hyperShiftPlatforms maps HyperFleet's lower-case platform types to the
// spelling of HyperShift's NodePool platform enum.
var hyperShiftPlatforms = map[string]string{
	"aws":       "AWS",
	"azure":     "Azure",
	"gcp":       "GCP",
	"kubevirt":  "KubeVirt",
	"agent":     "Agent",
	"none":      "None",
	"openstack": "OpenStack",
	"ibmcloud":  "IBMCloud",
	"powervs":   "PowerVS",
}

// nodePoolHandler builds a HyperShift NodePool (hypershift.openshift.io/
// v1beta1) per HyperFleet node pool, in the landing-zone namespace, for the
// HostedCluster named after the cluster. From the node pool spec:
//
//	nodeCount                     spec.replicas (unless autoscaling is on)
//	autoscaling.enabled/minNodes/maxNodes  spec.autoScaling.min/max
//	platform.type                 spec.platform.type (gcp -> GCP, ...)
//	platform.<type>               spec.platform.<type>, copied as is
//	management                    spec.management (default upgradeType Replace)
//	release.image                 spec.release.image, else the cluster's
type nodePoolHandler struct{ base }

func (h *nodePoolHandler) Build(t Target) ([]*workv1.ManifestWork, error) {
	return h.build(t, h.objects)
}

func (h *nodePoolHandler) objects(wc *workContext) ([]object, []string, error) {
	np, c := wc.Resource, wc.Cluster
	fail := func(err error) ([]object, []string, error) {
		return nil, nil, events.Permanent(fmt.Errorf("adapter %s: node pool %s: %w", h.adapter, np.ID, err))
	}
	spec := map[string]any{"clusterName": DNSLabel(c.Name)}

	autoscale, _ := lookup(np.Spec, "autoscaling.enabled")
	if on, isBool := autoscale.(bool); autoscale != nil && !isBool {
		return fail(fmt.Errorf("spec.autoscaling.enabled is a %s, want a boolean", jsonType(autoscale)))
	} else if on {
		lo, okLo, err := lookupInt(np.Spec, "autoscaling.minNodes")
		if err != nil {
			return fail(err)
		}
		hi, okHi, err := lookupInt(np.Spec, "autoscaling.maxNodes")
		if err != nil {
			return fail(err)
		}
		if !okLo || !okHi {
			return fail(fmt.Errorf("autoscaling is enabled but spec.autoscaling.minNodes or maxNodes is missing"))
		}
		if lo < 1 || hi < lo {
			return fail(fmt.Errorf("autoscaling range %d..%d is empty or below 1", lo, hi))
		}
		// HyperShift refuses replicas together with autoScaling.
		spec["autoScaling"] = map[string]any{"min": lo, "max": hi}
	} else {
		n, ok, err := lookupInt(np.Spec, "nodeCount")
		if err != nil {
			return fail(err)
		}
		if !ok {
			return fail(fmt.Errorf("spec.nodeCount is missing and autoscaling is not enabled"))
		}
		if n < 0 {
			return fail(fmt.Errorf("spec.nodeCount %d is negative", n))
		}
		spec["replicas"] = n
	}

	platformType, ok, err := lookupString(np.Spec, "platform.type")
	if err != nil {
		return fail(err)
	}
	if !ok {
		if platformType, ok, err = lookupString(c.Spec, "platform.type"); err != nil || !ok {
			return fail(fmt.Errorf("neither the node pool nor its cluster has spec.platform.type"))
		}
	}
	hsType, known := hyperShiftPlatforms[strings.ToLower(platformType)]
	if !known {
		return fail(fmt.Errorf("spec.platform.type %q is not a HyperShift platform", platformType))
	}
	platform := map[string]any{"type": hsType}
	key := strings.ToLower(platformType)
	if section, ok := lookup(np.Spec, "platform."+key); ok {
		if _, isObj := section.(map[string]any); !isObj {
			return fail(fmt.Errorf("spec.platform.%s is a %s, want an object", key, jsonType(section)))
		}
		platform[key] = section
	}
	spec["platform"] = platform

	if mgmt, ok := lookup(np.Spec, "management"); ok {
		if _, isObj := mgmt.(map[string]any); !isObj {
			return fail(fmt.Errorf("spec.management is a %s, want an object", jsonType(mgmt)))
		}
		spec["management"] = mgmt
	} else {
		spec["management"] = map[string]any{"upgradeType": "Replace"}
	}

	image, ok, err := lookupString(np.Spec, "release.image")
	if err != nil {
		return fail(err)
	}
	if !ok {
		if image, ok, err = lookupString(c.Spec, "release.image"); err != nil {
			return fail(fmt.Errorf("cluster %s: %w", c.ID, err))
		}
	}
	if !ok || image == "" {
		return fail(fmt.Errorf("no release image: neither the node pool's nor the cluster's spec.release.image is set"))
	}
	spec["release"] = map[string]any{"image": image}

	obj := object{
		"apiVersion": "hypershift.openshift.io/v1beta1",
		"kind":       "NodePool",
		"metadata":   map[string]any{"name": DNSLabel(np.Name), "namespace": wc.Namespace},
		"spec":       spec,
	}
	return []object{obj}, nil, nil
}
