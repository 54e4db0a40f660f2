package pipeline

// Integration tests of the pipeline delivering through a real Maestro server
// (maestro/remote) with simulated agents (maestro/maestrotest). They need
// the local server of deploy/local/maestro.sh (`eval "$(deploy/local/maestro.sh
// env)"`): without it they skip, or fail under REQUIRE_INTEGRATION=1.
//
// The restart test starts a Maestro of its own (same script, other ports,
// its own database) so that restarting it disturbs no other test using the
// shared one.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/events/recording"
	"github.com/openshift-hyperfleet/maestro-adapter/handlers"
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/deliverytest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/maestrotest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/remote"
)

// remoteReconnectDelay makes the OCM SDK's clients (source and agents) in
// this test process reconnect to a restarted Maestro after 500 ms instead
// of its 5-50 s backoff. It writes an SDK package variable the clients read
// at each reconnect, so it is set before any client starts.
var remoteReconnectDelay sync.Once

func remoteSuffix(t testing.TB) string {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

type remoteHarness struct {
	env      maestrotest.Env
	sourceID string
	backend  *remote.Backend
	sink     *captureSink
	p        *Pipeline
}

type remoteHarnessOpts struct {
	env         maestrotest.Env
	adapterType string
	// consumer is the fixed consumer every work goes to.
	consumer   string
	handlerCfg func(*handlers.Config)
	cfg        func(*Config)
	backend    func(*remote.Options)
	wrap       func(maestro.Delivery) maestro.Delivery
	// reader defaults to snapshots only: a test that reads the API is a
	// test bug unless it says so here.
	reader hyperfleet.ResourceReader
}

// newRemoteHarness builds a pipeline on a remote.Backend with its own
// source id, and a tracker watching it.
func newRemoteHarness(t *testing.T, o remoteHarnessOpts) *remoteHarness {
	t.Helper()
	remoteReconnectDelay.Do(func() { maestrotest.SetReconnectDelay(500 * time.Millisecond) })
	log := maestrotest.SlogLogger(t)
	sourceID := "pipeline-" + remoteSuffix(t)
	bo := remote.Options{
		GRPCEndpoint: o.env.GRPCEndpoint, HTTPEndpoint: o.env.HTTPEndpoint, SourceID: sourceID,
		Insecure:    true, // the local Maestro serves plaintext
		DialTimeout: 5 * time.Second, Logger: log,
		Source: maestro.SourceOptions{RetryInitial: 10 * time.Millisecond, RetryMax: 200 * time.Millisecond},
	}
	if o.backend != nil {
		o.backend(&bo)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	backend, err := remote.New(ctx, bo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = backend.Close() })
	var delivery maestro.Delivery = backend
	if o.wrap != nil {
		delivery = o.wrap(backend)
	}
	tracker := deliverytest.RunTracker(t, delivery, log)

	rule, err := handlers.ParseConsumerRule("fixed:" + o.consumer)
	if err != nil {
		t.Fatal(err)
	}
	hc := handlers.Config{Type: o.adapterType, Consumer: rule}
	if o.handlerCfg != nil {
		o.handlerCfg(&hc)
	}
	handler, err := handlers.New(hc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.AdapterName = o.adapterType
	cfg.RetryBaseDelay, cfg.RetryMaxDelay = 10*time.Millisecond, 100*time.Millisecond
	cfg.StatusTimeout = 20 * time.Second
	cfg.Coalesce = false
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	sink := &captureSink{}
	if o.reader == nil {
		o.reader = snapshotsOnlyReader{}
	}
	p, err := New(cfg, Deps{Decoder: events.NewDecoder(), Resources: o.reader, Handler: handler,
		Delivery: delivery, Tracker: tracker, Sink: sink, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return &remoteHarness{env: o.env, sourceID: sourceID, backend: backend, sink: sink, p: p}
}

// snapshotsOnlyReader: these tests replay snapshots; a read of the API
// means a test bug.
type snapshotsOnlyReader struct{}

func (snapshotsOnlyReader) GetResource(_ context.Context, href string) (*hyperfleet.Resource, error) {
	return nil, failure.Permanentf("test reads no API (asked for %s)", href)
}

// run feeds msgs through the pipeline and returns how each was settled.
func (h *remoteHarness) run(t *testing.T, msgs ...*events.Message) []recording.Outcome {
	t.Helper()
	src := recording.NewSource(msgs)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := h.p.Run(ctx, src); err != nil {
		t.Fatal(err)
	}
	return src.Outcomes()
}

// clusterMsg is a recorded event with a snapshot of the sample cluster id
// at gen, with labels; deleted marks it being deleted.
func clusterMsg(t testing.TB, eventID, clusterID string, gen int64, labels map[string]string, deleted bool) *events.Message {
	t.Helper()
	ev, snap := clusterEntry(t, eventID, clusterID, gen, labels, deleted)
	return &events.Message{TransportID: eventID, Body: ev, Snapshot: snap, Attempt: 1}
}

func clusterEntry(t testing.TB, eventID, clusterID string, gen int64, labels map[string]string, deleted bool) (event, snapshot []byte) {
	t.Helper()
	base, err := os.ReadFile(filepath.Join("..", "testdata", "contracts", "cluster-get-response.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res map[string]any
	if err := json.Unmarshal(base, &res); err != nil {
		t.Fatal(err)
	}
	res["id"] = clusterID
	res["name"] = "c-" + clusterID
	res["href"] = "/api/hyperfleet/v1/clusters/" + clusterID
	res["generation"] = gen
	res["labels"] = labels
	if deleted {
		res["deleted_time"] = time.Now().UTC().Format(time.RFC3339)
	}
	snapshot, _ = json.Marshal(res)
	event = fmt.Appendf(nil, `{"specversion":"1.0","id":%q,"source":"hyperfleet-sentinel","type":"com.redhat.hyperfleet.cluster.reconcile","datacontenttype":"application/json","data":{"id":%q,"kind":"Cluster","href":"/api/hyperfleet/v1/clusters/%s","generation":%d}}`,
		eventID, clusterID, clusterID, gen)
	return event, snapshot
}

func reportsByGeneration(t *testing.T, s *captureSink) map[string]map[int64]hyperfleet.StatusReport {
	t.Helper()
	out := map[string]map[int64]hyperfleet.StatusReport{}
	for _, env := range s.reports(t) {
		if out[env.Resource.ID] == nil {
			out[env.Resource.ID] = map[int64]hyperfleet.StatusReport{}
		}
		out[env.Resource.ID][env.Report.ObservedGeneration] = env.Report
	}
	return out
}

func requireConditions(t *testing.T, what string, r hyperfleet.StatusReport, want map[string]string) {
	t.Helper()
	got := conditions(r)
	for typ, status := range want {
		if got[typ] != status {
			t.Errorf("%s: %s=%s, want %s (conditions %+v)", what, typ, got[typ], status, r.Conditions)
		}
	}
}

// A recorded cluster goes through create, update and delete on the real
// server: the work shows up in Maestro's REST API with status Applied and
// Available, generation 2 patches it in place, and the deletion removes it
// and reports Finalized.
func TestRemoteRecordedLifecycle(t *testing.T) {
	env := maestrotest.Require(t)
	consumer := "pl-life-" + remoteSuffix(t)
	startRemoteAgents(t, env, consumer)
	h := newRemoteHarness(t, remoteHarnessOpts{env: env, adapterType: "namespace", consumer: consumer})

	all := loadRecording(t, "namespace.jsonl")
	var msgs []*events.Message
	for _, m := range all {
		if strings.Contains(string(m.Body), "019466a0-8f8e-7abc-9def-0123456789ab") {
			msgs = append(msgs, m)
		}
	}
	if len(msgs) != 3 {
		t.Fatalf("recording: %d events of the first cluster, want 3 (create, update, delete)", len(msgs))
	}

	// Generation 1: created.
	if o := h.run(t, msgs[0]); len(o) != 1 || o[0].Settlement != "ack" {
		t.Fatalf("create: %+v", o)
	}
	bundles := maestrotest.Bundles(t, env.HTTPEndpoint, h.sourceID)
	if len(bundles) != 1 {
		t.Fatalf("after create, REST shows %d bundles, want 1", len(bundles))
	}
	var name string
	var created maestrotest.Bundle
	for name, created = range bundles {
	}
	if created.ConsumerName != consumer || created.Metadata.Annotations[workmeta.AnnotationGeneration] != "1" ||
		!created.ConditionAt(workv1.WorkApplied) || !created.ConditionAt(workv1.WorkAvailable) {
		t.Fatalf("after create, bundle %s: consumer %s, annotations %v, version %d, conditions %+v",
			name, created.ConsumerName, created.Metadata.Annotations, created.Version, created.Status.Conditions)
	}
	reps := h.sink.reports(t)
	if len(reps) != 1 {
		t.Fatalf("%d status events after create", len(reps))
	}
	requireConditions(t, "create report", reps[0].Report, map[string]string{"Applied": "True", "Available": "True", "Health": "True"})
	if reps[0].Report.ObservedGeneration != 1 {
		t.Errorf("create report at generation %d", reps[0].Report.ObservedGeneration)
	}

	// Generation 2: patched in place (same bundle, next version).
	if o := h.run(t, msgs[1]); len(o) != 1 || o[0].Settlement != "ack" {
		t.Fatalf("update: %+v", o)
	}
	updated, ok := maestrotest.Bundles(t, env.HTTPEndpoint, h.sourceID)[name]
	if !ok {
		t.Fatalf("after update, bundle %s is gone", name)
	}
	if updated.ID != created.ID || updated.CreatedAt != created.CreatedAt || updated.Version != created.Version+1 {
		t.Errorf("update was not a patch: id %s→%s, created %s→%s, version %d→%d",
			created.ID, updated.ID, created.CreatedAt, updated.CreatedAt, created.Version, updated.Version)
	}
	if updated.Metadata.Annotations[workmeta.AnnotationGeneration] != "2" || !updated.ConditionAt(workv1.WorkAvailable) {
		t.Errorf("after update: annotations %v, conditions %+v", updated.Metadata.Annotations, updated.Status.Conditions)
	}
	reps = h.sink.reports(t)
	if len(reps) != 2 || reps[1].Report.ObservedGeneration != 2 {
		t.Fatalf("reports after update: %+v", reps)
	}
	requireConditions(t, "update report", reps[1].Report, map[string]string{"Applied": "True", "Available": "True", "Health": "True"})

	// Generation 3: deleted.
	if o := h.run(t, msgs[2]); len(o) != 1 || o[0].Settlement != "ack" {
		t.Fatalf("delete: %+v", o)
	}
	if left := maestrotest.Bundles(t, env.HTTPEndpoint, h.sourceID); len(left) != 0 {
		t.Errorf("after delete, REST still shows %v", left)
	}
	reps = h.sink.reports(t)
	if len(reps) != 3 || reps[2].Report.ObservedGeneration != 3 {
		t.Fatalf("reports after delete: %+v", reps)
	}
	requireConditions(t, "delete report", reps[2].Report, map[string]string{"Finalized": "True", "Health": "True"})
	for _, r := range reps {
		if err := r.Report.Validate(); err != nil {
			t.Error(err)
		}
	}
}

func startRemoteAgents(t *testing.T, env maestrotest.Env, consumers ...string) {
	t.Helper()
	for _, c := range consumers {
		startRemoteAgent(t, env, c, nil)
	}
}

// startRemoteAgent registers consumer and runs a simulated agent on it
// for the rest of the test; fail is its AgentOptions.Fail.
func startRemoteAgent(t *testing.T, env maestrotest.Env, consumer string, fail func(*workv1.ManifestWork) error) *maestrotest.Agent {
	t.Helper()
	remoteReconnectDelay.Do(func() { maestrotest.SetReconnectDelay(500 * time.Millisecond) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := maestrotest.RegisterConsumer(ctx, env.HTTPEndpoint, consumer); err != nil {
		t.Fatal(err)
	}
	// The stand-in: these tests inject failures (fail), delays and restarts and
	// use many consumers, which Maestro's real agent cannot do or would make slow;
	// TestRealAgentAdapterTypes runs the same pipeline on the real agent.
	agent, err := maestrotest.StartAgent(context.Background(), env.GRPCBrokerEndpoint, consumer, maestrotest.AgentOptions{
		Fail: fail,
		Logf: maestrotest.TestLogf(t, "agent "+consumer+": "),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(agent.Stop)
	return agent
}

// Errors that retrying cannot fix fail the event at once; an unreachable
// Maestro is retried up to MaxAttempts. Each case dead-letters the event
// with a reason naming the cause and publishes a Health=False report saying
// the same.
func TestRemoteErrorsReportHealthFalse(t *testing.T) {
	env := maestrotest.Require(t)
	suffix := remoteSuffix(t)
	registered := "pl-err-" + suffix
	startRemoteAgents(t, env, registered)

	badTemplates := t.TempDir()
	if err := os.WriteFile(filepath.Join(badTemplates, "10-settings.yaml"), []byte(
		"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  namespace: {{ .Namespace }}\ndata:\n  cluster: {{ .Cluster.ID | quote }}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	closed := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	deadGRPC, deadHTTP := closed(), closed()

	for _, tc := range []struct {
		name        string
		opts        remoteHarnessOpts
		maxAttempts int
		// wantAttempts is how often the event is tried, wantApplies how
		// often delivery is asked to apply.
		wantAttempts, wantApplies int
		wantReason                []string
	}{
		{
			name: "malformed manifest from a template",
			opts: remoteHarnessOpts{env: env, adapterType: handlers.TypeTemplate, consumer: registered,
				handlerCfg: func(c *handlers.Config) { c.TemplateDir = badTemplates }},
			maxAttempts: 3, wantAttempts: 1, wantApplies: 0,
			wantReason: []string{"template 10-settings.yaml", "metadata.name"},
		},
		{
			name:        "unknown consumer",
			opts:        remoteHarnessOpts{env: env, adapterType: "namespace", consumer: "not-registered-" + suffix},
			maxAttempts: 3, wantAttempts: 1, wantApplies: 1,
			wantReason: []string{`Maestro consumer "not-registered-` + suffix + `" is not registered`},
		},
		{
			name: "unreachable Maestro",
			opts: remoteHarnessOpts{env: maestrotest.Env{GRPCEndpoint: deadGRPC, HTTPEndpoint: "http://" + deadHTTP},
				adapterType: "namespace", consumer: registered,
				backend: func(o *remote.Options) {
					o.DialTimeout = 100 * time.Millisecond
					o.UnavailableTimeout = 200 * time.Millisecond
				}},
			maxAttempts: 3, wantAttempts: 3, wantApplies: 3,
			wantReason: []string{"Maestro is unreachable", deadGRPC, deadHTTP, "connection refused"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			counter := &applyCounter{}
			o := tc.opts
			o.cfg = func(c *Config) { c.MaxAttempts = tc.maxAttempts }
			o.wrap = func(d maestro.Delivery) maestro.Delivery { counter.Delivery = d; return counter }
			h := newRemoteHarness(t, o)
			out := h.run(t, clusterMsg(t, "ev-"+suffix, "c-err-"+suffix, 1, map[string]string{"a": "b"}, false))
			if len(out) != 1 || out[0].Settlement != "dead-letter" {
				t.Fatalf("outcome %+v, want dead-letter", out)
			}
			if out[0].Attempts != tc.wantAttempts || int(counter.n.Load()) != tc.wantApplies {
				t.Errorf("tried %d times with %d applies, want %d and %d", out[0].Attempts, counter.n.Load(), tc.wantAttempts, tc.wantApplies)
			}
			reps := h.sink.reports(t)
			if len(reps) != 1 {
				t.Fatalf("%d status reports, want one Health=False report", len(reps))
			}
			health := reps[0].Report.Condition(hyperfleet.ConditionHealth)
			if health == nil || health.Status != hyperfleet.False {
				t.Fatalf("Health condition %+v, want False", health)
			}
			for _, want := range tc.wantReason {
				if !strings.Contains(out[0].Reason, want) {
					t.Errorf("dead-letter reason %q does not mention %q", out[0].Reason, want)
				}
				if !strings.Contains(health.Message, want) {
					t.Errorf("Health message %q does not mention %q", health.Message, want)
				}
			}
			if err := reps[0].Report.Validate(); err != nil {
				t.Error(err)
			}
			if tc.opts.env.HTTPEndpoint == env.HTTPEndpoint {
				if b := maestrotest.Bundles(t, env.HTTPEndpoint, h.sourceID); len(b) != 0 {
					t.Errorf("a failed event left bundles behind: %v", b)
				}
			}
		})
	}
}

// applyCounter counts Apply calls.
type applyCounter struct {
	maestro.Delivery
	n atomic.Int32
}

func (c *applyCounter) Apply(ctx context.Context, w *workv1.ManifestWork) (*workv1.ManifestWork, error) {
	c.n.Add(1)
	return c.Delivery.Apply(ctx, w)
}

// privateMaestro is a Maestro server of one test's own, run with
// deploy/local/maestro.sh on free ports with its own state directory and
// database, so the test may restart it.
type privateMaestro struct {
	env    maestrotest.Env
	script string
	vars   []string
}

func startPrivateMaestro(t *testing.T) *privateMaestro {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("..", "deploy", "local", "maestro.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(script); err != nil {
		t.Fatalf("maestro.sh: %v", err)
	}
	// Five free ports, held together so that they differ.
	var ports []string
	var ls []net.Listener
	for range 5 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		_, p, _ := net.SplitHostPort(l.Addr().String())
		ports = append(ports, p)
	}
	for _, l := range ls {
		_ = l.Close()
	}
	m := &privateMaestro{script: script, vars: []string{
		"MAESTRO_STATE_DIR=" + t.TempDir(),
		"MAESTRO_HTTP_PORT=" + ports[0],
		"MAESTRO_GRPC_PORT=" + ports[1],
		"MAESTRO_GRPC_BROKER_PORT=" + ports[2],
		"MAESTRO_HEALTH_PORT=" + ports[3],
		"MAESTRO_METRICS_PORT=" + ports[4],
		// Fixed, so runs do not pile up databases; `start` recreates it.
		"MAESTRO_DB_NAME=maestro_adapter_restart_test",
	}}
	m.env = maestrotest.Env{
		HTTPEndpoint:       "http://127.0.0.1:" + ports[0],
		GRPCEndpoint:       "127.0.0.1:" + ports[1],
		GRPCBrokerEndpoint: "127.0.0.1:" + ports[2],
		HealthEndpoint:     "http://127.0.0.1:" + ports[3] + "/healthcheck",
	}
	if err := m.ctl("start"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.ctl("stop"); err != nil {
			t.Errorf("stopping the private Maestro: %v", err)
		}
	})
	return m
}

// ctl runs maestro.sh cmd against this server, bounded by a deadline.
func (m *privateMaestro) ctl(cmd string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, m.script, cmd)
	c.Env = append(os.Environ(), m.vars...)
	out, err := c.CombinedOutput()
	if err != nil {
		return fmt.Errorf("maestro.sh %s: %w\n%s", cmd, err, out)
	}
	return nil
}

func (m *privateMaestro) healthy() bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, m.env.HealthEndpoint, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// gatedSource hands out the first n messages of a recording, then waits
// for the gate to open before handing out the rest.
type gatedSource struct {
	*recording.Source
	n    atomic.Int32
	at   int32
	gate chan struct{}
}

func (g *gatedSource) Receive(ctx context.Context) (*events.Message, error) {
	if g.n.Add(1) > g.at {
		select {
		case <-g.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return g.Source.Receive(ctx)
}

// applyTimes records when each Apply ran.
type applyTimes struct {
	maestro.Delivery
	mu    sync.Mutex
	spans [][2]time.Time
}

func (a *applyTimes) Apply(ctx context.Context, w *workv1.ManifestWork) (*workv1.ManifestWork, error) {
	start := time.Now()
	got, err := a.Delivery.Apply(ctx, w)
	a.mu.Lock()
	a.spans = append(a.spans, [2]time.Time{start, time.Now()})
	a.mu.Unlock()
	return got, err
}

// during counts the applies that were running at some point between from
// and to.
func (a *applyTimes) during(from, to time.Time) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, s := range a.spans {
		if s[0].Before(to) && s[1].After(from) {
			n++
		}
	}
	return n
}

// Maestro restarts in the middle of a run: the events delivered while it
// is down wait for it (the backend retries an unreachable server), the
// client and the agent reconnect, and every event ends acknowledged with a
// report, every work at its final generation with its status.
func TestRemoteMaestroRestartMidRun(t *testing.T) {
	maestrotest.Require(t)
	m := startPrivateMaestro(t)
	consumer := "pl-restart-" + remoteSuffix(t)
	startRemoteAgents(t, m.env, consumer)
	times := &applyTimes{}
	h := newRemoteHarness(t, remoteHarnessOpts{env: m.env, adapterType: "namespace", consumer: consumer,
		backend: func(o *remote.Options) { o.UnavailableTimeout = 90 * time.Second },
		cfg:     func(c *Config) { c.Concurrency = 4 },
		wrap:    func(d maestro.Delivery) maestro.Delivery { times.Delivery = d; return times }})

	const clusters, gens = 4, 5
	var msgs []*events.Message
	for gen := int64(1); gen <= gens; gen++ {
		for c := range clusters {
			id := fmt.Sprintf("rs-%d", c)
			msgs = append(msgs, clusterMsg(t, fmt.Sprintf("ev-%d-%d", c, gen), id, gen, map[string]string{"gen": strconv.FormatInt(gen, 10)}, false))
		}
	}
	src := &gatedSource{Source: recording.NewSource(msgs), at: 2 * clusters, gate: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	runDone := make(chan error, 1)
	go func() { runDone <- h.p.Run(ctx, src) }()

	// Once the first events are through, restart; the rest arrive while
	// Maestro is down.
	waitCond(t, time.Minute, "the first events to settle", func() bool { return len(src.Outcomes()) >= clusters })
	restartStarted := time.Now()
	restarted := make(chan error, 1)
	go func() { restarted <- m.ctl("restart") }()
	waitCond(t, time.Minute, "Maestro to go down", func() bool { return !m.healthy() })
	downAt := time.Now()
	close(src.gate)
	if err := <-restarted; err != nil {
		t.Fatal(err)
	}
	upAt := time.Now()
	t.Logf("restart took %s; down from %s", upAt.Sub(restartStarted), downAt.Sub(restartStarted))
	select {
	case err := <-runDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatalf("the run did not finish: %d of %d events settled", len(src.Outcomes()), len(msgs))
	}
	t.Logf("run finished %s after the restart", time.Since(upAt))
	if n := times.during(downAt, upAt); n == 0 {
		t.Fatal("no apply ran while Maestro was down: the test did not exercise the restart")
	} else {
		t.Logf("%d applies ran while Maestro was down", n)
	}

	outcomes := src.Outcomes()
	if len(outcomes) != len(msgs) {
		t.Fatalf("%d events settled, want %d", len(outcomes), len(msgs))
	}
	for _, o := range outcomes {
		if o.Settlement != "ack" {
			t.Errorf("event %s: %s after %d attempts: %s", o.TransportID, o.Settlement, o.Attempts, o.Reason)
		}
	}
	byGen := reportsByGeneration(t, h.sink)
	for c := range clusters {
		id := fmt.Sprintf("rs-%d", c)
		for gen := int64(1); gen <= gens; gen++ {
			if _, ok := byGen[id][gen]; !ok {
				t.Errorf("cluster %s: no report for generation %d", id, gen)
			}
		}
		if r, ok := byGen[id][gens]; ok {
			requireConditions(t, "cluster "+id+" final report", r, map[string]string{"Applied": "True", "Available": "True", "Health": "True"})
		}
	}
	bundles := maestrotest.Bundles(t, m.env.HTTPEndpoint, h.sourceID)
	if len(bundles) != clusters {
		t.Fatalf("REST shows %d bundles, want %d", len(bundles), clusters)
	}
	for name, b := range bundles {
		if b.Metadata.Annotations[workmeta.AnnotationGeneration] != strconv.Itoa(gens) || !b.ConditionAt(workv1.WorkAvailable) {
			t.Errorf("bundle %s: generation %s, version %d, conditions %+v", name,
				b.Metadata.Annotations[workmeta.AnnotationGeneration], b.Version, b.Status.Conditions)
		}
	}
}

// waitCond polls cond until it holds or the timeout passes: the state lives
// in another process or in the pipeline's goroutines.
func waitCond(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// buildAdapter builds cmd/adapter into a temporary directory.
func buildAdapter(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "adapter")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, "./cmd/adapter")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the adapter: %v\n%s", err, out)
	}
	return bin
}

// The spike's race, two updaters of one work, cannot lose a manifest. Two
// adapter processes (the adapter binary, run twice as replicas of one
// adapter: same source id, same works) replay interleaved generations of
// the same clusters at once, one the odd generations, the other the even
// ones. Each generation adds a manifest to the work, so any write that
// replaced a newer manifest set by an older one would leave a manifest
// missing. Every work must end at the newest generation with exactly its
// manifests, applied and available, and neither process may fail an event.
func TestRemoteTwoAdapterProcessesLoseNoManifest(t *testing.T) {
	env := maestrotest.Require(t)
	suffix := remoteSuffix(t)
	consumer := "pl-race-" + suffix
	agent := startRemoteAgent(t, env, consumer, nil)
	bin := buildAdapter(t)

	dir := t.TempDir()
	templates := filepath.Join(dir, "templates")
	if err := os.Mkdir(templates, 0o755); err != nil {
		t.Fatal(err)
	}
	// One ConfigMap per label of the cluster.
	tmpl := `{{- range $k, $v := .Resource.Labels }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ $k }}
  namespace: {{ $.Namespace }}
data:
  value: {{ $v | quote }}
  generation: {{ $.Generation | quote }}
{{- end }}
`
	if err := os.WriteFile(filepath.Join(templates, "10-labels.yaml"), []byte(tmpl), 0o644); err != nil {
		t.Fatal(err)
	}

	const clusters, gens = 3, 6
	labelsAt := func(gen int64) map[string]string {
		l := map[string]string{}
		for i := int64(1); i <= gen; i++ {
			l[fmt.Sprintf("m%02d", i)] = strconv.FormatInt(i, 10)
		}
		return l
	}
	recordings := []string{filepath.Join(dir, "odd.jsonl"), filepath.Join(dir, "even.jsonl")}
	var files [2]bytes.Buffer
	for gen := int64(1); gen <= gens; gen++ {
		for c := range clusters {
			ev, snap := clusterEntry(t, fmt.Sprintf("ev-%d-%d", c, gen), fmt.Sprintf("race-%d", c), gen, labelsAt(gen), false)
			line, _ := json.Marshal(recording.Entry{Event: ev, Resource: snap})
			files[gen%2].Write(append(line, '\n'))
		}
	}
	for i, f := range []int{1, 0} { // odd first, then even
		if err := os.WriteFile(recordings[i], files[f].Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	sourceID := "race-" + suffix
	vars := append(os.Environ(),
		"ADAPTER_TYPE=template", "ADAPTER_NAME=race", "TEMPLATE_DIR="+templates,
		"DELIVERY=maestro", "MAESTRO_INSECURE=true", "MAESTRO_GRPC_ENDPOINT="+env.GRPCEndpoint, "MAESTRO_HTTP_ENDPOINT="+env.HTTPEndpoint,
		"MAESTRO_SOURCE_ID="+sourceID, "CONSUMER_RULE=fixed:"+consumer,
		"STATUS_TIMEOUT=20s", "CONCURRENCY=4", "MAX_ATTEMPTS=5", "RETRY_BASE_DELAY=50ms", "RETRY_MAX_DELAY=1s",
		"LOG_FORMAT=json", "LOG_LEVEL=debug",
	)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	type proc struct {
		cmd    *exec.Cmd
		stderr bytes.Buffer
		status string
	}
	procs := make([]*proc, 2)
	for i, rec := range recordings {
		p := &proc{status: filepath.Join(dir, fmt.Sprintf("status-%d.jsonl", i))}
		p.cmd = exec.CommandContext(ctx, bin, "replay", "--status-out", p.status, rec)
		p.cmd.Env = vars
		p.cmd.Stderr = &p.stderr
		procs[i] = p
	}
	// Start both before waiting for either.
	for _, p := range procs {
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i, p := range procs {
		if err := p.cmd.Wait(); err != nil {
			t.Errorf("adapter process %d (%s): %v\n%s", i, filepath.Base(recordings[i]), err, tail(p.stderr.String(), 40))
		}
	}
	if t.Failed() {
		// Say where the works stand, as Maestro and the agent see them: a
		// work stuck deleting means the agent never confirmed a deletion.
		sourceID := "race-" + suffix
		for name, b := range maestrotest.Bundles(t, env.HTTPEndpoint, sourceID) {
			t.Logf("Maestro: work %s version %d deleted_at %q generation %s manifests %v conditions %+v", name, b.Version,
				b.DeletedAt, b.Metadata.Annotations[workmeta.AnnotationGeneration], b.ManifestNames(), b.Status.Conditions)
		}
		for _, w := range agent.Works() {
			t.Logf("agent: work %s generation %d deleting %v finalizers %v", w.Name, w.Generation, !w.DeletionTimestamp.IsZero(), w.Finalizers)
		}
		t.FailNow()
	}
	var stats [2]string
	for i, p := range procs {
		for _, l := range strings.Split(p.stderr.String(), "\n") {
			if strings.HasPrefix(l, "replay: ") {
				stats[i] = l
			}
		}
	}
	t.Logf("process summaries: %q", stats)
	// The apply logic logs (at debug) each race it lost and retried: a
	// read-modify-write that another writer got in between. Without any,
	// the two processes never actually raced.
	lostRaces := 0
	for i, p := range procs {
		var lost, recreated int
		for _, l := range strings.Split(p.stderr.String(), "\n") {
			if strings.Contains(l, "applying work: retrying") {
				lost++
			}
			if strings.Contains(l, "deleting and recreating") {
				recreated++
			}
		}
		lostRaces += lost
		t.Logf("process %d: %d lost races retried, %d delete-and-recreates", i, lost, recreated)
	}
	if lostRaces == 0 {
		t.Error("the two processes never got in each other's way: the race was not exercised")
	}

	bundles := maestrotest.Bundles(t, env.HTTPEndpoint, sourceID)
	if len(bundles) != clusters {
		t.Fatalf("REST shows %d works, want %d", len(bundles), clusters)
	}
	var want []string
	for k := range labelsAt(gens) {
		want = append(want, k)
	}
	sort.Strings(want)
	for name, b := range bundles {
		got := b.ManifestNames()
		sort.Strings(got)
		if !slices.Equal(got, want) {
			t.Errorf("work %s holds manifests %v, want %v", name, got, want)
		}
		if g := b.Metadata.Annotations[workmeta.AnnotationGeneration]; g != strconv.Itoa(gens) {
			t.Errorf("work %s at generation %s, want %d", name, g, gens)
		}
		if !b.ConditionAt(workv1.WorkApplied) || !b.ConditionAt(workv1.WorkAvailable) {
			t.Errorf("work %s: version %d, conditions %+v", name, b.Version, b.Status.Conditions)
		}
	}

	// Every event was settled without failure (replay exits 1 otherwise);
	// the status events say nothing failed either.
	for i, p := range procs {
		f, err := os.Open(p.status)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var ev struct {
				Data hyperfleet.StatusEnvelope `json:"data"`
			}
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Fatalf("process %d status line: %v", i, err)
			}
			if h := ev.Data.Report.Condition(hyperfleet.ConditionHealth); h == nil || h.Status != hyperfleet.True {
				t.Errorf("process %d reported %+v for %s generation %d", i, h, ev.Data.Resource.ID, ev.Data.Report.ObservedGeneration)
			}
		}
		f.Close()
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// A status change the agent reports between events (here: the work turns
// Degraded on the cluster) becomes a status event at once through the
// watch, without a new Sentinel event.
func TestRemoteStatusChangeReportedAtOnce(t *testing.T) {
	env := maestrotest.Require(t)
	consumer := "pl-watch-" + remoteSuffix(t)
	var degraded atomic.Bool
	agent := startRemoteAgent(t, env, consumer, func(*workv1.ManifestWork) error {
		if degraded.Load() {
			return maestrotest.Degraded("pods crash-looping")
		}
		return nil
	})
	h := newRemoteHarness(t, remoteHarnessOpts{env: env, adapterType: "namespace", consumer: consumer,
		reader: hyperfleet.DirReader{Dir: filepath.Join("..", "testdata", "api")}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); _ = h.p.WatchStatus(ctx) }()

	body, err := os.ReadFile(filepath.Join("..", "testdata", "contracts", "sentinel-event-cluster.json"))
	if err != nil {
		t.Fatal(err)
	}
	if o := h.run(t, &events.Message{TransportID: "m", Body: body, Attempt: 1}); len(o) != 1 || o[0].Settlement != "ack" {
		t.Fatalf("outcome %+v", o)
	}
	reps := h.sink.reports(t)
	if len(reps) == 0 || conditions(reps[0].Report)["Health"] != "True" {
		t.Fatalf("first report: %+v", reps)
	}

	degraded.Store(true)
	agent.Reconcile()
	var health *hyperfleet.Condition
	waitCond(t, 20*time.Second, "a report saying the work is degraded", func() bool {
		reps := h.sink.reports(t)
		last := reps[len(reps)-1].Report
		health = last.Condition(hyperfleet.ConditionHealth)
		return health != nil && health.Status == hyperfleet.False
	})
	if !strings.Contains(health.Message, "pods crash-looping") {
		t.Errorf("Health message %q does not carry the agent's message", health.Message)
	}
	cancel()
	<-watchDone
}
