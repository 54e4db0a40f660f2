package hyperfleet

import (
	"fmt"
	"time"
)

// Condition types of an adapter status report (CONTRACTS.md §3). Applied,
// Available and Health are mandatory in every report; Finalized is reported
// while the resource is being deleted.
const (
	ConditionApplied   = "Applied"
	ConditionAvailable = "Available"
	ConditionHealth    = "Health"
	ConditionFinalized = "Finalized"
)

// Condition status values.
const (
	True    = "True"
	False   = "False"
	Unknown = "Unknown"
)

// Condition is one entry of a status report.
type Condition struct {
	Type    string `json:"type"`
	Status  string `json:"status"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
}

// StatusReport is the body of PUT .../statuses: one report per adapter per
// resource. ObservedGeneration is a JSON integer; the API rejects strings.
type StatusReport struct {
	Adapter            string         `json:"adapter"`
	ObservedGeneration int64          `json:"observed_generation"`
	ObservedTime       time.Time      `json:"observed_time"`
	Conditions         []Condition    `json:"conditions"`
	Data               map[string]any `json:"data,omitempty"`
	Metadata           map[string]any `json:"metadata,omitempty"`
}

// Condition returns the condition of the given type, or nil.
func (r *StatusReport) Condition(condType string) *Condition {
	for i := range r.Conditions {
		if r.Conditions[i].Type == condType {
			return &r.Conditions[i]
		}
	}
	return nil
}

// SetCondition replaces the condition of c's type, or appends it.
func (r *StatusReport) SetCondition(c Condition) {
	if old := r.Condition(c.Type); old != nil {
		*old = c
		return
	}
	r.Conditions = append(r.Conditions, c)
}

// StatusEnvelope is the data of the adapter's status CloudEvent: the
// resource reference plus exactly the body of PUT .../statuses, so that a
// bridge (or APISink) can forward the report unchanged.
type StatusEnvelope struct {
	Resource ObjectRef    `json:"resource"`
	Report   StatusReport `json:"report"`
}

// Validate applies the API's own rules, so that a report it would reject
// is caught here with a clear message: an adapter name, a generation >= 1,
// an observed time, and the mandatory Applied, Available and Health
// conditions with True, False or Unknown.
func (r *StatusReport) Validate() error {
	if r.Adapter == "" {
		return fmt.Errorf("status report: adapter is empty")
	}
	if r.ObservedGeneration < 1 {
		return fmt.Errorf("status report: observed_generation %d, want >= 1", r.ObservedGeneration)
	}
	if r.ObservedTime.IsZero() {
		return fmt.Errorf("status report: observed_time is not set")
	}
	for _, t := range []string{ConditionApplied, ConditionAvailable, ConditionHealth} {
		if r.Condition(t) == nil {
			return fmt.Errorf("status report: mandatory condition %s is missing", t)
		}
	}
	for _, c := range r.Conditions {
		if c.Status != True && c.Status != False && c.Status != Unknown {
			return fmt.Errorf("status report: condition %s has status %q, want True, False or Unknown", c.Type, c.Status)
		}
	}
	return nil
}
