// Package events turns broker messages into validated Sentinel events and
// builds the status CloudEvents the adapter sends back.
package events

import (
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
)

// Event is a validated Sentinel reconcile event: "look at this resource, it
// is at least at this generation". It says nothing about what to build; the
// handlers read the resource itself from the HyperFleet API.
type Event struct {
	// CloudEvent attributes.
	ID          string
	Type        string
	Source      string
	TraceParent string // W3C trace context extension, empty when tracing is off

	// Data.
	Kind       string                // canonical spelling: "Cluster", "NodePool", ...
	ResourceID string                // resource id
	Href       string                // relative API path of the resource
	Generation int64                 // >= 1
	Owner      *hyperfleet.ObjectRef // parent reference, required for node pools
}

// Key identifies the resource the event is about: events with the same key
// are handled one at a time, and an older generation is coalesced into a
// newer one.
func (e *Event) Key() string { return e.Kind + "/" + e.ResourceID }
