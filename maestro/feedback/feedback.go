// Package feedback evaluates ManifestWork status feedback rules against an
// object exactly as Maestro's real work agent does: the OCM work agent's
// status controller and StatusReader (open-cluster-management.io/ocm
// pkg/work/spoke/statusfeedback), with the 1 MiB JSON limit Maestro's agent
// command sets. The stand-in agent (maestrotest), the embedded agent and
// the kubeapply backend all report feedback through it, so they cannot
// drift from the real agent or from each other; maestro/agenttest's
// TestRealAgentFeedbackMatchesStandIn proves it against the real agent.
//
// It also holds the agent's reading of the rest of a work's per-manifest
// options, which the same three need: which manifest config applies
// (Config: feedback rules, update strategy) and whether the delete option
// keeps a manifest's object (OwnedByTheWork).
package feedback

import (
	"encoding/json"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/util/jsonpath"
	workv1 "open-cluster-management.io/api/work/v1"
)

const (
	// ConditionSynced is the manifest condition the agent sets on
	// evaluating a manifest's feedback rules: False, naming each rule that
	// failed, when one did (the values of the others are still reported).
	ConditionSynced = "StatusFeedbackSynced"
	// MaxJSONBytes is the longest JSON value reported as feedback:
	// Maestro's agent command raises the OCM agent's default
	// (--max-json-raw-length, 1024 bytes) to 1 MiB. A longer value is left
	// out and makes ConditionSynced False.
	MaxJSONBytes = 1024 * 1024
)

// Resource names one manifest as a ManifestConfigOption's
// ResourceIdentifier does.
type Resource struct {
	Group, Resource, Name, Namespace string
}

// Config returns the settings the work's manifest configs give r, as the
// real agent resolves them (OCM's helper.FindManifestConfiguration): each
// of feedback rules, condition rules and update strategy comes from the
// first config that matches r and sets it, so a later matching config never
// adds to an earlier one's rules. A config matches on group and resource
// exactly and on name and namespace exactly or as a pattern in which "*"
// stands for any run of characters ("cluster-*", "*-secret", "*"). ok is
// false when no matching config sets anything.
func Config(configs []workv1.ManifestConfigOption, r Resource) (c workv1.ManifestConfigOption, ok bool) {
	c.ResourceIdentifier = workv1.ResourceIdentifier{Group: r.Group, Resource: r.Resource, Name: r.Name, Namespace: r.Namespace}
	for _, o := range configs {
		id := o.ResourceIdentifier
		if id.Group != r.Group || id.Resource != r.Resource || !wildcardMatch(r.Namespace, id.Namespace) || !wildcardMatch(r.Name, id.Name) {
			continue
		}
		if len(c.ConditionRules) == 0 && len(o.ConditionRules) != 0 {
			c.ConditionRules = o.ConditionRules
		}
		if len(c.FeedbackRules) == 0 && len(o.FeedbackRules) != 0 {
			c.FeedbackRules = o.FeedbackRules
		}
		if c.UpdateStrategy == nil && o.UpdateStrategy != nil {
			c.UpdateStrategy = o.UpdateStrategy
		}
	}
	return c, len(c.FeedbackRules) != 0 || len(c.ConditionRules) != 0 || c.UpdateStrategy != nil
}

// Rules returns the feedback rules the agent evaluates for r: those of the
// first matching manifest config that has any (see Config).
func Rules(configs []workv1.ManifestConfigOption, r Resource) []workv1.FeedbackRule {
	c, _ := Config(configs, r)
	return c.FeedbackRules
}

// OwnedByTheWork reports whether deleting the work deletes r's object, as
// the agent decides it (OCM's helper.OwnedByTheWork): no option and
// Foreground delete everything, Orphan keeps everything, and any other
// policy (SelectivelyOrphan, but also an empty or unknown one, which Maestro
// does not refuse) keeps exactly what an orphaning rule names.
func OwnedByTheWork(opt *workv1.DeleteOption, r Resource) bool {
	if opt == nil {
		return true
	}
	switch opt.PropagationPolicy {
	case workv1.DeletePropagationPolicyTypeForeground:
		return true
	case workv1.DeletePropagationPolicyTypeOrphan:
		return false
	}
	if opt.SelectivelyOrphan == nil {
		return true
	}
	for _, o := range opt.SelectivelyOrphan.OrphaningRules {
		if o.Group == r.Group && o.Resource == r.Resource && o.Namespace == r.Namespace && o.Name == r.Name {
			return false
		}
	}
	return true
}

// wildcardMatch is the agent's name and namespace match: value equals
// pattern, or pattern is "*", or pattern with each "*" standing for any run
// of characters matches the whole of value. Written without the agent's
// regular expression (compiled on every call there): the same language,
// matched greedily from both ends.
func wildcardMatch(value, pattern string) bool {
	if value == pattern || pattern == "*" {
		return true
	}
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return false // no "*" and not equal
	}
	first, last := parts[0], parts[len(parts)-1]
	if len(value) < len(first)+len(last) || !strings.HasPrefix(value, first) || !strings.HasSuffix(value, last) {
		return false
	}
	rest := value[len(first) : len(value)-len(last)]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(rest, p)
		if i < 0 {
			return false
		}
		rest = rest[i+len(p):]
	}
	return true
}

