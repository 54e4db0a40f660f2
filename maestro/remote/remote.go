// Package remote delivers ManifestWorks through a real Maestro server: one
// long-lived gRPC source client per process (Maestro's grpcsource client,
// writes over gRPC, reads over REST) under the shared apply logic of
// maestro.SourceDelivery.
//
// What this package adds to that logic is what only a remote server needs:
// transport security (TLS, mTLS, bearer token), riding out an unreachable
// or restarting server with bounded retries, a consumer-registration check
// (Maestro would otherwise take a work for a consumer that does not exist
// and fail it with a bare, retryable-looking error), and a readiness check.
package remote

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	workv1client "open-cluster-management.io/api/client/work/clientset/versioned/typed/work/v1"
	workv1 "open-cluster-management.io/api/work/v1"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/common"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/utils"
	grpcoptions "open-cluster-management.io/sdk-go/pkg/cloudevents/generic/options/grpc"

	"github.com/openshift-online/maestro/pkg/api/openapi"
	"github.com/openshift-online/maestro/pkg/client/cloudevents/grpcsource"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/backoff"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
)

// Backend is a maestro.Delivery on a real Maestro server. Create one per
// process with New and Close it at shutdown. It is safe for concurrent use.
type Backend struct {
	*maestro.SourceDelivery

	opts      Options
	log       *slog.Logger
	api       *openapi.APIClient
	http      *http.Client
	dialer    *grpcoptions.GRPCDialer
	wdialer   *grpcoptions.GRPCDialer
	conns     *connTracker
	consumers *consumers

	cancel    context.CancelFunc
	closeOnce sync.Once
	closeErr  error
}

var _ maestro.Delivery = (*Backend)(nil)

// New validates opts, starts the gRPC source client and returns the backend.
//
// An unreachable Maestro does not fail New: the client keeps reconnecting in
// the background, Ready reports the problem, and deliveries fail with
// transient errors naming the endpoint until it is back. New waits up to
// DialTimeout (or until ctx ends) for a first connection, to log whether it
// got one. ctx only bounds that wait; the client lives until Close.
func New(ctx context.Context, opts Options) (*Backend, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	log := opts.Logger

	tlsCfg, tok, err := credentials(opts)
	if err != nil {
		return nil, fmt.Errorf("maestro backend: %w", err)
	}
	api, httpClient := restClient(opts, tlsCfg, tok)

	// gRPC: writes, and status updates pushed by the server.
	conns := newConnTracker()
	dialOpts := []grpc.DialOption{
		grpc.WithStatsHandler(conns),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           grpcBackoff,
			MinConnectTimeout: opts.DialTimeout,
		}),
	}
	if tok != nil {
		dialOpts = append(dialOpts, grpc.WithPerRPCCredentials(tok))
	}
	dialer := &grpcoptions.GRPCDialer{URL: opts.GRPCEndpoint, ExtraDialOpts: dialOpts}
	if opts.tls() {
		dialer.TLSConfig = tlsCfg
	}
	healthiness := opts.ServerHealthinessTimeout
	grpcOpts := &grpcoptions.GRPCOptions{Dialer: dialer, ServerHealthinessTimeout: &healthiness}

	// The client outlives New's ctx: it is stopped by Close.
	clientCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	client, err := grpcsource.NewMaestroGRPCSourceWorkClient(clientCtx, newSDKLogger(log), api, grpcOpts, opts.SourceID)
	if err != nil {
		cancel()
		_ = dialer.Close()
		return nil, fmt.Errorf("maestro backend: starting the source client for %s: %w", opts.GRPCEndpoint, err)
	}

	srcOpts := opts.Source
	var works workv1client.WorkV1Interface = client
	var wdialer *grpcoptions.GRPCDialer
	if wrapper, ok := client.(*grpcsource.WorkV1ClientWrapper); ok && wrapper.ManifestWorkClient != nil {
		// Writes go through a client that does not read what Apply
		// already knows (see writer.go), on a connection of its own.
		wdialer = &grpcoptions.GRPCDialer{URL: dialer.URL, ExtraDialOpts: dialOpts, TLSConfig: dialer.TLSConfig}
		wOpts := &grpcoptions.GRPCOptions{Dialer: wdialer, ServerHealthinessTimeout: &healthiness}
		writer, pub, err := newWriter(clientCtx, api, wOpts, opts.SourceID)
		if err != nil {
			cancel()
			_ = dialer.Close()
			_ = wdialer.Close()
			return nil, fmt.Errorf("maestro backend: starting the writing source client for %s: %w", opts.GRPCEndpoint, err)
		}
		works = splitClient{perCallNamespace: perCallNamespace{wrapper}, writer: writer, pub: pub}
		srcOpts.IndependentNamespaces = true
	}
	b := &Backend{
		SourceDelivery: maestro.NewSourceDelivery(works, srcOpts),
		opts:           opts,
		log:            log,
		api:            api,
		http:           httpClient,
		dialer:         dialer,
		wdialer:        wdialer,
		conns:          conns,
		consumers:      newConsumers(api, opts.HTTPEndpoint, opts.ConsumerWait),
		cancel:         cancel,
	}

	probeCtx, stop := context.WithTimeout(ctx, opts.DialTimeout)
	defer stop()
	if err := b.waitReady(probeCtx); err != nil {
		log.Warn("Maestro is not reachable yet; deliveries fail (transiently) until it is",
			"grpc", opts.GRPCEndpoint, "http", opts.HTTPEndpoint, "err", err)
	} else {
		log.Info("connected to Maestro", "grpc", opts.GRPCEndpoint, "http", opts.HTTPEndpoint,
			"source_id", opts.SourceID, "tls", opts.tls(), "delete_propagation", opts.DeletePropagation)
	}
	return b, nil
}

