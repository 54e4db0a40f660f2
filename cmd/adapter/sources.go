package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	gpubsub "cloud.google.com/go/pubsub/v2"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/events/brokerconfig"
	"github.com/openshift-hyperfleet/maestro-adapter/events/pubsub"
	"github.com/openshift-hyperfleet/maestro-adapter/events/rabbitmq"
	"github.com/openshift-hyperfleet/maestro-adapter/events/recording"
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet/apiclient"
)

// sourcePlan is SOURCE checked without opening a connection: the
// recordings read (file), or the broker's configuration read and validated
// (broker).
type sourcePlan struct {
	recordings []*events.Message    // SOURCE=file
	broker     *brokerconfig.Config // SOURCE=broker
}

// planSource reads what SOURCE names. subscriptionID, when set, overrides
// the broker config's (adapter record subscribes with its own, so it steals
// nothing from the adapters).
func planSource(cfg Config, subscriptionID string) (*sourcePlan, error) {
	switch cfg.Source {
	case "file":
		if len(cfg.SourcePath) == 0 {
			return nil, fmt.Errorf("SOURCE_PATH: not set (the file source needs recordings to read)")
		}
		msgs, err := recording.Load(cfg.SourcePath...)
		if err != nil {
			return nil, fmt.Errorf("SOURCE_PATH: %w", err)
		}
		return &sourcePlan{recordings: msgs}, nil
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
	return &sourcePlan{broker: &bc}, nil
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

// broker opens sources and publishers on the configured broker. For
// Pub/Sub it holds the client both share; RabbitMQ's source and publisher
// each hold their own connection.
type broker struct {
	bc     brokerconfig.Config
	pubsub *gpubsub.Client
	log    *slog.Logger
}

func connectBroker(ctx context.Context, bc brokerconfig.Config, log *slog.Logger) (*broker, error) {
	b := &broker{bc: bc, log: log}
	if bc.Type == brokerconfig.TypeGooglePubSub {
		// PUBSUB_EMULATOR_HOST, when set, points the client at an emulator.
		client, err := gpubsub.NewClient(ctx, bc.GooglePubSub.ProjectID)
		if err != nil {
			return nil, fmt.Errorf("pubsub client for project %q: %w", bc.GooglePubSub.ProjectID, err)
		}
		b.pubsub = client
	}
	return b, nil
}

// Close closes what the sources and publishers share; close them first.
func (b *broker) Close() error {
	if b.pubsub != nil {
		return b.pubsub.Close()
	}
	return nil
}

// source subscribes and starts consuming. Messages handed out stay
// settleable for grace after the source is closed (the drain).
func (b *broker) source(ctx context.Context, concurrency int, grace time.Duration) (brokerSource, error) {
	switch b.bc.Type {
	case brokerconfig.TypeGooglePubSub:
		scfg := pubsub.SourceConfigFrom(b.bc, b.pubsub, concurrency)
		scfg.Logger = b.log
		scfg.ShutdownGrace = max(scfg.ShutdownGrace, grace)
		s, err := pubsub.NewSource(ctx, scfg)
		if err != nil {
			return nil, err
		}
		return s, nil
	default:
		scfg := rabbitmq.SourceConfigFrom(b.bc, concurrency)
		scfg.Logger = b.log
		scfg.ShutdownGrace = max(scfg.ShutdownGrace, grace)
		s, err := rabbitmq.NewSource(ctx, scfg)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
}

// publisher connects the status publisher to the broker's status topic.
func (b *broker) publisher(ctx context.Context) (brokerPublisher, error) {
	switch b.bc.Type {
	case brokerconfig.TypeGooglePubSub:
		pcfg := pubsub.PublisherConfigFrom(b.bc, b.pubsub)
		pcfg.Logger = b.log
		p, err := pubsub.NewPublisher(ctx, pcfg)
		if err != nil {
			return nil, err
		}
		return p, nil
	default:
		pcfg := rabbitmq.PublisherConfigFrom(b.bc)
		pcfg.Logger = b.log
		p, err := rabbitmq.NewPublisher(ctx, pcfg)
		if err != nil {
			return nil, err
		}
		return p, nil
	}
}

// checkSinks refuses, before any connection, a run whose status reports
// would go nowhere: it would ack events it never reported.
func checkSinks(cfg Config, sp *sourcePlan) error {
	if (sp.broker != nil && sp.broker.StatusTopic != "") || (cfg.APIURL != "" && cfg.StatusToAPI) || cfg.StatusOut != "" {
		return nil
	}
	return fmt.Errorf("status events go nowhere: set a broker status topic (BROKER_STATUS_TOPIC), HYPERFLEET_API_URL, or STATUS_OUT")
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
		client, err := apiclient.New(apiclient.Config{BaseURL: cfg.APIURL, TokenFile: cfg.APITokenFile, Insecure: cfg.APIInsecure,
			Timeout: cfg.APITimeout, MaxAttempts: cfg.APIMaxAttempts, Logger: log})
		if err != nil {
			return nil, nil, err
		}
		sinks = append(sinks, apiclient.NewStatusSink(client))
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
		return nil, nil, checkSinks(cfg, &sourcePlan{})
	case 1:
		return sinks[0], closeAll, nil
	default:
		return events.MultiSink(sinks), closeAll, nil
	}
}
