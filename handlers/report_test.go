package handlers_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/handlers"
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/deliverytest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/embedded"
)

var reportNow = time.Date(2026, 8, 20, 12, 15, 30, 0, time.FixedZone("CEST", 2*3600))

// cond is a work condition the agent reported at observedGeneration.
func cond(typ string, status metav1.ConditionStatus, observedGeneration int64, reason, msg string) metav1.Condition {
	return metav1.Condition{Type: typ, Status: status, ObservedGeneration: observedGeneration, Reason: reason, Message: msg}
}

// stored returns an Observed for a work as Maestro would report it: built
// by a real handler, at Maestro version `version`, carrying the resource
// generation `gen`, with the given conditions.
func stored(t *testing.T, name string, gen, version int64, conds ...metav1.Condition) handlers.Observed {
	t.Helper()
	w := must(newHandler(t, handlers.Config{Type: handlers.TypeNamespace}).Build(handlers.Target{Resource: loadResource(t, "cluster-gen1")}))[0]
	w.Name = name
	w.Generation = version
	w.Annotations[workmeta.AnnotationGeneration] = fmt.Sprint(gen)
	w.Status.Conditions = conds
	return handlers.Observed{Name: name, Consumer: w.Namespace, Work: w}
}

func gone(name string) handlers.Observed {
	return handlers.Observed{Name: name, Consumer: "hp-cluster-abc12"}
}

func allGood(version int64) []metav1.Condition {
	return []metav1.Condition{
		cond(workv1.WorkApplied, metav1.ConditionTrue, version, "AppliedManifestWorkComplete", "Apply manifest work complete"),
		cond(workv1.WorkAvailable, metav1.ConditionTrue, version, "ResourcesAvailable", "All resources are available"),
	}
}

type wantCond struct{ status, reason, msg string }

