// What the simulated agent reports: the work's status built as the OCM work
// agent builds it (conditions per work and per manifest), status feedback,
// and the live object it evaluates feedback against.

package maestrotest

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro/feedback"
)

func statusFingerprint(generation int64, status workv1.ManifestWorkStatus) string {
	// Transition times change on every build; leave them out of the comparison.
	s := status.DeepCopy()
	for i := range s.Conditions {
		s.Conditions[i].LastTransitionTime = metav1.Time{}
	}
	for i := range s.ResourceStatus.Manifests {
		for j := range s.ResourceStatus.Manifests[i].Conditions {
			s.ResourceStatus.Manifests[i].Conditions[j].LastTransitionTime = metav1.Time{}
		}
	}
	b, _ := json.Marshal(s)
	return fmt.Sprintf("%d/%s", generation, b)
}

// buildStatus computes the status a real agent would report for w.
func (a *Agent) buildStatus(w *workv1.ManifestWork) workv1.ManifestWorkStatus {
	var failure error
	if a.opts.Fail != nil {
		failure = a.opts.Fail(w.DeepCopy())
	}
	degraded := failure != nil && errors.Is(failure, ErrDegraded)
	applyFailed := failure != nil && !degraded
	gen := w.Generation

	status := w.Status.DeepCopy() // keeps transition times of unchanged conditions
	set := func(conds *[]metav1.Condition, typ string, st metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(conds, metav1.Condition{
			Type: typ, Status: st, Reason: reason, Message: msg, ObservedGeneration: gen,
		})
	}

	var manifests []workv1.ManifestCondition
	for i, m := range w.Spec.Workload.Manifests {
		mc := workv1.ManifestCondition{Conditions: []metav1.Condition{}}
		obj := &unstructured.Unstructured{}
		if err := utiljson.Unmarshal(m.Raw, &obj.Object); err != nil || obj.Object == nil {
			mc.ResourceMeta = workv1.ManifestResourceMeta{Ordinal: int32(i)}
			set(&mc.Conditions, workv1.ManifestApplied, metav1.ConditionFalse, ReasonApplyFailed, fmt.Sprintf("manifest %d is not a JSON object", i))
			manifests = append(manifests, mc)
			continue
		}
		gvk := obj.GroupVersionKind()
		resource := guessResource(gvk.Kind)
		mc.ResourceMeta = workv1.ManifestResourceMeta{
			Ordinal: int32(i), Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind,
			Resource: resource, Name: obj.GetName(), Namespace: obj.GetNamespace(),
		}
		if previous := findManifestCondition(w.Status.ResourceStatus.Manifests, mc.ResourceMeta); previous != nil {
			mc.Conditions = append(mc.Conditions, previous.Conditions...)
		}
		if applyFailed {
			set(&mc.Conditions, workv1.ManifestApplied, metav1.ConditionFalse, ReasonApplyFailed, failure.Error())
			set(&mc.Conditions, workv1.ManifestAvailable, metav1.ConditionFalse, ReasonUnavailable, "the resource was not applied")
			meta.RemoveStatusCondition(&mc.Conditions, workv1.ManifestDegraded)
			manifests = append(manifests, mc)
			continue
		}
		set(&mc.Conditions, workv1.ManifestApplied, metav1.ConditionTrue, ReasonApplied, "Apply manifest complete")
		set(&mc.Conditions, workv1.ManifestAvailable, metav1.ConditionTrue, "ResourceAvailable", "Resource is available")
		if degraded {
			set(&mc.Conditions, workv1.ManifestDegraded, metav1.ConditionTrue, ReasonDegraded, failure.Error())
		} else {
			meta.RemoveStatusCondition(&mc.Conditions, workv1.ManifestDegraded)
		}
		var synced metav1.Condition
		mc.StatusFeedbacks, synced = a.feedback(w, obj, gvk, resource)
		meta.SetStatusCondition(&mc.Conditions, synced)
		manifests = append(manifests, mc)
	}
	status.ResourceStatus.Manifests = manifests

	switch {
	case applyFailed:
		set(&status.Conditions, workv1.WorkApplied, metav1.ConditionFalse, ReasonApplyFailed, failure.Error())
		set(&status.Conditions, workv1.WorkAvailable, metav1.ConditionFalse, ReasonUnavailable, "not all resources are available")
		set(&status.Conditions, workv1.WorkProgressing, metav1.ConditionTrue, workv1.WorkProgressingReasonFailed, failure.Error())
		meta.RemoveStatusCondition(&status.Conditions, workv1.WorkDegraded)
	default:
		set(&status.Conditions, workv1.WorkApplied, metav1.ConditionTrue, ReasonWorkApplied, "Apply manifest work complete")
		set(&status.Conditions, workv1.WorkAvailable, metav1.ConditionTrue, ReasonAvailable, "All resources are available")
		set(&status.Conditions, workv1.WorkProgressing, metav1.ConditionFalse, workv1.WorkProgressingReasonCompleted, "All resources are applied and available")
		if degraded {
			set(&status.Conditions, workv1.WorkDegraded, metav1.ConditionTrue, ReasonDegraded, failure.Error())
		} else {
			meta.RemoveStatusCondition(&status.Conditions, workv1.WorkDegraded)
		}
	}
	return *status
}

func findManifestCondition(conds []workv1.ManifestCondition, m workv1.ManifestResourceMeta) *workv1.ManifestCondition {
	for i := range conds {
		if conds[i].ResourceMeta == m {
			return &conds[i]
		}
	}
	return nil
}

