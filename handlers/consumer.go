package handlers

import (
	"fmt"
	"strings"

	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// ConsumerRule decides which Maestro consumer (target cluster, and the
// namespace of the ManifestWork) a cluster's works go to. It is written as
// a string in configuration:
//
//	name              the cluster's name (the default)
//	fixed:<value>     always <value>, e.g. one management cluster for all
//	label:<key>       the value of the cluster's label <key>
//	spec:<dot.path>   the string at <dot.path> in the cluster's spec
//
// Whatever the rule yields must already be an RFC 1123 label: it is the
// identity of a registered consumer, so it is checked, never rewritten.
// The zero value is the name rule.
type ConsumerRule struct {
	Source ConsumerSource
	// Arg is the value, label key or spec path; empty for ConsumerName.
	Arg string
}

// ConsumerSource is where a ConsumerRule takes the consumer from.
type ConsumerSource string

// Consumer sources.
const (
	ConsumerName  ConsumerSource = "name"
	ConsumerFixed ConsumerSource = "fixed"
	ConsumerLabel ConsumerSource = "label"
	ConsumerSpec  ConsumerSource = "spec"
)

// ParseConsumerRule parses the configuration form of a rule (see
// ConsumerRule). The empty string is the name rule. A fixed value is
// validated here, so a mistake fails at start rather than on every event.
func ParseConsumerRule(s string) (ConsumerRule, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == string(ConsumerName) {
		return ConsumerRule{Source: ConsumerName}, nil
	}
	src, arg, ok := strings.Cut(s, ":")
	if !ok {
		return ConsumerRule{}, fmt.Errorf("consumer rule %q: want name, fixed:<value>, label:<key> or spec:<dot.path>", s)
	}
	r := ConsumerRule{Source: ConsumerSource(src), Arg: arg}
	if err := r.validate(); err != nil {
		return ConsumerRule{}, err
	}
	return r, nil
}

// UnmarshalText lets configuration loaders fill a rule from a string.
func (r *ConsumerRule) UnmarshalText(text []byte) error {
	parsed, err := ParseConsumerRule(string(text))
	if err != nil {
		return err
	}
	*r = parsed
	return nil
}

// String is the configuration form of the rule.
func (r ConsumerRule) String() string {
	if r.Source == "" || r.Source == ConsumerName {
		return string(ConsumerName)
	}
	return string(r.Source) + ":" + r.Arg
}

func (r ConsumerRule) validate() error {
	switch r.Source {
	case "", ConsumerName:
		if r.Arg != "" {
			return fmt.Errorf("consumer rule %q: name takes no argument", r)
		}
	case ConsumerFixed:
		if !isDNSLabel(r.Arg) {
			return fmt.Errorf("consumer rule %q: %q is not an RFC 1123 label (lower-case a-z, 0-9, '-', at most 63, alphanumeric at both ends)", r, r.Arg)
		}
	case ConsumerLabel:
		if r.Arg == "" {
			return fmt.Errorf("consumer rule %q: label key is empty", r)
		}
	case ConsumerSpec:
		if r.Arg == "" || strings.Contains("."+r.Arg+".", "..") {
			return fmt.Errorf("consumer rule %q: spec path must be dot-separated field names, e.g. spec:placement.consumer", r)
		}
	default:
		return fmt.Errorf("consumer rule %q: unknown source %q, want name, fixed, label or spec", r, r.Source)
	}
	return nil
}

// Resolve returns the consumer for cluster. The error is failure.Permanent:
// the cluster (or the rule) has to change before a retry can succeed.
func (r ConsumerRule) Resolve(cluster *hyperfleet.Resource) (string, error) {
	var v string
	switch r.Source {
	case "", ConsumerName:
		v = cluster.Name
	case ConsumerFixed:
		v = r.Arg
	case ConsumerLabel:
		lv, ok := cluster.Labels[r.Arg]
		if !ok {
			return "", failure.Permanentf("consumer rule %q: cluster %s has no label %q", r, cluster.ID, r.Arg)
		}
		v = lv
	case ConsumerSpec:
		raw, ok := lookup(cluster.Spec, r.Arg)
		if !ok {
			return "", failure.Permanentf("consumer rule %q: cluster %s has no spec.%s", r, cluster.ID, r.Arg)
		}
		s, ok := raw.(string)
		if !ok {
			return "", failure.Permanentf("consumer rule %q: cluster %s spec.%s is a %s, want a string", r, cluster.ID, r.Arg, jsonType(raw))
		}
		v = s
	default:
		return "", failure.Permanentf("consumer rule %q: unknown source", r)
	}
	if !isDNSLabel(v) {
		return "", failure.Permanentf("consumer rule %q: cluster %s gives consumer %q, which is not an RFC 1123 label", r, cluster.ID, v)
	}
	return v, nil
}