func TestReport(t *testing.T) {
	const w1, w2 = "hyperfleet-hp-cluster-abc12-namespace", "hyperfleet-hp-cluster-abc12-zz"
	tests := []struct {
		name      string
		resource  string
		deleting  bool
		observed  func(t *testing.T) []handlers.Observed
		applied   wantCond
		available wantCond
		health    wantCond
		finalized wantCond
	}{
		{
			name: "all applied and available", resource: "cluster-gen1",
			observed:  func(t *testing.T) []handlers.Observed { return []handlers.Observed{stored(t, w1, 1, 1, allGood(1)...)} },
			applied:   wantCond{"True", "ManifestWorksApplied", "The adapter's ManifestWork is applied at generation 1."},
			available: wantCond{"True", "ManifestWorksAvailable", ""},
			health:    wantCond{"True", "Healthy", ""},
			finalized: wantCond{"False", "NotDeleting", ""},
		},
		{
			name: "stale observed generation", resource: "cluster-gen2",
			observed:  func(t *testing.T) []handlers.Observed { return []handlers.Observed{stored(t, w1, 2, 2, allGood(1)...)} },
			applied:   wantCond{"Unknown", "ManifestWorkStatusStale", "for version 1, the work is at 2"},
			available: wantCond{"Unknown", "ManifestWorkStatusStale", w1},
			health:    wantCond{"True", "Healthy", ""},
			finalized: wantCond{"False", "NotDeleting", ""},
		},
		{
			name: "not yet reported", resource: "cluster-gen1",
			observed:  func(t *testing.T) []handlers.Observed { return []handlers.Observed{stored(t, w1, 1, 1)} },
			applied:   wantCond{"Unknown", "ManifestWorkStatusNotReported", "has not reported Applied"},
			available: wantCond{"Unknown", "ManifestWorkStatusNotReported", "has not reported Available"},
			health:    wantCond{"True", "Healthy", ""},
			finalized: wantCond{"False", "NotDeleting", ""},
		},
		{
			name: "status wait ran out", resource: "cluster-gen1",
			observed: func(t *testing.T) []handlers.Observed {
				o := stored(t, w1, 1, 1)
				o.StatusTimeout = 30 * time.Second
				return []handlers.Observed{o}
			},
			applied:   wantCond{"Unknown", "ManifestWorkStatusNotReported", "has not reported Applied"},
			available: wantCond{"Unknown", "ManifestWorkStatusNotReported", ""},
			health:    wantCond{"Unknown", "StatusTimeout", "did not report its status within STATUS_TIMEOUT (30s)"},
			finalized: wantCond{"False", "NotDeleting", ""},
		},
		{
			name: "status wait ran out but the agent had reported", resource: "cluster-gen1",
			observed: func(t *testing.T) []handlers.Observed {
				o := stored(t, w1, 1, 1, allGood(1)...)
				o.StatusTimeout = 30 * time.Second
				return []handlers.Observed{o}
			},
			applied:   wantCond{"True", "ManifestWorksApplied", ""},
			available: wantCond{"True", "ManifestWorksAvailable", ""},
			health:    wantCond{"True", "Healthy", ""},
			finalized: wantCond{"False", "NotDeleting", ""},
		},
		{
			name: "a failure outweighs a status timeout in Health", resource: "cluster-gen1",
			observed: func(t *testing.T) []handlers.Observed {
				o := stored(t, w1, 1, 1)
				o.StatusTimeout = 30 * time.Second
				bad := gone(w2)
				bad.Err = errors.New("maestro unavailable")
				return []handlers.Observed{o, bad}
			},
			applied:   wantCond{"False", "ManifestWorkNotDelivered", ""},
			available: wantCond{"False", "ManifestWorkNotDelivered", ""},
			health:    wantCond{"False", "DeliveryFailed", "maestro unavailable"},
			finalized: wantCond{"False", "NotDeleting", ""},
		},
		{
			name: "work still at the previous generation", resource: "cluster-gen2",
			observed:  func(t *testing.T) []handlers.Observed { return []handlers.Observed{stored(t, w1, 1, 1, allGood(1)...)} },
			applied:   wantCond{"Unknown", "ManifestWorkOutdated", "still carries generation 1, not 2"},
			available: wantCond{"Unknown", "ManifestWorkOutdated", ""},
			health:    wantCond{"True", "Healthy", ""},
			finalized: wantCond{"False", "NotDeleting", ""},
		},
		{
			name: "agent failure", resource: "cluster-gen1",
			observed: func(t *testing.T) []handlers.Observed {
				return []handlers.Observed{stored(t, w1, 1, 3,
					cond(workv1.WorkApplied, metav1.ConditionFalse, 3, "AppliedManifestWorkFailed", "Failed to apply manifest work: namespaces is forbidden"),
					cond(workv1.WorkAvailable, metav1.ConditionFalse, 3, "ResourcesNotAvailable", "1 of 2 resources are not available"))}
			},
			applied:   wantCond{"False", "AppliedManifestWorkFailed", "ManifestWork " + w1 + " on consumer hp-cluster-abc12: Failed to apply manifest work: namespaces is forbidden"},
			available: wantCond{"False", "ResourcesNotAvailable", "1 of 2 resources"},
			health:    wantCond{"True", "Healthy", ""},
			finalized: wantCond{"False", "NotDeleting", ""},
		},
		{
			name: "degraded", resource: "cluster-gen1",
			observed: func(t *testing.T) []handlers.Observed {
				return []handlers.Observed{stored(t, w1, 1, 1, append(allGood(1),
					cond(workv1.WorkDegraded, metav1.ConditionTrue, 1, "CrashLooping", "pod x is crash looping"))...)}
			},
			applied:   wantCond{"True", "ManifestWorksApplied", ""},
			available: wantCond{"True", "ManifestWorksAvailable", ""},
			health:    wantCond{"False", "ManifestWorkDegraded", "is degraded: pod x is crash looping"},
			finalized: wantCond{"False", "NotDeleting", ""},
		},
		{
			name: "delivery error", resource: "cluster-gen1",
			observed: func(t *testing.T) []handlers.Observed {
				o := gone(w1)
				o.Err = errors.New("maestro unavailable: connection refused")
				return []handlers.Observed{o}
			},
			applied:   wantCond{"False", "ManifestWorkNotDelivered", "not delivered: maestro unavailable"},
			available: wantCond{"False", "ManifestWorkNotDelivered", ""},
			health:    wantCond{"False", "DeliveryFailed", "ManifestWork " + w1 + " on consumer hp-cluster-abc12: maestro unavailable: connection refused"},
			finalized: wantCond{"False", "NotDeleting", ""},
		},
		{
			name: "newer generation already stored is not a failure", resource: "cluster-gen1",
			observed: func(t *testing.T) []handlers.Observed {
				o := stored(t, w1, 2, 2, allGood(2)...)
				o.Err = fmt.Errorf("apply: %w", workmeta.ErrStaleGeneration)
				return []handlers.Observed{o}
			},
			applied:   wantCond{"True", "ManifestWorksApplied", ""},
			available: wantCond{"True", "ManifestWorksAvailable", ""},
			health:    wantCond{"True", "Healthy", ""},
			finalized: wantCond{"False", "NotDeleting", ""},
		},
		{
			name: "work missing", resource: "cluster-gen1",
			observed:  func(t *testing.T) []handlers.Observed { return []handlers.Observed{gone(w1)} },
			applied:   wantCond{"Unknown", "ManifestWorkMissing", ""},
			available: wantCond{"Unknown", "ManifestWorkMissing", ""},
			health:    wantCond{"True", "Healthy", ""},
			finalized: wantCond{"False", "NotDeleting", ""},
		},
		{
			name: "false outweighs unknown, first false speaks, others counted", resource: "cluster-gen1",
			observed: func(t *testing.T) []handlers.Observed {
				bad := func(name string) handlers.Observed {
					return stored(t, name, 1, 1,
						cond(workv1.WorkApplied, metav1.ConditionFalse, 1, "AppliedManifestWorkFailed", "failed "+name),
						cond(workv1.WorkAvailable, metav1.ConditionTrue, 1, "", ""))
				}
				// Given out of order: the report sorts by consumer, name.
				return []handlers.Observed{bad(w2), stored(t, "a-pending", 1, 1), bad(w1)}
			},
			applied:   wantCond{"False", "AppliedManifestWorkFailed", "failed " + w1 + " (and 1 ManifestWork more in the same state)"},
			available: wantCond{"Unknown", "ManifestWorkStatusNotReported", "a-pending"},
			health:    wantCond{"True", "Healthy", ""},
			finalized: wantCond{"False", "NotDeleting", ""},
		},
		{
			name: "no works at all", resource: "cluster-gen1",
			observed:  func(t *testing.T) []handlers.Observed { return nil },
			applied:   wantCond{"True", "NoManifestWorks", ""},
			available: wantCond{"True", "NoManifestWorks", ""},
			health:    wantCond{"True", "Healthy", ""},
			finalized: wantCond{"False", "NotDeleting", ""},
		},
		{
			name: "deleting, every work gone", resource: "cluster-deleting-gen3", deleting: true,
			observed:  func(t *testing.T) []handlers.Observed { return []handlers.Observed{gone(w1), gone(w2)} },
			applied:   wantCond{"False", "ResourceDeleting", "are removed"},
			available: wantCond{"False", "ResourceDeleting", ""},
			health:    wantCond{"True", "Healthy", ""},
			finalized: wantCond{"True", "CleanupConfirmed", "The adapter's 2 ManifestWorks are deleted."},
		},
		{
			name: "deleting, a work still there", resource: "cluster-deleting-gen3", deleting: true,
			observed: func(t *testing.T) []handlers.Observed {
				return []handlers.Observed{gone(w1), stored(t, w2, 3, 4, allGood(4)...)}
			},
			applied:   wantCond{"False", "ResourceDeleting", "are being removed"},
			available: wantCond{"False", "ResourceDeleting", ""},
			health:    wantCond{"True", "Healthy", ""},
			finalized: wantCond{"False", "CleanupInProgress", "ManifestWork " + w2 + " on consumer hp-cluster-abc12 is still being deleted."},
		},
		{
			name: "deleting, delete failed", resource: "cluster-deleting-gen3", deleting: true,
			observed: func(t *testing.T) []handlers.Observed {
				o := gone(w1)
				o.Err = errors.New("maestro unavailable")
				return []handlers.Observed{o}
			},
			applied:   wantCond{"False", "ResourceDeleting", ""},
			available: wantCond{"False", "ResourceDeleting", ""},
			health:    wantCond{"False", "DeliveryFailed", "maestro unavailable"},
			finalized: wantCond{"False", "CleanupFailed", "could not be deleted: maestro unavailable"},
		},
	}
	camel := regexp.MustCompile(`^[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)*$`)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := loadResource(t, tt.resource)
			rep := handlers.Report("landing-zone", handlers.Target{Resource: r}, tt.deleting, tt.observed(t), reportNow)
			if rep.Adapter != "landing-zone" || rep.ObservedGeneration != r.Generation {
				t.Errorf("adapter %q generation %d, want landing-zone %d", rep.Adapter, rep.ObservedGeneration, r.Generation)
			}
			if !rep.ObservedTime.Equal(reportNow) || rep.ObservedTime.Location() != time.UTC {
				t.Errorf("observed_time %v, want %v in UTC", rep.ObservedTime, reportNow)
			}
			var types []string
			for _, c := range rep.Conditions {
				types = append(types, c.Type)
				if !camel.MatchString(c.Reason) {
					t.Errorf("%s reason %q is not CamelCase", c.Type, c.Reason)
				}
				if c.Message == "" {
					t.Errorf("%s has no message", c.Type)
				}
			}
			if got := strings.Join(types, ","); got != "Applied,Available,Health,Finalized" {
				t.Errorf("condition types %s", got)
			}
			for typ, want := range map[string]wantCond{"Applied": tt.applied, "Available": tt.available, "Health": tt.health, "Finalized": tt.finalized} {
				c := rep.Condition(typ)
				if c.Status != want.status || c.Reason != want.reason || !strings.Contains(c.Message, want.msg) {
					t.Errorf("%s = %s/%s %q, want %s/%s containing %q", typ, c.Status, c.Reason, c.Message, want.status, want.reason, want.msg)
				}
			}
			// Same input, same report.
			again := handlers.Report("landing-zone", handlers.Target{Resource: r}, tt.deleting, tt.observed(t), reportNow)
			a, _ := json.Marshal(rep)
			b, _ := json.Marshal(again)
			if string(a) != string(b) {
				t.Errorf("report not deterministic:\n%s\n%s", a, b)
			}
		})
	}
}