// credentials loads what both connections authenticate with: the TLS
// configuration (nil when neither gRPC nor REST uses TLS) and the bearer
// token (nil without TokenFile).
func credentials(opts Options) (*tls.Config, *token, error) {
	var tlsCfg *tls.Config
	if opts.tls() || opts.httpsREST() {
		var err error
		if tlsCfg, err = tlsConfig(opts); err != nil {
			return nil, nil, err
		}
	}
	var tok *token
	if opts.TokenFile != "" {
		tok = &token{file: newFileCache(opts.TokenFile)}
		if _, err := tok.value(); err != nil {
			return nil, nil, err
		}
	}
	return tlsCfg, tok, nil
}

// userAgent names this adapter in every REST request it makes.
const userAgent = "hyperfleet-maestro-adapter"

// workID is the id Maestro gives the resource bundle of the work
// consumer/name written by sourceID (the OCM source client's choice): the
// key of every REST read of one work.
func workID(sourceID, consumer, name string) string {
	return utils.UID(sourceID, common.ManifestWorkGR.String(), consumer, name)
}

// restClient builds the REST API client: reads, the watch's listing and
// resync, the consumer check.
func restClient(opts Options, tlsCfg *tls.Config, tok *token) (*openapi.APIClient, *http.Client) {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.DialContext = (&net.Dialer{Timeout: opts.DialTimeout, KeepAlive: 30 * time.Second}).DialContext
	transport.TLSHandshakeTimeout = opts.DialTimeout
	// Every request goes to the one Maestro host, and deliveries run
	// concurrently: keep enough idle connections for them, or each burst
	// dials (and then closes) new ones (seen in the benchmark's profile
	// with the default of 2).
	transport.MaxIdleConnsPerHost = 64
	if opts.httpsREST() {
		transport.TLSClientConfig = tlsCfg.Clone()
	}
	var rt http.RoundTripper = transport
	if tok != nil {
		rt = &bearerTransport{token: tok, next: transport, insecure: opts.Insecure}
	}
	httpClient := &http.Client{Transport: rt, Timeout: opts.RequestTimeout}
	apiCfg := openapi.NewConfiguration()
	apiCfg.Servers = openapi.ServerConfigurations{{URL: strings.TrimRight(opts.HTTPEndpoint, "/")}}
	apiCfg.HTTPClient = httpClient
	apiCfg.UserAgent = userAgent
	return openapi.NewAPIClient(apiCfg), httpClient
}

