package handlers

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
)

// Reasons of the conditions Report derives. Where the agent gave a reason
// for a False or Unknown condition, Report passes the agent's on instead.
const (
	ReasonApplied          = "ManifestWorksApplied"
	ReasonAvailable        = "ManifestWorksAvailable"
	ReasonNothingToApply   = "NoManifestWorks"
	ReasonNotDelivered     = "ManifestWorkNotDelivered"
	ReasonMissing          = "ManifestWorkMissing"
	ReasonOutdated         = "ManifestWorkOutdated"
	ReasonNotReported      = "ManifestWorkStatusNotReported"
	ReasonStale            = "ManifestWorkStatusStale"
	ReasonHealthy          = "Healthy"
	ReasonStatusTimeout    = "StatusTimeout"
	ReasonDeliveryFailed   = "DeliveryFailed"
	ReasonDegraded         = "ManifestWorkDegraded"
	ReasonNotDeleting      = "NotDeleting"
	ReasonDeleting         = "ResourceDeleting"
	ReasonCleanupPending   = "CleanupInProgress"
	ReasonCleanupConfirmed = "CleanupConfirmed"
	ReasonCleanupFailed    = "CleanupFailed"
	ReasonReconcileFailed  = "ReconcileFailed"
	ReasonNotBuilt         = "ManifestWorksNotBuilt"
)

// DataKeyWorks is the key of the report's data that lists the works.
const DataKeyWorks = "manifestworks"

// maxFeedbackBytes caps one feedback value in a report: the report is
// a PUT body and a status event, not a copy of the target's objects.
const maxFeedbackBytes = 8 << 10

// WorkReport is one entry of data.manifestworks: a work the adapter owns
// for the resource and what became of it.
type WorkReport struct {
	Name     string `json:"name"`
	Consumer string `json:"consumer"`
	// Generation is the resource generation the work was built from (its
	// hyperfleet.io/generation annotation); 0 when the work is gone.
	Generation int64 `json:"generation,omitempty"`
	// Exists is false once the work is gone (or was never delivered).
	Exists bool `json:"exists"`
	// Applied, Available and Degraded are the agent's conditions when they
	// are fresh (observed at the work's current version), else Unknown.
	Applied   string           `json:"applied,omitempty"`
	Available string           `json:"available,omitempty"`
	Degraded  string           `json:"degraded,omitempty"`
	Error     string           `json:"error,omitempty"`
	Manifests []ManifestReport `json:"manifests,omitempty"`
}