func TestReportData(t *testing.T) {
	o := stored(t, "hyperfleet-hp-cluster-abc12-namespace", 1, 2, allGood(2)...)
	status := `{"phase":"Active"}`
	secretStatus := `{"leak":"c2VjcmV0"}`
	o.Work.Status.ResourceStatus.Manifests = []workv1.ManifestCondition{
		{ // given out of order: reported by ordinal
			ResourceMeta:    workv1.ManifestResourceMeta{Ordinal: 1, Kind: "Secret", Version: "v1", Resource: "secrets", Name: "pull-secret", Namespace: "ns"},
			StatusFeedbacks: workv1.StatusFeedbackResult{Values: []workv1.FeedbackValue{{Name: "status", Value: workv1.FieldValue{Type: workv1.JsonRaw, JsonRaw: &secretStatus}}}},
		},
		{
			ResourceMeta:    workv1.ManifestResourceMeta{Ordinal: 0, Kind: "Namespace", Version: "v1", Resource: "namespaces", Name: "ns"},
			StatusFeedbacks: workv1.StatusFeedbackResult{Values: []workv1.FeedbackValue{{Name: "status", Value: workv1.FieldValue{Type: workv1.JsonRaw, JsonRaw: &status}}}},
			Conditions:      []metav1.Condition{cond("Applied", metav1.ConditionTrue, 0, "AppliedManifestComplete", ""), cond("Available", metav1.ConditionTrue, 0, "ResourceAvailable", "")},
		},
	}
	missing := gone("hyperfleet-hp-cluster-abc12-other")
	rep := handlers.Report("ns-adapter", handlers.Target{Resource: loadResource(t, "cluster-gen1")}, false, []handlers.Observed{o, missing}, reportNow)
	raw, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var decoded struct {
		ObservedGeneration json.RawMessage `json:"observed_generation"`
		Data               struct {
			Manifestworks []struct {
				Name       string
				Consumer   string
				Generation int64
				Exists     bool
				Applied    string
				Manifests  []struct {
					Kind       string
					Name       string
					Conditions map[string]string
					Feedback   map[string]any
				}
			}
		}
	}
	if err := json.Unmarshal(raw, &decoded); err != nil {
		t.Fatal(err)
	}
	if string(decoded.ObservedGeneration) != "1" {
		t.Errorf("observed_generation %s is not the integer 1", decoded.ObservedGeneration)
	}
	mws := decoded.Data.Manifestworks
	if len(mws) != 2 || mws[0].Name != "hyperfleet-hp-cluster-abc12-namespace" || mws[1].Name != "hyperfleet-hp-cluster-abc12-other" {
		t.Fatalf("manifestworks %+v", mws)
	}
	if mws[0].Consumer != "hp-cluster-abc12" || mws[0].Generation != 1 || !mws[0].Exists || mws[0].Applied != "True" {
		t.Errorf("first work %+v", mws[0])
	}
	if mws[1].Exists || mws[1].Generation != 0 {
		t.Errorf("missing work %+v", mws[1])
	}
	ms := mws[0].Manifests
	if len(ms) != 2 || ms[0].Kind != "Namespace" || ms[1].Kind != "Secret" {
		t.Fatalf("manifests %+v", ms)
	}
	if ms[0].Feedback["status"].(map[string]any)["phase"] != "Active" || ms[0].Conditions["Available"] != "True" {
		t.Errorf("namespace feedback %+v", ms[0])
	}
	if ms[1].Feedback != nil || strings.Contains(string(raw), "c2VjcmV0") {
		t.Errorf("secret feedback reached the report: %s", raw)
	}
}

