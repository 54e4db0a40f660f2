package pipeline

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/events/recording"
	"github.com/openshift-hyperfleet/maestro-adapter/handlers"
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/deliverytest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/embedded"
)

// When the agent reports after the pipeline stopped waiting, the status
// watcher reports the change on its own: Available goes Unknown → True
// without a new Sentinel event.
func TestWatchStatusReportsLateAgentStatus(t *testing.T) {
	h := newHarness(t, harnessOpts{adapterType: "namespace",
		cfg:     func(c *Config) { c.StatusTimeout = 20 * time.Millisecond },
		backend: embedded.Options{AgentDelay: 300 * time.Millisecond}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); _ = h.p.WatchStatus(ctx) }()

	h.run(t, []*events.Message{snapshotMsgWithAPI(t)})
	first := h.sink.reports(t)
	if len(first) != 1 || conditions(first[0].Report)["Available"] != "Unknown" {
		t.Fatalf("first report: %+v", first)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		reps := h.sink.reports(t)
		if n := len(reps); n > 1 && conditions(reps[n-1].Report)["Available"] == "True" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no report with Available=True after the agent reported: %+v", reps)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition with a deadline
	}
	cancel()
	<-watchDone
}

// snapshotMsgWithAPI is the sample cluster event; WatchStatus re-reads the
// resource from the harness's API directory, which has that cluster.
func snapshotMsgWithAPI(t *testing.T) *events.Message {
	m := snapshotMsg(t, "e1", "019466a0-8f8e-7abc-9def-0123456789ab", 1)
	m.Snapshot = nil
	return m
}

// replicaOf builds a second pipeline on h's backend, as another replica of
// the same adapter sharing its Maestro source: it sees the same works.
func replicaOf(t *testing.T, h *harness, mode string) (*Pipeline, *captureSink) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.AdapterName = "namespace"
	cfg.StatusWatch = mode
	sink := &captureSink{}
	return replicaWith(t, h, cfg, sink), sink
}

