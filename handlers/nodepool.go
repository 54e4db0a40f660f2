package handlers

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"

	hyperv1 "github.com/openshift/hypershift/api/hypershift/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// AnnotationGCPPlatform carries a GCP node pool's spec.platform.gcp, as
// compact JSON, on the NodePool built for it. The pinned HyperShift API has
// no GCP NodePool platform, so such a pool is built with platform None
// (machines provisioned outside HyperShift) and this is where the machine
// shape the pool asked for stays readable for whatever provisions them.
const AnnotationGCPPlatform = "hyperfleet.io/platform-gcp"

// nodePoolPlatforms maps HyperFleet's lower-case platform types to the
// NodePool platforms the pinned HyperShift API accepts without a feature
// gate (its AAA_ungated CRD: AWS, Azure, IBMCloud, KubeVirt, Agent,
// PowerVS, None), with the spec.platform section each one reads. GCP is
// not there; see gcpNodePool. OpenStack needs the OpenStack feature gate,
// so a management cluster with the default feature set refuses it.
var nodePoolPlatforms = map[string]struct {
	typ     hyperv1.PlatformType
	section func(*hyperv1.NodePoolPlatform) any // nil: the platform has none
}{
	"aws": {hyperv1.AWSPlatform, func(p *hyperv1.NodePoolPlatform) any {
		p.AWS = &hyperv1.AWSNodePoolPlatform{}
		return p.AWS
	}},
	"azure": {hyperv1.AzurePlatform, func(p *hyperv1.NodePoolPlatform) any {
		p.Azure = &hyperv1.AzureNodePoolPlatform{}
		return p.Azure
	}},
	"ibmcloud": {hyperv1.IBMCloudPlatform, func(p *hyperv1.NodePoolPlatform) any {
		p.IBMCloud = &hyperv1.IBMCloudPlatformSpec{}
		return p.IBMCloud
	}},
	"kubevirt": {hyperv1.KubevirtPlatform, func(p *hyperv1.NodePoolPlatform) any {
		p.Kubevirt = &hyperv1.KubevirtNodePoolPlatform{}
		return p.Kubevirt
	}},
	"agent": {hyperv1.AgentPlatform, func(p *hyperv1.NodePoolPlatform) any {
		p.Agent = &hyperv1.AgentNodePoolPlatform{}
		return p.Agent
	}},
	"powervs": {hyperv1.PowerVSPlatform, func(p *hyperv1.NodePoolPlatform) any {
		p.PowerVS = &hyperv1.PowerVSNodePoolPlatform{}
		return p.PowerVS
	}},
	"none": {hyperv1.NonePlatform, nil},
}

// autoscalingKeys are the spec.autoscaling fields HyperShift's NodePool
// autoScaling can hold (min and max); any other, such as
// targetCPUUtilization, is refused: HyperShift's autoscaler scales on
// unschedulable pods and has no CPU target, and dropping the field would
// pretend otherwise.
var autoscalingKeys = []string{"enabled", "minNodes", "maxNodes"}

// nodePoolHandler builds a HyperShift NodePool (hypershift.openshift.io/
// v1beta1, hyperv1.NodePool of the pinned API) per HyperFleet node pool, in
// the landing-zone namespace, for the HostedCluster named after the
// cluster. From the node pool spec:
//
//	nodeCount                              spec.replicas (unless autoscaling is on)
//	autoscaling.enabled/minNodes/maxNodes  spec.autoScaling.min/max
//	platform.type                          spec.platform.type (aws -> AWS, ...); gcp -> None
//	platform.<type>                        spec.platform.<type>, decoded strictly
//	platform.gcp                           the AnnotationGCPPlatform annotation
//	management                             spec.management, decoded strictly (default upgradeType Replace)
//	release.image                          spec.release.image, else the cluster's
//
// A platform type without a cluster-level fallback, an unknown platform, a
// field the HyperShift types do not have, or an autoscaling field other
// than enabled/minNodes/maxNodes is a permanent error naming the field.
type nodePoolHandler struct{ base }

func (h *nodePoolHandler) Build(t Target) ([]*workv1.ManifestWork, error) {
	return h.build(t, h.objects)
}

