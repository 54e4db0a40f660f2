package pipeline

// Failure classes through the real clients: the HyperFleet API client and
// its status sink (apiclient.Client, apiclient.StatusSink) against an
// httptest stand-in for the API, and the Maestro backend (maestro/remote)
// against the local Maestro server. The stand-in is there because the
// HyperFleet API cannot run on this machine (it needs its own services and
// database schema); it answers like the API's contract says
// (testdata/contracts): the resource's JSON on GET, 201 on PUT .../statuses,
// 401 for a token it does not take, 404 for a resource that is gone.

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet/apiclient"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/maestrotest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/remote"
)

// apiStandIn serves the sample cluster of testdata/api. It takes the
// bearer token in token only; putStatus is its answer to status reports.
type apiStandIn struct {
	t         *testing.T
	token     atomic.Value // string
	putStatus atomic.Int32
	// refused is called (once per refusal) when a request carried another
	// token.
	refused func()

	mu   sync.Mutex
	seen []string // "GET 200", "PUT 401", ...
}

func (a *apiStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	code := http.StatusOK
	defer func() {
		a.mu.Lock()
		a.seen = append(a.seen, r.Method+" "+http.StatusText(code))
		a.mu.Unlock()
	}()
	if r.Header.Get("Authorization") != "Bearer "+a.token.Load().(string) {
		code = http.StatusUnauthorized
		if a.refused != nil {
			a.refused()
		}
		w.WriteHeader(code)
		_, _ = w.Write([]byte(`{"kind":"Error","reason":"invalid token"}`))
		return
	}
	switch {
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, hyperfleet.APIPrefix):
		body, err := os.ReadFile(filepath.Join("..", "testdata", "api", strings.TrimPrefix(r.URL.Path, hyperfleet.APIPrefix)+".json"))
		if err != nil {
			code = http.StatusNotFound
			w.WriteHeader(code)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	case r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/statuses"):
		code = int(a.putStatus.Load())
		w.WriteHeader(code)
	default:
		code = http.StatusMethodNotAllowed
		w.WriteHeader(code)
	}
}

func (a *apiStandIn) requests() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.seen...)
}

// newAPIClient starts the stand-in and a real client for it reading its
// token from a file holding token.
func newAPIClient(t *testing.T, api *apiStandIn, token string) (*apiclient.Client, string) {
	t.Helper()
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := apiclient.New(apiclient.Config{BaseURL: srv.URL, TokenFile: tokenFile, Insecure: true, // the stand-in serves http
		Timeout: 5 * time.Second, MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return c, tokenFile
}

func sentinelClusterEvent(t *testing.T) *events.Message {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("..", "testdata", "contracts", "sentinel-event-cluster.json"))
	if err != nil {
		t.Fatal(err)
	}
	return &events.Message{TransportID: "m", Body: body, Attempt: 1}
}

// The API refuses the token once (it was rotated; the file is rewritten
// just after): the event is retried, reads the new token and succeeds.
// A refusal that lasts is bounded by MAX_ATTEMPTS and dead-letters the
// event with a reason naming authentication.
func TestAPITokenRefusedThenAccepted(t *testing.T) {
	t.Run("RotatedToken", func(t *testing.T) {
		api := &apiStandIn{t: t}
		api.token.Store("new")
		api.putStatus.Store(http.StatusCreated)
		client, tokenFile := newAPIClient(t, api, "old")
		var rotate sync.Once
		api.refused = func() {
			rotate.Do(func() {
				if err := os.WriteFile(tokenFile, []byte("new\n"), 0o600); err != nil {
					t.Error(err)
				}
			})
		}
		capture := &captureSink{}
		h := newHarness(t, harnessOpts{adapterType: "namespace", reader: client, cfg: func(c *Config) { c.MaxAttempts = 3 }})
		h.p.sink = events.MultiSink{capture, apiclient.NewStatusSink(client)}
		src := h.run(t, []*events.Message{sentinelClusterEvent(t)})
		if o := src.Outcomes(); len(o) != 1 || o[0].Settlement != "ack" {
			t.Fatalf("outcomes %+v, want one ack", o)
		}
		if c := h.p.Stats().Counts(); c[Reconciled] != 1 || c[Failed] != 0 {
			t.Fatalf("stats %v", c)
		}
		// The second OK GET is the check before the report (newerWork).
		want := []string{"GET Unauthorized", "GET OK", "GET OK", "PUT Created"}
		if got := api.requests(); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("the API saw %v, want %v", got, want)
		}
		if reps := capture.reports(t); len(reps) != 1 || conditions(reps[0].Report)["Health"] != "True" {
			t.Fatalf("reports %+v", reps)
		}
	})
	t.Run("LastingRefusalBoundedByMaxAttempts", func(t *testing.T) {
		api := &apiStandIn{t: t}
		api.token.Store("new")
		client, _ := newAPIClient(t, api, "old")
		h := newHarness(t, harnessOpts{adapterType: "namespace", reader: client, cfg: func(c *Config) { c.MaxAttempts = 3 }})
		src := h.run(t, []*events.Message{sentinelClusterEvent(t)})
		o := src.Outcomes()
		if len(o) != 1 || o[0].Settlement != "dead-letter" || o[0].Attempts != 3 {
			t.Fatalf("outcomes %+v, want one dead-letter after 3 attempts", o)
		}
		for _, want := range []string{"HTTP 401", "authentication", "HYPERFLEET_API_TOKEN_FILE"} {
			if !strings.Contains(o[0].Reason, want) {
				t.Errorf("dead-letter reason %q does not mention %q", o[0].Reason, want)
			}
		}
		if got := len(api.requests()); got != 3 {
			t.Errorf("the API saw %d requests, want 3 (one per attempt, none retried inside the client)", got)
		}
	})
}

