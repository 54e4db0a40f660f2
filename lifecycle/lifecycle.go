// Package lifecycle owns a process's long-lived parts (servers, connections,
// watchers, the event loop): it starts them in order and stops them in the
// reverse order, each on a context of its own, so that no part stops while
// a part started after it still uses it.
//
// A command starts its parts one by one, after everything that can be
// checked without a connection has been checked, then waits:
//
//	g := lifecycle.New(log)
//	defer g.Shutdown()
//	g.Start(lifecycle.Part{Name: "tracker", Run: tracker.Run})
//	g.Start(lifecycle.Part{Name: "pipeline", Run: ...})
//	err := g.Wait(signalCtx)
//
// Shutdown begins when the waiting context ends (SIGTERM) or when any part's
// Run returns by itself (a file source exhausted, a permanent failure). Then
// the parts stop last-started-first: each one's context is cancelled, its Run
// is awaited, and its Close runs, before the next one is touched. A part
// whose Run drains on cancellation (the pipeline) therefore drains with
// every part it depends on still live.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Part is one long-lived piece of a process.
type Part struct {
	// Name says what the part is, in logs and errors.
	Name string
	// Run, when set, runs the part until its context ends, and may return
	// earlier: nil when its work is done, an error when it cannot go on.
	// Either way its return begins the process's shutdown.
	Run func(ctx context.Context) error
	// Close, when set, releases the part once its Run has returned (or at
	// once, for a part without Run): closes connections, flushes files.
	Close func() error
}

// Group starts parts and stops them in the reverse order. Its methods are
// safe for concurrent use.
type Group struct {
	log *slog.Logger

	mu    sync.Mutex
	parts []*running

	ended     chan struct{} // closed when the first part's Run returns by itself
	endOnce   sync.Once
	stopping  chan struct{} // closed when shutdown begins
	stopOnce  sync.Once
	stopped   chan struct{} // closed when shutdown is complete
	shutdownE error
}

type running struct {
	Part
	cancel context.CancelFunc
	done   chan struct{} // closed when Run has returned
	err    error         // what Run returned
	asked  bool          // shutdown cancelled it (set before cancel)
}

// New returns an empty group.
func New(log *slog.Logger) *Group {
	if log == nil {
		log = slog.Default()
	}
	return &Group{log: log, ended: make(chan struct{}), stopping: make(chan struct{}), stopped: make(chan struct{})}
}

// Start starts p now, on a context of its own that ends only when shutdown
// reaches p. A part started once shutdown has begun is not run, only
// closed.
func (g *Group) Start(p Part) {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Part: p, cancel: cancel, done: make(chan struct{})}
	g.mu.Lock()
	select {
	case <-g.stopping:
		g.mu.Unlock()
		cancel()
		if p.Close != nil {
			_ = p.Close()
		}
		return
	default:
	}
	g.parts = append(g.parts, r)
	g.mu.Unlock()
	if p.Run == nil {
		close(r.done)
		return
	}
	go func() {
		defer close(r.done)
		r.err = p.Run(ctx)
		g.endOnce.Do(func() { close(g.ended) })
	}()
}

// Stopping is closed when shutdown begins (for readiness probes to turn
// away traffic from then on).
func (g *Group) Stopping() <-chan struct{} { return g.stopping }

// Wait blocks until ctx ends or a part's Run returns by itself, then shuts
// the group down and returns what Shutdown returns.
func (g *Group) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		g.log.Info("shutting down", "reason", context.Cause(ctx))
	case <-g.ended:
		g.log.Info("shutting down", "reason", g.endedBy())
	}
	return g.Shutdown()
}

// endedBy names the first part whose Run returned by itself.
func (g *Group) endedBy() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, r := range g.parts {
		select {
		case <-r.done:
			if r.Run != nil {
				if r.err != nil {
					return fmt.Sprintf("%s stopped: %v", r.Name, r.err)
				}
				return r.Name + " finished"
			}
		default:
		}
	}
	return "a part ended"
}

// Shutdown stops every started part, last-started first: cancel its
// context, wait for its Run, run its Close. It returns the errors of Runs
// that failed by themselves, joined (not the context errors of parts it
// stopped, nor Close errors, which are logged). Later calls wait for the
// first and return the same.
func (g *Group) Shutdown() error {
	first := false
	var parts []*running
	g.stopOnce.Do(func() {
		first = true
		g.mu.Lock()
		close(g.stopping)
		parts = append(parts, g.parts...)
		g.mu.Unlock()
	})
	if !first {
		<-g.stopped
		return g.shutdownE
	}
	defer close(g.stopped)
	var errs []error
	for i := len(parts) - 1; i >= 0; i-- {
		r := parts[i]
		start := time.Now()
		select {
		case <-r.done:
		default:
			r.asked = true
		}
		r.cancel()
		<-r.done
		if r.err != nil && !(r.asked && errors.Is(r.err, context.Canceled)) {
			errs = append(errs, fmt.Errorf("%s: %w", r.Name, r.err))
		}
		if r.Close != nil {
			if err := r.Close(); err != nil {
				g.log.Warn("closing "+r.Name, "err", err)
			}
		}
		g.log.Debug("stopped "+r.Name, "took", time.Since(start))
	}
	g.shutdownE = errors.Join(errs...)
	return g.shutdownE
}