// Apply implements maestro.Delivery: it checks that the consumer
// (work.Namespace) is registered, then applies through the shared logic,
// retrying while Maestro is unreachable (see Options.UnavailableTimeout).
func (b *Backend) Apply(ctx context.Context, work *workv1.ManifestWork) (*workv1.ManifestWork, error) {
	var out *workv1.ManifestWork
	what := "applying work"
	if work != nil {
		what = fmt.Sprintf("applying work %s/%s", work.Namespace, work.Name)
	}
	err := b.whileUnreachable(ctx, what, func() error {
		if work != nil && work.Namespace != "" {
			if err := b.consumers.check(ctx, work.Namespace); err != nil {
				return err
			}
		}
		var err error
		out, err = b.SourceDelivery.Apply(ctx, work)
		return err
	})
	return out, err
}

// Delete implements maestro.Delivery, retrying while Maestro is
// unreachable. The work's spec.deleteOption (set at Apply from
// Options.DeletePropagation) decides whether its resources go with it.
func (b *Backend) Delete(ctx context.Context, consumer, name string) error {
	return b.whileUnreachable(ctx, fmt.Sprintf("deleting work %s/%s", consumer, name), func() error {
		return b.SourceDelivery.Delete(ctx, consumer, name)
	})
}

// Get implements maestro.Delivery, retrying while Maestro is unreachable.
func (b *Backend) Get(ctx context.Context, consumer, name string) (*workv1.ManifestWork, error) {
	var out *workv1.ManifestWork
	err := b.whileUnreachable(ctx, fmt.Sprintf("getting work %s/%s", consumer, name), func() error {
		var err error
		out, err = b.SourceDelivery.Get(ctx, consumer, name)
		return err
	})
	return out, err
}

// Ready reports whether Maestro can be used now: its REST API answers and
// the gRPC source client is connected. For /readyz.
func (b *Backend) Ready(ctx context.Context) error {
	var errs []error
	_, resp, err := b.api.DefaultAPI.ApiMaestroV1ConsumersGet(ctx).Size(1).Execute()
	if err != nil {
		if resp != nil {
			err = fmt.Errorf("HTTP %d: %w", resp.StatusCode, err)
		}
		errs = append(errs, fmt.Errorf("Maestro REST API at %s: %w", b.opts.HTTPEndpoint, err))
	}
	if connected, since, _ := b.conns.state(); !connected {
		errs = append(errs, fmt.Errorf("Maestro gRPC server at %s: not connected (for %s)",
			b.opts.GRPCEndpoint, time.Since(since).Round(time.Millisecond)))
	}
	return errors.Join(errs...)
}

// waitReady polls Ready until it passes or ctx ends, waking early when the
// gRPC connection comes up.
func (b *Backend) waitReady(ctx context.Context) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		err := b.Ready(ctx)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil && last != nil:
			// This check was cut short by the deadline; the previous one
			// says what is wrong.
			return last
		case ctx.Err() != nil:
			return err
		}
		last = err
		connected, _, up := b.conns.state()
		if connected {
			up = nil // already up: it is REST that failed; wait for the tick
		}
		select {
		case <-ctx.Done():
			return last
		case <-up:
		case <-tick.C:
		}
	}
}

// Close stops the watch and the client and closes the connections.
func (b *Backend) Close() error {
	b.closeOnce.Do(func() {
		b.closeErr = b.SourceDelivery.Close()
		b.cancel()
		for _, d := range []*grpcoptions.GRPCDialer{b.dialer, b.wdialer} {
			if d == nil {
				continue
			}
			if err := d.Close(); err != nil && status.Code(err) != codes.Canceled {
				b.closeErr = errors.Join(b.closeErr, err)
			}
		}
		b.http.CloseIdleConnections()
	})
	return b.closeErr
}