// The resource is deleted while its event runs: the status PUT answers
// 404. The event is gone (acknowledged), not dead-lettered.
func TestStatusPut404IsGone(t *testing.T) {
	api := &apiStandIn{t: t}
	api.token.Store("t")
	api.putStatus.Store(http.StatusNotFound)
	client, _ := newAPIClient(t, api, "t")
	h := newHarness(t, harnessOpts{adapterType: "namespace", reader: client})
	sink := apiclient.NewStatusSink(client)
	h.p.sink = sink
	src := h.run(t, []*events.Message{sentinelClusterEvent(t)})
	if o := src.Outcomes(); len(o) != 1 || o[0].Settlement != "ack" {
		t.Fatalf("outcomes %+v, want one ack", o)
	}
	if c := h.p.Stats().Counts(); c[Gone] != 1 || c[Failed] != 0 {
		t.Fatalf("stats %v, want gone 1, failed 0", c)
	}
	// The second GET is the check before the report (newerWork).
	if got := api.requests(); strings.Join(got, ",") != "GET OK,GET OK,PUT Not Found" {
		t.Fatalf("the API saw %v, want the resource's GET, the check's GET and one PUT (no retry, no failure report)", got)
	}
	if stored, ignored, rejected := sink.Counts(); stored+ignored+rejected != 0 {
		t.Errorf("sink counts stored %d ignored %d rejected %d: a 404 is none of them", stored, ignored, rejected)
	}
}

// retrySignal is an Observer that says when the first retry happens.
type retrySignal struct {
	nopObserver
	once  sync.Once
	first chan struct{}
}

func (r *retrySignal) Retried() { r.once.Do(func() { close(r.first) }) }