func (h *nodePoolHandler) objects(wc *workContext) ([]object, []string, error) {
	np, c := wc.Resource, wc.Cluster
	fail := func(err error) ([]object, []string, error) {
		return nil, nil, failure.Permanent(fmt.Errorf("adapter %s: node pool %s: %w", h.adapter, np.ID, err))
	}
	pool := &hyperv1.NodePool{
		TypeMeta:   metav1.TypeMeta{APIVersion: hyperv1.GroupVersion.String(), Kind: "NodePool"},
		ObjectMeta: metav1.ObjectMeta{Name: DNSLabel(np.Name), Namespace: wc.Namespace},
		Spec:       hyperv1.NodePoolSpec{ClusterName: DNSLabel(c.Name)},
	}
	if err := nodePoolSize(np.Spec, &pool.Spec); err != nil {
		return fail(err)
	}
	if err := nodePoolPlatform(np.Spec, c.Spec, pool); err != nil {
		return fail(err)
	}

	pool.Spec.Management.UpgradeType = hyperv1.UpgradeTypeReplace
	if mgmt, ok := lookup(np.Spec, "management"); ok {
		if _, isObj := mgmt.(map[string]any); !isObj {
			return fail(fmt.Errorf("spec.management is a %s, want an object", jsonType(mgmt)))
		}
		if err := decodeStrict(mgmt, &pool.Spec.Management); err != nil {
			return fail(fmt.Errorf("spec.management: %w", err))
		}
		if pool.Spec.Management.UpgradeType == "" {
			pool.Spec.Management.UpgradeType = hyperv1.UpgradeTypeReplace
		}
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
	pool.Spec.Release.Image = image

	objs, err := toObjects(pool)
	if err != nil {
		return fail(err)
	}
	return objs, nil, nil
}

// nodePoolSize sets replicas, or autoScaling when spec.autoscaling.enabled
// is true; HyperShift refuses both together.
func nodePoolSize(spec map[string]any, out *hyperv1.NodePoolSpec) error {
	if as, ok := lookup(spec, "autoscaling"); ok {
		m, isObj := as.(map[string]any)
		if !isObj {
			return fmt.Errorf("spec.autoscaling is a %s, want an object", jsonType(as))
		}
		for _, k := range sortedKeys(m) {
			if !slices.Contains(autoscalingKeys, k) {
				return fmt.Errorf("spec.autoscaling.%s cannot be expressed in a HyperShift NodePool, whose autoScaling has only min and max nodes; remove it", k)
			}
		}
	}
	autoscale, _ := lookup(spec, "autoscaling.enabled")
	on, isBool := autoscale.(bool)
	if autoscale != nil && !isBool {
		return fmt.Errorf("spec.autoscaling.enabled is a %s, want a boolean", jsonType(autoscale))
	}
	if on {
		lo, okLo, err := lookupInt32(spec, "autoscaling.minNodes")
		if err != nil {
			return err
		}
		hi, okHi, err := lookupInt32(spec, "autoscaling.maxNodes")
		if err != nil {
			return err
		}
		if !okLo || !okHi {
			return fmt.Errorf("autoscaling is enabled but spec.autoscaling.minNodes or maxNodes is missing")
		}
		if lo < 1 || hi < lo {
			return fmt.Errorf("autoscaling range %d..%d is empty or below 1", lo, hi)
		}
		out.AutoScaling = &hyperv1.NodePoolAutoScaling{Min: lo, Max: hi}
		return nil
	}
	n, ok, err := lookupInt32(spec, "nodeCount")
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("spec.nodeCount is missing and autoscaling is not enabled")
	}
	if n < 0 {
		return fmt.Errorf("spec.nodeCount %d is negative", n)
	}
	out.Replicas = &n
	return nil
}

// nodePoolPlatform sets the NodePool's platform from the node pool's
// spec.platform, or the cluster's type when the node pool names none.
func nodePoolPlatform(spec, clusterSpec map[string]any, pool *hyperv1.NodePool) error {
	typ, ok, err := lookupString(spec, "platform.type")
	if err != nil {
		return err
	}
	if !ok {
		if typ, ok, err = lookupString(clusterSpec, "platform.type"); err != nil || !ok {
			return fmt.Errorf("neither the node pool nor its cluster has spec.platform.type")
		}
	}
	key := strings.ToLower(typ)
	section, hasSection := lookup(spec, "platform."+key)
	if hasSection {
		if _, isObj := section.(map[string]any); !isObj {
			return fmt.Errorf("spec.platform.%s is a %s, want an object", key, jsonType(section))
		}
	}
	if key == "gcp" {
		return gcpNodePool(section, pool)
	}
	p, known := nodePoolPlatforms[key]
	if !known {
		return fmt.Errorf("spec.platform.type %q is not a NodePool platform of HyperShift API %s (want one of %s, or gcp)",
			typ, HyperShiftAPIVersion, strings.Join(sortedKeys(nodePoolPlatforms), ", "))
	}
	pool.Spec.Platform.Type = p.typ
	if !hasSection {
		return nil
	}
	if p.section == nil {
		return fmt.Errorf("spec.platform.%s: HyperShift's %s platform takes no settings", key, p.typ)
	}
	if err := decodeStrict(section, p.section(&pool.Spec.Platform)); err != nil {
		return fmt.Errorf("spec.platform.%s: %w", key, err)
	}
	return nil
}

// gcpNodePool is the NodePool of a GCP node pool. The pinned HyperShift API
// has no GCP NodePool platform (newer HyperShift has one behind the
// GCPPlatform feature gate, with different fields: one zone, a boot disk, a
// provisioning model), so the pool is built with platform None, which
// HyperShift serves ignition for without provisioning machines, and the
// GCP section is carried verbatim in the AnnotationGCPPlatform annotation.
func gcpNodePool(section any, pool *hyperv1.NodePool) error {
	pool.Spec.Platform.Type = hyperv1.NonePlatform
	if section == nil {
		section = map[string]any{}
	}
	raw, err := json.Marshal(section) // map keys sorted: deterministic
	if err != nil {
		return fmt.Errorf("spec.platform.gcp: %w", err)
	}
	pool.Annotations = map[string]string{AnnotationGCPPlatform: string(raw)}
	return nil
}

// lookupInt32 is lookupInt for fields Kubernetes holds as int32.
func lookupInt32(obj map[string]any, path string) (int32, bool, error) {
	n, ok, err := lookupInt(obj, path)
	if err != nil || !ok {
		return 0, ok, err
	}
	if n < math.MinInt32 || n > math.MaxInt32 {
		return 0, false, fmt.Errorf("spec.%s %d is out of range for a 32-bit integer", path, n)
	}
	return int32(n), true, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
