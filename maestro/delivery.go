// Package maestro delivers ManifestWorks to target clusters and observes
// what became of them.
//
// Delivery is the seam: the pipeline calls it and does not care whether the
// works go to the embedded in-process backend (the local default), a real
// Maestro server over gRPC, or a Kubernetes Job running maestro-cli.
package maestro

import (
	"context"

	"k8s.io/apimachinery/pkg/watch"
	workv1 "open-cluster-management.io/api/work/v1"
)

// Delivery puts ManifestWorks on consumers (work.Namespace is the consumer
// name) and reports their status. Implementations are safe for concurrent
// use by many goroutines.
type Delivery interface {
	// Apply makes the consumer's work named work.Name carry work's spec,
	// labels and annotations, creating it when missing. It is idempotent: an
	// unchanged spec causes no update. When the stored work's
	// workmeta.AnnotationGeneration is newer than work's, Apply changes nothing and
	// returns the stored work with an error wrapping workmeta.ErrStaleGeneration.
	// It returns the work as stored (with status as far as known).
	Apply(ctx context.Context, work *workv1.ManifestWork) (*workv1.ManifestWork, error)
	// Delete removes the work. Deleting a missing work is not an error.
	// The work may linger, marked deleting, until the agent confirms;
	// Watch reports watch.Deleted once it is gone.
	Delete(ctx context.Context, consumer, name string) error
	// Get returns the work with its latest known status, or an error for
	// which apierrors.IsNotFound is true.
	Get(ctx context.Context, consumer, name string) (*workv1.ManifestWork, error)
	// Watch streams status changes of every work this source owns (event
	// types watch.Modified and watch.Deleted) until ctx ends, then closes
	// the channel. Consumers must keep reading: a slow reader may stall
	// delivery of status to everyone (Maestro's watch is unbuffered).
	Watch(ctx context.Context) (<-chan WorkEvent, error)
}

// WithEventID returns ctx carrying the id of the CloudEvent a delivery is
// made for. Deliveries may record it for tracing (the Job delivery puts it
// on the Jobs it starts, as the spike's template does); it never decides
// anything: Sentinel gives every publish a new id.
func WithEventID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, eventIDKey{}, id)
}

// EventID returns the id WithEventID stored, or "".
func EventID(ctx context.Context) string {
	id, _ := ctx.Value(eventIDKey{}).(string)
	return id
}

type eventIDKey struct{}

// WorkEvent is one status change of a work.
type WorkEvent struct {
	Type watch.EventType // watch.Modified or watch.Deleted
	Work *workv1.ManifestWork
}
