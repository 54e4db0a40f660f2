package maestro

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	workv1 "open-cluster-management.io/api/work/v1"
)

// StatusSettled reports whether the agent has said its word about the
// work's current generation: Applied and Available both observed at it, or
// the work is degraded.
func StatusSettled(w *workv1.ManifestWork) bool {
	var applied, available bool
	for _, c := range w.Status.Conditions {
		switch c.Type {
		case workv1.WorkApplied:
			applied = c.ObservedGeneration >= w.Generation
		case workv1.WorkAvailable:
			available = c.ObservedGeneration >= w.Generation
		case workv1.WorkDegraded:
			if c.Status == metav1.ConditionTrue && c.ObservedGeneration >= w.Generation {
				return true
			}
		}
	}
	return applied && available
}

// Condition reasons on a work as the OCM work agent writes them; the
// deliveries that play the agent themselves (embedded, kubeapply) write the
// same.
const (
	ReasonAppliedComplete = "AppliedManifestWorkComplete"
	ReasonAppliedFailed   = "AppliedManifestWorkFailed"
	ReasonAvailable       = "ResourcesAvailable"
	ReasonNotAvailable    = "ResourcesNotAvailable"
	ReasonDegraded        = "ApplyFailed"
	ReasonNotDegraded     = "NoFailures"
)

// ReasonStaleGeneration is the reason a delivery that learns only after the
// fact that a newer generation of the work was already applied (a
// maestro-cli run, which exits with this reason) puts on the work's
// Degraded condition. The pipeline takes such a work as superseded, as when
// Apply returns workmeta.ErrStaleGeneration: nothing failed.
const ReasonStaleGeneration = "StaleGeneration"

// Superseded reports whether w says its generation was not applied because
// a newer one already was (ReasonStaleGeneration at w's generation).
func Superseded(w *workv1.ManifestWork) bool {
	c := meta.FindStatusCondition(w.Status.Conditions, workv1.WorkDegraded)
	return c != nil && c.Status == metav1.ConditionTrue && c.Reason == ReasonStaleGeneration && c.ObservedGeneration >= w.Generation
}