// whileUnreachable runs f until it returns something other than an
// unreachable-Maestro error, for up to UnavailableTimeout, backing off
// between tries and retrying at once when the gRPC connection comes back.
// Every other error, and success, is returned as it is. When time runs out
// the last error comes back Transient, naming both endpoints.
func (b *Backend) whileUnreachable(ctx context.Context, what string, f func() error) error {
	start := time.Now()
	for n := 1; ; n++ {
		err := f()
		if err == nil || ctx.Err() != nil || !unreachable(err) {
			return err
		}
		// The last try comes at the end of UnavailableTimeout, not one
		// backoff before it: the caller was promised that much patience.
		remaining := b.opts.UnavailableTimeout - time.Since(start)
		wait := min(backoff.Delay(100*time.Millisecond, 2*time.Second, n), max(remaining, 0))
		if remaining <= 0 {
			// The caller names the operation; err names the work.
			return failure.Transient(fmt.Errorf("%w (gRPC %s, REST %s; tried for %s): %w", ErrUnreachable,
				b.opts.GRPCEndpoint, b.opts.HTTPEndpoint, time.Since(start).Round(time.Millisecond), err))
		}
		level := slog.LevelDebug
		if n == 1 {
			level = slog.LevelWarn
		}
		b.log.Log(ctx, level, "Maestro is unreachable; retrying", "op", what, "attempt", n, "retry_in", wait, "err", err)
		t := time.NewTimer(wait)
		var up <-chan struct{}
		if connected, _, ch := b.conns.state(); !connected {
			up = ch // a reconnect ends the wait early
		}
		select {
		case <-ctx.Done():
			t.Stop()
			return failure.Transient(fmt.Errorf("%w (gRPC %s, REST %s): %w", ErrUnreachable,
				b.opts.GRPCEndpoint, b.opts.HTTPEndpoint, err))
		case <-t.C:
		case <-up:
			t.Stop()
		}
	}
}

// ErrUnreachable is wrapped by the errors of operations that gave up
// because Maestro could not be reached (as opposed to Maestro refusing).
// Retrying later may help; fixing the request will not.
var ErrUnreachable = errors.New("Maestro is unreachable")

// unreachableMessages are what an unreachable or restarting Maestro looks
// like once the OCM SDK has flattened the cause into a StatusError message
// (it keeps only the text): publishing while the client is disconnected, a
// gRPC Unavailable, a failed REST request.
var unreachableMessages = []string{
	"the cloudevents client is not ready",
	"code = Unavailable",
	"client connection is closing",
	"transport is closing",
	"connection refused",
	"connection reset by peer",
	"broken pipe",
	"no such host",
	"i/o timeout",
	"Client.Timeout exceeded",
	"EOF",
	"503 Service Unavailable",
	"502 Bad Gateway",
	"504 Gateway Timeout",
}

// unreachable reports whether err says Maestro could not be reached, as
// opposed to Maestro answering with a refusal.
func unreachable(err error) bool {
	// The caller's own deadline or cancellation is not checked here (the
	// caller looks at its ctx); an HTTP client timeout is a server that
	// does not answer, which counts.
	// A Permanent error is a verdict (an invalid manifest may well
	// mention an "unexpected EOF").
	if err == nil || errors.Is(err, context.Canceled) || failure.IsPermanent(err) {
		return false
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		// The REST request got no HTTP answer (an HTTP client timeout
		// included).
		return true
	}
	if errors.Is(err, context.DeadlineExceeded) {
		// An inner deadline of the apply logic (waiting for a deletion),
		// not the network: context.DeadlineExceeded is a net.Error too.
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	if s, ok := status.FromError(err); ok && s.Code() == codes.Unavailable {
		return true
	}
	msg := err.Error()
	for _, m := range unreachableMessages {
		if strings.Contains(msg, m) {
			return true
		}
	}
	return false
}

// grpcBackoff paces gRPC's own reconnection attempts within one connection
// (the SDK replaces the connection on failure and has its own, slower
// backoff on top).
var grpcBackoff = grpcbackoff.Config{
	BaseDelay:  200 * time.Millisecond,
	Multiplier: 1.6,
	Jitter:     0.2,
	MaxDelay:   5 * time.Second,
}

// perCallNamespace hands every ManifestWorks(namespace) call a copy of
// grpcsource's single ManifestWorkSourceClient with a namespace field of
// its own. grpcsource sets the namespace on the one shared object, so
// concurrent calls for different consumers would otherwise need a lock held
// across the whole network call, which serialises every delivery of the
// process (measured: the lock carried all lock delay and capped direct
// delivery below the raw client). The copy shares the client's watcher
// store and CloudEvents client, which are built for concurrent use; the
// struct itself holds nothing else.
type perCallNamespace struct {
	*grpcsource.WorkV1ClientWrapper
}

func (c perCallNamespace) ManifestWorks(namespace string) workv1client.ManifestWorkInterface {
	cp := *c.ManifestWorkClient
	cp.SetNamespace(namespace)
	return &cp
}
