package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/events/recording"
	"github.com/openshift-hyperfleet/maestro-adapter/handlers"
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/deliverytest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/embedded"
)

// captureSink keeps every status event; failFirst makes the first N
// publishes fail transiently (a broker hiccup); before, when set, runs
// first on every publish (outside the lock: it may hold a publish back).
type captureSink struct {
	mu        sync.Mutex
	events    []cloudevents.Event
	failFirst int
	calls     int
	before    func(cloudevents.Event)
}

func (s *captureSink) Publish(_ context.Context, ev cloudevents.Event) error {
	if s.before != nil {
		s.before(ev)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.calls <= s.failFirst {
		return failure.Transient(errors.New("broker unavailable"))
	}
	s.events = append(s.events, ev)
	return nil
}

func (s *captureSink) reports(t *testing.T) []hyperfleet.StatusEnvelope {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []hyperfleet.StatusEnvelope
	for _, ev := range s.events {
		var env hyperfleet.StatusEnvelope
		if err := ev.DataAs(&env); err != nil {
			t.Fatal(err)
		}
		out = append(out, env)
	}
	return out
}

type harness struct {
	backend *embedded.Backend
	sink    *captureSink
	p       *Pipeline
}

type harnessOpts struct {
	adapterType string
	handlerCfg  func(*handlers.Config)
	cfg         func(*Config)
	backend     embedded.Options
	wrap        func(maestro.Delivery) maestro.Delivery
	reader      hyperfleet.ResourceReader
	sink        *captureSink
	deps        func(*Deps)
}

func newHarness(t *testing.T, o harnessOpts) *harness {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	o.backend.Logger = log
	backend, err := embedded.New(o.backend)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = backend.Close() })
	var delivery maestro.Delivery = backend
	if o.wrap != nil {
		delivery = o.wrap(backend)
	}
	tracker := deliverytest.RunTracker(t, delivery, log)

	hc := handlers.Config{Type: o.adapterType}
	if o.handlerCfg != nil {
		o.handlerCfg(&hc)
	}
	handler, err := handlers.New(hc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.AdapterName = o.adapterType
	cfg.RetryBaseDelay, cfg.RetryMaxDelay = time.Millisecond, 5*time.Millisecond
	cfg.StatusTimeout = 5 * time.Second
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	if o.reader == nil {
		o.reader = hyperfleet.DirReader{Dir: filepath.Join("..", "testdata", "api")}
	}
	if o.sink == nil {
		o.sink = &captureSink{}
	}
	deps := Deps{Decoder: events.NewDecoder(), Resources: o.reader, Handler: handler,
		Delivery: delivery, Tracker: tracker, Sink: o.sink, Logger: log}
	if o.deps != nil {
		o.deps(&deps)
	}
	p, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	return &harness{backend: backend, sink: o.sink, p: p}
}

func (h *harness) run(t *testing.T, msgs []*events.Message) *recording.Source {
	t.Helper()
	src := recording.NewSource(msgs)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.p.Run(ctx, src); err != nil {
		t.Fatal(err)
	}
	return src
}

