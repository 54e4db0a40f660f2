package pipeline

import (
	"os"
	"path/filepath"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
)

// tracedHarness is the namespace harness with an SDK tracer provider whose
// spans are kept in memory.
func tracedHarness(t *testing.T, sink *captureSink) (*harness, *tracetest.SpanRecorder) {
	t.Helper()
	h := newHarness(t, harnessOpts{adapterType: "namespace", sink: sink})
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(t.Context()) })
	h.p.tracer = tp.Tracer(TracerName)
	return h, rec
}

func tracedSample(t *testing.T) []*events.Message {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("..", "testdata", "contracts", "sentinel-event-cluster-traced.json"))
	if err != nil {
		t.Fatal(err)
	}
	return []*events.Message{{TransportID: "m", Body: body, Attempt: 1}}
}

// spansByName splits the recorded spans into the event spans and the
// phase spans (by name).
func spansByName(rec *tracetest.SpanRecorder) (evSpans []sdktrace.ReadOnlySpan, phases map[string][]sdktrace.ReadOnlySpan) {
	phases = map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		if s.Name() == SpanEvent {
			evSpans = append(evSpans, s)
		} else {
			phases[s.Name()] = append(phases[s.Name()], s)
		}
	}
	return evSpans, phases
}

const (
	sampleTraceID = "0af7651916cd43dd8448eb211c80319c"
	sampleSpanID  = "b7ad6b7169203331"
)

// One event is one span, a child of the event's traceparent, with one
// child span per phase inside it; the status event carries the event
// span's context.
func TestTraceOfOneEvent(t *testing.T) {
	h, rec := tracedHarness(t, nil)
	h.run(t, tracedSample(t))

	evSpans, phases := spansByName(rec)
	if len(evSpans) != 1 {
		t.Fatalf("%d event spans, want 1", len(evSpans))
	}
	ev := evSpans[0]
	if got := ev.SpanContext().TraceID().String(); got != sampleTraceID {
		t.Errorf("trace id %s, want the traceparent's %s", got, sampleTraceID)
	}
	if got := ev.Parent().SpanID().String(); got != sampleSpanID || !ev.Parent().IsRemote() {
		t.Errorf("parent %s (remote %v), want the traceparent's span %s", got, ev.Parent().IsRemote(), sampleSpanID)
	}
	if ev.SpanKind() != trace.SpanKindConsumer {
		t.Errorf("span kind %s", ev.SpanKind())
	}
	attrs := map[string]string{}
	for _, a := range ev.Attributes() {
		attrs[string(a.Key)] = a.Value.Emit()
	}
	if attrs[string(AttrOutcome)] != string(Reconciled) || attrs[string(AttrKind)] != "Cluster" ||
		attrs[string(AttrEventID)] != "0198d2a4-5c1f-7a01-9c3e-1b2d3f4a5b6c" || attrs[string(AttrAttempts)] != "1" {
		t.Errorf("event span attributes %v", attrs)
	}
	for _, name := range []string{PhaseReadResource, PhaseBuild, PhaseDeliver, PhaseAwaitStatus, PhaseReport} {
		if len(phases[name]) != 1 {
			t.Errorf("%d %s spans, want 1", len(phases[name]), name)
			continue
		}
		s := phases[name][0]
		if s.Parent().SpanID() != ev.SpanContext().SpanID() || s.SpanContext().TraceID() != ev.SpanContext().TraceID() {
			t.Errorf("%s: parent %s in trace %s, want the event span %s", name, s.Parent().SpanID(), s.SpanContext().TraceID(), ev.SpanContext().SpanID())
		}
		if s.StartTime().Before(ev.StartTime()) || s.EndTime().After(ev.EndTime()) || s.EndTime().Before(s.StartTime()) {
			t.Errorf("%s: %s..%s outside the event span %s..%s", name, s.StartTime(), s.EndTime(), ev.StartTime(), ev.EndTime())
		}
	}
	if len(phases) != 5 {
		t.Errorf("phase spans %v, want the five phases", phases)
	}
	want := "00-" + sampleTraceID + "-" + ev.SpanContext().SpanID().String() + "-01"
	if got := h.sink.events[0].Extensions()["traceparent"]; got != want {
		t.Errorf("status event traceparent %v, want the event span's %s", got, want)
	}
}

// A retried event is still one span: each try's phases are its children,
// and the try that failed has no report phase.
func TestTraceOfRetriedEvent(t *testing.T) {
	h, rec := tracedHarness(t, &captureSink{failFirst: 1})
	h.run(t, tracedSample(t))

	evSpans, phases := spansByName(rec)
	if len(evSpans) != 1 {
		t.Fatalf("%d event spans, want 1 for one event tried twice", len(evSpans))
	}
	for name, want := range map[string]int{PhaseReadResource: 2, PhaseBuild: 2, PhaseDeliver: 2, PhaseAwaitStatus: 2, PhaseReport: 1} {
		if len(phases[name]) != want {
			t.Errorf("%d %s spans, want %d", len(phases[name]), name, want)
		}
		for _, s := range phases[name] {
			if s.Parent().SpanID() != evSpans[0].SpanContext().SpanID() {
				t.Errorf("%s: parent %s, want the event span", name, s.Parent().SpanID())
			}
		}
	}
	attempts := int64(-1)
	for _, a := range evSpans[0].Attributes() {
		if a.Key == AttrAttempts {
			attempts = a.Value.AsInt64()
		}
	}
	if attempts != 2 {
		t.Errorf("%s = %d, want 2", AttrAttempts, attempts)
	}
}

// An event without a traceparent starts a trace of its own, and the status
// event carries it.
func TestTraceOfUntracedEvent(t *testing.T) {
	h, rec := tracedHarness(t, nil)
	msgs := loadRecording(t, "namespace.jsonl")[:1]
	if ev, err := events.NewDecoder().Decode(msgs[0]); err != nil || ev.TraceParent != "" {
		t.Fatalf("first namespace recording: %v, traceparent %q; want an untraced event", err, ev.TraceParent)
	}
	h.run(t, msgs)
	evSpans, _ := spansByName(rec)
	if len(evSpans) != 1 || evSpans[0].Parent().IsValid() {
		t.Fatalf("event spans %v, want one root span", evSpans)
	}
	sc := evSpans[0].SpanContext()
	want := "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"
	if got := h.sink.events[0].Extensions()["traceparent"]; got != want {
		t.Errorf("status event traceparent %v, want %s", got, want)
	}
}
