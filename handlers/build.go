package handlers

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/validation/path"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/util/jsonpath"
	workv1 "open-cluster-management.io/api/work/v1"
	"sigs.k8s.io/yaml"

	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
)

// base is what every adapter type shares: identity, naming, placement.
type base struct {
	typ       string
	adapter   string
	naming    NamingPattern
	consumer  ConsumerRule
	namespace string
	kinds     []string
	limits    limits
}

func newBase(cfg Config) base {
	ns := cfg.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	return base{
		typ:       cfg.Type,
		adapter:   cfg.adapterName(),
		naming:    cfg.naming(),
		consumer:  cfg.Consumer,
		namespace: ns,
		kinds:     slices.Clone(cfg.kinds()),
		limits:    cfg.limits(),
	}
}

func (b *base) Type() string { return b.typ }

func (b *base) Handles(kind string) bool { return slices.Contains(b.kinds, kind) }

// workContext is what one Build knows once the target is checked: where
// the work goes, what it is called, and the labels everything carries.
type workContext struct {
	Resource  *hyperfleet.Resource
	Cluster   *hyperfleet.Resource
	Consumer  string
	WorkName  string
	Namespace string // landing-zone namespace on the target
	labels    map[string]string
}

// generation is the value of the generation annotation.
func (wc *workContext) generation() string { return strconv.FormatInt(wc.Resource.Generation, 10) }

// prepare checks the target and works out consumer, names and labels.
// Every error is permanent: the same target always fails the same way.
func (b *base) prepare(t Target) (*workContext, error) {
	r := t.Resource
	if r == nil {
		return nil, failure.Permanentf("adapter %s: target has no resource", b.adapter)
	}
	if err := r.Validate(); err != nil {
		return nil, failure.Permanent(fmt.Errorf("adapter %s: %w", b.adapter, err))
	}
	if !b.Handles(r.Kind) {
		return nil, failure.Permanentf("adapter %s (type %s) does not handle %s resources, only %s", b.adapter, b.typ, r.Kind, strings.Join(b.kinds, ", "))
	}
	cluster := t.Cluster
	if r.Kind == hyperfleet.KindCluster {
		if cluster == nil {
			cluster = r
		} else if cluster.ID != r.ID {
			return nil, failure.Permanentf("adapter %s: cluster %s was given %s as its own cluster", b.adapter, r.ID, cluster.ID)
		}
	} else {
		if cluster == nil {
			return nil, failure.Permanentf("adapter %s: %s %s needs its cluster, and the target has none", b.adapter, r.Kind, r.ID)
		}
		if r.OwnerReferences != nil && r.OwnerReferences.ID != "" && r.OwnerReferences.ID != cluster.ID {
			return nil, failure.Permanentf("adapter %s: %s %s belongs to cluster %s, not %s", b.adapter, r.Kind, r.ID, r.OwnerReferences.ID, cluster.ID)
		}
	}
	if cluster.ID == "" || cluster.Name == "" {
		return nil, failure.Permanentf("adapter %s: cluster of %s %s has no id or name", b.adapter, r.Kind, r.ID)
	}
	consumer, err := b.consumer.Resolve(cluster)
	if err != nil {
		return nil, err
	}
	labels := map[string]string{
		workmeta.LabelAdapter:      b.adapter,
		workmeta.LabelResourceKind: r.Kind,
		workmeta.LabelResourceID:   r.ID,
		workmeta.LabelClusterID:    cluster.ID,
	}
	for _, k := range []string{workmeta.LabelResourceKind, workmeta.LabelResourceID, workmeta.LabelClusterID} {
		if problems := validation.IsValidLabelValue(labels[k]); len(problems) > 0 {
			return nil, failure.Permanentf("adapter %s: %s %q cannot be the label %s: %s", b.adapter, strings.TrimPrefix(k, "hyperfleet.io/"), labels[k], k, strings.Join(problems, "; "))
		}
	}
	ns := strings.NewReplacer("{cluster-id}", cluster.ID, "{cluster-name}", cluster.Name).Replace(b.namespace)
	return &workContext{
		Resource:  r,
		Cluster:   cluster,
		Consumer:  consumer,
		WorkName:  b.naming.workName(cluster.Name, r.Name, b.adapter),
		Namespace: DNSLabel(ns),
		labels:    labels,
	}, nil
}

