package handlers_test

import (
	"strings"
	"testing"

	"github.com/openshift-hyperfleet/maestro-adapter/handlers"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

func TestParseConsumerRule(t *testing.T) {
	valid := map[string]handlers.ConsumerRule{
		"":                         {Source: handlers.ConsumerName},
		"name":                     {Source: handlers.ConsumerName},
		"fixed:mgmt-cluster-1":     {Source: handlers.ConsumerFixed, Arg: "mgmt-cluster-1"},
		"label:shard":              {Source: handlers.ConsumerLabel, Arg: "shard"},
		"label:hyperfleet.io/mgmt": {Source: handlers.ConsumerLabel, Arg: "hyperfleet.io/mgmt"},
		"spec:placement.consumer":  {Source: handlers.ConsumerSpec, Arg: "placement.consumer"},
	}
	for in, want := range valid {
		got, err := handlers.ParseConsumerRule(in)
		if err != nil {
			t.Errorf("ParseConsumerRule(%q): %v", in, err)
			continue
		}
		if got != want {
			t.Errorf("ParseConsumerRule(%q) = %+v, want %+v", in, got, want)
		}
		// String round-trips.
		if again, err := handlers.ParseConsumerRule(got.String()); err != nil || again != got {
			t.Errorf("round trip of %q via %q = %+v, %v", in, got.String(), again, err)
		}
	}

	invalid := map[string]string{
		"fixed:Mgmt_Cluster":               `"Mgmt_Cluster" is not an RFC 1123 label`,
		"fixed:":                           `"" is not an RFC 1123 label`,
		"fixed:" + strings.Repeat("a", 64): "is not an RFC 1123 label",
		"label:":                           "label key is empty",
		"spec:":                            "spec path",
		"spec:a..b":                        "spec path",
		"annotation:x":                     `unknown source "annotation"`,
		"cluster-name":                     "want name, fixed:<value>",
	}
	for in, want := range invalid {
		_, err := handlers.ParseConsumerRule(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseConsumerRule(%q) = %v, want an error containing %q", in, err, want)
		}
	}

	var r handlers.ConsumerRule
	if err := r.UnmarshalText([]byte("label:shard")); err != nil || r.Source != handlers.ConsumerLabel {
		t.Errorf("UnmarshalText = %+v, %v", r, err)
	}
}

func TestConsumerRuleResolve(t *testing.T) {
	cluster := loadResource(t, "cluster-gen1")
	cluster.Labels["mgmt"] = "mgmt-east-1"
	cluster.Labels["bad"] = "Not_A_Label"
	cluster.Spec["placement"] = map[string]any{"consumer": "mgmt-west-2", "count": 3.0}

	ok := map[string]string{
		"name":                    "hp-cluster-abc12",
		"fixed:mgmt-cluster-1":    "mgmt-cluster-1",
		"label:mgmt":              "mgmt-east-1",
		"spec:placement.consumer": "mgmt-west-2",
	}
	for rule, want := range ok {
		r, err := handlers.ParseConsumerRule(rule)
		if err != nil {
			t.Fatal(err)
		}
		got, err := r.Resolve(cluster)
		if err != nil || got != want {
			t.Errorf("%s: Resolve = %q, %v; want %q", rule, got, err, want)
		}
	}

	failing := map[string][]string{
		"label:missing":             {`"label:missing"`, `no label "missing"`},
		"label:bad":                 {`"label:bad"`, `"Not_A_Label"`, "not an RFC 1123 label"},
		"spec:placement.nowhere":    {`"spec:placement.nowhere"`, "no spec.placement.nowhere"},
		"spec:placement.count":      {"spec.placement.count is a number, want a string"},
		"spec:dns.baseDomain":       {`"example.com"`, "not an RFC 1123 label"},
		"spec:placement.consumer.x": {"no spec.placement.consumer.x"},
	}
	for rule, wants := range failing {
		r, err := handlers.ParseConsumerRule(rule)
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.Resolve(cluster)
		if err == nil {
			t.Errorf("%s: Resolve succeeded, want an error", rule)
			continue
		}
		if !failure.IsPermanent(err) {
			t.Errorf("%s: error %v is not permanent", rule, err)
		}
		for _, w := range wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not contain %q", rule, err, w)
			}
		}
	}

	// The name rule checks, never rewrites: a cluster name that is not a
	// label is an error naming it, at build time.
	odd := *cluster
	odd.Name = "Hp_Cluster"
	_, err := newHandler(t, handlers.Config{Type: handlers.TypeIngress}).Build(handlers.Target{Resource: &odd})
	if err == nil || !failure.IsPermanent(err) || !strings.Contains(err.Error(), `"Hp_Cluster"`) || !strings.Contains(err.Error(), `"name"`) {
		t.Errorf("Build with an invalid consumer = %v, want a permanent error naming rule and value", err)
	}
}