// TestReportMatchesSampleShape checks the report against the field set of
// the contract's success sample.
func TestReportMatchesSampleShape(t *testing.T) {
	o := stored(t, "w", 1, 1, allGood(1)...)
	rep := handlers.Report("adapter1", handlers.Target{Resource: loadResource(t, "cluster-gen1")}, false, []handlers.Observed{o}, reportNow)
	got := map[string]any{}
	if err := json.Unmarshal(must(json.Marshal(rep)), &got); err != nil {
		t.Fatal(err)
	}
	var sample hyperfleet.StatusReport
	if err := json.Unmarshal(must(readSample("status-put-cluster-success.json")), &sample); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{}
	if err := json.Unmarshal(must(json.Marshal(sample)), &want); err != nil {
		t.Fatal(err)
	}
	for k := range want {
		if _, ok := got[k]; !ok {
			t.Errorf("report lacks %q, which the sample has", k)
		}
	}
	for i, c := range sample.Conditions {
		if rep.Conditions[i].Type != c.Type || (c.Type != "Finalized" && rep.Conditions[i].Status != c.Status) {
			t.Errorf("condition %d = %s/%s, sample has %s/%s", i, rep.Conditions[i].Type, rep.Conditions[i].Status, c.Type, c.Status)
		}
	}
}