// build is Build for the types that own one work per resource: prepare
// the target, let the type make the manifests, finish the work.
//
// For a resource being deleted the work is only going to be deleted, by
// name and consumer, so a spec the manifests cannot be built from (a pull
// secret removed, an identity provider made invalid) must not block the
// cleanup: the work is returned without manifests instead of failing.
func (b *base) build(t Target, objects func(*workContext) ([]object, []string, error)) ([]*workv1.ManifestWork, error) {
	wc, err := b.prepare(t)
	if err != nil {
		return nil, err
	}
	objs, origin, err := objects(wc)
	if err != nil && !wc.Resource.Deleting() {
		return nil, err
	}
	var work *workv1.ManifestWork
	if err == nil {
		work, err = b.finish(wc, objs, origin)
	}
	if err != nil {
		if !wc.Resource.Deleting() {
			return nil, err
		}
		if work, err = b.finish(wc, nil, nil); err != nil {
			return nil, err
		}
	}
	return []*workv1.ManifestWork{work}, nil
}

// object is one manifest in its JSON form. Typed Kubernetes objects go
// through toObject first, so every manifest is stamped and encoded alike.
type object = map[string]any

// fieldManager is the server-side-apply field manager of an adapter.
func fieldManager(adapter string) string { return "hyperfleet-" + adapter }

// statuslessKinds are core kinds with no status: feedback would report
// nothing, and a Secret must never have any of itself reported.
var statuslessKinds = map[schema.GroupKind]bool{
	{Kind: "Secret"}:    true,
	{Kind: "ConfigMap"}: true,
}

// statusFeedback is the feedback rule of kinds without rules of their own:
// the whole status, as JSON. Maestro's agent returns a JSON value only up
// to --max-json-raw-length (1 MiB in Maestro's agent command, which raises
// the OCM agent's 1024-byte default) and reports nothing for a larger one;
// kinds whose status is long (conditions, endpoint details) name the fields
// worth reporting instead, as a report keeps values up to maxFeedbackBytes.
var statusFeedback = workv1.JsonPath{Name: "status", Path: ".status"}

// kindFeedback are the feedback paths of the kinds the built-in types
// build, in the agent's JSONPath form (evaluated against the whole object).
var kindFeedback = map[schema.GroupKind][]workv1.JsonPath{
	{Group: "hypershift.openshift.io", Kind: "NodePool"}: {
		{Name: "replicas", Path: ".status.replicas"},
		{Name: "version", Path: ".status.version"},
		{Name: "ready", Path: `.status.conditions[?(@.type=="Ready")].status`},
	},
	{Group: "operator.openshift.io", Kind: "IngressController"}: {
		{Name: "domain", Path: ".status.domain"},
		{Name: "availableReplicas", Path: ".status.availableReplicas"},
		{Name: "available", Path: `.status.conditions[?(@.type=="Available")].status`},
	},
}

// feedbackPaths are the status feedback paths declared for a manifest of
// kind gk: none for status-less kinds, the kind's own, or the whole status.
func feedbackPaths(gk schema.GroupKind) []workv1.JsonPath {
	if statuslessKinds[gk] {
		return nil
	}
	if paths, ok := kindFeedback[gk]; ok {
		return slices.Clone(paths)
	}
	return []workv1.JsonPath{statusFeedback}
}

// AnnotationFeedback on a manifest (templates) declares the values read
// back from the target for the report's data, instead of the whole status:
// a YAML map of name to the agent's JSONPath, evaluated against the whole
// object, e.g. {phase: .status.phase, ready:
// '.status.conditions[?(@.type=="Ready")].status'}; empty: none. The
// adapter removes it before delivery.
const AnnotationFeedback = "hyperfleet.io/feedback"

