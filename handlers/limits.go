package handlers

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// Bounds of what one event may produce.
const (
	// DefaultMaxManifestBytes is the limit OCM's ManifestWork validation
	// applies to a work's manifests added up (workvalidator.ManifestValidator,
	// the work webhook's default ManifestLimit): 500 KiB. A larger work
	// would be refused by Maestro anyway, later and less clearly.
	DefaultMaxManifestBytes = 500 * 1024
	// DefaultMaxManifests bounds the manifests of one work.
	DefaultMaxManifests = 100
	// DefaultTemplateTimeout bounds one render of a template directory.
	DefaultTemplateTimeout = 2 * time.Second
)

// limits bound the works of one event.
type limits struct {
	manifestBytes int
	manifests     int
}

func (c *Config) limits() limits {
	l := limits{manifestBytes: c.MaxManifestBytes, manifests: c.MaxManifests}
	if l.manifestBytes == 0 {
		l.manifestBytes = DefaultMaxManifestBytes
	}
	if l.manifests == 0 {
		l.manifests = DefaultMaxManifests
	}
	return l
}

func (c *Config) templateTimeout() time.Duration {
	if c.TemplateTimeout == 0 {
		return DefaultTemplateTimeout
	}
	return c.TemplateTimeout
}

// check refuses a work over the bounds, permanently: the same resource
// always makes the same work.
func (l limits) check(adapter, work string, manifests []workv1.Manifest) error {
	if len(manifests) > l.manifests {
		return failure.Permanentf("adapter %s: work %s has %d manifests, over MAX_MANIFESTS (%d)", adapter, work, len(manifests), l.manifests)
	}
	total := 0
	for i := range manifests {
		total += manifests[i].Size() // as OCM's validation counts them
	}
	if total > l.manifestBytes {
		return failure.Permanentf("adapter %s: work %s has %d bytes of manifests, over MAX_MANIFEST_BYTES (%d; Maestro refuses works over 500 KiB)", adapter, work, total, l.manifestBytes)
	}
	return nil
}

// clusterPowerKinds are kinds whose objects grant power over the whole
// cluster: RBAC beyond a namespace, admission control, API extension,
// node storage and (OpenShift) pod security. A template makes them only
// when TEMPLATE_ALLOWED_KINDS names them.
var clusterPowerKinds = map[schema.GroupKind]bool{
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}:                         true,
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRoleBinding"}:                  true,
	{Group: "admissionregistration.k8s.io", Kind: "MutatingWebhookConfiguration"}:     true,
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingWebhookConfiguration"}:   true,
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingAdmissionPolicy"}:        true,
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingAdmissionPolicyBinding"}: true,
	{Group: "admissionregistration.k8s.io", Kind: "MutatingAdmissionPolicy"}:          true,
	{Group: "admissionregistration.k8s.io", Kind: "MutatingAdmissionPolicyBinding"}:   true,
	{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}:                 true,
	{Group: "apiregistration.k8s.io", Kind: "APIService"}:                             true,
	{Group: "certificates.k8s.io", Kind: "CertificateSigningRequest"}:                 true,
	{Group: "", Kind: "PersistentVolume"}:                                             true,
	{Group: "", Kind: "Node"}:                                                         true,
	{Group: "security.openshift.io", Kind: "SecurityContextConstraints"}:              true,
	{Group: "config.openshift.io", Kind: "OAuth"}:                                     true,
	{Group: "config.openshift.io", Kind: "APIServer"}:                                 true,
}

// kindSet is the kinds a template adapter may make. An entry is Kind
// (any group) or Kind.group.
type kindSet struct {
	entries map[string]bool
	list    string // for errors
	learned bool   // learned from a sample render, not configured
}

func newKindSet(entries []string, learned bool) kindSet {
	ks := kindSet{entries: map[string]bool{}, learned: learned}
	for _, e := range entries {
		ks.entries[e] = true
	}
	sorted := slices.Sorted(func(yield func(string) bool) {
		for e := range ks.entries {
			if !yield(e) {
				return
			}
		}
	})
	ks.list = strings.Join(sorted, ", ")
	return ks
}

// kindEntry is how TEMPLATE_ALLOWED_KINDS names gk.
func kindEntry(gk schema.GroupKind) string {
	if gk.Group == "" {
		return gk.Kind
	}
	return gk.Kind + "." + gk.Group
}

func groupKindOf(obj object) schema.GroupKind {
	apiVersion, _ := obj["apiVersion"].(string)
	kind, _ := obj["kind"].(string)
	gv, _ := schema.ParseGroupVersion(apiVersion)
	return schema.GroupKind{Group: gv.Group, Kind: kind}
}

func (ks kindSet) allows(gk schema.GroupKind) bool {
	return ks.entries[gk.Kind] || ks.entries[kindEntry(gk)]
}

// check refuses an object of a kind the set does not hold.
func (ks kindSet) check(obj object) error {
	gk := groupKindOf(obj)
	if ks.allows(gk) {
		return nil
	}
	how := "TEMPLATE_ALLOWED_KINDS"
	if ks.learned {
		how = "the kinds the templates made for a sample resource at start (TEMPLATE_ALLOWED_KINDS unset)"
	}
	why := ""
	if clusterPowerKinds[gk] {
		why = "; it grants cluster-wide power and is only made when TEMPLATE_ALLOWED_KINDS lists it"
	}
	return fmt.Errorf("kind %s is not allowed: not in %s: %s%s", kindEntry(gk), how, ks.list, why)
}