// ManifestReport is what the agent reported for one manifest of a work.
type ManifestReport struct {
	Group     string `json:"group,omitempty"`
	Version   string `json:"version,omitempty"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
	// Conditions maps condition type to status (Applied, Available, ...).
	Conditions map[string]string `json:"conditions,omitempty"`
	// Feedback maps each feedback rule's name to its value; JSON values
	// (the ".status" rule) are decoded.
	Feedback map[string]any `json:"feedback,omitempty"`
}

// Report derives an adapter's status report (CONTRACTS.md §3) for the
// target from what became of its works. It is pure: the same input gives
// the same report.
//
//   - observed_generation is the resource's generation.
//   - Applied / Available are True only when every work carries the
//     resource's generation and the agent reports the condition True at the
//     work's current version (condition observedGeneration = the work's
//     generation); Unknown while that has not been reported; False, with
//     the agent's reason and message, otherwise. Any False outweighs any
//     Unknown; the message names the first work concerned.
//   - Health is False when a delivery failed (Observed.Err) or the agent
//     reports a work Degraded; Unknown (reason StatusTimeout, the message
//     naming STATUS_TIMEOUT) while a work's Applied or Available is Unknown
//     because the status wait ran out (Observed.StatusTimeout); else True.
//   - Finalized is always present: False/NotDeleting for a live resource;
//     while deleting, True/CleanupConfirmed once every work is gone.
//   - data.manifestworks lists every work with its consumer, the
//     generation it carries and its per-manifest conditions and feedback.
//   - Next to it, data holds the values read back from the target: one
//     entry per manifest whose feedback returned any (addTargetValues).
func Report(adapterName string, t Target, deleting bool, observed []Observed, now time.Time) hyperfleet.StatusReport {
	var gen int64
	if t.Resource != nil {
		gen = t.Resource.Generation
	}
	obs := slices.Clone(observed)
	slices.SortStableFunc(obs, func(a, b Observed) int {
		return cmp.Or(cmp.Compare(a.Consumer, b.Consumer), cmp.Compare(a.Name, b.Name))
	})

	works := make([]WorkReport, 0, len(obs))
	var applied, available, health, finalized verdict
	for _, o := range obs {
		w := WorkReport{Name: o.Name, Consumer: o.Consumer, Exists: o.Work != nil}
		where := describeWork(o.Name, o.Consumer)
		failed := o.Err != nil && !errors.Is(o.Err, workmeta.ErrStaleGeneration)
		if failed {
			w.Error = o.Err.Error()
			health.add(hyperfleet.False, ReasonDeliveryFailed, where+": "+o.Err.Error())
		}
		if o.Work != nil {
			w.Generation = workGeneration(o.Work)
			w.Manifests = manifestReports(o.Work)
		}
		if deleting {
			switch {
			case failed:
				finalized.add(hyperfleet.False, ReasonCleanupFailed, where+" could not be deleted: "+o.Err.Error())
			case o.Work != nil:
				finalized.add(hyperfleet.False, ReasonCleanupPending, where+" is still being deleted.")
			}
			works = append(works, w)
			continue
		}
		a := workCondition(o, failed, gen, workv1.WorkApplied)
		v := workCondition(o, failed, gen, workv1.WorkAvailable)
		w.Applied, w.Available = a.status, v.status
		applied.add(a.status, a.reason, where+": "+a.message)
		available.add(v.status, v.reason, where+": "+v.message)
		if o.StatusTimeout > 0 && (a.status == hyperfleet.Unknown || v.status == hyperfleet.Unknown) {
			health.add(hyperfleet.Unknown, ReasonStatusTimeout, fmt.Sprintf(
				"%s: the agent did not report its status within STATUS_TIMEOUT (%s); it is reported when the agent answers.", where, o.StatusTimeout))
		}
		if o.Work != nil {
			if c := freshCondition(o.Work, workv1.WorkDegraded); c != nil {
				w.Degraded = string(c.Status)
				if c.Status == metav1.ConditionTrue {
					health.add(hyperfleet.False, ReasonDegraded, where+" is degraded: "+orDefault(c.Message, c.Reason))
				}
			}
		}
		works = append(works, w)
	}

	n := len(obs)
	report := hyperfleet.StatusReport{
		Adapter:            adapterName,
		ObservedGeneration: gen,
		ObservedTime:       now.UTC(),
		Data:               map[string]any{DataKeyWorks: works},
	}
	addTargetValues(report.Data, works)
	if deleting {
		msg := "The resource is marked for deletion; its ManifestWorks are being removed."
		if finalized.status == "" {
			msg = "The resource is marked for deletion; its ManifestWorks are removed."
		}
		report.Conditions = append(report.Conditions,
			hyperfleet.Condition{Type: hyperfleet.ConditionApplied, Status: hyperfleet.False, Reason: ReasonDeleting, Message: msg},
			hyperfleet.Condition{Type: hyperfleet.ConditionAvailable, Status: hyperfleet.False, Reason: ReasonDeleting, Message: msg},
		)
	} else {
		report.Conditions = append(report.Conditions,
			applied.condition(hyperfleet.ConditionApplied, noWorks(n, ReasonApplied, "applied", gen)),
			available.condition(hyperfleet.ConditionAvailable, noWorks(n, ReasonAvailable, "available", gen)),
		)
	}
	report.Conditions = append(report.Conditions,
		health.condition(hyperfleet.ConditionHealth, hyperfleet.Condition{Status: hyperfleet.True, Reason: ReasonHealthy, Message: "All adapter operations completed successfully."}))
	if deleting {
		report.Conditions = append(report.Conditions, finalized.condition(hyperfleet.ConditionFinalized,
			hyperfleet.Condition{Status: hyperfleet.True, Reason: ReasonCleanupConfirmed, Message: theWorks(n) + " deleted."}))
	} else {
		report.Conditions = append(report.Conditions, hyperfleet.Condition{
			Type: hyperfleet.ConditionFinalized, Status: hyperfleet.False, Reason: ReasonNotDeleting, Message: "The resource is not marked for deletion."})
	}
	return report
}

// FailureReport is the report for an event the adapter gives up on (the
// message is about to be dead-lettered): Health is False with reason
// ReconcileFailed and the cause as message. The other conditions are
// Report's for whatever was observed; when nothing was (the works could not
// even be built), Applied and Available are False and, for a resource
// being deleted, so is Finalized, all naming the cause. cause must not
// carry secrets; the handlers' errors never do.
func FailureReport(adapterName string, t Target, observed []Observed, cause error, now time.Time) hyperfleet.StatusReport {
	deleting := t.Resource != nil && t.Resource.Deleting()
	report := Report(adapterName, t, deleting, observed, now)
	msg := "The adapter gave up on this generation."
	if cause != nil {
		msg = "The adapter gave up on this generation: " + cause.Error()
	}
	report.SetCondition(hyperfleet.Condition{Type: hyperfleet.ConditionHealth, Status: hyperfleet.False, Reason: ReasonReconcileFailed, Message: msg})
	if len(observed) == 0 {
		notBuilt := "No ManifestWork was built."
		if cause != nil {
			notBuilt = "No ManifestWork was built: " + cause.Error()
		}
		if !deleting {
			report.SetCondition(hyperfleet.Condition{Type: hyperfleet.ConditionApplied, Status: hyperfleet.False, Reason: ReasonNotBuilt, Message: notBuilt})
			report.SetCondition(hyperfleet.Condition{Type: hyperfleet.ConditionAvailable, Status: hyperfleet.False, Reason: ReasonNotBuilt, Message: notBuilt})
		} else {
			report.SetCondition(hyperfleet.Condition{Type: hyperfleet.ConditionFinalized, Status: hyperfleet.False, Reason: ReasonCleanupFailed, Message: notBuilt})
		}
	}
	return report
}

// noWorks is the True condition of Applied or Available.
func noWorks(n int, reason, state string, gen int64) hyperfleet.Condition {
	if n == 0 {
		return hyperfleet.Condition{Status: hyperfleet.True, Reason: ReasonNothingToApply, Message: "The adapter has no ManifestWork for this resource."}
	}
	return hyperfleet.Condition{Status: hyperfleet.True, Reason: reason, Message: fmt.Sprintf("%s %s at generation %d.", theWorks(n), state, gen)}
}

// theWorks starts a sentence about the adapter's n works.
func theWorks(n int) string {
	if n == 1 {
		return "The adapter's ManifestWork is"
	}
	return fmt.Sprintf("The adapter's %d ManifestWorks are", n)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

func describeWork(name, consumer string) string {
	return fmt.Sprintf("ManifestWork %s on consumer %s", name, consumer)
}

func orDefault(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

// verdict folds the per-work states of one condition: False outweighs
// Unknown outweighs True, and the first work in the worst state speaks.
type verdict struct {
	status, reason, message string
	count                   int // works in the worst state
}

func severity(status string) int {
	switch status {
	case hyperfleet.False:
		return 2
	case hyperfleet.Unknown:
		return 1
	}
	return 0
}

func (v *verdict) add(status, reason, message string) {
	if status == hyperfleet.True {
		return
	}
	switch s := severity(status); {
	case s > severity(v.status):
		*v = verdict{status: status, reason: reason, message: message, count: 1}
	case s == severity(v.status):
		v.count++
	}
}

// condition is the folded condition, or ok when no work was worse than True.
func (v *verdict) condition(condType string, ok hyperfleet.Condition) hyperfleet.Condition {
	if v.status == "" {
		ok.Type = condType
		return ok
	}
	msg := v.message
	if v.count > 1 {
		msg += fmt.Sprintf(" (and %s more in the same state)", plural(v.count-1, "ManifestWork"))
	}
	return hyperfleet.Condition{Type: condType, Status: v.status, Reason: v.reason, Message: msg}
}

// state is one work's verdict on one condition.
type state struct{ status, reason, message string }

// workCondition judges one condition of one work for a live resource.
func workCondition(o Observed, failed bool, gen int64, condType string) state {
	switch {
	case o.Work == nil && failed:
		return state{hyperfleet.False, ReasonNotDelivered, "not delivered: " + o.Err.Error()}
	case o.Work == nil:
		return state{hyperfleet.Unknown, ReasonMissing, "not found at Maestro yet."}
	}
	if wg := workGeneration(o.Work); wg < gen {
		return state{hyperfleet.Unknown, ReasonOutdated, fmt.Sprintf("still carries generation %d, not %d.", wg, gen)}
	}
	c := meta.FindStatusCondition(o.Work.Status.Conditions, condType)
	if c == nil {
		return state{hyperfleet.Unknown, ReasonNotReported, fmt.Sprintf("the agent has not reported %s yet.", condType)}
	}
	if c.ObservedGeneration < o.Work.Generation {
		return state{hyperfleet.Unknown, ReasonStale, fmt.Sprintf("the agent's %s condition is for version %d, the work is at %d.", condType, c.ObservedGeneration, o.Work.Generation)}
	}
	switch c.Status {
	case metav1.ConditionTrue:
		return state{status: hyperfleet.True}
	case metav1.ConditionFalse:
		return state{hyperfleet.False, orDefault(c.Reason, "ManifestWorkNot"+condType), orDefault(c.Message, condType+" is False.")}
	default:
		return state{hyperfleet.Unknown, orDefault(c.Reason, ReasonNotReported), orDefault(c.Message, condType+" is Unknown.")}
	}
}

// freshCondition is the work's condition of condType when the agent
// observed the work's current version, else nil.
func freshCondition(w *workv1.ManifestWork, condType string) *metav1.Condition {
	c := meta.FindStatusCondition(w.Status.Conditions, condType)
	if c == nil || c.ObservedGeneration < w.Generation {
		return nil
	}
	return c
}

// workGeneration is the resource generation a work was built from.
func workGeneration(w *workv1.ManifestWork) int64 {
	g, _ := workmeta.ResourceGeneration(w)
	return g
}

// manifestReports lists the agent's per-manifest status, by ordinal.
// Secrets contribute their identity only: nothing of their content or
// status may reach a report.
func manifestReports(w *workv1.ManifestWork) []ManifestReport {
	ms := slices.Clone(w.Status.ResourceStatus.Manifests)
	if len(ms) == 0 {
		return nil
	}
	slices.SortStableFunc(ms, func(a, b workv1.ManifestCondition) int {
		return cmp.Compare(a.ResourceMeta.Ordinal, b.ResourceMeta.Ordinal)
	})
	out := make([]ManifestReport, 0, len(ms))
	for _, m := range ms {
		rm := m.ResourceMeta
		r := ManifestReport{Group: rm.Group, Version: rm.Version, Kind: rm.Kind, Name: rm.Name, Namespace: rm.Namespace}
		if len(m.Conditions) > 0 {
			r.Conditions = make(map[string]string, len(m.Conditions))
			for _, c := range m.Conditions {
				r.Conditions[c.Type] = string(c.Status)
			}
		}
		if !(rm.Group == "" && rm.Kind == "Secret") {
			r.Feedback = feedback(m.StatusFeedbacks.Values)
		}
		out = append(out, r)
	}
	return out
}

func feedback(values []workv1.FeedbackValue) map[string]any {
	if len(values) == 0 {
		return nil
	}
	out := make(map[string]any, len(values))
	for _, fv := range values {
		v := fv.Value
		switch {
		case v.Integer != nil:
			out[fv.Name] = *v.Integer
		case v.String != nil:
			out[fv.Name] = *v.String
		case v.Boolean != nil:
			out[fv.Name] = *v.Boolean
		case v.JsonRaw != nil:
			if len(*v.JsonRaw) > maxFeedbackBytes {
				out[fv.Name] = fmt.Sprintf("(%d bytes, too large to report)", len(*v.JsonRaw))
				continue
			}
			var decoded any
			if err := json.Unmarshal([]byte(*v.JsonRaw), &decoded); err != nil {
				out[fv.Name] = *v.JsonRaw
				continue
			}
			out[fv.Name] = decoded
		}
	}
	return out
}

// addTargetValues puts the values the works' feedback returned into data,
// the way HyperFleet's own adapters report them (the contract samples'
// data.namespace.phase): one entry per manifest that returned any, keyed
// by its kind in lower case, holding its name, its namespace when it has
// one, and each feedback value by the rule's name; a "status" value that is
// a JSON object (the whole-status rule) gives its fields instead. Kinds
// that occur more than once are keyed kind/name (kind/namespace/name for
// namespaced ones). Secrets never have feedback (manifestReports).
func addTargetValues(data map[string]any, works []WorkReport) {
	type entry struct {
		key string
		m   ManifestReport
	}
	var entries []entry
	count := map[string]int{}
	for _, w := range works {
		for _, m := range w.Manifests {
			if len(m.Feedback) == 0 {
				continue
			}
			key := strings.ToLower(m.Kind)
			count[key]++
			entries = append(entries, entry{key, m})
		}
	}
	for _, e := range entries {
		key := e.key
		if count[key] > 1 {
			key = path.Join(key, e.m.Namespace, e.m.Name)
		}
		if _, taken := data[key]; taken {
			continue // never over data.manifestworks
		}
		v := map[string]any{"name": e.m.Name}
		if e.m.Namespace != "" {
			v["namespace"] = e.m.Namespace
		}
		if st, ok := e.m.Feedback[statusFeedback.Name].(map[string]any); ok {
			for k, x := range st {
				if _, set := v[k]; !set {
					v[k] = x
				}
			}
		}
		for k, x := range e.m.Feedback {
			if _, isObj := x.(map[string]any); k == statusFeedback.Name && isObj {
				continue
			}
			if k != "name" && k != "namespace" {
				v[k] = x
			}
		}
		data[key] = v
	}
}
