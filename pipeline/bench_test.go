package pipeline

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/handlers"
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/deliverytest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/embedded"
)

// benchSource hands out prepared messages, then io.EOF. Settling only
// counts: the benchmark measures the pipeline, not a transport.
type benchSource struct {
	msgs  []*events.Message
	next  int
	acked atomic.Int64
	other atomic.Int64
}

func (s *benchSource) Receive(context.Context) (*events.Message, error) {
	if s.next == len(s.msgs) {
		return nil, io.EOF
	}
	m := s.msgs[s.next]
	s.next++
	m.Settler = (*benchSettler)(s)
	return m, nil
}

func (s *benchSource) Close() error { return nil }

type benchSettler benchSource

func (s *benchSettler) Ack(context.Context) error { s.acked.Add(1); return nil }
func (s *benchSettler) Requeue(context.Context, string) error {
	s.other.Add(1)
	return nil
}
func (s *benchSettler) DeadLetter(context.Context, string, int) error {
	s.other.Add(1)
	return nil
}

// memResources answers GetResource from JSON kept in memory, parsing it on
// every call as the API client parses a response.
type memResources map[string][]byte

func (m memResources) GetResource(_ context.Context, href string) (*hyperfleet.Resource, error) {
	raw, ok := m[href]
	if !ok {
		return nil, hyperfleet.ErrNotFound
	}
	return hyperfleet.ParseResource(raw, href)
}

// countSink stands for the status topic: it counts reports and keeps the
// last, so the benchmark can check that reports said Available.
type countSink struct {
	n    atomic.Int64
	mu   sync.Mutex
	last cloudevents.Event
}

func (s *countSink) Publish(_ context.Context, ev cloudevents.Event) error {
	s.n.Add(1)
	s.mu.Lock()
	s.last = ev
	s.mu.Unlock()
	return nil
}

// BenchmarkDispatch is the adapter's per-event cost with no network: one
// op is one Sentinel event for a distinct cluster going decode → read the
// resource → dispatch to the namespace handler → build → apply on the
// embedded backend → await the simulated agent's status → build the
// report → publish it to a counting sink → ack. ns/op is wall time per
// event (at concurrency > 1, events overlap); B/op and allocs/op are
// everything allocated per event, tracker and embedded agent included.
func BenchmarkDispatch(b *testing.B) {
	for _, concurrency := range []int{1, 16} {
		b.Run(fmt.Sprintf("concurrency-%d", concurrency), func(b *testing.B) {
			benchmarkDispatch(b, concurrency, nil)
		})
	}
	// Traces on: the SDK records the event's and its phases' spans and
	// batches them to an exporter that drops them (the cost of the
	// adapter's side; the OTLP encoding and network are the exporter's).
	b.Run("concurrency-1-traced", func(b *testing.B) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
		b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		benchmarkDispatch(b, 1, tp)
	})
}

func benchmarkDispatch(b *testing.B, concurrency int, tracer trace.TracerProvider) {
	log := slog.New(slog.DiscardHandler)
	backend, err := embedded.New(embedded.Options{Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = backend.Close() })
	tracker := deliverytest.RunTracker(b, backend, log)

	rule, err := handlers.ParseConsumerRule("fixed:bench")
	if err != nil {
		b.Fatal(err)
	}
	handler, err := handlers.New(handlers.Config{Type: handlers.TypeNamespace, Consumer: rule})
	if err != nil {
		b.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.AdapterName = handlers.TypeNamespace
	cfg.Concurrency = concurrency
	cfg.StatusTimeout = 10 * time.Second

	// Prepared outside the timer: the events and the API's answers.
	n := b.N
	msgs := make([]*events.Message, n)
	resources := make(memResources, n)
	for i := range n {
		id := fmt.Sprintf("019466a0-0000-7000-8000-%012d", i)
		href := "/api/hyperfleet/v1/clusters/" + id
		resources[href] = fmt.Appendf(nil, `{"kind":"Cluster","id":%q,"href":%q,"name":"bench-%d","generation":1,`+
			`"labels":{"team":"bench"},"spec":{"platform":{"type":"gcp","gcp":{"region":"us-east1"}}}}`, id, href, i)
		msgs[i] = &events.Message{TransportID: fmt.Sprint(i), Attempt: 1, Attributes: map[string]string{"_watermill_message_uuid": id},
			Body: fmt.Appendf(nil, `{"specversion":"1.0","id":"ev-%d","source":"hyperfleet-sentinel","type":"com.redhat.hyperfleet.cluster.reconcile",`+
				`"datacontenttype":"application/json","data":{"generation":1,"href":%q,"id":%q,"kind":"Cluster"}}`, i, href, id)}
	}
	sink := &countSink{}
	p, err := New(cfg, Deps{Decoder: events.NewDecoder(), Resources: resources, Handler: handler,
		Delivery: backend, Tracker: tracker, Sink: sink, Logger: log, Tracer: tracer})
	if err != nil {
		b.Fatal(err)
	}
	src := &benchSource{msgs: msgs}
	b.ReportAllocs()
	b.ResetTimer()
	if err := p.Run(context.Background(), src); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if got := src.acked.Load(); got != int64(n) || src.other.Load() != 0 {
		b.Fatalf("%d of %d events acked, %d requeued or dead-lettered", got, n, src.other.Load())
	}
	if got := sink.n.Load(); got != int64(n) {
		b.Fatalf("%d status reports for %d events", got, n)
	}
	var env hyperfleet.StatusEnvelope
	if err := sink.last.DataAs(&env); err != nil {
		b.Fatal(err)
	}
	if c := env.Report.Condition(hyperfleet.ConditionAvailable); c == nil || c.Status != hyperfleet.True {
		b.Fatalf("last report: Available %+v, want True", c)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}
