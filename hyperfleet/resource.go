// Package hyperfleet holds the HyperFleet API's domain types as the adapter
// uses them: the resources it reconciles (Resource, read through a
// ResourceReader) and the status reports it writes back (StatusReport,
// StatusEnvelope), with the API's own rules for both. It speaks no HTTP
// (hyperfleet/apiclient does), so events, handlers and the pipeline share
// these types without importing a client; DirReader reads a directory laid
// out like the API, for replays.
//
// The adapter is level-triggered: a Sentinel event only says "look at this
// resource"; what to build comes from the resource as the API returns it.
package hyperfleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// Resource kinds Sentinel publishes by default. Other kinds may be registered.
const (
	KindCluster  = "Cluster"
	KindNodePool = "NodePool"
)

// APIPrefix is the path prefix of every resource href.
const APIPrefix = "/api/hyperfleet/v1/"

// Resource is a HyperFleet API object (cluster, node pool, ...) in the API's
// own JSON. Spec stays untyped: it is user-defined per platform, and handlers
// and templates read what they need from it.
type Resource struct {
	Kind            string            `json:"kind"`
	ID              string            `json:"id"`
	Href            string            `json:"href"`
	Name            string            `json:"name"`
	Labels          map[string]string `json:"labels,omitempty"`
	Spec            map[string]any    `json:"spec,omitempty"`
	Generation      int64             `json:"generation"`
	OwnerReferences *ObjectRef        `json:"owner_references,omitempty"`
	Status          json.RawMessage   `json:"status,omitempty"`
	CreatedTime     *time.Time        `json:"created_time,omitempty"`
	UpdatedTime     *time.Time        `json:"updated_time,omitempty"`
	DeletedTime     *time.Time        `json:"deleted_time,omitempty"`
}

// ObjectRef points at another API object; node pools carry their cluster's.
type ObjectRef struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	Href string `json:"href"`
}

// Deleting reports whether the resource is marked for deletion: HyperFleet
// signals deletion by setting deleted_time and bumping the generation, never
// by a separate event.
func (r *Resource) Deleting() bool { return r.DeletedTime != nil && !r.DeletedTime.IsZero() }

// Ref is the reference status events carry.
func (r *Resource) Ref() ObjectRef { return ObjectRef{ID: r.ID, Kind: r.Kind, Href: r.Href} }

// Validate checks the fields every handler relies on.
func (r *Resource) Validate() error {
	var missing []string
	if r.ID == "" {
		missing = append(missing, "id")
	}
	if r.Kind == "" {
		missing = append(missing, "kind")
	}
	if r.Href == "" {
		missing = append(missing, "href")
	}
	if r.Name == "" {
		missing = append(missing, "name")
	}
	if len(missing) > 0 {
		return fmt.Errorf("resource %s: missing %s", r.Href, strings.Join(missing, ", "))
	}
	if r.Generation < 1 {
		return fmt.Errorf("resource %s: generation %d, want >= 1", r.Href, r.Generation)
	}
	return nil
}

// ErrNotFound means the API no longer has the resource (HTTP 404): it was
// hard-deleted after every adapter reported Finalized.
var ErrNotFound = errors.New("resource not found")

// ResourceReader returns the current state of the resource at href (relative
// API path as Sentinel sends it). It returns an error wrapping ErrNotFound
// when the resource is gone. Implementations are safe for concurrent use.
type ResourceReader interface {
	GetResource(ctx context.Context, href string) (*Resource, error)
}

// RelativePath turns an href into the path below the API prefix, e.g.
// "clusters/{id}/nodepools/{npid}". Absolute URLs (some docs show them) are
// reduced to their path first.
func RelativePath(href string) (string, error) {
	p := href
	if i := strings.Index(p, "://"); i >= 0 {
		rest := p[i+3:]
		j := strings.IndexByte(rest, '/')
		if j < 0 {
			return "", fmt.Errorf("href %q has no path", href)
		}
		p = rest[j:]
	}
	if k := strings.Index(p, APIPrefix); k >= 0 {
		p = p[k+len(APIPrefix):]
	} else if k := strings.Index(p, "/v1/"); k >= 0 {
		p = p[k+len("/v1/"):]
	}
	p = strings.Trim(p, "/")
	if p == "" {
		return "", fmt.Errorf("href %q names no resource", href)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", fmt.Errorf("href %q has an invalid path segment %q", href, seg)
		}
	}
	return p, nil
}

// ParseResource decodes and validates one resource in the API's JSON;
// origin names where it came from in errors.
func ParseResource(data []byte, origin string) (*Resource, error) {
	var res Resource
	if err := json.Unmarshal(data, &res); err != nil {
		return nil, failure.Permanent(fmt.Errorf("%s: not a HyperFleet resource: %w", origin, err))
	}
	if err := res.Validate(); err != nil {
		return nil, failure.Permanent(fmt.Errorf("%s: %w", origin, err))
	}
	return &res, nil
}
