package kubeapply

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/util/jsonpath"
	workv1 "open-cluster-management.io/api/work/v1"
)

// Condition reasons, as the OCM work agent writes them.
const (
	reasonAppliedComplete = "AppliedManifestWorkComplete"
	reasonAppliedFailed   = "AppliedManifestWorkFailed"
	reasonAvailable       = "ResourcesAvailable"
	reasonNotAvailable    = "ResourcesNotAvailable"
	reasonDegraded        = "ApplyFailed"
	reasonNotDegraded     = "NoFailures"
	reasonApplying        = "Applying"
	condFeedbackSynced    = "StatusFeedbackSynced"
	maxJSONRawLength      = 1024
)

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
		if rules := feedbackRules(rec.Work.Spec.ManifestConfigs, mc.ResourceMeta); len(rules) != 0 && live != nil {
			values, err := feedback(live, rules)
			mc.StatusFeedbacks.Values = values
			if err != nil {
				set(&mc.Conditions, condFeedbackSynced, metav1.ConditionFalse, "StatusFeedbackSyncFailed", err.Error())
			} else {
				set(&mc.Conditions, condFeedbackSynced, metav1.ConditionTrue, condFeedbackSynced, "")
			}
		}
		w.Status.ResourceStatus.Manifests = append(w.Status.ResourceStatus.Manifests, mc)
	}

	switch {
	case failed:
		set(&conds, workv1.WorkApplied, metav1.ConditionFalse, reasonAppliedFailed, rec.Failure.Message)
		set(&conds, workv1.WorkProgressing, metav1.ConditionFalse, workv1.WorkProgressingReasonFailed, rec.Failure.Message)
		set(&conds, workv1.WorkDegraded, metav1.ConditionTrue, reasonDegraded, rec.Failure.Message)
	case applied:
		set(&conds, workv1.WorkApplied, metav1.ConditionTrue, reasonAppliedComplete, "Apply manifest work complete")
		set(&conds, workv1.WorkProgressing, metav1.ConditionFalse, workv1.WorkProgressingReasonCompleted, "All resources are applied")
		set(&conds, workv1.WorkDegraded, metav1.ConditionFalse, reasonNotDegraded, "")
	default:
		set(&conds, workv1.WorkProgressing, metav1.ConditionTrue, reasonApplying, "Applying the manifests")
	}
	// Available speaks of the version applied: before that, the objects may
	// still be the previous version's.
	switch {
	case !applied && !failed:
	case allAvailable:
		set(&conds, workv1.WorkAvailable, metav1.ConditionTrue, reasonAvailable, "All resources are available")
	default:
		set(&conds, workv1.WorkAvailable, metav1.ConditionFalse, reasonNotAvailable, notAvailable)
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

// The status feedback below evaluates rules the way the OCM work agent's
// statusfeedback reader does, like maestro/embedded's simulated agent (on
// the live object here, on a simulated one there).

// feedbackRules returns the rules of the manifestConfigs naming the
// resource.
func feedbackRules(configs []workv1.ManifestConfigOption, m workv1.ManifestResourceMeta) []workv1.FeedbackRule {
	var out []workv1.FeedbackRule
	for _, c := range configs {
		id := c.ResourceIdentifier
		if id.Group == m.Group && id.Resource == m.Resource && id.Name == m.Name && id.Namespace == m.Namespace {
			out = append(out, c.FeedbackRules...)
		}
	}
	return out
}

// wellKnown is the OCM agent's WellKnownStatus rule set.
var wellKnown = map[schema.GroupVersionKind][]workv1.JsonPath{
	{Group: "apps", Version: "v1", Kind: "Deployment"}: {
		{Name: "ReadyReplicas", Path: ".status.readyReplicas"},
		{Name: "Replicas", Path: ".status.replicas"},
		{Name: "AvailableReplicas", Path: ".status.availableReplicas"},
	},
	{Group: "batch", Version: "v1", Kind: "Job"}: {
		{Name: "JobComplete", Path: `.status.conditions[?(@.type=="Complete")].status`},
		{Name: "JobSucceeded", Path: ".status.succeeded"},
	},
	{Group: "", Version: "v1", Kind: "Pod"}: {
		{Name: "PodReady", Path: `.status.conditions[?(@.type=="Ready")].status`},
		{Name: "PodPhase", Path: ".status.phase"},
	},
}

// feedback evaluates the rules against the whole live object.
func feedback(live *unstructured.Unstructured, rules []workv1.FeedbackRule) ([]workv1.FeedbackValue, error) {
	var values []workv1.FeedbackValue
	var errs []string
	for _, r := range rules {
		paths := r.JsonPaths
		if r.Type == workv1.WellKnownStatusType {
			paths = wellKnown[live.GroupVersionKind()]
			if len(paths) == 0 {
				errs = append(errs, fmt.Sprintf("cannot find the wellknown statuses for resource with gvk %s", live.GroupVersionKind()))
				continue
			}
		}
		for _, p := range paths {
			if p.Version != "" && p.Version != live.GroupVersionKind().Version {
				errs = append(errs, fmt.Sprintf("version set in the path %s is not matched for the related resource", p.Name))
				continue
			}
			v, err := valueAt(p.Name, p.Path, live.Object)
			if err != nil {
				errs = append(errs, err.Error())
				continue
			}
			if v != nil {
				values = append(values, *v)
			}
		}
	}
	if len(errs) != 0 {
		return values, errors.New(strings.Join(errs, "; "))
	}
	return values, nil
}

func valueAt(name, path string, obj map[string]any) (*workv1.FeedbackValue, error) {
	j := jsonpath.New(name).AllowMissingKeys(true)
	if err := j.Parse("{" + path + "}"); err != nil {
		return nil, fmt.Errorf("failed to parse json path %s of %s with error: %v", path, name, err)
	}
	results, err := j.FindResults(obj)
	if err != nil {
		return nil, fmt.Errorf("failed to find value for %s with error: %v", name, err)
	}
	if len(results) == 0 || len(results[0]) == 0 {
		return nil, nil
	}
	var value any
	if len(results) == 1 && len(results[0]) == 1 {
		value = results[0][0].Interface()
	} else {
		var list []any
		for _, r := range results[0] {
			list = append(list, r.Interface())
		}
		value = list
	}
	fv := workv1.FeedbackValue{Name: name}
	switch t := value.(type) {
	case nil:
		return nil, nil
	case int64:
		fv.Value = workv1.FieldValue{Type: workv1.Integer, Integer: &t}
	case string:
		fv.Value = workv1.FieldValue{Type: workv1.String, String: &t}
	case bool:
		fv.Value = workv1.FieldValue{Type: workv1.Boolean, Boolean: &t}
	default:
		raw, err := json.Marshal(t)
		if err != nil {
			return nil, fmt.Errorf("failed to parse the resource to json string for name %s: %v", name, err)
		}
		if len(raw) > maxJSONRawLength {
			return nil, fmt.Errorf("the length of returned json raw string for name %s is larger than the maximum length %d", name, maxJSONRawLength)
		}
		s := string(raw)
		fv.Value = workv1.FieldValue{Type: workv1.JsonRaw, JsonRaw: &s}
	}
	return &fv, nil
}