// replicaWith is replicaOf with its configuration and sink given.
func replicaWith(t *testing.T, h *harness, cfg Config, sink events.StatusSink) *Pipeline {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tracker := deliverytest.RunTracker(t, h.backend, log)
	handler, err := handlers.New(handlers.Config{Type: "namespace"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(cfg, Deps{Decoder: events.NewDecoder(), Resources: hyperfleet.DirReader{Dir: filepath.Join("..", "testdata", "api")},
		Handler: handler, Delivery: h.backend, Tracker: tracker, Sink: sink, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Replicas share one Maestro source and all see every work change; by
// default only the replica that delivered a work reports its changes, so a
// status is reported once, not once per replica. A replica watching all
// works reports it too.
func TestWatchStatusReportsOnlyDeliveredWorks(t *testing.T) {
	h := newHarness(t, harnessOpts{adapterType: "namespace",
		backend: embedded.Options{AgentDelay: 300 * time.Millisecond}})
	other, otherSink := replicaOf(t, h, WatchDelivered)
	all, allSink := replicaOf(t, h, WatchAll)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for _, p := range []*Pipeline{h.p, other, all} {
		wg.Add(1)
		go func() { defer wg.Done(); _ = p.WatchStatus(ctx) }()
	}

	h.run(t, []*events.Message{snapshotMsgWithAPI(t)})
	if reps := h.sink.reports(t); len(reps) != 1 || conditions(reps[0].Report)["Available"] != "True" {
		t.Fatalf("the event's report (the agent answered in time): %+v", reps)
	}
	waitCond(t, 10*time.Second, "the all-works replica's report of the status", func() bool {
		reps := allSink.reports(t)
		n := len(reps)
		return n >= 1 && conditions(reps[n-1].Report)["Available"] == "True"
	})
	// The all-works replica has reported, so the change reached every
	// watcher; the other replica, which delivered nothing, stayed quiet.
	if reps := otherSink.reports(t); len(reps) != 0 {
		t.Errorf("a replica that delivered nothing reported %d times: %+v", len(reps), reps)
	}
	cancel()
	wg.Wait()
}

// The writer of a work is gone (its watcher does not run) when the agent
// answers after STATUS_TIMEOUT: its event reported Unknown (Health Unknown,
// naming the timeout) and marked the work in Maestro; a replica that
// delivered nothing, watching only its own works, reports the agent's
// answer, because the mark says someone must.
func TestLateStatusIsReportedByAnotherReplicaWhenTheWriterIsGone(t *testing.T) {
	h := newHarness(t, harnessOpts{adapterType: "namespace",
		cfg:     func(c *Config) { c.StatusTimeout = 20 * time.Millisecond },
		backend: embedded.Options{AgentDelay: 300 * time.Millisecond}})
	other, otherSink := replicaOf(t, h, WatchDelivered)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); _ = other.WatchStatus(ctx) }()

	h.run(t, []*events.Message{snapshotMsgWithAPI(t)})
	first := h.sink.reports(t)
	if len(first) != 1 {
		t.Fatalf("the writer published %d reports, want 1", len(first))
	}
	c := first[0].Report.Condition(hyperfleet.ConditionHealth)
	if got := conditions(first[0].Report); got["Available"] != "Unknown" || got["Applied"] != "Unknown" || c.Status != "Unknown" ||
		c.Reason != handlers.ReasonStatusTimeout || !strings.Contains(c.Message, "STATUS_TIMEOUT (20ms)") {
		t.Fatalf("the writer's report: %v, Health %+v; want Applied/Available/Health Unknown naming STATUS_TIMEOUT", got, c)
	}
	w, err := h.backend.Get(context.Background(), "hp-cluster-abc12", "hyperfleet-hp-cluster-abc12-namespace")
	if err != nil {
		t.Fatal(err)
	}
	if got := w.Annotations[workmeta.AnnotationStatusPending]; got != "1" {
		t.Errorf("work annotation %s = %q, want 1 (the generation reported Unknown)", workmeta.AnnotationStatusPending, got)
	}
	waitCond(t, 10*time.Second, "the other replica's report of the agent's answer", func() bool {
		reps := otherSink.reports(t)
		n := len(reps)
		return n >= 1 && conditions(reps[n-1].Report)["Available"] == "True"
	})
	for _, r := range otherSink.reports(t) {
		got := conditions(r.Report)
		if got["Applied"] != "True" || got["Available"] != "True" || got["Health"] != "True" || r.Report.ObservedGeneration != 1 {
			t.Errorf("the other replica reported %v at generation %d; it reports only the agent's final word", got, r.Report.ObservedGeneration)
		}
	}
	cancel()
	<-watchDone
}

// Two replicas run an event for the same resource at once and both stop
// waiting (STATUS_TIMEOUT) before the agent answers. One reports Unknown
// and marks the work; the agent answers the marked version and a watcher
// reports True; only then does the other replica's Unknown land (the sink
// holds it back until a True is out, as a loaded machine did in the
// replica-kill test, run 5 of CI on 2026-12-03). That replica's mark finds
// the work already marked and settled. Its Unknown must not be the last
// word: before, it remembered the settled state it read while marking as
// if it had reported it, and its watcher took the agent's answer for old
// news.
func TestLateUnknownReportIsFollowedByTheAgentsAnswer(t *testing.T) {
	sink := &captureSink{}
	var unknowns atomic.Int32
	heldBack := make(chan struct{})
	sink.before = func(ev cloudevents.Event) {
		var env hyperfleet.StatusEnvelope
		if ev.DataAs(&env) != nil || conditions(env.Report)["Available"] != "Unknown" || unknowns.Add(1) != 2 {
			return
		}
		defer close(heldBack)
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			reps := sink.reports(t)
			if n := len(reps); n > 0 && conditions(reps[n-1].Report)["Available"] == "True" {
				return
			}
			time.Sleep(5 * time.Millisecond) // polling a condition with a deadline
		}
		t.Error("no True report while the second Unknown was held back")
	}
	const timeout = 200 * time.Millisecond
	h := newHarness(t, harnessOpts{adapterType: "namespace", sink: sink,
		cfg:     func(c *Config) { c.StatusTimeout = timeout },
		backend: embedded.Options{AgentDelay: 5 * timeout}})
	cfg := DefaultConfig()
	cfg.AdapterName, cfg.StatusWatch, cfg.StatusTimeout = "namespace", WatchDelivered, timeout
	other := replicaWith(t, h, cfg, sink)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var watchers sync.WaitGroup
	for _, p := range []*Pipeline{h.p, other} {
		watchers.Add(1)
		go func() { defer watchers.Done(); _ = p.WatchStatus(ctx) }()
	}
	var running sync.WaitGroup
	for i, p := range []*Pipeline{h.p, other} {
		msg := snapshotMsgWithAPI(t)
		msg.TransportID = fmt.Sprintf("e%d", i+1)
		running.Add(1)
		go func() {
			defer running.Done()
			runCtx, stop := context.WithTimeout(ctx, 30*time.Second)
			defer stop()
			if err := p.Run(runCtx, recording.NewSource([]*events.Message{msg})); err != nil {
				t.Error(err)
			}
		}()
	}
	running.Wait()
	if n := unknowns.Load(); n != 2 {
		t.Fatalf("%d Unknown reports, want one per replica (both stop waiting before the agent answers): %+v", n, sink.reports(t))
	}
	<-heldBack
	waitCond(t, 10*time.Second, "a True report after the held-back Unknown", func() bool {
		reps := sink.reports(t)
		n := len(reps)
		return n > 0 && conditions(reps[n-1].Report)["Available"] == "True"
	})
	cancel()
	watchers.Wait()
}

func TestReportedWorksWorthReporting(t *testing.T) {
	r := reportedWorks{works: map[string]reportedWork{}}
	at := func(version int64, fp uint64) reportedWork { return reportedWork{version: version, fingerprint: fp} }
	if r.worthReporting("c/w", at(1, 1), false) {
		t.Error("a work this process never reported on is news to it")
	}
	if !r.worthReporting("c/w", at(1, 1), true) {
		t.Error("watching all works, an unknown work is not news")
	}
	r.set("c/w", at(1, 1))
	if r.worthReporting("c/w", at(1, 1), false) {
		t.Error("the status as last reported is news")
	}
	if !r.worthReporting("c/w", at(1, 2), false) {
		t.Error("a changed status of a delivered work is not news")
	}
	if r.worthReporting("c/w", at(2, 3), false) {
		t.Error("a work another writer changed since is still this process's to report")
	}
	if r.worthReporting("c/w", at(2, 4), false) {
		t.Error("a work taken over by another writer came back")
	}
	r.set("c/w", at(2, 4))
	r.forget("c/w")
	if r.worthReporting("c/w", at(2, 5), false) {
		t.Error("a forgotten work is news")
	}
}

// A bad setting is refused at start with an error naming it.
func TestConfigValidateNamesTheSetting(t *testing.T) {
	for setting, mutate := range map[string]func(*Config){
		"STATUS_WATCH":    func(c *Config) { c.StatusWatch = "mine" },
		"CONCURRENCY":     func(c *Config) { c.Concurrency = 0 },
		"STATUS_TIMEOUT":  func(c *Config) { c.StatusTimeout = 0 },
		"RETRY_MAX_DELAY": func(c *Config) { c.RetryMaxDelay = c.RetryBaseDelay / 2 },
	} {
		cfg := DefaultConfig()
		cfg.AdapterName = "namespace"
		if err := cfg.Validate(); err != nil {
			t.Fatalf("defaults: %v", err)
		}
		mutate(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), setting) {
			t.Errorf("%s: Validate() = %v, want an error naming it", setting, err)
		}
	}
}

// gatedReader stops every read at the gate: it says so on entered, then
// waits for release. The race test's events carry snapshots, so only the
// status watcher reads through it.
type gatedReader struct {
	hyperfleet.ResourceReader
	entered chan struct{}
	release chan struct{}
}

func (g *gatedReader) GetResource(ctx context.Context, href string) (*hyperfleet.Resource, error) {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	select {
	case <-g.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.ResourceReader.GetResource(ctx, href)
}

// publisherSink records who published each status event: the event id the
// context carries, or "watcher" for the status watcher, which has none.
type publisherSink struct {
	mu sync.Mutex
	by []string
}

func (s *publisherSink) Publish(ctx context.Context, _ cloudevents.Event) error {
	who := maestro.EventID(ctx)
	if who == "" {
		who = "watcher"
	}
	s.mu.Lock()
	s.by = append(s.by, who)
	s.mu.Unlock()
	return nil
}

func (s *publisherSink) order() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.by)
}

