package handlers

import (
	"strings"
	"time"

	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
)

// Reasons of the report for a resource whose preconditions do not hold,
// as the contract sample status-put-cluster-preconditions-not-met.json
// gives them.
const (
	ReasonPreconditionsNotMet = "PreconditionsNotMet"
	ReasonNoErrors            = "NoErrors"
)

// PreconditionsNotMetReport is the report for a resource the adapter does
// not act on yet because the named preconditions do not hold: nothing was
// delivered, so Applied and Available are False with reason
// PreconditionsNotMet, and Health is True (waiting is not a failure). It
// has the contract sample's shape: these three conditions and no data.
func PreconditionsNotMetReport(adapterName string, t Target, unmet []string, now time.Time) hyperfleet.StatusReport {
	var gen int64
	if t.Resource != nil {
		gen = t.Resource.Generation
	}
	return hyperfleet.StatusReport{
		Adapter:            adapterName,
		ObservedGeneration: gen,
		ObservedTime:       now.UTC(),
		Conditions: []hyperfleet.Condition{
			{Type: hyperfleet.ConditionApplied, Status: hyperfleet.False, Reason: ReasonPreconditionsNotMet,
				Message: "Dependencies not satisfied: " + strings.Join(unmet, "; ")},
			{Type: hyperfleet.ConditionAvailable, Status: hyperfleet.False, Reason: ReasonPreconditionsNotMet,
				Message: "Cannot proceed until dependencies are satisfied"},
			{Type: hyperfleet.ConditionHealth, Status: hyperfleet.True, Reason: ReasonNoErrors,
				Message: "Adapter is healthy, waiting for dependencies"},
		},
	}
}