func TestFailureReport(t *testing.T) {
	cause := errors.New("adapter pullsecret: cluster 019466a0 has no pull secret")
	conds := func(rep hyperfleet.StatusReport) string {
		var parts []string
		for _, c := range rep.Conditions {
			parts = append(parts, c.Type+"="+c.Status+"/"+c.Reason)
		}
		return strings.Join(parts, " ")
	}

	// Nothing built: everything False, naming the cause.
	rep := handlers.FailureReport("ps", handlers.Target{Resource: loadResource(t, "cluster-gen2")}, nil, cause, reportNow)
	if got, want := conds(rep), "Applied=False/ManifestWorksNotBuilt Available=False/ManifestWorksNotBuilt Health=False/ReconcileFailed Finalized=False/NotDeleting"; got != want {
		t.Errorf("conditions %s, want %s", got, want)
	}
	if rep.ObservedGeneration != 2 || !strings.Contains(rep.Condition("Health").Message, "has no pull secret") || !strings.Contains(rep.Condition("Applied").Message, "has no pull secret") {
		t.Errorf("report %+v does not name the cause at generation 2", rep)
	}

	// Deleting with nothing observed: cleanup is not confirmed.
	rep = handlers.FailureReport("ps", handlers.Target{Resource: loadResource(t, "cluster-deleting-gen3")}, nil, cause, reportNow)
	if got, want := conds(rep), "Applied=False/ResourceDeleting Available=False/ResourceDeleting Health=False/ReconcileFailed Finalized=False/CleanupFailed"; got != want {
		t.Errorf("deleting: conditions %s, want %s", got, want)
	}

	// Works observed: their state stands, Health carries the cause.
	o := stored(t, "w", 1, 1, allGood(1)...)
	rep = handlers.FailureReport("ps", handlers.Target{Resource: loadResource(t, "cluster-gen1")}, []handlers.Observed{o}, cause, reportNow)
	if got, want := conds(rep), "Applied=True/ManifestWorksApplied Available=True/ManifestWorksAvailable Health=False/ReconcileFailed Finalized=False/NotDeleting"; got != want {
		t.Errorf("observed: conditions %s, want %s", got, want)
	}
}