// declaredFeedback parses an AnnotationFeedback value into feedback paths,
// sorted by name. Every path must parse as the agent parses it.
func declaredFeedback(id workv1.ResourceIdentifier, kind, value string) ([]workv1.JsonPath, error) {
	if id.Group == "" && kind == "Secret" {
		return nil, fmt.Errorf("annotation %s: a Secret's status is never reported", AnnotationFeedback)
	}
	var declared map[string]string
	if err := yaml.UnmarshalStrict([]byte(value), &declared); err != nil {
		return nil, fmt.Errorf("annotation %s: want a YAML map of name to JSONPath: %w", AnnotationFeedback, err)
	}
	paths := make([]workv1.JsonPath, 0, len(declared))
	for name, p := range declared {
		switch {
		case name == "" || name == "name" || name == "namespace":
			return nil, fmt.Errorf("annotation %s: %q cannot name a value (the report's entry has name and namespace already)", AnnotationFeedback, name)
		case !strings.HasPrefix(p, "."):
			return nil, fmt.Errorf("annotation %s: %s: path %q must start with . (it is evaluated against the whole object, e.g. .status.phase)", AnnotationFeedback, name, p)
		}
		if err := jsonpath.New(name).Parse("{" + p + "}"); err != nil {
			return nil, fmt.Errorf("annotation %s: %s: path %q: %w", AnnotationFeedback, name, p, err)
		}
		paths = append(paths, workv1.JsonPath{Name: name, Path: p})
	}
	slices.SortFunc(paths, func(a, b workv1.JsonPath) int { return strings.Compare(a.Name, b.Name) })
	return paths, nil
}

// finish stamps every manifest with the work's labels and generation and
// assembles the work. origin names where each manifest came from, for
// errors; it may be nil.
func (b *base) finish(wc *workContext, objs []object, origin []string) (*workv1.ManifestWork, error) {
	gen := wc.generation()
	manifests := make([]workv1.Manifest, 0, len(objs))
	configs := make([]workv1.ManifestConfigOption, 0, len(objs))
	seen := make(map[workv1.ResourceIdentifier]string, len(objs))
	for i, obj := range objs {
		from := fmt.Sprintf("manifest %d", i)
		if i < len(origin) {
			from = origin[i]
		}
		id, err := identify(obj)
		if err != nil {
			return nil, failure.Permanent(fmt.Errorf("adapter %s: %s: %w", b.adapter, from, err))
		}
		if prev, dup := seen[id]; dup {
			return nil, failure.Permanentf("adapter %s: %s: %s %q is already in %s", b.adapter, from, id.Resource, id.Name, prev)
		}
		seen[id] = from
		md := obj["metadata"].(map[string]any) // identify checked it
		labels, err := mergeStrings("metadata.labels", md["labels"], wc.labels)
		if err != nil {
			return nil, failure.Permanent(fmt.Errorf("adapter %s: %s: %w", b.adapter, from, err))
		}
		annotations, err := mergeStrings("metadata.annotations", md["annotations"], map[string]string{workmeta.AnnotationGeneration: gen})
		if err != nil {
			return nil, failure.Permanent(fmt.Errorf("adapter %s: %s: %w", b.adapter, from, err))
		}
		declared, hasDeclared := annotations[AnnotationFeedback]
		delete(annotations, AnnotationFeedback) // for the adapter, not the target
		md["labels"], md["annotations"] = labels, annotations
		raw, err := json.Marshal(obj)
		if err != nil {
			return nil, failure.Permanent(fmt.Errorf("adapter %s: %s: encode: %w", b.adapter, from, err))
		}
		manifests = append(manifests, workv1.Manifest{RawExtension: runtime.RawExtension{Raw: raw}})
		cfg := workv1.ManifestConfigOption{
			ResourceIdentifier: id,
			UpdateStrategy: &workv1.UpdateStrategy{
				Type:            workv1.UpdateStrategyTypeServerSideApply,
				ServerSideApply: &workv1.ServerSideApplyConfig{Force: true, FieldManager: fieldManager(b.adapter)},
			},
		}
		paths := feedbackPaths(schema.GroupKind{Group: id.Group, Kind: obj["kind"].(string)})
		if hasDeclared {
			if paths, err = declaredFeedback(id, obj["kind"].(string), declared); err != nil {
				return nil, failure.Permanent(fmt.Errorf("adapter %s: %s: %w", b.adapter, from, err))
			}
		}
		if len(paths) > 0 {
			cfg.FeedbackRules = []workv1.FeedbackRule{{Type: workv1.JSONPathsType, JsonPaths: paths}}
		}
		configs = append(configs, cfg)
	}
	if err := b.limits.check(b.adapter, wc.WorkName, manifests); err != nil {
		return nil, err
	}
	work := &workv1.ManifestWork{
		TypeMeta: metav1.TypeMeta{APIVersion: workv1.GroupVersion.String(), Kind: "ManifestWork"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      wc.WorkName,
			Namespace: wc.Consumer,
			Labels:    maps.Clone(wc.labels),
			// The href lets a status change seen on Maestro's watch be traced
			// back to the resource to report on (labels cannot hold slashes).
			Annotations: map[string]string{workmeta.AnnotationGeneration: gen, workmeta.AnnotationResourceHref: wc.Resource.Href},
		},
		Spec: workv1.ManifestWorkSpec{
			Workload: workv1.ManifestsTemplate{Manifests: manifests},
			// Foreground: removing the work removes what it created on the
			// target, which is what deleting a HyperFleet resource means.
			DeleteOption:    &workv1.DeleteOption{PropagationPolicy: workv1.DeletePropagationPolicyTypeForeground},
			ManifestConfigs: configs,
		},
	}
	return work, nil
}