// The first event of a new cluster comes before its consumer is
// registered in Maestro. The consumer is registered 10 s later, after the
// first try has failed: the event is retried past MAX_ATTEMPTS while
// CONSUMER_WAIT lasts and succeeds; nothing is dead-lettered.
func TestConsumerRegisteredLaterIsWaitedFor(t *testing.T) {
	env := maestrotest.Require(t)
	suffix := remoteSuffix(t)
	consumer := "pl-late-" + suffix
	counter := &applyCounter{}
	const maxAttempts = 2
	h := newRemoteHarness(t, remoteHarnessOpts{env: env, adapterType: "namespace", consumer: consumer,
		backend: func(o *remote.Options) { o.ConsumerWait = time.Minute },
		cfg: func(c *Config) {
			c.MaxAttempts = maxAttempts
			c.RetryBaseDelay, c.RetryMaxDelay = 100*time.Millisecond, 2*time.Second
		},
		wrap: func(d maestro.Delivery) maestro.Delivery { counter.Delivery = d; return counter }})
	signal := &retrySignal{first: make(chan struct{})}
	h.p.observer = signal

	received := time.Now()
	done := make(chan struct{})
	var outcomes []recordingOutcome
	go func() {
		defer close(done)
		for _, o := range h.run(t, clusterMsg(t, "ev-"+suffix, "c-late-"+suffix, 1, map[string]string{"a": "b"}, false)) {
			outcomes = append(outcomes, recordingOutcome{o.Settlement, o.Reason})
		}
	}()
	select {
	case <-signal.first:
	case <-done:
		t.Fatalf("the event finished before the consumer was registered: %+v", outcomes)
	case <-time.After(30 * time.Second):
		t.Fatal("no retry after the first try met an unregistered consumer")
	}
	// The scenario: the consumer shows up 10 s after the event (a wait
	// for the clock, not for a condition: nothing signals a registration
	// that has not happened).
	time.Sleep(time.Until(received.Add(10 * time.Second)))
	startRemoteAgent(t, env, consumer, nil)
	<-done

	if len(outcomes) != 1 || outcomes[0].settlement != "ack" {
		t.Fatalf("outcomes %+v, want one ack", outcomes)
	}
	if n := counter.n.Load(); n <= maxAttempts {
		t.Errorf("%d applies, want more than MAX_ATTEMPTS=%d (the consumer wait outlasts it)", n, maxAttempts)
	}
	if c := h.p.Stats().Counts(); c[Reconciled] != 1 || c[Failed] != 0 {
		t.Errorf("stats %v", c)
	}
	reps := h.sink.reports(t)
	if len(reps) != 1 {
		t.Fatalf("%d reports, want 1 (no failure report): %+v", len(reps), reps)
	}
	requireConditions(t, "report", reps[0].Report, map[string]string{"Applied": "True", "Available": "True", "Health": "True"})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for name, b := range maestrotest.Bundles(t, env.HTTPEndpoint, h.sourceID) {
			_ = h.backend.Delete(ctx, b.ConsumerName, name)
		}
	})
}

type recordingOutcome struct{ settlement, reason string }

// A consumer that is still not registered when CONSUMER_WAIT is over
// makes the event fail permanently, with a reason naming the consumer and
// CONSUMER_WAIT.
func TestConsumerWaitRunsOut(t *testing.T) {
	env := maestrotest.Require(t)
	suffix := remoteSuffix(t)
	consumer := "pl-never-" + suffix
	h := newRemoteHarness(t, remoteHarnessOpts{env: env, adapterType: "namespace", consumer: consumer,
		backend: func(o *remote.Options) { o.ConsumerWait = time.Second },
		cfg: func(c *Config) {
			c.MaxAttempts = 100 // the wait, not the attempts, must end it
			c.RetryBaseDelay, c.RetryMaxDelay = 50*time.Millisecond, 200*time.Millisecond
		}})
	start := time.Now()
	out := h.run(t, clusterMsg(t, "ev-"+suffix, "c-never-"+suffix, 1, map[string]string{"a": "b"}, false))
	if len(out) != 1 || out[0].Settlement != "dead-letter" || out[0].Attempts >= 100 {
		t.Fatalf("outcomes %+v, want one dead-letter before MAX_ATTEMPTS", out)
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("dead-lettered after %s, before CONSUMER_WAIT (1s) was over", took)
	}
	for _, want := range []string{`Maestro consumer "` + consumer + `" is not registered`, "CONSUMER_WAIT"} {
		if !strings.Contains(out[0].Reason, want) {
			t.Errorf("dead-letter reason %q does not mention %q", out[0].Reason, want)
		}
	}
}