// TestPreconditionsNotMetReportIsTheSample: the report for unmet
// preconditions is the contract sample, field for field, but for the
// adapter, generation, time and the unmet preconditions it names.
func TestPreconditionsNotMetReportIsTheSample(t *testing.T) {
	var sample hyperfleet.StatusReport
	if err := json.Unmarshal(must(readSample("status-put-cluster-preconditions-not-met.json")), &sample); err != nil {
		t.Fatal(err)
	}
	rep := handlers.PreconditionsNotMetReport("dns", handlers.Target{Resource: loadResource(t, "cluster-gen1")},
		[]string{"validation adapter not available"}, sample.ObservedTime)
	if err := rep.Validate(); err != nil {
		t.Fatal(err)
	}
	got, want := must(json.Marshal(rep)), must(json.Marshal(sample))
	if string(got) != string(want) {
		t.Errorf("report\n%s\nwant the sample\n%s", got, want)
	}
}

// TestReportDataGolden: each adapter type's report carries, next to
// data.manifestworks, the values its works' feedback returns (a
// namespace's phase, a node pool's replicas, version and readiness, an
// ingress domain, a template's declared values), here as the embedded
// backend's simulated agent returns them: the works are built by the
// golden configurations, applied, and reported once the agent settled.
// The data is compared with testdata/golden/<type>/report-data.json
// (-update rewrites them).
func TestReportDataGolden(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	backend, err := embedded.New(embedded.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = backend.Close() })
	tracker := deliverytest.RunTracker(t, backend, log)

	wantKeys := map[string][]string{
		handlers.TypeNamespace:  {"namespace"},
		handlers.TypeNodePool:   {"nodepool"},
		handlers.TypePullSecret: nil, // a Secret reports nothing of itself
		handlers.TypeIDP:        {"oauth"},
		handlers.TypeIngress:    {"ingresscontroller"},
		handlers.TypeTemplate:   {"resourcequota"},
	}
	for typ, cfg := range goldenConfigs() {
		t.Run(typ, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			tg := target(t, goldenCases(typ)[0])
			works := must(newHandler(t, cfg).Build(tg))
			var observed []handlers.Observed
			for _, w := range works {
				exp := tracker.Expect(w.Namespace, w.Name)
				got, err := backend.Apply(ctx, w)
				if err != nil {
					t.Fatal(err)
				}
				settled, err := exp.Await(ctx, got, func(w *workv1.ManifestWork) bool {
					return w != nil && w.Generation >= got.Generation && maestro.StatusSettled(w)
				})
				exp.Cancel()
				if err != nil {
					t.Fatalf("the agent did not report on %s: %v", w.Name, err)
				}
				observed = append(observed, handlers.Observed{Name: w.Name, Consumer: w.Namespace, Work: settled})
			}
			rep := handlers.Report(cfg.Name, tg, false, observed, reportNow)
			var keys []string
			for k := range rep.Data {
				if k != handlers.DataKeyWorks {
					keys = append(keys, k)
				}
			}
			slices.Sort(keys)
			if fmt.Sprint(keys) != fmt.Sprint(wantKeys[typ]) {
				t.Errorf("data keys %v besides manifestworks, want %v", keys, wantKeys[typ])
			}
			got := must(json.MarshalIndent(rep.Data, "", "  "))
			golden := filepath.Join("testdata", "golden", typ, "report-data.json")
			if *update {
				if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if string(got)+"\n" != string(want) {
				t.Errorf("report data differs from %s:\n%s", golden, got)
			}
		})
	}
}

