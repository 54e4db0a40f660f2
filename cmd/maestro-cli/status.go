package main

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	workv1 "open-cluster-management.io/api/work/v1"
)

// Conditions one can wait for.
const (
	condApplied   = workv1.WorkApplied   // "Applied"
	condAvailable = workv1.WorkAvailable // "Available"
	condDeleted   = "Deleted"
)

// States of a work, as list, get and the results file show them. A state
// describes the agent's word on the work's current generation; older
// conditions do not count.
const (
	stateInProgress = "InProgress" // no word yet on the current generation
	stateApplied    = "Applied"    // Applied=True
	stateAvailable  = "Available"  // Available=True
	stateDegraded   = "Degraded"   // Degraded=True
	stateFailed     = "Failed"     // Applied=False
	stateDeleting   = "Deleting"   // deleted; the agent has not confirmed yet
	stateDeleted    = "Deleted"    // gone
	stateSucceeded  = "Succeeded"  // results of commands not about one work's state
)

// listStatuses are what list --status takes.
var listStatuses = []string{
	workv1.WorkApplied, workv1.WorkAvailable, workv1.WorkProgressing, workv1.WorkDegraded,
	stateInProgress, stateFailed, stateDeleting,
}

// current returns the work's condition of that type when it speaks about
// the work's current generation.
func current(w *workv1.ManifestWork, typ string) *metav1.Condition {
	c := meta.FindStatusCondition(w.Status.Conditions, typ)
	if c == nil || c.ObservedGeneration < w.Generation {
		return nil
	}
	return c
}

func isTrue(w *workv1.ManifestWork, typ string) bool {
	c := current(w, typ)
	return c != nil && c.Status == metav1.ConditionTrue
}

func isFalse(w *workv1.ManifestWork, typ string) bool {
	c := current(w, typ)
	return c != nil && c.Status == metav1.ConditionFalse
}

// stateOf sums a work up in one word.
func stateOf(w *workv1.ManifestWork) string {
	switch {
	case w == nil:
		return stateDeleted
	case w.DeletionTimestamp != nil:
		return stateDeleting
	case isFalse(w, workv1.WorkApplied):
		return stateFailed
	case isTrue(w, workv1.WorkDegraded):
		return stateDegraded
	case isTrue(w, workv1.WorkAvailable):
		return stateAvailable
	case isTrue(w, workv1.WorkApplied):
		return stateApplied
	default:
		return stateInProgress
	}
}

// matchesStatus is list --status: a condition True at the current
// generation, or the state.
func matchesStatus(w *workv1.ManifestWork, statuses []string) bool {
	st := stateOf(w)
	for _, s := range statuses {
		switch s {
		case stateInProgress, stateFailed, stateDeleting:
			if st == s {
				return true
			}
		default:
			if w.DeletionTimestamp == nil && isTrue(w, s) {
				return true
			}
		}
	}
	return false
}

// verdict is what waiting for a condition concluded about one state.
type verdict int

const (
	pending verdict = iota
	met
	failed
)

// judge decides whether w meets cond at generation minGen or later. For
// failures it also returns the reason and the agent's message.
func judge(w *workv1.ManifestWork, cond string, minGen int64) (v verdict, reason, msg string) {
	if cond == condDeleted {
		if w == nil {
			return met, "", ""
		}
		return pending, "", ""
	}
	if w == nil || w.DeletionTimestamp != nil || w.Generation < minGen {
		return pending, "", ""
	}
	if isTrue(w, cond) && !(cond == condAvailable && isTrue(w, workv1.WorkDegraded)) {
		return met, "", ""
	}
	if c := current(w, workv1.WorkApplied); c != nil && c.Status == metav1.ConditionFalse {
		return failed, reasonApplyFailed, conditionText(c)
	}
	if cond == condAvailable {
		if c := current(w, workv1.WorkDegraded); c != nil && c.Status == metav1.ConditionTrue {
			return failed, reasonDegraded, conditionText(c)
		}
	}
	return pending, "", ""
}

