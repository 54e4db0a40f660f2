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

// readiness answers /readyz: ready while every check passes and shutdown
// has not started. Checks are named so a 503 says what is wrong.
type readiness struct {
	mu       sync.Mutex
	checks   map[string]func(context.Context) error
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

// startOps serves /healthz and /readyz on healthAddr, /metrics on
// metricsAddr (their own port, so metrics scraping never shares a listener
// with probes) and, when pprofAddr is set, /debug/pprof/ on a third port.
// Empty addresses disable them. It returns a stop function.
func startOps(healthAddr, metricsAddr, pprofAddr string, reg *prometheus.Registry, ready *readiness, log *slog.Logger) (func(), error) {
	var servers []*http.Server
	serve := func(addr string, h http.Handler) error {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return err
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		servers = append(servers, srv)
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("ops server stopped", "addr", addr, "err", err)
			}
		}()
		log.Info("serving", "addr", ln.Addr().String())
		return nil
	}
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, s := range servers {
			_ = s.Shutdown(ctx)
		}
	}
	if healthAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
		mux.Handle("/readyz", ready)
		if err := serve(healthAddr, mux); err != nil {
			stop()
			return nil, fmt.Errorf("HEALTH_ADDR: %w", err)
		}
	}
	if metricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		if err := serve(metricsAddr, mux); err != nil {
			stop()
			return nil, fmt.Errorf("METRICS_ADDR: %w", err)
		}
	}
	if pprofAddr != "" {
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
		if err := serve(pprofAddr, mux); err != nil {
			stop()
			return nil, fmt.Errorf("PPROF_ADDR: %w", err)
		}
	}
	return stop, nil
}

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
