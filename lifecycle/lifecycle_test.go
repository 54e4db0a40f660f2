package lifecycle

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// journal records what happened, in order.
type journal struct {
	mu    sync.Mutex
	lines []string
}

func (j *journal) add(s string) {
	j.mu.Lock()
	j.lines = append(j.lines, s)
	j.mu.Unlock()
}

func (j *journal) get() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.lines)
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// A part that runs until cancelled, records its stop and, through alive,
// lets a later part check it is still running. running is closed once it
// runs.
func waiter(j *journal, name string, alive *sync.Map, running chan<- struct{}) Part {
	return Part{
		Name: name,
		Run: func(ctx context.Context) error {
			alive.Store(name, true)
			close(running)
			<-ctx.Done()
			alive.Store(name, false)
			j.add("run " + name + " returned")
			return ctx.Err()
		},
		Close: func() error { j.add("close " + name); return nil },
	}
}

// Parts stop last-started-first, each Run returning before its Close and
// before the next part is touched; the last part's drain (its Run after
// cancellation) still sees every earlier part running.
func TestShutdownStopsInReverseOrder(t *testing.T) {
	j := &journal{}
	var alive sync.Map
	g := New(quiet())
	g.Start(Part{Name: "connection", Close: func() error { j.add("close connection"); return nil }})
	trackerRuns, watcherRuns := make(chan struct{}), make(chan struct{})
	g.Start(waiter(j, "tracker", &alive, trackerRuns))
	g.Start(waiter(j, "watcher", &alive, watcherRuns))
	started := make(chan struct{})
	g.Start(Part{Name: "pipeline", Run: func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		// Draining: what it depends on must still run.
		for _, dep := range []string{"tracker", "watcher"} {
			if v, _ := alive.Load(dep); v != true {
				j.add("drain saw " + dep + " stopped")
			}
		}
		j.add("run pipeline returned")
		return nil
	}})
	<-started
	<-trackerRuns
	<-watcherRuns
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.Wait(ctx); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	want := []string{"run pipeline returned", "run watcher returned", "close watcher",
		"run tracker returned", "close tracker", "close connection"}
	if got := j.get(); !slices.Equal(got, want) {
		t.Fatalf("shutdown went\n  %q\nwant\n  %q", got, want)
	}
	select {
	case <-g.Stopping():
	default:
		t.Fatal("Stopping not closed after shutdown")
	}
}

// A part whose Run returns by itself begins the shutdown; its error is
// what Wait returns, naming the part, while parts stopped by the shutdown
// contribute no error.
func TestPartEndingBeginsShutdown(t *testing.T) {
	j := &journal{}
	var alive sync.Map
	g := New(quiet())
	g.Start(waiter(j, "watcher", &alive, make(chan struct{})))
	g.Start(Part{Name: "tracker", Run: func(context.Context) error { return errors.New("watch refused: unauthorized") }})
	done := make(chan error, 1)
	go func() { done <- g.Wait(context.Background()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "tracker: watch refused") {
			t.Fatalf("Wait returned %v, want the tracker's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return after a part failed")
	}
	if got := j.get(); !slices.Equal(got, []string{"run watcher returned", "close watcher"}) {
		t.Fatalf("journal %q", got)
	}
	// A second Shutdown waits for the first and says the same.
	if err := g.Shutdown(); err == nil {
		t.Fatal("second Shutdown lost the error")
	}
}

// A part started after shutdown began is never run, only closed.
func TestStartAfterShutdownOnlyCloses(t *testing.T) {
	g := New(quiet())
	if err := g.Shutdown(); err != nil {
		t.Fatal(err)
	}
	ran, closed := false, false
	g.Start(Part{Name: "late", Run: func(context.Context) error { ran = true; return nil }, Close: func() error { closed = true; return nil }})
	if ran || !closed {
		t.Fatalf("ran %v closed %v, want only closed", ran, closed)
	}
}