// TestReportDataTargetValues: one entry per manifest whose feedback
// returned values, keyed by kind; kinds that occur twice are keyed
// kind/namespace/name; a whole-status value gives its fields; secrets and
// manifests without feedback give none.
func TestReportDataTargetValues(t *testing.T) {
	o := stored(t, "w", 1, 1, allGood(1)...)
	str := func(s string) *string { return &s }
	i64 := func(i int64) *int64 { return &i }
	fb := func(vs ...workv1.FeedbackValue) workv1.StatusFeedbackResult {
		return workv1.StatusFeedbackResult{Values: vs}
	}
	o.Work.Status.ResourceStatus.Manifests = []workv1.ManifestCondition{
		{ResourceMeta: workv1.ManifestResourceMeta{Ordinal: 0, Kind: "Namespace", Version: "v1", Name: "lz"},
			StatusFeedbacks: fb(workv1.FeedbackValue{Name: "status", Value: workv1.FieldValue{Type: workv1.JsonRaw, JsonRaw: str(`{"phase":"Terminating","name":"not-this"}`)}})},
		{ResourceMeta: workv1.ManifestResourceMeta{Ordinal: 1, Group: "apps", Kind: "Deployment", Version: "v1", Name: "a", Namespace: "lz"},
			StatusFeedbacks: fb(workv1.FeedbackValue{Name: "ready", Value: workv1.FieldValue{Type: workv1.Integer, Integer: i64(2)}})},
		{ResourceMeta: workv1.ManifestResourceMeta{Ordinal: 2, Group: "apps", Kind: "Deployment", Version: "v1", Name: "b", Namespace: "lz"},
			StatusFeedbacks: fb(workv1.FeedbackValue{Name: "ready", Value: workv1.FieldValue{Type: workv1.Integer, Integer: i64(0)}})},
		{ResourceMeta: workv1.ManifestResourceMeta{Ordinal: 3, Kind: "Secret", Version: "v1", Name: "s", Namespace: "lz"},
			StatusFeedbacks: fb(workv1.FeedbackValue{Name: "data", Value: workv1.FieldValue{Type: workv1.String, String: str("c2VjcmV0")}})},
		{ResourceMeta: workv1.ManifestResourceMeta{Ordinal: 4, Kind: "ConfigMap", Version: "v1", Name: "c", Namespace: "lz"}},
	}
	rep := handlers.Report("a", handlers.Target{Resource: loadResource(t, "cluster-gen1")}, false, []handlers.Observed{o}, reportNow)
	delete(rep.Data, handlers.DataKeyWorks)
	got := string(must(json.Marshal(rep.Data)))
	want := `{"deployment/lz/a":{"name":"a","namespace":"lz","ready":2},"deployment/lz/b":{"name":"b","namespace":"lz","ready":0},"namespace":{"name":"lz","phase":"Terminating"}}`
	if got != want {
		t.Errorf("data %s\nwant %s", got, want)
	}
}
