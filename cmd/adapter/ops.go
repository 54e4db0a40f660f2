package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// readiness answers /readyz: ready once the process has started every
// part, while every check passes and until shutdown starts. Checks are
// named so a 503 says what is wrong.
type readiness struct {
	mu       sync.Mutex
	checks   map[string]func(context.Context) error
	started  atomic.Bool
	shutdown atomic.Bool
}

func newReadiness() *readiness {
	return &readiness{checks: map[string]func(context.Context) error{}}
}

func (r *readiness) add(name string, check func(context.Context) error) {
	r.mu.Lock()
	r.checks[name] = check
	r.mu.Unlock()
}

func (r *readiness) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if r.shutdown.Load() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	if !r.started.Load() {
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(req.Context(), 3*time.Second)
	defer cancel()
	r.mu.Lock()
	checks := make(map[string]func(context.Context) error, len(r.checks))
	for k, v := range r.checks {
		checks[k] = v
	}
	r.mu.Unlock()
	var failed []error
	for name, check := range checks {
		if err := check(ctx); err != nil {
			failed = append(failed, fmt.Errorf("%s: %w", name, err))
		}
	}
	if len(failed) > 0 {
		http.Error(w, errors.Join(failed...).Error(), http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// opsServers are the operations endpoints: /healthz and /readyz on
// HEALTH_ADDR, /metrics on METRICS_ADDR (their own port, so metrics
// scraping never shares a listener with probes) and, when set,
// /debug/pprof/ on PPROF_ADDR. listenOps binds them all before anything
// connects anywhere, so a busy port fails the start, not a running adapter.
type opsServers struct {
	log     *slog.Logger
	servers []*http.Server
	lns     []net.Listener
}

// listenOps binds the listeners; empty addresses disable them. Errors
// name the variable.
func listenOps(healthAddr, metricsAddr, pprofAddr string, reg *prometheus.Registry, ready *readiness, log *slog.Logger) (*opsServers, error) {
	o := &opsServers{log: log}
	listen := func(env, addr string, h http.Handler) error {
		if addr == "" {
			return nil
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("%s: %w", env, err)
		}
		o.lns = append(o.lns, ln)
		o.servers = append(o.servers, &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second})
		return nil
	}
	health := http.NewServeMux()
	health.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	health.Handle("/readyz", ready)
	metrics := http.NewServeMux()
	metrics.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	err := listen("HEALTH_ADDR", healthAddr, health)
	if err == nil {
		err = listen("METRICS_ADDR", metricsAddr, metrics)
	}
	if err == nil && pprofAddr != "" {
		// Off unless asked for: profiles expose internals and a CPU profile
		// costs while it runs. The handlers go on a mux of their own; the
		// import's side effect on http.DefaultServeMux is never served.
		// Lock contention is sampled too (1 in 5 contended locks), so that
		// the mutex profile can say where events wait for each other.
		runtime.SetMutexProfileFraction(5)
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		err = listen("PPROF_ADDR", pprofAddr, mux)
	}
	if err != nil {
		_ = o.Close()
		return nil, err
	}
	return o, nil
}

// Run serves until ctx ends, then shuts the servers down (in-flight
// requests get 5 s).
func (o *opsServers) Run(ctx context.Context) error {
	for i, srv := range o.servers {
		ln := o.lns[i]
		o.log.Info("serving", "addr", ln.Addr().String())
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				o.log.Error("ops server stopped", "addr", ln.Addr().String(), "err", err)
			}
		}()
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, srv := range o.servers {
		_ = srv.Shutdown(sctx)
	}
	return nil
}

// Close releases the listeners (those never served; a served one is
// closed by Shutdown already).
func (o *opsServers) Close() error {
	for _, ln := range o.lns {
		_ = ln.Close()
	}
	return nil
}

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
