// Package apiclient speaks to the HyperFleet API over HTTP: Client reads a
// resource and its adapters' status reports and writes the adapter's own
// (PUT .../statuses), retrying 5xx, 408, 429 and network errors with
// jittered backoff; StatusSink is the events.StatusSink that forwards each
// status CloudEvent's report through it. What it reads and writes are
// package hyperfleet's types.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/backoff"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
	"github.com/openshift-hyperfleet/maestro-adapter/redact"
)

// Config configures the HyperFleet API client.
type Config struct {
	// BaseURL is the API's address, e.g. https://hyperfleet-api:8000. Hrefs
	// are resolved against it.
	BaseURL string
	// TokenFile holds the bearer token; it is re-read when it changes on disk
	// (projected service-account tokens rotate). Empty: no Authorization.
	// It needs an https BaseURL unless Insecure is set.
	TokenFile string
	// Insecure lets the token travel over an http:// BaseURL, in clear
	// (HYPERFLEET_API_INSECURE; local setups only).
	Insecure bool
	// Timeout bounds one HTTP request.
	Timeout time.Duration
	// MaxAttempts bounds tries of one call on 5xx, 408, 429 and network
	// errors; the backoff between them doubles from BaseDelay with jitter.
	MaxAttempts int
	BaseDelay   time.Duration
	MaxDelay    time.Duration
	HTTPClient  *http.Client
	Logger      *slog.Logger
}

// Validate names the first bad setting.
func (c *Config) Validate() error {
	u, err := url.Parse(c.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("HYPERFLEET_API_URL: %q is not an http(s) URL", redact.URL(c.BaseURL))
	}
	if u.User != nil {
		// Go would send them as basic auth, over http in clear.
		return fmt.Errorf("HYPERFLEET_API_URL: must not carry credentials (%s); use HYPERFLEET_API_TOKEN_FILE", redact.URL(c.BaseURL))
	}
	if c.MaxAttempts < 1 {
		return fmt.Errorf("HYPERFLEET_API_MAX_ATTEMPTS: %d, want >= 1", c.MaxAttempts)
	}
	if c.Timeout <= 0 {
		return fmt.Errorf("HYPERFLEET_API_TIMEOUT: %s, want > 0", c.Timeout)
	}
	if c.TokenFile != "" && u.Scheme == "http" && !c.Insecure {
		return fmt.Errorf("HYPERFLEET_API_TOKEN_FILE is set and HYPERFLEET_API_URL %q is http://: the token would travel in clear; use https, or set HYPERFLEET_API_INSECURE=true where that is acceptable (a local stack)", c.BaseURL)
	}
	if c.TokenFile != "" {
		if _, err := os.Stat(c.TokenFile); err != nil {
			return fmt.Errorf("HYPERFLEET_API_TOKEN_FILE: %w", err)
		}
	}
	return nil
}

// Client reads resources from the HyperFleet API and writes status reports.
type Client struct {
	cfg  Config
	base *url.URL
	http *http.Client
	log  *slog.Logger
}

// New validates cfg and builds a client (once per process).
func New(cfg Config) (*Client, error) {
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 5
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.BaseDelay == 0 {
		cfg.BaseDelay = 200 * time.Millisecond
	}
	if cfg.MaxDelay == 0 {
		cfg.MaxDelay = 10 * time.Second
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	base, _ := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: cfg.Timeout}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Client{cfg: cfg, base: base, http: hc, log: log}, nil
}

var _ hyperfleet.ResourceReader = (*Client)(nil)

// GetResource implements hyperfleet.ResourceReader with GET {base}/api/hyperfleet/v1/{path}.
func (c *Client) GetResource(ctx context.Context, href string) (*hyperfleet.Resource, error) {
	rel, err := hyperfleet.RelativePath(href)
	if err != nil {
		return nil, failure.Permanent(err)
	}
	var res hyperfleet.Resource
	status, err := c.do(ctx, http.MethodGet, hyperfleet.APIPrefix+rel, nil, &res)
	if err != nil {
		return nil, err
	}
	if status == http.StatusNotFound {
		return nil, fmt.Errorf("GET %s: %w", href, hyperfleet.ErrNotFound)
	}
	if err := res.Validate(); err != nil {
		return nil, failure.Permanent(fmt.Errorf("GET %s: %w", href, err))
	}
	return &res, nil
}

