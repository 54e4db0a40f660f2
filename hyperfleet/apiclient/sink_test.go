package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// apiStandIn enforces the status endpoint's documented rules
// (CONTRACTS.md §3). The HyperFleet API itself cannot run here (it needs
// its own database schema and auth stack), so this stands in for it,
// quirks included: POST is 405, a string generation or a missing mandatory
// condition is 400, a stale or future generation or a repeated Unknown is
// 204, a fresh report is 201, and the first failUntil calls answer 503.
type apiStandIn struct {
	mu        sync.Mutex
	current   int64 // the resource's generation
	stored    map[string]int64
	lastBody  map[string][]byte
	failUntil int
	calls     int
}

func (a *apiStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	if a.calls <= a.failUntil {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if !strings.HasSuffix(r.URL.Path, "/statuses") {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	if r.Method != http.MethodPut {
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	var raw map[string]json.RawMessage
	body := new(bytes.Buffer)
	_, _ = body.ReadFrom(r.Body)
	if err := json.Unmarshal(body.Bytes(), &raw); err != nil {
		http.Error(w, `{"reason":"malformed"}`, http.StatusBadRequest)
		return
	}
	gen := raw["observed_generation"]
	if len(gen) == 0 || gen[0] == '"' {
		http.Error(w, `{"reason":"observed_generation must be an integer"}`, http.StatusBadRequest)
		return
	}
	var rep hyperfleet.StatusReport
	if err := json.Unmarshal(body.Bytes(), &rep); err != nil {
		http.Error(w, `{"reason":"bad report"}`, http.StatusBadRequest)
		return
	}
	for _, t := range []string{hyperfleet.ConditionApplied, hyperfleet.ConditionAvailable, hyperfleet.ConditionHealth} {
		if rep.Condition(t) == nil {
			http.Error(w, `{"reason":"missing mandatory condition `+t+`"}`, http.StatusBadRequest)
			return
		}
	}
	if d := time.Since(rep.ObservedTime); d > 30*time.Minute || d < -5*time.Minute {
		http.Error(w, `{"reason":"observed_time out of range"}`, http.StatusBadRequest)
		return
	}
	key := r.URL.Path + "|" + rep.Adapter
	if rep.ObservedGeneration > a.current || rep.ObservedGeneration < a.stored[key] {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if rep.Condition(hyperfleet.ConditionAvailable).Status == hyperfleet.Unknown && bytes.Equal(a.lastBody[key], body.Bytes()) {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	a.stored[key] = rep.ObservedGeneration
	a.lastBody[key] = body.Bytes()
	w.WriteHeader(http.StatusCreated)
}

func statusEvent(t *testing.T, rep hyperfleet.StatusReport) cloudevents.Event {
	t.Helper()
	ev := cloudevents.New()
	ev.SetID("s1")
	ev.SetType("com.redhat.hyperfleet.adapter.status")
	ev.SetSource("hyperfleet-adapter/test")
	if err := ev.SetData(cloudevents.ApplicationJSON, hyperfleet.StatusEnvelope{
		Resource: hyperfleet.ObjectRef{Kind: "Cluster", ID: "c1", Href: "/api/hyperfleet/v1/clusters/c1"}, Report: rep}); err != nil {
		t.Fatal(err)
	}
	return ev
}

func report(gen int64, conds ...string) hyperfleet.StatusReport {
	r := hyperfleet.StatusReport{Adapter: "namespace", ObservedGeneration: gen, ObservedTime: time.Now().UTC()}
	for _, c := range conds {
		r.Conditions = append(r.Conditions, hyperfleet.Condition{Type: c, Status: hyperfleet.True, Reason: "Ok"})
	}
	return r
}

func TestAPISinkAgainstStandIn(t *testing.T) {
	api := &apiStandIn{current: 2, stored: map[string]int64{}, lastBody: map[string][]byte{}, failUntil: 2}
	c := newTestClient(t, api, "tok")
	sink := NewStatusSink(c)
	ctx := context.Background()
	all := []string{hyperfleet.ConditionApplied, hyperfleet.ConditionAvailable, hyperfleet.ConditionHealth}

	// Two 503s are retried; the third call stores the report.
	if err := sink.Publish(ctx, statusEvent(t, report(2, all...))); err != nil {
		t.Fatal(err)
	}
	// A stale generation is discarded by the API with 204: success.
	if err := sink.Publish(ctx, statusEvent(t, report(1, all...))); err != nil {
		t.Fatal(err)
	}
	// A missing mandatory condition never leaves the adapter.
	err := sink.Publish(ctx, statusEvent(t, report(2, hyperfleet.ConditionApplied, hyperfleet.ConditionAvailable)))
	if err == nil || !failure.IsPermanent(err) || !strings.Contains(err.Error(), "mandatory condition Health") {
		t.Fatalf("missing Health: %v", err)
	}
	// A report the server refuses (observed_time far in the past) is permanent.
	old := report(2, all...)
	old.ObservedTime = time.Now().Add(-2 * time.Hour)
	err = sink.Publish(ctx, statusEvent(t, old))
	if err == nil || !failure.IsPermanent(err) || !strings.Contains(err.Error(), "HTTP 400") {
		t.Fatalf("old observed_time: %v", err)
	}
	stored, ignored, rejected := sink.Counts()
	if stored != 1 || ignored != 1 || rejected != 2 {
		t.Fatalf("stored=%d ignored=%d rejected=%d", stored, ignored, rejected)
	}
	if api.stored["/api/hyperfleet/v1/clusters/c1/statuses|namespace"] != 2 {
		t.Fatalf("stand-in state %v", api.stored)
	}
}

// The stand-in's own rules are checked too, so that it cannot drift into
// accepting what the API refuses.
func TestAPIStandInRules(t *testing.T) {
	api := &apiStandIn{current: 1, stored: map[string]int64{}, lastBody: map[string][]byte{}}
	srv := httptest.NewServer(api)
	defer srv.Close()
	post, _ := http.Post(srv.URL+"/api/hyperfleet/v1/clusters/c1/statuses", "application/json", strings.NewReader("{}"))
	if post.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", post.StatusCode)
	}
	body := `{"adapter":"a","observed_generation":"1","observed_time":"` + time.Now().UTC().Format(time.RFC3339) + `","conditions":[]}`
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/api/hyperfleet/v1/clusters/c1/statuses", strings.NewReader(body))
	resp, _ := http.DefaultClient.Do(req)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("string generation: %d", resp.StatusCode)
	}
}
