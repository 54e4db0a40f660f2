package remote

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc/stats"
)

// connTracker counts the gRPC transports the source client has open. The
// OCM SDK keeps its connection to itself and replaces it on every
// reconnect; a stats handler is the one place that sees them come and go.
// The reading client holds a subscription stream open at all times, so
// while it is connected at least one transport is open (the writing client
// has a second one; see writer.go).
type connTracker struct {
	mu      sync.Mutex
	open    int
	changed time.Time
	// up is closed while a transport is open and replaced when the last
	// one closes, so waiters can block on it.
	up chan struct{}
}

var _ stats.Handler = (*connTracker)(nil)

func newConnTracker() *connTracker {
	return &connTracker{changed: time.Now(), up: make(chan struct{})}
}

func (c *connTracker) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (c *connTracker) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context   { return ctx }
func (c *connTracker) HandleRPC(context.Context, stats.RPCStats)                         {}

func (c *connTracker) HandleConn(_ context.Context, s stats.ConnStats) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch s.(type) {
	case *stats.ConnBegin:
		c.open++
		if c.open == 1 {
			c.changed = time.Now()
			close(c.up)
		}
	case *stats.ConnEnd:
		c.open--
		if c.open == 0 {
			c.changed = time.Now()
			c.up = make(chan struct{})
		}
	}
}

// state reports whether a transport is open, since when (or since when
// not), and a channel closed once one is open.
func (c *connTracker) state() (connected bool, since time.Time, up <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open > 0, c.changed, c.up
}
