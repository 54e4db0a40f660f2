package handlers

import (
	"encoding/json"
	"fmt"
	"testing"

	operatorv1 "github.com/openshift/api/operator/v1"
	hyperv1 "github.com/openshift/hypershift/api/hypershift/v1beta1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/util/jsonpath"
)

// TestFeedbackPathsReadUpstreamStatus evaluates each kind's feedback paths
// as Maestro's agent does (against the whole object, missing keys
// allowed) on a status written with the upstream types: every path must
// find exactly one scalar, so a path naming a field the type does not have
// fails here.
func TestFeedbackPathsReadUpstreamStatus(t *testing.T) {
	statuses := map[schema.GroupKind]any{
		{Group: hyperv1.GroupVersion.Group, Kind: "NodePool"}: &hyperv1.NodePool{Status: hyperv1.NodePoolStatus{
			Replicas: 3, Version: "4.14.0",
			Conditions: []hyperv1.NodePoolCondition{
				{Type: hyperv1.NodePoolReadyConditionType, Status: corev1.ConditionTrue},
				{Type: hyperv1.NodePoolAutoscalingEnabledConditionType, Status: corev1.ConditionFalse},
			},
		}},
		{Group: operatorv1.GroupVersion.Group, Kind: "IngressController"}: &operatorv1.IngressController{Status: operatorv1.IngressControllerStatus{
			AvailableReplicas: 2, Domain: "apps.example.com",
			Conditions: []operatorv1.OperatorCondition{
				{Type: operatorv1.IngressControllerAvailableConditionType, Status: operatorv1.ConditionTrue},
				{Type: "Degraded", Status: operatorv1.ConditionFalse},
			},
		}},
	}
	for gk, paths := range kindFeedback {
		typed, ok := statuses[gk]
		if !ok {
			t.Errorf("no status sample for %s", gk)
			continue
		}
		raw, err := json.Marshal(typed)
		if err != nil {
			t.Fatal(err)
		}
		var obj map[string]any
		if err := json.Unmarshal(raw, &obj); err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			j := jsonpath.New(p.Name).AllowMissingKeys(true)
			if err := j.Parse(fmt.Sprintf("{%s}", p.Path)); err != nil {
				t.Errorf("%s %s: %v", gk, p.Name, err)
				continue
			}
			results, err := j.FindResults(obj)
			if err != nil || len(results) != 1 || len(results[0]) != 1 {
				t.Errorf("%s %s (%s): %d result sets, err %v; want one value", gk, p.Name, p.Path, len(results), err)
				continue
			}
			if p == statusFeedback {
				continue
			}
			switch v := results[0][0].Interface().(type) {
			case string, float64, bool:
			default:
				t.Errorf("%s %s (%s) is a %T, want a scalar", gk, p.Name, p.Path, v)
			}
		}
	}
}
