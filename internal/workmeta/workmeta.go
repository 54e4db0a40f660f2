// Package workmeta names the labels and annotations the adapter puts on
// every ManifestWork and manifest it builds, and reads back the resource
// generation they carry. The handlers write them, the delivery backends
// guard on the generation (ErrStaleGeneration) and the pipeline finds works
// by them: a leaf, so that none of those imports another for a key.
package workmeta

import (
	"errors"
	"strconv"

	workv1 "open-cluster-management.io/api/work/v1"
)

// Annotations and labels every work (and every manifest in it) carries.
const (
	// AnnotationGeneration is the generation of the HyperFleet resource the
	// work was built from. Apply never replaces a work carrying a newer one:
	// duplicates and out-of-order deliveries cannot move a work backwards.
	AnnotationGeneration = "hyperfleet.io/generation"
	// AnnotationResourceHref (works only) is the href of the resource the
	// work was built for.
	AnnotationResourceHref = "hyperfleet.io/resource-href"
	// AnnotationStatusPending (works only) marks a work whose last status
	// report said Unknown because the agent did not answer within
	// STATUS_TIMEOUT; its value is the resource generation reported. It
	// lives in Maestro, so it outlives the replica that wrote it: any
	// replica that sees the marked work's status settle reports it (see
	// pipeline.WatchStatus). The next Apply from an event, whose desired
	// work does not carry it, removes it.
	AnnotationStatusPending = "hyperfleet.io/status-pending"
	LabelAdapter            = "hyperfleet.io/adapter"
	LabelResourceKind       = "hyperfleet.io/resource-kind"
	LabelResourceID         = "hyperfleet.io/resource-id"
	LabelClusterID          = "hyperfleet.io/cluster-id"
)

// ErrStaleGeneration means the stored work was built from a newer
// generation of the resource than the one being applied. It is not a
// failure to retry: the newer state already won.
var ErrStaleGeneration = errors.New("stored work is at a newer resource generation")

// ResourceGeneration is the HyperFleet resource generation w was built
// from (its AnnotationGeneration); ok is false when w carries none.
func ResourceGeneration(w *workv1.ManifestWork) (gen int64, ok bool) {
	if w == nil {
		return 0, false
	}
	gen, err := strconv.ParseInt(w.Annotations[AnnotationGeneration], 10, 64)
	return gen, err == nil
}
