package pipeline

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
)

func TestMetricsCountWhatHappened(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, "namespace")
	h := newHarness(t, harnessOpts{adapterType: "namespace",
		wrap: func(d maestro.Delivery) maestro.Delivery { return maestro.Instrument(d, m) }})
	h.p.observer = m
	msgs := []*events.Message{snapshotMsg(t, "e1", "c1", 1), snapshotMsg(t, "e2", "c2", 1), {TransportID: "junk", Body: []byte("{"), Attempt: 1}}
	h.run(t, msgs)

	if got := testutil.ToFloat64(m.received); got != 3 {
		t.Errorf("received %v", got)
	}
	if got := testutil.ToFloat64(m.handled.WithLabelValues("reconciled")); got != 2 {
		t.Errorf("reconciled %v", got)
	}
	if got := testutil.ToFloat64(m.deadLettered); got != 1 {
		t.Errorf("dead-lettered %v", got)
	}
	if got := testutil.ToFloat64(m.reports); got != 2 {
		t.Errorf("reports %v", got)
	}
	if got := testutil.ToFloat64(m.inFlight); got != 0 {
		t.Errorf("in flight %v after the run", got)
	}
	out, err := testutil.CollectAndLint(m.delivery)
	if err != nil || len(out) != 0 {
		t.Errorf("lint: %v %v", out, err)
	}
	n, err := testutil.GatherAndCount(reg, "hyperfleet_adapter_delivery_call_duration_seconds", "hyperfleet_adapter_phase_duration_seconds")
	if err != nil || n < 2 {
		t.Errorf("delivery and phase histograms: %d series, %v", n, err)
	}
	exp := `hyperfleet_adapter_events_handled_total{adapter_type="namespace",outcome="reconciled"} 2`
	if err := testutil.GatherAndCompare(reg, strings.NewReader("# HELP hyperfleet_adapter_events_handled_total Events handled, by outcome (reconciled, skipped, gone, superseded, preconditions_not_met, failed, requeued).\n# TYPE hyperfleet_adapter_events_handled_total counter\n"+exp+"\n"), "hyperfleet_adapter_events_handled_total"); err != nil {
		t.Error(err)
	}
}