// identify checks that obj is a Kubernetes object and returns the
// identifier manifestConfigs refer to it by.
func identify(obj object) (workv1.ResourceIdentifier, error) {
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	md, _ := obj["metadata"].(map[string]any)
	var name, namespace string
	if md != nil {
		name, _ = md["name"].(string)
		namespace, _ = md["namespace"].(string)
	}
	var missing []string
	if apiVersion == "" {
		missing = append(missing, "apiVersion")
	}
	if kind == "" {
		missing = append(missing, "kind")
	}
	if name == "" {
		missing = append(missing, "metadata.name")
	}
	if len(missing) > 0 {
		return workv1.ResourceIdentifier{}, fmt.Errorf("object has no %s", strings.Join(missing, ", "))
	}
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return workv1.ResourceIdentifier{}, fmt.Errorf("%s %q: apiVersion: %w", kind, name, err)
	}
	// Most kinds want a DNS subdomain; RBAC objects may also carry ':'
	// (system:...), so those get the API server's general path-segment
	// rule. Either way a bad name fails here, where its file is known,
	// rather than at the agent.
	problems := validation.IsDNS1123Subdomain(name)
	if strings.Contains(name, ":") && len(name) <= validation.DNS1123SubdomainMaxLength {
		problems = path.IsValidPathSegmentName(name)
		if strings.ContainsAny(name, " \t\n") {
			problems = append(problems, "may not contain whitespace")
		}
	}
	if len(problems) > 0 {
		return workv1.ResourceIdentifier{}, fmt.Errorf("%s name %q: %s", kind, name, strings.Join(problems, "; "))
	}
	if namespace != "" {
		if problems := validation.IsDNS1123Label(namespace); len(problems) > 0 {
			return workv1.ResourceIdentifier{}, fmt.Errorf("%s %q: namespace %q: %s", kind, name, namespace, strings.Join(problems, "; "))
		}
	}
	// The agent matches manifestConfigs by resource; kinds with irregular
	// plurals get a wrong guess and lose only their feedback and update
	// strategy, never the manifest itself.
	plural, _ := meta.UnsafeGuessKindToResource(gv.WithKind(kind))
	return workv1.ResourceIdentifier{Group: gv.Group, Resource: plural.Resource, Name: name, Namespace: namespace}, nil
}

// mergeStrings returns a string map of existing (a decoded JSON object,
// a string map, or nil) overlaid with ours. A non-string value in existing
// is an error naming field: Kubernetes would refuse it, and quietly
// dropping a label would be worse.
func mergeStrings(field string, existing any, ours map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(ours)+4)
	switch m := existing.(type) {
	case nil:
	case map[string]any:
		for k, v := range m {
			s, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("%s.%s is a %s, want a string (quote it)", field, k, jsonType(v))
			}
			out[k] = s
		}
	case map[string]string:
		for k, v := range m {
			out[k] = v
		}
	default:
		return nil, fmt.Errorf("%s is a %s, want an object", field, jsonType(existing))
	}
	for k, v := range ours {
		out[k] = v
	}
	return out, nil
}
