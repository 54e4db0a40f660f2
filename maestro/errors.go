package maestro

import (
	"errors"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	workv1 "open-cluster-management.io/api/work/v1"
)

// ErrStaleGeneration means the stored work was built from a newer
// generation of the resource than the one being applied. It is not a
// failure to retry: the newer state already won.
var ErrStaleGeneration = errors.New("stored work is at a newer resource generation")

// ReasonStaleGeneration is the reason a delivery that learns only after the
// fact that a newer generation of the work was already applied (a
// maestro-cli run, which exits with this reason) puts on the work's
// Degraded condition. The pipeline takes such a work as superseded, as when
// Apply returns ErrStaleGeneration: nothing failed.
const ReasonStaleGeneration = "StaleGeneration"

// Superseded reports whether w says its generation was not applied because
// a newer one already was (ReasonStaleGeneration at w's generation).
func Superseded(w *workv1.ManifestWork) bool {
	c := meta.FindStatusCondition(w.Status.Conditions, workv1.WorkDegraded)
	return c != nil && c.Status == metav1.ConditionTrue && c.Reason == ReasonStaleGeneration && c.ObservedGeneration >= w.Generation
}
