// Package handlers builds the ManifestWorks one adapter type owns for a
// HyperFleet resource, and derives the adapter's status report from what
// became of them.
//
// Handlers are pure: resource in, desired works out; observed works in,
// report out. They do no I/O, so they are table-tested with golden files.
package handlers

import (
	"time"

	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
)

// Target is what a handler builds for.
type Target struct {
	// Resource is the resource the event was about, as the API returns it.
	Resource *hyperfleet.Resource
	// Cluster is the cluster the works go to: the resource itself for a
	// cluster, the owning cluster for a node pool.
	Cluster *hyperfleet.Resource
}

// Handler builds the desired ManifestWorks of one adapter type.
type Handler interface {
	// Type is the adapter type (namespace, nodepool, ..., template).
	Type() string
	// Handles reports whether resources of kind concern this adapter. A
	// node pool adapter ignores cluster events and vice versa: the event is
	// acknowledged without action.
	Handles(kind string) bool
	// Build returns every work the adapter owns for the target, complete
	// (name, namespace = consumer, labels, generation annotations, spec).
	// For a resource being deleted it returns the same works, which the
	// pipeline then deletes. Errors are failure.Permanent when the input or
	// the configuration is at fault.
	Build(t Target) ([]*workv1.ManifestWork, error)
}

// Observed is what became of one desired work after delivery.
type Observed struct {
	Name     string
	Consumer string
	// Work is the work as Maestro last reported it; nil when it is gone.
	Work *workv1.ManifestWork
	// Err is the delivery failure, if any.
	Err error
	// StatusTimeout, when set, is the status wait (STATUS_TIMEOUT) that ran
	// out before the agent reported on Work: what Work says about the agent
	// is not its last word.
	StatusTimeout time.Duration
}