// PutStatus sends one adapter status report for the resource at href
// (PUT {href}/statuses; POST answers 405 since 2026). 201 and 204 (stale
// or repeated report, discarded by the API) are both success; 404 is an
// error wrapping ErrNotFound.
func (c *Client) PutStatus(ctx context.Context, href string, report hyperfleet.StatusReport) (int, error) {
	rel, err := hyperfleet.RelativePath(href)
	if err != nil {
		return 0, failure.Permanent(err)
	}
	body, err := json.Marshal(report)
	if err != nil {
		return 0, failure.Permanent(fmt.Errorf("encode status report: %w", err))
	}
	status, err := c.do(ctx, http.MethodPut, hyperfleet.APIPrefix+rel+"/statuses", body, nil)
	if err != nil {
		return status, err
	}
	if status == http.StatusNotFound {
		// The resource was deleted meanwhile: there is nothing left to
		// report on. The pipeline takes this as the resource being gone.
		return status, failure.Permanent(fmt.Errorf("PUT %s/statuses: %w", href, hyperfleet.ErrNotFound))
	}
	return status, nil
}

// do runs one call with retries. It returns the final status code; 2xx and
// 404 are not errors (the caller decides what 404 means). 401 and 403 are
// transient, wrapping ErrAuthentication; other 4xx are permanent; 5xx, 408,
// 429 and network errors are retried, then transient.
func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) (int, error) {
	target := c.base.String() + path
	var lastErr error
	for attempt := 1; attempt <= c.cfg.MaxAttempts; attempt++ {
		if attempt > 1 {
			if err := backoff.Sleep(ctx, backoff.Delay(c.cfg.BaseDelay, c.cfg.MaxDelay, attempt-1)); err != nil {
				return 0, failure.Transient(fmt.Errorf("%s %s: %w (last error: %v)", method, path, err, lastErr))
			}
		}
		status, retry, err := c.once(ctx, method, target, body, out)
		if err == nil {
			return status, nil
		}
		if errors.Is(err, ErrAuthentication) {
			// Not retried here: the event's tries, with their longer
			// backoff, give a token rotation time; the token file is
			// re-read on each.
			return status, failure.Transient(fmt.Errorf("%s %s: %w", method, path, err))
		}
		if !retry {
			return status, failure.Permanent(fmt.Errorf("%s %s: %w", method, path, err))
		}
		lastErr = err
		c.log.DebugContext(ctx, "hyperfleet api call failed, retrying", "method", method, "path", path, "attempt", attempt, "err", err)
	}
	return 0, failure.Transient(fmt.Errorf("%s %s: gave up after %d attempts: %w", method, path, c.cfg.MaxAttempts, lastErr))
}

func (c *Client) once(ctx context.Context, method, target string, body []byte, out any) (status int, retry bool, err error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return 0, false, err
	}
	req.Header.Set("Accept", "application/json")
	// The event's trace context (its span, or its traceparent as it came
	// when tracing is off) goes with every call made for it: W3C
	// traceparent, as HyperFleet's API and Sentinel speak.
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(req.Header))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.cfg.TokenFile != "" {
		tok, err := os.ReadFile(c.cfg.TokenFile)
		if err != nil {
			return 0, true, fmt.Errorf("read token file: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, false, ctx.Err()
		}
		return 0, true, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return resp.StatusCode, true, fmt.Errorf("read response: %w", err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return resp.StatusCode, false, nil
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		if out != nil && len(data) > 0 {
			if err := json.Unmarshal(data, out); err != nil {
				return resp.StatusCode, false, fmt.Errorf("decode response: %w", err)
			}
		}
		return resp.StatusCode, false, nil
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return resp.StatusCode, false, fmt.Errorf("HTTP %d: %w (check HYPERFLEET_API_TOKEN_FILE): %s", resp.StatusCode, ErrAuthentication, snippet(data))
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode == http.StatusTooManyRequests:
		return resp.StatusCode, true, fmt.Errorf("HTTP %d: %s", resp.StatusCode, snippet(data))
	default:
		return resp.StatusCode, false, fmt.Errorf("HTTP %d: %s", resp.StatusCode, snippet(data))
	}
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	if s == "" {
		return "(empty body)"
	}
	return s
}

// ErrAuthentication means the API refused the adapter's credentials (HTTP
// 401 or 403). Such errors are transient: a rotated token is read from
// HYPERFLEET_API_TOKEN_FILE on the next try, and the event's tries
// (MAX_ATTEMPTS) bound how long a lasting refusal is retried.
var ErrAuthentication = errors.New("the HyperFleet API refused the adapter's credentials (authentication)")