func loadRecording(t *testing.T, name string) []*events.Message {
	t.Helper()
	msgs, err := recording.Load(filepath.Join("..", "testdata", "recordings", name))
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

func conditions(r hyperfleet.StatusReport) map[string]string {
	m := map[string]string{}
	for _, c := range r.Conditions {
		m[c.Type] = c.Status
	}
	return m
}

// Every recording of testdata replays end to end: one status event per
// recorded event, Applied/Available/Health True while the resource lives,
// Finalized True once it is deleted, and nothing left behind.
func TestReplayRecordingsEndToEnd(t *testing.T) {
	for _, typ := range handlers.Types() {
		t.Run(typ, func(t *testing.T) {
			h := newHarness(t, harnessOpts{adapterType: typ, handlerCfg: func(c *handlers.Config) {
				if c.Type == handlers.TypeTemplate {
					c.TemplateDir = filepath.Join("..", "testdata", "templates")
				}
			}, cfg: func(c *Config) { c.Coalesce = false }})
			msgs := loadRecording(t, typ+".jsonl")
			src := h.run(t, msgs)
			for _, o := range src.Outcomes() {
				if o.Settlement != "ack" {
					t.Errorf("%s: %s %s", o.TransportID, o.Settlement, o.Reason)
				}
			}
			reps := h.sink.reports(t)
			if len(reps) != len(msgs) {
				t.Fatalf("%d status events for %d recorded events", len(reps), len(msgs))
			}
			for _, env := range reps {
				c := conditions(env.Report)
				if env.Report.Adapter != typ || env.Report.ObservedGeneration < 1 || env.Resource.Href == "" {
					t.Errorf("report %+v", env)
				}
				if env.Report.ObservedGeneration == 3 {
					if c["Finalized"] != "True" || c["Health"] != "True" {
						t.Errorf("deletion: %v", c)
					}
				} else if c["Applied"] != "True" || c["Available"] != "True" || c["Health"] != "True" || c["Finalized"] != "False" {
					t.Errorf("generation %d: %v", env.Report.ObservedGeneration, c)
				}
				if err := env.Report.Validate(); err != nil {
					t.Error(err)
				}
			}
			if works := allWorks(t, h); len(works) != 0 {
				t.Errorf("%d works left after every resource was deleted", len(works))
			}
		})
	}
}

// The status event carries the input's trace context and names the
// resource as its subject.
func TestStatusEventAttributes(t *testing.T) {
	h := newHarness(t, harnessOpts{adapterType: "namespace"})
	body, _ := os.ReadFile(filepath.Join("..", "testdata", "contracts", "sentinel-event-cluster-traced.json"))
	// The traced sample names generation 2; the API directory has 1: the
	// adapter acts on what the API says.
	h.run(t, []*events.Message{{TransportID: "m", Body: body, Attempt: 1}})
	if len(h.sink.events) != 1 {
		t.Fatalf("%d events", len(h.sink.events))
	}
	ev := h.sink.events[0]
	if ev.Type() != events.StatusEventType || ev.Source() != "hyperfleet-adapter/namespace" ||
		ev.Subject() != "/api/hyperfleet/v1/clusters/019466a0-8f8e-7abc-9def-0123456789ab" ||
		ev.Extensions()["traceparent"] != "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" {
		t.Fatalf("attributes: %s", ev)
	}
	if env := h.sink.reports(t)[0]; env.Report.ObservedGeneration != 1 {
		t.Fatalf("observed generation %d, want the API's 1", env.Report.ObservedGeneration)
	}
}

// Replaying the same event twice yields the same works and no update.
func TestIdempotentReplay(t *testing.T) {
	h := newHarness(t, harnessOpts{adapterType: "namespace"})
	body, _ := os.ReadFile(filepath.Join("..", "testdata", "contracts", "sentinel-event-cluster.json"))
	h.run(t, []*events.Message{{TransportID: "1", Body: body, Attempt: 1}})
	first := allWorks(t, h)
	h.run(t, []*events.Message{{TransportID: "2", Body: body, Attempt: 1}})
	second := allWorks(t, h)
	if len(first) != 1 || len(second) != 1 {
		t.Fatalf("works: %d then %d", len(first), len(second))
	}
	if first[0].Generation != 1 || second[0].Generation != 1 || first[0].ResourceVersion != second[0].ResourceVersion {
		t.Fatalf("second replay updated the work: gen %d→%d rv %s→%s", first[0].Generation, second[0].Generation, first[0].ResourceVersion, second[0].ResourceVersion)
	}
	if len(h.sink.events) != 2 {
		t.Fatalf("want a status event per replay, got %d", len(h.sink.events))
	}
}

// A malformed message is dead-lettered with its reason; valid ones in the
// same run are still handled.
func TestMalformedDeadLetteredOthersHandled(t *testing.T) {
	h := newHarness(t, harnessOpts{adapterType: "namespace"})
	good, _ := os.ReadFile(filepath.Join("..", "testdata", "contracts", "sentinel-event-cluster.json"))
	bad, _ := os.ReadFile(filepath.Join("..", "events", "testdata", "malformed", "generation-string.json"))
	src := h.run(t, []*events.Message{
		{TransportID: "bad", Body: bad, Attempt: 1},
		{TransportID: "junk", Body: []byte("not json"), Attempt: 1},
		{TransportID: "good", Body: good, Attempt: 1},
	})
	got := map[string]recording.Outcome{}
	for _, o := range src.Outcomes() {
		got[o.TransportID] = o
	}
	if got["bad"].Settlement != "dead-letter" || !strings.Contains(got["bad"].Reason, "data.generation: must be a JSON integer") ||
		!strings.Contains(got["bad"].Reason, "event 0198d2a4-5c1e-7f3a-8b2d-4e6f8a0c2e41") {
		t.Errorf("bad: %+v", got["bad"])
	}
	if got["junk"].Settlement != "dead-letter" || !strings.Contains(got["junk"].Reason, "not a JSON object") {
		t.Errorf("junk: %+v", got["junk"])
	}
	if got["good"].Settlement != "ack" || len(h.sink.events) != 1 {
		t.Errorf("good: %+v, %d status events", got["good"], len(h.sink.events))
	}
	if c := h.p.Stats().Counts(); c[Failed] != 2 || c[Reconciled] != 1 {
		t.Errorf("stats %v", c)
	}
}

// flakyReader fails the first n reads transiently.
type flakyReader struct {
	hyperfleet.ResourceReader
	n     atomic.Int32
	calls atomic.Int32
}

func (f *flakyReader) GetResource(ctx context.Context, href string) (*hyperfleet.Resource, error) {
	f.calls.Add(1)
	if f.n.Add(-1) >= 0 {
		return nil, failure.Transient(errors.New("api: 503"))
	}
	return f.ResourceReader.GetResource(ctx, href)
}

func TestTransientFailureRetriedThenSucceeds(t *testing.T) {
	reader := &flakyReader{ResourceReader: hyperfleet.DirReader{Dir: filepath.Join("..", "testdata", "api")}}
	reader.n.Store(2)
	sink := &captureSink{failFirst: 1}
	h := newHarness(t, harnessOpts{adapterType: "namespace", reader: reader, sink: sink})
	body, _ := os.ReadFile(filepath.Join("..", "testdata", "contracts", "sentinel-event-cluster.json"))
	src := h.run(t, []*events.Message{{TransportID: "m", Body: body, Attempt: 1}})
	o := src.Outcomes()
	if len(o) != 1 || o[0].Settlement != "ack" {
		t.Fatalf("outcomes %+v", o)
	}
	// two API failures, then a publish failure (the work is applied
	// again, idempotently), then success; each of the last two tries reads
	// the resource twice: at the start and in the check before its report.
	if reader.calls.Load() != 6 || len(sink.events) != 1 {
		t.Fatalf("api calls %d, status events %d", reader.calls.Load(), len(sink.events))
	}
}

// failingDelivery refuses every Apply with err.
type failingDelivery struct {
	maestro.Delivery
	err   error
	calls atomic.Int32
}

func (f *failingDelivery) Apply(context.Context, *workv1.ManifestWork) (*workv1.ManifestWork, error) {
	f.calls.Add(1)
	return nil, f.err
}

// Retries run out: the event is dead-lettered with the attempt count, and
// a Health=False report names the cause.
func TestTransientExhaustedDeadLettersWithHealthFalse(t *testing.T) {
	fd := &failingDelivery{err: failure.Transient(errors.New("maestro: connection refused"))}
	h := newHarness(t, harnessOpts{adapterType: "namespace", cfg: func(c *Config) { c.MaxAttempts = 3 },
		wrap: func(d maestro.Delivery) maestro.Delivery { fd.Delivery = d; return fd }})
	body, _ := os.ReadFile(filepath.Join("..", "testdata", "contracts", "sentinel-event-cluster.json"))
	src := h.run(t, []*events.Message{{TransportID: "m", Body: body, Attempt: 1}})
	o := src.Outcomes()
	if len(o) != 1 || o[0].Settlement != "dead-letter" || o[0].Attempts != 3 || !strings.Contains(o[0].Reason, "connection refused") {
		t.Fatalf("outcome %+v", o)
	}
	if fd.calls.Load() != 3 {
		t.Fatalf("apply tried %d times, want 3", fd.calls.Load())
	}
	reps := h.sink.reports(t)
	if len(reps) != 1 {
		t.Fatalf("%d reports", len(reps))
	}
	health := reps[0].Report.Condition(hyperfleet.ConditionHealth)
	if health.Status != "False" || !strings.Contains(health.Message, "connection refused") {
		t.Fatalf("health %+v", health)
	}
}

// A permanent failure is not retried.
func TestPermanentFailureNotRetried(t *testing.T) {
	fd := &failingDelivery{err: failure.Permanent(errors.New("consumer \"x\" is not registered"))}
	h := newHarness(t, harnessOpts{adapterType: "namespace",
		wrap: func(d maestro.Delivery) maestro.Delivery { fd.Delivery = d; return fd }})
	body, _ := os.ReadFile(filepath.Join("..", "testdata", "contracts", "sentinel-event-cluster.json"))
	src := h.run(t, []*events.Message{{TransportID: "m", Body: body, Attempt: 1}})
	if o := src.Outcomes(); len(o) != 1 || o[0].Settlement != "dead-letter" || o[0].Attempts != 1 || fd.calls.Load() != 1 {
		t.Fatalf("outcome %+v, calls %d", o, fd.calls.Load())
	}
	if reps := h.sink.reports(t); len(reps) != 1 || reps[0].Report.Condition("Health").Status != "False" {
		t.Fatalf("reports %+v", reps)
	}
}

// A node pool event reaching a cluster-level adapter is acknowledged
// without action; a resource the API no longer has is acknowledged as
// gone.
func TestSkippedAndGone(t *testing.T) {
	h := newHarness(t, harnessOpts{adapterType: "namespace"})
	np, _ := os.ReadFile(filepath.Join("..", "testdata", "contracts", "sentinel-event-nodepool.json"))
	gone := []byte(`{"specversion":"1.0","id":"g","source":"s","type":"com.redhat.hyperfleet.cluster.reconcile","data":{"id":"nope","kind":"Cluster","href":"/api/hyperfleet/v1/clusters/nope","generation":4}}`)
	src := h.run(t, []*events.Message{{TransportID: "np", Body: np, Attempt: 1}, {TransportID: "gone", Body: gone, Attempt: 1}})
	for _, o := range src.Outcomes() {
		if o.Settlement != "ack" {
			t.Errorf("%+v", o)
		}
	}
	c := h.p.Stats().Counts()
	if c[Skipped] != 1 || c[Gone] != 1 || len(h.sink.events) != 0 {
		t.Fatalf("stats %v, %d status events", c, len(h.sink.events))
	}
}

// snapshotMsg builds a recording line for the sample cluster at gen.
func snapshotMsg(t *testing.T, id string, clusterID string, gen int64) *events.Message {
	t.Helper()
	base, err := os.ReadFile(filepath.Join("..", "testdata", "contracts", "cluster-get-response.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res map[string]any
	_ = json.Unmarshal(base, &res)
	res["id"] = clusterID
	res["name"] = "c-" + clusterID
	res["href"] = "/api/hyperfleet/v1/clusters/" + clusterID
	res["generation"] = gen
	res["labels"] = map[string]any{"gen": fmt.Sprint(gen)}
	snap, _ := json.Marshal(res)
	ev := fmt.Sprintf(`{"specversion":"1.0","id":%q,"source":"s","type":"com.redhat.hyperfleet.cluster.reconcile","data":{"id":%q,"kind":"Cluster","href":"/api/hyperfleet/v1/clusters/%s","generation":%d}}`, id, clusterID, clusterID, gen)
	return &events.Message{TransportID: id, Body: []byte(ev), Snapshot: snap, Attempt: 1}
}

// An older generation arriving after a newer one was delivered is
// superseded: the work stays at the newer generation and no report goes
// out for the stale event.
func TestOlderGenerationNeverRegresses(t *testing.T) {
	h := newHarness(t, harnessOpts{adapterType: "namespace"})
	h.run(t, []*events.Message{snapshotMsg(t, "e2", "c1", 2)})
	h.run(t, []*events.Message{snapshotMsg(t, "e1", "c1", 1)})
	works := allWorks(t, h)
	if len(works) != 1 || works[0].Annotations[workmeta.AnnotationGeneration] != "2" {
		t.Fatalf("works %+v", works)
	}
	if c := h.p.Stats().Counts(); c[Superseded] != 1 || len(h.sink.events) != 1 {
		t.Fatalf("stats %v, %d status events", c, len(h.sink.events))
	}
}

// concurrencyProbe counts concurrent Apply calls per consumer and overall.
type concurrencyProbe struct {
	maestro.Delivery
	mu         sync.Mutex
	now, peak  int
	perKey     map[string]int
	perKeyPeak int
	gate       chan struct{}
	// With rendezvous > 1, an Apply waits (up to rendezvousWait) until
	// that many have been running at once, so that parallelism the
	// pipeline allows is seen even when a loaded machine would finish each
	// Apply before the next one starts; a pipeline that serialises them
	// still shows a peak of 1.
	rendezvous int
	met        chan struct{} // closed when peak reaches rendezvous
}

const rendezvousWait = 2 * time.Second

func (c *concurrencyProbe) Apply(ctx context.Context, w *workv1.ManifestWork) (*workv1.ManifestWork, error) {
	c.mu.Lock()
	c.now++
	c.perKey[w.Namespace]++
	c.peak = max(c.peak, c.now)
	c.perKeyPeak = max(c.perKeyPeak, c.perKey[w.Namespace])
	if c.rendezvous > 1 && c.met == nil {
		c.met = make(chan struct{})
	}
	met := c.met
	if c.rendezvous > 1 && c.peak >= c.rendezvous {
		select {
		case <-met:
		default:
			close(met)
		}
	}
	c.mu.Unlock()
	if met != nil {
		t := time.NewTimer(rendezvousWait)
		select {
		case <-met:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	defer func() {
		c.mu.Lock()
		c.now--
		c.perKey[w.Namespace]--
		c.mu.Unlock()
	}()
	if c.gate != nil {
		select {
		case <-c.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return c.Delivery.Apply(ctx, w)
}

// Events for one resource run one at a time and queued ones coalesce into
// the newest generation; different resources run in parallel up to
// Concurrency.
func TestOrderingCoalescingAndParallelism(t *testing.T) {
	probe := &concurrencyProbe{perKey: map[string]int{}, rendezvous: 2}
	h := newHarness(t, harnessOpts{adapterType: "namespace", cfg: func(c *Config) { c.Concurrency = 4 },
		backend: embedded.Options{AgentDelay: 20 * time.Millisecond},
		wrap:    func(d maestro.Delivery) maestro.Delivery { probe.Delivery = d; return probe }})
	var msgs []*events.Message
	for gen := int64(1); gen <= 10; gen++ {
		for c := range 3 {
			msgs = append(msgs, snapshotMsg(t, fmt.Sprintf("e-%d-%d", c, gen), fmt.Sprintf("c%d", c), gen))
		}
	}
	src := h.run(t, msgs)
	for _, o := range src.Outcomes() {
		if o.Settlement != "ack" {
			t.Fatalf("%+v", o)
		}
	}
	works := allWorks(t, h)
	if len(works) != 3 {
		t.Fatalf("%d works", len(works))
	}
	for _, w := range works {
		if w.Annotations[workmeta.AnnotationGeneration] != "10" {
			t.Errorf("work %s/%s at generation %s, want 10", w.Namespace, w.Name, w.Annotations[workmeta.AnnotationGeneration])
		}
	}
	c := h.p.Stats().Counts()
	if c[Reconciled]+c[Superseded] != 30 || c[Superseded] == 0 {
		t.Fatalf("stats %v: want 30 settled with some coalesced", c)
	}
	if probe.perKeyPeak != 1 {
		t.Fatalf("%d applies ran at once for one resource", probe.perKeyPeak)
	}
	if probe.peak < 2 || probe.peak > 3 {
		t.Fatalf("peak concurrency %d, want 2..3 (three resources in parallel)", probe.peak)
	}
}

// On shutdown, intake stops, running events get the drain deadline, and
// whatever has not finished goes back to the source.
func TestShutdownRequeuesUnfinished(t *testing.T) {
	probe := &concurrencyProbe{perKey: map[string]int{}, gate: make(chan struct{})}
	h := newHarness(t, harnessOpts{adapterType: "namespace",
		cfg:  func(c *Config) { c.Concurrency = 2; c.DrainTimeout = 50 * time.Millisecond },
		wrap: func(d maestro.Delivery) maestro.Delivery { probe.Delivery = d; return probe }})
	var msgs []*events.Message
	for c := range 5 {
		msgs = append(msgs, snapshotMsg(t, fmt.Sprintf("e%d", c), fmt.Sprintf("c%d", c), 1))
	}
	src := recording.NewSource(msgs)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.p.Run(ctx, src) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		probe.mu.Lock()
		running := probe.now
		probe.mu.Unlock()
		if running == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("applies never started")
		}
		time.Sleep(time.Millisecond) // polling a condition with a deadline
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after shutdown")
	}
	var acked, requeued int
	for _, o := range src.Outcomes() {
		switch o.Settlement {
		case "ack":
			acked++
		case "requeue":
			requeued++
		default:
			t.Errorf("%+v", o)
		}
	}
	if acked != 0 || requeued == 0 {
		t.Fatalf("acked %d requeued %d: unfinished events must go back", acked, requeued)
	}
}

func allWorks(t *testing.T, h *harness) []workv1.ManifestWork {
	t.Helper()
	l, err := h.backend.Store.ManifestWorks(metav1.NamespaceAll).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

// An event still waiting for the agent at the drain deadline goes back to
// the source without a report: what it saw by then (Unknown conditions) is
// not the state, and the replica that takes it over reports the real one.
// An event that finishes inside the drain is reported and acknowledged.
func TestDrainDeadlineRequeuesWithoutAReport(t *testing.T) {
	for _, tc := range []struct {
		name       string
		agentDelay time.Duration
		settlement string
		reports    int
	}{
		{"agent reports after the deadline", 10 * time.Second, "requeue", 0},
		{"agent reports inside the drain", 300 * time.Millisecond, "ack", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{adapterType: "namespace",
				backend: embedded.Options{AgentDelay: tc.agentDelay},
				cfg:     func(c *Config) { c.DrainTimeout = 2 * time.Second; c.StatusTimeout = 30 * time.Second }})
			src := recording.NewSource([]*events.Message{snapshotMsg(t, "e1", "c1", 1)})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- h.p.Run(ctx, src) }()
			deadline := time.Now().Add(10 * time.Second)
			for len(allWorks(t, h)) == 0 { // applied: now waiting for the agent
				if time.Now().After(deadline) {
					t.Fatal("the work was never applied")
				}
				time.Sleep(5 * time.Millisecond) // polling a condition with a deadline
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return after the drain deadline")
			}
			if o := src.Outcomes(); len(o) != 1 || o[0].Settlement != tc.settlement {
				t.Fatalf("outcomes %+v, want %s", o, tc.settlement)
			}
			reps := h.sink.reports(t)
			if len(reps) != tc.reports {
				t.Fatalf("%d status events, want %d: %+v", len(reps), tc.reports, reps)
			}
			if tc.reports == 1 && conditions(reps[0].Report)["Available"] != "True" {
				t.Fatalf("report inside the drain: %+v", reps[0].Report)
			}
		})
	}
}
