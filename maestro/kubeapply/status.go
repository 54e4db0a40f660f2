package kubeapply

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/feedback"
)

// reasonApplying is the Progressing reason while the version is not yet
// applied in full.
const reasonApplying = "Applying"

// withStatus is the work s holds with its status computed from the
// caches, keeping the transition times of the status last reported.
func (d *Delivery) withStatus(s *corev1.Secret, rec *record) *workv1.ManifestWork {
	w := workOf(s, rec)
	d.mu.Lock()
	var prev *workv1.ManifestWork
	if last := d.emitted[s.Name]; last != nil {
		prev = last
	}
	d.mu.Unlock()
	now := metav1.Now()
	gen := rec.Version
	var conds []metav1.Condition
	prevManifests := map[int32][]metav1.Condition{}
	if prev != nil {
		conds = append(conds, prev.Status.Conditions...)
		for _, m := range prev.Status.ResourceStatus.Manifests {
			prevManifests[m.ResourceMeta.Ordinal] = m.Conditions
		}
	}
	set := func(cs *[]metav1.Condition, t string, st metav1.ConditionStatus, reason, msg string) {
		apimeta.SetStatusCondition(cs, metav1.Condition{Type: t, Status: st, Reason: reason, Message: msg, ObservedGeneration: gen, LastTransitionTime: now})
	}
	applied := rec.AppliedVersion == gen
	failed := rec.Failure != nil && rec.Failure.Version == gen

	allAvailable := true
	var notAvailable string
	for i, ref := range rec.Manifests {
		mc := workv1.ManifestCondition{
			ResourceMeta: workv1.ManifestResourceMeta{
				Ordinal: int32(i), Group: ref.Group, Version: ref.Version, Kind: ref.Kind,
				Resource: ref.Resource, Name: ref.Name, Namespace: ref.Namespace,
			},
			Conditions: append([]metav1.Condition(nil), prevManifests[int32(i)]...),
		}
		switch {
		case failed && rec.Failure.Ordinal == i:
			set(&mc.Conditions, workv1.ManifestApplied, metav1.ConditionFalse, "AppliedManifestFailed", rec.Failure.Message)
		case applied:
			set(&mc.Conditions, workv1.ManifestApplied, metav1.ConditionTrue, "AppliedManifestComplete", "Apply manifest complete")
		default:
			apimeta.RemoveStatusCondition(&mc.Conditions, workv1.ManifestApplied)
		}
		live := d.cached(ref)
		ok, why := ready(live)
		if ok {
			set(&mc.Conditions, workv1.ManifestAvailable, metav1.ConditionTrue, "ResourceAvailable", "Resource is available")
		} else {
			set(&mc.Conditions, workv1.ManifestAvailable, metav1.ConditionFalse, "ResourceNotAvailable", why)
			if allAvailable {
				notAvailable = ref.String() + ": " + why
			}
			allAvailable = false
		}
		// As the real agent, feedback is evaluated only on an object that
		// exists; no rules still report StatusFeedbackSynced True.
		if live != nil {
			rules := feedback.Rules(rec.Work.Spec.ManifestConfigs, ref.resource())
			var synced metav1.Condition
			mc.StatusFeedbacks, synced, _ = feedback.Evaluate(live.Object, live.GroupVersionKind(), rules)
			set(&mc.Conditions, synced.Type, synced.Status, synced.Reason, synced.Message)
		}
		w.Status.ResourceStatus.Manifests = append(w.Status.ResourceStatus.Manifests, mc)
	}

	switch {
	case failed:
		set(&conds, workv1.WorkApplied, metav1.ConditionFalse, maestro.ReasonAppliedFailed, rec.Failure.Message)
		set(&conds, workv1.WorkProgressing, metav1.ConditionFalse, workv1.WorkProgressingReasonFailed, rec.Failure.Message)
		set(&conds, workv1.WorkDegraded, metav1.ConditionTrue, maestro.ReasonDegraded, rec.Failure.Message)
	case applied:
		set(&conds, workv1.WorkApplied, metav1.ConditionTrue, maestro.ReasonAppliedComplete, "Apply manifest work complete")
		set(&conds, workv1.WorkProgressing, metav1.ConditionFalse, workv1.WorkProgressingReasonCompleted, "All resources are applied")
		set(&conds, workv1.WorkDegraded, metav1.ConditionFalse, maestro.ReasonNotDegraded, "")
	default:
		set(&conds, workv1.WorkProgressing, metav1.ConditionTrue, reasonApplying, "Applying the manifests")
	}
	// Available speaks of the version applied: before that, the objects may
	// still be the previous version's.
	switch {
	case !applied && !failed:
	case allAvailable:
		set(&conds, workv1.WorkAvailable, metav1.ConditionTrue, maestro.ReasonAvailable, "All resources are available")
	default:
		set(&conds, workv1.WorkAvailable, metav1.ConditionFalse, maestro.ReasonNotAvailable, notAvailable)
	}
	w.Status.Conditions = conds
	return w
}

// ready reports whether a live object counts as available, and why not:
// it exists and is not being deleted; a Namespace is Active; a Deployment's
// controller has seen its latest spec and says Available.
func ready(live *unstructured.Unstructured) (bool, string) {
	if live == nil {
		return false, "Resource does not exist"
	}
	if live.GetDeletionTimestamp() != nil {
		return false, "Resource is being deleted"
	}
	gvk := live.GroupVersionKind()
	switch gvk.GroupKind() {
	case schema.GroupKind{Kind: "Namespace"}:
		if phase, _, _ := unstructured.NestedString(live.Object, "status", "phase"); phase != "Active" {
			return false, fmt.Sprintf("Namespace phase is %q, not Active", phase)
		}
	case schema.GroupKind{Group: "apps", Kind: "Deployment"}:
		observed, _, _ := unstructured.NestedInt64(live.Object, "status", "observedGeneration")
		if observed < live.GetGeneration() {
			return false, "Deployment controller has not observed the latest spec"
		}
		if conditionStatus(live, "Available") != "True" {
			return false, "Deployment is not Available"
		}
	}
	return true, ""
}

func conditionStatus(obj *unstructured.Unstructured, t string) string {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if ok && m["type"] == t {
			s, _ := m["status"].(string)
			return s
		}
	}
	return ""
}