// The watcher takes a status change of an idle resource and, while it
// reads, builds and publishes, an event for the same resource and
// generation comes in. The event waits for the watcher, so its report,
// built from the newer view, is the last one; before, the watcher's older
// view could land after it. The test stops the watcher inside its read
// until the event is either waiting for it (correct) or has already
// reported (the race), so the outcome does not depend on timing.
func TestWatcherReportLandsBeforeAConcurrentEventsReport(t *testing.T) {
	reader := &gatedReader{ResourceReader: hyperfleet.DirReader{Dir: filepath.Join("..", "testdata", "api")},
		entered: make(chan struct{}, 1), release: make(chan struct{})}
	sink := &publisherSink{}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	backend, err := embedded.New(embedded.Options{AgentDelay: 300 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = backend.Close() })
	tracker := deliverytest.RunTracker(t, backend, log)
	handler, err := handlers.New(handlers.Config{Type: "namespace"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.AdapterName = "namespace"
	// The first event reports before the agent does; the agent's late
	// status is the change the watcher picks up.
	cfg.StatusTimeout = 20 * time.Millisecond
	cfg.Coalesce = false
	p, err := New(cfg, Deps{Decoder: events.NewDecoder(), Resources: reader, Handler: handler,
		Delivery: backend, Tracker: tracker, Sink: sink, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	eventWaits := make(chan struct{})
	var waitOnce sync.Once
	p.holds.waiting = func(string) { waitOnce.Do(func() { close(eventWaits) }) }

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); _ = p.WatchStatus(ctx) }()
	run := func(msg *events.Message) {
		runCtx, stop := context.WithTimeout(context.Background(), 30*time.Second)
		defer stop()
		if err := p.Run(runCtx, recording.NewSource([]*events.Message{msg})); err != nil {
			t.Error(err)
		}
	}
	const cluster = "019466a0-8f8e-7abc-9def-0123456789ab"

	run(snapshotMsg(t, "e1", cluster, 1))
	select {
	case <-reader.entered: // the watcher is reporting the agent's late status
	case <-time.After(10 * time.Second):
		t.Fatal("the status watcher never took up the agent's late status")
	}

	secondDone := make(chan struct{})
	go func() { defer close(secondDone); run(snapshotMsg(t, "e2", cluster, 1)) }()
	select {
	case <-eventWaits:
	case <-secondDone:
		t.Errorf("the event reported while the watcher was still reporting on the resource (order so far %v)", sink.order())
	case <-time.After(10 * time.Second):
		t.Fatal("the event neither waited for the watcher nor finished")
	}
	close(reader.release)
	<-secondDone
	waitCond(t, 10*time.Second, "three status reports", func() bool { return len(sink.order()) >= 3 })
	if got, want := sink.order(), []string{"e1", "watcher", "e2"}; !slices.Equal(got, want) {
		t.Fatalf("reports published by %v, want %v: the event's newer report must land last", got, want)
	}
	cancel()
	<-watchDone
}