// Evaluate evaluates rules against obj, the whole object as read from the
// cluster (numbers as the API server's JSON gives them: int64 when
// integral, else float64), of kind gvk. It returns the values, the
// ConditionSynced condition the agent sets (without generation or time:
// the caller's to add), and the error behind a False condition, if any.
// No rules give no values and a True condition with reason
// NoStatusFeedbackSynced, as the agent reports.
func Evaluate(obj map[string]interface{}, gvk schema.GroupVersionKind, rules []workv1.FeedbackRule) (workv1.StatusFeedbackResult, metav1.Condition, error) {
	if len(rules) == 0 {
		return workv1.StatusFeedbackResult{}, metav1.Condition{
			Type: ConditionSynced, Status: metav1.ConditionTrue, Reason: "NoStatusFeedbackSynced"}, nil
	}
	var values []workv1.FeedbackValue
	var errs []error
	for _, rule := range rules {
		var paths []workv1.JsonPath
		switch rule.Type {
		case workv1.WellKnownStatusType:
			paths = WellKnownStatus[gvk]
			if len(paths) == 0 {
				errs = append(errs, fmt.Errorf("cannot find the wellknown statuses for resource with gvk %s", gvk.String()))
			}
		case workv1.JSONPathsType:
			paths = rule.JsonPaths
		}
		for _, p := range paths {
			if p.Version != "" && p.Version != gvk.Version {
				errs = append(errs, fmt.Errorf("version set in the path %s is not matched for the related resource", p.Name))
				continue
			}
			v, err := Value(obj, p)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if v != nil {
				values = append(values, *v)
			}
		}
	}
	if err := utilerrors.NewAggregate(errs); err != nil {
		return workv1.StatusFeedbackResult{Values: values}, metav1.Condition{
			Type: ConditionSynced, Status: metav1.ConditionFalse, Reason: "StatusFeedbackSyncFailed",
			Message: fmt.Sprintf("Sync status feedback failed with error %v", err)}, err
	}
	return workv1.StatusFeedbackResult{Values: values}, metav1.Condition{
		Type: ConditionSynced, Status: metav1.ConditionTrue, Reason: "StatusFeedbackSynced"}, nil
}

// WellKnownStatus are the work agent's WellKnownStatus feedback rules
// (its statusfeedback/rules package), by exact group, version and kind.
var WellKnownStatus = map[schema.GroupVersionKind][]workv1.JsonPath{
	{Group: "apps", Version: "v1", Kind: "Deployment"}: {
		{Name: "ReadyReplicas", Path: ".status.readyReplicas"},
		{Name: "Replicas", Path: ".status.replicas"},
		{Name: "AvailableReplicas", Path: ".status.availableReplicas"},
	},
	{Group: "apps", Version: "v1", Kind: "DaemonSet"}: {
		{Name: "NumberReady", Path: ".status.numberReady"},
		{Name: "DesiredNumberScheduled", Path: ".status.desiredNumberScheduled"},
		{Name: "NumberAvailable", Path: ".status.numberAvailable"},
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

// Value reads one feedback value from the whole object, as the agent's
// StatusReader does: the path is a kubectl-style JSONPath (without braces);
// no match or a null gives no value and no error; one match of a string,
// an integer or a boolean gives that; anything else (an object, a list, a
// fraction, or several matches, which are listed) gives JsonRaw up to
// MaxJSONBytes. A path that does not parse, or a longer JSON value, is an
// error.
func Value(obj map[string]interface{}, p workv1.JsonPath) (*workv1.FeedbackValue, error) {
	jp := jsonpath.New(p.Name).AllowMissingKeys(true)
	if err := jp.Parse(fmt.Sprintf("{%s}", p.Path)); err != nil {
		return nil, fmt.Errorf("failed to parse json path %s of %s with error: %v", p.Path, p.Name, err)
	}
	results, err := jp.FindResults(obj)
	if err != nil {
		return nil, fmt.Errorf("failed to find value for %s with error: %v", p.Name, err)
	}
	if len(results) == 0 || len(results[0]) == 0 {
		return nil, nil
	}
	var value interface{}
	if len(results) == 1 && len(results[0]) == 1 {
		value = results[0][0].Interface()
	} else {
		var list []interface{}
		for _, r := range results[0] {
			list = append(list, r.Interface())
		}
		value = list
	}
	v := &workv1.FeedbackValue{Name: p.Name}
	switch t := value.(type) {
	case nil:
		return nil, nil
	case int64:
		v.Value = workv1.FieldValue{Type: workv1.Integer, Integer: &t}
	case string:
		v.Value = workv1.FieldValue{Type: workv1.String, String: &t}
	case bool:
		v.Value = workv1.FieldValue{Type: workv1.Boolean, Boolean: &t}
	default:
		raw, err := json.Marshal(t)
		if err != nil {
			return nil, fmt.Errorf("failed to parse the resource to json string for name %s: %v", p.Name, err)
		}
		if len(raw) > MaxJSONBytes {
			return nil, fmt.Errorf("the length of returned json raw string for name %s is larger than the maximum length %d", p.Name, MaxJSONBytes)
		}
		s := string(raw)
		v.Value = workv1.FieldValue{Type: workv1.JsonRaw, JsonRaw: &s}
	}
	return v, nil
}
