package handlers

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
)

// Built-in adapter types.
const (
	TypeNamespace  = "namespace"
	TypePullSecret = "pullsecret"
	TypeIDP        = "idp"
	TypeIngress    = "ingress"
	TypeNodePool   = "nodepool"
	TypeTemplate   = "template"
)

// Types lists the adapter types New accepts.
func Types() []string {
	return []string{TypeNamespace, TypeNodePool, TypePullSecret, TypeIDP, TypeIngress, TypeTemplate}
}

// DefaultNamespace is the default landing-zone namespace pattern: the
// cluster id, which is unique and survives renames.
const DefaultNamespace = "{cluster-id}"

// DefaultIngressReplicas is the IngressController replica count when
// Config.IngressReplicas is zero.
const DefaultIngressReplicas = 2

// Config is what one adapter is: its type, its name and how its works are
// named and placed. The zero value of every optional field is a sensible
// default; Validate says which field is wrong.
type Config struct {
	// Type is the adapter type, one of Types().
	Type string
	// Name is the adapter name: the {adapter} part of work names, the
	// hyperfleet.io/adapter label and the adapter in status reports. It must
	// be an RFC 1123 label. Default: Type.
	Name string
	// Naming is the work naming pattern. Default: NamingPerResource for
	// adapters of child resources (node pools), NamingPerAdapter otherwise.
	Naming NamingPattern
	// Consumer picks the Maestro consumer of a cluster. Default: its name.
	Consumer ConsumerRule
	// Namespace is the landing-zone namespace on the target: where the
	// namespace adapter creates the cluster's Namespace and where the
	// nodepool and pullsecret adapters (and templates, as .Namespace) put
	// their namespaced objects. Every adapter of a deployment must use the
	// same pattern. Placeholders {cluster-id} and {cluster-name}; the result
	// is normalised with DNSLabel. Default: DefaultNamespace.
	Namespace string

	// TemplateDir (template type only, required) is the directory of Go
	// templates rendered into manifests; see TemplateData.
	TemplateDir string
	// Kinds (template type only) are the resource kinds the adapter
	// handles. Default: Cluster.
	Kinds []string
	// Values (template type only) are free-form settings templates read as
	// .Values.
	Values map[string]any

	// PullSecretFile (pullsecret type only) is a dockerconfigjson file used
	// for clusters whose spec carries no pullSecret. It is read once, by New.
	PullSecretFile string

	// IngressReplicas (ingress type only) is the IngressController replica
	// count. Default: DefaultIngressReplicas.
	IngressReplicas int32

	// AllowedKinds (template type only) are the kinds of object templates
	// may make, each Kind or Kind.group. Default: the kinds they make for a
	// sample resource at start, never one of cluster-wide power
	// (ClusterRole, ClusterRoleBinding, webhooks, ...), which must be listed.
	AllowedKinds []string
	// TemplateTimeout (template type only) bounds one render. Default:
	// DefaultTemplateTimeout.
	TemplateTimeout time.Duration
	// MaxManifestBytes bounds the manifests of one work, added up. Default:
	// DefaultMaxManifestBytes (Maestro's limit).
	MaxManifestBytes int
	// MaxManifests bounds the manifests of one work. Default:
	// DefaultMaxManifests.
	MaxManifests int
}

var placeholderRE = regexp.MustCompile(`\{[^{}]*\}`)