// Status feedback as Maestro's agent reports it: the OCM work agent's
// status controller and StatusReader (open-cluster-management.io/ocm
// pkg/work/spoke/statusfeedback), with the RawFeedbackJsonString feature
// gate on, as Maestro's agent command sets it.
const (
	// ConditionFeedbackSynced is the manifest condition the agent sets on
	// evaluating a manifest's feedback rules: False, naming each rule that
	// failed, when one did (the values of the others are still reported).
	ConditionFeedbackSynced = feedback.ConditionSynced
	// MaxFeedbackJSONBytes is the longest JSON value reported as feedback:
	// Maestro's agent command raises the OCM agent's default
	// (--max-json-raw-length, 1024 bytes) to 1 MiB. A longer value is left
	// out and makes ConditionFeedbackSynced False.
	MaxFeedbackJSONBytes = feedback.MaxJSONBytes
)

// feedback evaluates the feedback rules of the manifest configs that match the
// manifest against the object as it would be live on the cluster (the
// manifest with its simulated status), as the work agent's status feedback
// controller does, and returns the values with the StatusFeedbackSynced
// condition.
func (a *Agent) feedback(w *workv1.ManifestWork, obj *unstructured.Unstructured, gvk schema.GroupVersionKind, resource string) (workv1.StatusFeedbackResult, metav1.Condition) {
	rules := feedback.Rules(w.Spec.ManifestConfigs, feedback.Resource{
		Group: gvk.Group, Resource: resource, Name: obj.GetName(), Namespace: obj.GetNamespace()})
	if len(rules) == 0 {
		result, synced, _ := feedback.Evaluate(nil, gvk, nil)
		return result, synced
	}
	result, synced, err := feedback.Evaluate(a.liveObject(w, obj, gvk), gvk, rules)
	if err != nil {
		a.opts.Logf("work %s: %s %s: feedback: %v", w.Name, gvk.Kind, obj.GetName(), err)
	}
	return result, synced
}

// liveObject is the manifest as the agent would read it from the cluster:
// with its (simulated) status, and numbers as the API server's JSON gives
// them (int64 when integral, else float64).
func (a *Agent) liveObject(w *workv1.ManifestWork, obj *unstructured.Unstructured, gvk schema.GroupVersionKind) map[string]interface{} {
	live := obj.DeepCopy()
	if st := a.simulatedStatus(w, obj, gvk); st != nil {
		live.Object["status"] = st
	} else {
		delete(live.Object, "status")
	}
	raw, err := json.Marshal(live.Object)
	if err != nil {
		return live.Object
	}
	var out map[string]interface{}
	if err := utiljson.Unmarshal(raw, &out); err != nil {
		return live.Object
	}
	return out
}

// statuslessKinds have no status on a real cluster, so the stand-in
// synthesizes none for them.
var statuslessKinds = map[string]bool{
	"ConfigMap": true, "Secret": true, "ServiceAccount": true, "Role": true, "RoleBinding": true,
	"ClusterRole": true, "ClusterRoleBinding": true, "LimitRange": true, "PriorityClass": true,
	"StorageClass": true,
}

// simulatedStatus is the `.status` the agent pretends to read from the cluster.
func (a *Agent) simulatedStatus(w *workv1.ManifestWork, obj *unstructured.Unstructured, gvk schema.GroupVersionKind) map[string]interface{} {
	if a.opts.Status != nil {
		if s := a.opts.Status(w.DeepCopy(), obj.DeepCopy()); s != nil {
			return s
		}
	}
	if s, ok := obj.Object["status"].(map[string]interface{}); ok && len(s) > 0 {
		return s
	}
	if statuslessKinds[gvk.Kind] {
		return nil
	}
	ready := func(typ string) []interface{} {
		return []interface{}{map[string]interface{}{
			"type": typ, "status": "True", "reason": "SimulatedAgent", "message": "reported by the maestrotest agent",
		}}
	}
	switch gvk.Kind {
	case "Deployment", "StatefulSet", "ReplicaSet":
		replicas, found, _ := unstructured.NestedInt64(obj.Object, "spec", "replicas")
		if !found {
			replicas = 1
		}
		return map[string]interface{}{
			"observedGeneration": int64(1), "replicas": replicas, "readyReplicas": replicas,
			"availableReplicas": replicas, "updatedReplicas": replicas, "conditions": ready("Available"),
		}
	case "Job":
		completions, found, _ := unstructured.NestedInt64(obj.Object, "spec", "completions")
		if !found {
			completions = 1
		}
		return map[string]interface{}{"succeeded": completions, "active": int64(0), "conditions": ready("Complete")}
	case "Pod":
		return map[string]interface{}{"phase": "Running", "conditions": ready("Ready")}
	case "Namespace":
		return map[string]interface{}{"phase": "Active"}
	default:
		return map[string]interface{}{"conditions": ready("Ready")}
	}
}

// guessResource derives the plural resource name from a kind, as the API
// server's default naming does for most kinds.
func guessResource(kind string) string {
	k := strings.ToLower(kind)
	switch {
	case k == "":
		return ""
	case k == "endpoints":
		return k
	case strings.HasSuffix(k, "s"), strings.HasSuffix(k, "x"), strings.HasSuffix(k, "ch"), strings.HasSuffix(k, "sh"):
		return k + "es"
	case strings.HasSuffix(k, "y") && len(k) > 1 && !strings.ContainsRune("aeiou", rune(k[len(k)-2])):
		return k[:len(k)-1] + "ies"
	default:
		return k + "s"
	}
}