func conditionText(c *metav1.Condition) string {
	s := fmt.Sprintf("%s=%s", c.Type, c.Status)
	if c.Reason != "" {
		s += " (" + c.Reason + ")"
	}
	if c.Message != "" {
		s += ": " + c.Message
	}
	return s
}

// summary describes a work's status in one line, for progress messages.
func summary(w *workv1.ManifestWork) string {
	if w == nil {
		return "does not exist"
	}
	if w.DeletionTimestamp != nil {
		return fmt.Sprintf("generation %d, being deleted (waiting for the agent to confirm)", w.Generation)
	}
	var parts []string
	for _, typ := range []string{workv1.WorkApplied, workv1.WorkAvailable, workv1.WorkDegraded} {
		c := meta.FindStatusCondition(w.Status.Conditions, typ)
		switch {
		case c == nil:
		case c.ObservedGeneration < w.Generation:
			parts = append(parts, fmt.Sprintf("%s=%s for generation %d", typ, c.Status, c.ObservedGeneration))
		default:
			p := fmt.Sprintf("%s=%s", typ, c.Status)
			if c.Status != metav1.ConditionTrue && c.Reason != "" {
				p += " (" + c.Reason + ")"
			}
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return fmt.Sprintf("generation %d, no status from the agent yet", w.Generation)
	}
	return fmt.Sprintf("generation %d, %s", w.Generation, strings.Join(parts, ", "))
}

// resourceStatus is one manifest's status in the results file.
type resourceStatus struct {
	APIVersion string         `json:"apiVersion"`
	Kind       string         `json:"kind"`
	Namespace  string         `json:"namespace,omitempty"`
	Name       string         `json:"name"`
	Status     string         `json:"status"`
	Message    string         `json:"message,omitempty"`
	Feedback   map[string]any `json:"feedback,omitempty"`
}

// resources lists the per-manifest status the agent reported, in manifest
// order. Manifests without status are InProgress.
func resources(w *workv1.ManifestWork) []resourceStatus {
	if w == nil {
		return nil
	}
	var out []resourceStatus
	for _, mc := range w.Status.ResourceStatus.Manifests {
		rm := mc.ResourceMeta
		r := resourceStatus{
			APIVersion: schema.GroupVersion{Group: rm.Group, Version: rm.Version}.String(),
			Kind:       rm.Kind, Namespace: rm.Namespace, Name: rm.Name,
			Status: stateInProgress,
		}
		applied := meta.FindStatusCondition(mc.Conditions, workv1.ManifestApplied)
		available := meta.FindStatusCondition(mc.Conditions, workv1.ManifestAvailable)
		degraded := meta.FindStatusCondition(mc.Conditions, workv1.ManifestDegraded)
		switch {
		case applied != nil && applied.Status == metav1.ConditionFalse:
			r.Status, r.Message = stateFailed, applied.Message
		case degraded != nil && degraded.Status == metav1.ConditionTrue:
			r.Status, r.Message = stateDegraded, degraded.Message
		case available != nil && available.Status == metav1.ConditionTrue:
			r.Status = stateAvailable
		case applied != nil && applied.Status == metav1.ConditionTrue:
			r.Status = stateApplied
		}
		if fb := feedbackMap(mc.StatusFeedbacks); len(fb) > 0 {
			r.Feedback = fb
		}
		out = append(out, r)
	}
	return out
}

func feedbackMap(fb workv1.StatusFeedbackResult) map[string]any {
	if len(fb.Values) == 0 {
		return nil
	}
	out := map[string]any{}
	for _, v := range fb.Values {
		out[v.Name] = feedbackValue(v.Value)
	}
	return out
}

func feedbackValue(v workv1.FieldValue) any {
	switch {
	case v.Integer != nil:
		return *v.Integer
	case v.String != nil:
		return *v.String
	case v.Boolean != nil:
		return *v.Boolean
	case v.JsonRaw != nil:
		return *v.JsonRaw
	default:
		return nil
	}
}
