package apiclient

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
)

// headerRecorder keeps the traceparent header of each request and passes
// the request on to the API stand-in.
type headerRecorder struct {
	next http.Handler
	mu   sync.Mutex
	seen []string
}

func (h *headerRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	h.seen = append(h.seen, r.Header.Get("traceparent"))
	h.mu.Unlock()
	h.next.ServeHTTP(w, r)
}

// The status PUT carries the trace context of the event it reports on as
// a W3C traceparent header, and none when there is none.
func TestAPISinkSendsTraceParent(t *testing.T) {
	api := &apiStandIn{current: 2, stored: map[string]int64{}, lastBody: map[string][]byte{}}
	rec := &headerRecorder{next: api}
	sink := NewStatusSink(newTestClient(t, rec, ""))
	all := []string{hyperfleet.ConditionApplied, hyperfleet.ConditionAvailable, hyperfleet.ConditionHealth}

	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(),
		trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
	if err := sink.Publish(ctx, statusEvent(t, report(2, all...))); err != nil {
		t.Fatal(err)
	}
	if err := sink.Publish(context.Background(), statusEvent(t, report(2, all...))); err != nil {
		t.Fatal(err)
	}
	want := []string{"00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01", ""}
	if len(rec.seen) != 2 || rec.seen[0] != want[0] || rec.seen[1] != want[1] {
		t.Fatalf("traceparent headers %q, want %q", rec.seen, want)
	}
}
