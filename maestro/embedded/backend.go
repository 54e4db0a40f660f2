package embedded

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
)

// DefaultSourceID is the Maestro source name the embedded backend uses when
// none is given.
const DefaultSourceID = "hyperfleet-maestro-adapter"

// Options configures the embedded backend.
type Options struct {
	// SourceID defaults to DefaultSourceID.
	SourceID string
	// AgentDelay is how long the simulated agent takes to report a change.
	// Zero reports at once.
	AgentDelay time.Duration
	// Fail injects apply failures; see AgentOptions.Fail.
	Fail func(*workv1.ManifestWork) error
	// AcceptManifestSetChange makes the store behave like Maestro servers
	// from mid-2026; see StoreOptions.
	AcceptManifestSetChange bool
	// Source tunes the apply logic. Its zero value suits the embedded store:
	// retries start at 2ms instead of 20ms. Its Logger defaults to Logger.
	Source maestro.SourceOptions
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Backend is a ready embedded Delivery: a SourceDelivery over a Store, with
// an Agent running. Close it when done.
type Backend struct {
	*maestro.SourceDelivery
	// Store and Agent are exposed for tests and diagnostics.
	Store *Store
	Agent *Agent

	cancel context.CancelFunc
	done   chan struct{}
}

// New starts an embedded backend.
func New(opts Options) (*Backend, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.SourceID == "" {
		opts.SourceID = DefaultSourceID
	}
	src := opts.Source
	if src.Logger == nil {
		src.Logger = opts.Logger
	}
	if src.RetryInitial == 0 {
		src.RetryInitial = 2 * time.Millisecond
	}
	if src.RetryMax == 0 {
		src.RetryMax = 200 * time.Millisecond
	}
	if src.RetryInitial > src.RetryMax {
		src.RetryInitial = src.RetryMax
	}
	if err := src.Validate(); err != nil {
		return nil, fmt.Errorf("embedded backend: %w", err)
	}
	store, err := NewStore(StoreOptions{
		SourceID:                opts.SourceID,
		Logger:                  opts.Logger,
		AcceptManifestSetChange: opts.AcceptManifestSetChange,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded backend: %w", err)
	}
	agent, err := NewAgent(store, AgentOptions{Delay: opts.AgentDelay, Fail: opts.Fail, Logger: opts.Logger})
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("embedded backend: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Backend{
		SourceDelivery: maestro.NewSourceDelivery(store, src),
		Store:          store,
		Agent:          agent,
		cancel:         cancel,
		done:           make(chan struct{}),
	}
	go func() {
		defer close(b.done)
		_ = agent.Run(ctx)
	}()
	return b, nil
}

// Close stops the delivery's watch, the agent and the store.
func (b *Backend) Close() error {
	err := b.SourceDelivery.Close()
	b.cancel()
	<-b.done
	b.Store.Close()
	return err
}