// Validate checks the configuration without touching the file system, and
// names the setting at fault.
func (c *Config) Validate() error {
	var errs []error
	bad := func(setting, format string, args ...any) {
		errs = append(errs, fmt.Errorf("handlers config %s: %s", setting, fmt.Sprintf(format, args...)))
	}
	if !slices.Contains(Types(), c.Type) {
		bad("Type", "%q is not an adapter type, want one of %s", c.Type, strings.Join(Types(), ", "))
	}
	if c.Name != "" && !isDNSLabel(c.Name) {
		bad("Name", "%q is not an RFC 1123 label (lower-case a-z, 0-9, '-', at most 63, alphanumeric at both ends)", c.Name)
	}
	if !c.Naming.valid() {
		bad("Naming", "%q is not a naming pattern, want %s or %s", c.Naming, NamingPerAdapter, NamingPerResource)
	}
	if err := c.Consumer.validate(); err != nil {
		bad("Consumer", "%v", err)
	}
	if c.Namespace != "" {
		for _, ph := range placeholderRE.FindAllString(c.Namespace, -1) {
			if ph != "{cluster-id}" && ph != "{cluster-name}" {
				bad("Namespace", "%q has unknown placeholder %s, want {cluster-id} or {cluster-name}", c.Namespace, ph)
			}
		}
		if normaliseLabel(placeholderRE.ReplaceAllString(c.Namespace, "x")) == "" {
			bad("Namespace", "%q yields an empty name", c.Namespace)
		}
	}

	onlyFor := func(setting, typ string, set bool) {
		if set && c.Type != typ {
			bad(setting, "is only used by type %s, not %s", typ, c.Type)
		}
	}
	onlyFor("TemplateDir", TypeTemplate, c.TemplateDir != "")
	onlyFor("Kinds", TypeTemplate, len(c.Kinds) > 0)
	onlyFor("Values", TypeTemplate, len(c.Values) > 0)
	onlyFor("PullSecretFile", TypePullSecret, c.PullSecretFile != "")
	onlyFor("IngressReplicas", TypeIngress, c.IngressReplicas != 0)
	onlyFor("AllowedKinds", TypeTemplate, len(c.AllowedKinds) > 0)
	onlyFor("TemplateTimeout", TypeTemplate, c.TemplateTimeout != 0)
	for i, k := range c.AllowedKinds {
		if k == "" || strings.ContainsAny(k, " \t/") {
			bad("AllowedKinds", "entry %d %q is not Kind or Kind.group", i, k)
		}
	}
	if c.TemplateTimeout < 0 {
		bad("TemplateTimeout", "%s is negative", c.TemplateTimeout)
	}
	if c.MaxManifestBytes < 0 {
		bad("MaxManifestBytes", "%d is negative", c.MaxManifestBytes)
	}
	if c.MaxManifests < 0 {
		bad("MaxManifests", "%d is negative", c.MaxManifests)
	}
	if c.Type == TypeTemplate && c.TemplateDir == "" {
		bad("TemplateDir", "is required for type template")
	}
	for i, k := range c.Kinds {
		if k == "" || strings.TrimSpace(k) != k {
			bad("Kinds", "entry %d %q is not a kind name", i, k)
		}
	}
	if c.IngressReplicas < 0 {
		bad("IngressReplicas", "%d is negative", c.IngressReplicas)
	}
	if c.Naming == NamingPerAdapter {
		for _, k := range c.kinds() {
			if k != hyperfleet.KindCluster {
				bad("Naming", "%s names one work per adapter per cluster, so every %s of a cluster would share one work and overwrite the others; use %s", NamingPerAdapter, k, NamingPerResource)
			}
		}
	}
	return errors.Join(errs...)
}

// adapterName is Name, defaulting to Type.
func (c *Config) adapterName() string {
	if c.Name != "" {
		return c.Name
	}
	return c.Type
}

// kinds are the resource kinds the adapter handles.
func (c *Config) kinds() []string {
	switch c.Type {
	case TypeNodePool:
		return []string{hyperfleet.KindNodePool}
	case TypeTemplate:
		if len(c.Kinds) > 0 {
			return c.Kinds
		}
	}
	return []string{hyperfleet.KindCluster}
}

// naming is the effective naming pattern.
func (c *Config) naming() NamingPattern {
	if c.Naming != "" {
		return c.Naming
	}
	for _, k := range c.kinds() {
		if k != hyperfleet.KindCluster {
			return NamingPerResource
		}
	}
	return NamingPerAdapter
}

// New validates cfg and builds the handler of its type. Errors name the
// setting (or file) at fault.
func New(cfg Config) (Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	b := newBase(cfg)
	switch cfg.Type {
	case TypeNamespace:
		return &namespaceHandler{base: b}, nil
	case TypeNodePool:
		return &nodePoolHandler{base: b}, nil
	case TypePullSecret:
		return newPullSecretHandler(b, cfg.PullSecretFile)
	case TypeIDP:
		return &idpHandler{base: b}, nil
	case TypeIngress:
		replicas := cfg.IngressReplicas
		if replicas == 0 {
			replicas = DefaultIngressReplicas
		}
		return &ingressHandler{base: b, replicas: replicas}, nil
	case TypeTemplate:
		return newTemplateHandler(b, cfg)
	}
	return nil, fmt.Errorf("handlers config Type: %q is not an adapter type", cfg.Type)
}
