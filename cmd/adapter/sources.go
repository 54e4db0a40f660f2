package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	gpubsub "cloud.google.com/go/pubsub/v2"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/events/brokerconfig"
	"github.com/openshift-hyperfleet/maestro-adapter/events/pubsub"
	"github.com/openshift-hyperfleet/maestro-adapter/events/rabbitmq"
	"github.com/openshift-hyperfleet/maestro-adapter/events/recording"
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
)

// endpoints is what run and record get from the configured transport: the
// event source, the status publisher (nil when the broker config names no
// status topic), readiness checks and what to close.
type endpoints struct {
	source    events.Source
	publisher events.StatusSink
	ready     map[string]func(context.Context) error
	closers   []func() error
}

// brokerSource and brokerPublisher are what both brokers' sources and
// publishers offer beyond the event seams.
type brokerSource interface {
	events.Source
	Ready() error
	Close() error
}

type brokerPublisher interface {
	events.StatusSink
	Close() error
}

func (e *endpoints) Close() error {
	var errs []error
	for i := len(e.closers) - 1; i >= 0; i-- {
		errs = append(errs, e.closers[i]())
	}
	return errors.Join(errs...)
}

// openSource builds the source named by SOURCE. subscriptionID, when set,
// overrides the broker config's (adapter record subscribes with its own, so
// it steals nothing from the adapters).
func openSource(ctx context.Context, cfg Config, subscriptionID string, withPublisher bool, log *slog.Logger) (*endpoints, error) {
	e := &endpoints{ready: map[string]func(context.Context) error{}}
	fail := func(err error) (*endpoints, error) {
		_ = e.Close()
		return nil, err
	}
	switch cfg.Source {
	case "file":
		if len(cfg.SourcePath) == 0 {
			return nil, fmt.Errorf("SOURCE_PATH: not set (the file source needs recordings to read)")
		}
		msgs, err := recording.Load(cfg.SourcePath...)
		if err != nil {
			return nil, err
		}
		src := recording.NewSource(msgs)
		e.source = src
		e.closers = append(e.closers, src.Close)
		return e, nil
	case "broker":
	default:
		return nil, fmt.Errorf("SOURCE: %q is not an event source, want broker or file", cfg.Source)
	}

	bc, err := brokerconfig.Load()
	if err != nil {
		return nil, err
	}
	if subscriptionID != "" {
		bc.SubscriptionID = subscriptionID
	}
	if err := bc.Validate(); err != nil {
		return nil, err
	}
	log.Info("broker", "config", bc)
	// Each broker gives a source and, on demand, a status publisher; what
	// is done with them is the same for both.
	var src brokerSource
	var newPublisher func() (brokerPublisher, error)
	switch bc.Type {
	case brokerconfig.TypeRabbitMQ:
		scfg := rabbitmq.SourceConfigFrom(bc, cfg.Concurrency)
		scfg.Logger = log
		s, err := rabbitmq.NewSource(ctx, scfg)
		if err != nil {
			return fail(err)
		}
		src = s
		newPublisher = func() (brokerPublisher, error) {
			pcfg := rabbitmq.PublisherConfigFrom(bc)
			pcfg.Logger = log
			return rabbitmq.NewPublisher(ctx, pcfg)
		}
	case brokerconfig.TypeGooglePubSub:
		// PUBSUB_EMULATOR_HOST, when set, points the client at an emulator.
		client, err := gpubsub.NewClient(ctx, bc.GooglePubSub.ProjectID)
		if err != nil {
			return fail(fmt.Errorf("pubsub client for project %q: %w", bc.GooglePubSub.ProjectID, err))
		}
		e.closers = append(e.closers, client.Close)
		scfg := pubsub.SourceConfigFrom(bc, client, cfg.Concurrency)
		scfg.Logger = log
		s, err := pubsub.NewSource(ctx, scfg)
		if err != nil {
			return fail(err)
		}
		src = s
		newPublisher = func() (brokerPublisher, error) {
			pcfg := pubsub.PublisherConfigFrom(bc, client)
			pcfg.Logger = log
			return pubsub.NewPublisher(ctx, pcfg)
		}
	}
	e.source = src
	e.closers = append(e.closers, src.Close)
	e.ready["broker"] = func(context.Context) error { return src.Ready() }
	if withPublisher && bc.StatusTopic != "" {
		pub, err := newPublisher()
		if err != nil {
			return fail(err)
		}
		e.publisher = pub
		e.closers = append(e.closers, pub.Close)
	}
	return e, nil
}

// statusSinks picks where status events go in run mode: the broker's status
// topic, the HyperFleet API (when HYPERFLEET_API_URL is set and
// STATUS_TO_API is on), and STATUS_OUT (when set). At least one is needed:
// an adapter whose reports go nowhere would ack events it never reported.
func statusSinks(cfg Config, publisher events.StatusSink, stdout io.Writer, log *slog.Logger) (events.StatusSink, func() error, error) {
	var sinks []events.StatusSink
	closeAll := func() error { return nil }
	if publisher != nil {
		sinks = append(sinks, publisher)
	}
	if cfg.APIURL != "" && cfg.StatusToAPI {
		client, err := hyperfleet.NewClient(hyperfleet.ClientConfig{BaseURL: cfg.APIURL, TokenFile: cfg.APITokenFile, Insecure: cfg.APIInsecure,
			Timeout: cfg.APITimeout, MaxAttempts: cfg.APIMaxAttempts, Logger: log})
		if err != nil {
			return nil, nil, err
		}
		sinks = append(sinks, hyperfleet.NewAPISink(client))
	}
	if cfg.StatusOut != "" {
		out, closeOut, err := openStatusOut(cfg.StatusOut, stdout)
		if err != nil {
			return nil, nil, err
		}
		closeAll = closeOut
		sinks = append(sinks, events.NewJSONLSink(out))
	}
	switch len(sinks) {
	case 0:
		return nil, nil, fmt.Errorf("status events go nowhere: set a broker status topic (BROKER_STATUS_TOPIC), HYPERFLEET_API_URL, or STATUS_OUT")
	case 1:
		return sinks[0], closeAll, nil
	default:
		return events.MultiSink(sinks), closeAll, nil
	}
}
