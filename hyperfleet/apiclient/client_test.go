package apiclient

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

func readSample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "contracts", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newTestClient(t *testing.T, h http.Handler, token string) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg := Config{BaseURL: srv.URL, MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond, Timeout: 5 * time.Second}
	if token != "" {
		f := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(f, []byte(token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg.TokenFile = f
		cfg.Insecure = true // httptest serves http; the refusal without it is TestTokenOverHTTPNeedsOptIn
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestGetResourceRetriesAndAuth(t *testing.T) {
	body := readSample(t, "cluster-get-response.json")
	var calls atomic.Int32
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer s3cret" {
			t.Errorf("authorization header %q", r.Header.Get("Authorization"))
		}
		if r.URL.Path != "/api/hyperfleet/v1/clusters/019466a0-8f8e-7abc-9def-0123456789ab" {
			t.Errorf("path %s", r.URL.Path)
		}
		switch calls.Add(1) {
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable)
		case 2:
			w.WriteHeader(http.StatusTooManyRequests)
		default:
			_, _ = w.Write(body)
		}
	}), "s3cret")
	res, err := c.GetResource(context.Background(), "/api/hyperfleet/v1/clusters/019466a0-8f8e-7abc-9def-0123456789ab")
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 3 || res.Name != "hp-cluster-abc12" || res.Generation != 1 || res.Spec["dns"] == nil {
		t.Fatalf("calls=%d res=%+v", calls.Load(), res)
	}
}

func TestGetResourceErrors(t *testing.T) {
	var status atomic.Int32
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
		_, _ = w.Write([]byte(`{"reason":"nope"}`))
	}), "")
	ctx := context.Background()

	status.Store(http.StatusNotFound)
	if _, err := c.GetResource(ctx, "/api/hyperfleet/v1/clusters/x"); !errors.Is(err, hyperfleet.ErrNotFound) {
		t.Fatalf("404: %v", err)
	}
	for _, code := range []int32{http.StatusUnauthorized, http.StatusForbidden} {
		status.Store(code)
		_, err := c.GetResource(ctx, "/api/hyperfleet/v1/clusters/x")
		if err == nil || failure.IsPermanent(err) || !errors.Is(err, ErrAuthentication) ||
			!strings.Contains(err.Error(), "authentication") || !strings.Contains(err.Error(), "HYPERFLEET_API_TOKEN_FILE") {
			t.Fatalf("%d must be transient, naming authentication and the token file: %v", code, err)
		}
	}
	status.Store(http.StatusUnprocessableEntity)
	_, err := c.GetResource(ctx, "/api/hyperfleet/v1/clusters/x")
	if err == nil || !failure.IsPermanent(err) {
		t.Fatalf("422 must be permanent: %v", err)
	}
	status.Store(http.StatusBadGateway)
	_, err = c.GetResource(ctx, "/api/hyperfleet/v1/clusters/x")
	if err == nil || failure.IsPermanent(err) {
		t.Fatalf("502 after retries must be transient: %v", err)
	}
}

func TestPutStatus(t *testing.T) {
	var got hyperfleet.StatusReport
	var status atomic.Int32
	status.Store(http.StatusCreated)
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut || r.URL.Path != "/api/hyperfleet/v1/clusters/c1/statuses" {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			t.Error(err)
		}
		w.WriteHeader(int(status.Load()))
	}), "")
	rep := hyperfleet.StatusReport{Adapter: "a", ObservedGeneration: 2, ObservedTime: time.Now().UTC(),
		Conditions: []hyperfleet.Condition{{Type: hyperfleet.ConditionApplied, Status: hyperfleet.True}}}
	for _, s := range []int{http.StatusCreated, http.StatusNoContent} {
		status.Store(int32(s))
		code, err := c.PutStatus(context.Background(), "/api/hyperfleet/v1/clusters/c1", rep)
		if err != nil || code != s {
			t.Fatalf("status %d: code=%d err=%v", s, code, err)
		}
	}
	if got.ObservedGeneration != 2 || got.Adapter != "a" {
		t.Fatalf("server saw %+v", got)
	}
	status.Store(http.StatusBadRequest)
	if _, err := c.PutStatus(context.Background(), "/api/hyperfleet/v1/clusters/c1", rep); err == nil || !failure.IsPermanent(err) {
		t.Fatalf("400 must be a permanent error: %v", err)
	}
	status.Store(http.StatusNotFound)
	if _, err := c.PutStatus(context.Background(), "/api/hyperfleet/v1/clusters/c1", rep); !errors.Is(err, hyperfleet.ErrNotFound) {
		t.Fatalf("404 must wrap ErrNotFound (the resource is gone): %v", err)
	}
}

func TestTokenOverHTTPNeedsOptIn(t *testing.T) {
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{BaseURL: "http://hyperfleet-api:8000", TokenFile: token, MaxAttempts: 1, Timeout: time.Second}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("a token over http was accepted")
	}
	for _, w := range []string{"HYPERFLEET_API_TOKEN_FILE", "HYPERFLEET_API_URL", "http://hyperfleet-api:8000", "HYPERFLEET_API_INSECURE=true"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not name %s", err, w)
		}
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("error %q shows the token", err)
	}
	cfg.Insecure = true
	if err := cfg.Validate(); err != nil {
		t.Errorf("with the opt-in: %v", err)
	}
	cfg.Insecure, cfg.BaseURL = false, "https://hyperfleet-api:8000"
	if err := cfg.Validate(); err != nil {
		t.Errorf("over https: %v", err)
	}
	cfg.BaseURL, cfg.TokenFile = "http://hyperfleet-api:8000", ""
	if err := cfg.Validate(); err != nil {
		t.Errorf("http without a token: %v", err)
	}
	// Credentials in the URL would go as basic auth; the error masks them.
	for _, u := range []string{"https://user:hunter2@hyperfleet-api:8000", "http://user:hunt%zz2@hyperfleet-api"} {
		cfg.BaseURL = u
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), "HYPERFLEET_API_URL") || strings.Contains(err.Error(), "hunt") {
			t.Errorf("URL %s: %v, want an error naming HYPERFLEET_API_URL without the password", u, err)
		}
	}
}