// allowedKinds is the configured set or, when none is configured, the
// kinds the templates make for a sample of every resource kind the
// adapter handles, alive and being deleted. Kinds of cluster-wide power
// are never learned: they must be configured.
func (h *templateHandler) allowedKinds(configured []string) (kindSet, error) {
	if len(configured) > 0 {
		return newKindSet(configured, false), nil
	}
	var learned []string
	for _, kind := range h.kinds {
		for _, deleting := range []bool{false, true} {
			objs, origin, err := h.render(sampleContext(kind, deleting), true)
			if err != nil {
				return kindSet{}, fmt.Errorf("handlers config AllowedKinds: not set, and the templates of %s do not render for a sample %s to learn the kinds they make (set TEMPLATE_ALLOWED_KINDS): %w", h.dir, kind, err)
			}
			for i, obj := range objs {
				gk := groupKindOf(obj)
				if strings.Contains(kindEntry(gk), sampleValue) {
					return kindSet{}, fmt.Errorf("handlers config AllowedKinds: %s takes its kind or apiVersion from a value the sample resource lacks, so it cannot be learned: set TEMPLATE_ALLOWED_KINDS", origin[i])
				}
				if clusterPowerKinds[gk] {
					return kindSet{}, fmt.Errorf("handlers config AllowedKinds: %s makes a %s, which grants cluster-wide power: list it in TEMPLATE_ALLOWED_KINDS to allow it", origin[i], kindEntry(gk))
				}
				learned = append(learned, kindEntry(gk))
			}
		}
	}
	if len(learned) == 0 {
		return kindSet{}, fmt.Errorf("handlers config AllowedKinds: not set, and the templates of %s make no object for a sample resource (one with a label and an empty spec), so no kind can be learned: set TEMPLATE_ALLOWED_KINDS", h.dir)
	}
	return newKindSet(learned, true), nil
}

// sampleContext is a benign resource of kind to render the templates for
// at start: one label (templates often range over them) and an empty spec.
func sampleContext(kind string, deleting bool) *workContext {
	cluster := &hyperfleet.Resource{
		Kind: hyperfleet.KindCluster, ID: "sample-cluster", Name: "sample-cluster",
		Href: hyperfleet.APIPrefix + "clusters/sample-cluster", Generation: 1,
		Labels: map[string]string{"sample": sampleValue}, Spec: map[string]any{},
	}
	r := cluster
	if kind != hyperfleet.KindCluster {
		owner := cluster.Ref()
		r = &hyperfleet.Resource{
			Kind: kind, ID: "sample", Name: "sample", Href: cluster.Href + "/sample", Generation: 1,
			Labels: map[string]string{"sample": sampleValue}, Spec: map[string]any{}, OwnerReferences: &owner,
		}
	}
	if deleting {
		del := *r
		now := time.Now()
		del.DeletedTime = &now
		if r == cluster {
			cluster = &del
		}
		r = &del
	}
	return &workContext{Resource: r, Cluster: cluster, Consumer: "sample-cluster", WorkName: "sample", Namespace: "sample-cluster"}
}

// maxIncludeDepth bounds include recursion, which text/template's own
// depth limit does not see (every include is a new execution).
const maxIncludeDepth = 100

// errTimeout and errTooLarge end a render that runs past its bounds.
var (
	errTimeout  = errors.New("rendering took longer than TEMPLATE_TIMEOUT")
	errTooLarge = errors.New("rendered text is larger than MAX_MANIFEST_BYTES")
)

func (st *renderState) check() error {
	if !st.deadline.IsZero() && time.Now().After(st.deadline) {
		return errTimeout
	}
	return nil
}

// boundedWriter collects rendered text and fails the render when it
// grows past the byte bound or the deadline passes (text/template stops
// at the first write error).
type boundedWriter struct {
	st  *renderState
	buf bytes.Buffer
}

func (st *renderState) writer() *boundedWriter { return &boundedWriter{st: st} }

func (w *boundedWriter) Write(p []byte) (int, error) {
	if err := w.st.check(); err != nil {
		return 0, err
	}
	if w.st.maxBytes > 0 && w.buf.Len()+len(p) > w.st.maxBytes {
		return 0, errTooLarge
	}
	return w.buf.Write(p)
}

// explain turns a render error into one naming the bound it hit, with
// tokens in it expanded.
func (st *renderState) explain(err error) error {
	switch {
	case errors.Is(err, errTimeout):
		return fmt.Errorf("%w (%s)", errTimeout, st.timeout)
	case errors.Is(err, errTooLarge):
		return fmt.Errorf("%w (%d bytes)", errTooLarge, st.maxBytes)
	case errors.Is(err, errMissing):
		// Name the line, not the instrumentation.
		if m := execLocationRE.FindStringSubmatch(err.Error()); m != nil {
			return fmt.Errorf("%s: %w", m[1], errMissing)
		}
	}
	return errors.New(st.expand(err.Error()))
}

var execLocationRE = regexp.MustCompile(`^template: (\S+?:\d+(?::\d+)?): `)
