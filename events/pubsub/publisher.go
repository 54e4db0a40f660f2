package pubsub

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	gpubsub "cloud.google.com/go/pubsub/v2"
	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// Publisher publishes CloudEvents to one topic. It is the Pub/Sub
// events.StatusSink and, with PublishSentinel, a stand-in for Sentinel in
// tests. Safe for concurrent use.
type Publisher struct {
	cfg PublisherConfig
	pub *gpubsub.Publisher
}

var _ events.StatusSink = (*Publisher)(nil)

// NewPublisher validates cfg and checks that the topic exists (creating it
// when allowed).
func NewPublisher(ctx context.Context, cfg PublisherConfig) (*Publisher, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := cfg.Validate(); err != nil {
		return nil, failure.Permanent(err)
	}
	if err := ensureTopic(ctx, cfg.Client, cfg.Topic, cfg.CreateTopicIfMissing, cfg.TopicRetention,
		cfg.Logger.With("topic", cfg.Topic), "broker.googlepubsub.create_topic_if_missing"); err != nil {
		return nil, fmt.Errorf("pubsub publisher %s: %w", cfg.Topic, err)
	}
	return &Publisher{cfg: cfg, pub: cfg.Client.Publisher(cfg.Topic)}, nil
}

// Publish sends a status event in structured mode: the whole CloudEvent as
// JSON in the data, attributes _watermill_message_uuid = id and
// Content-Type application/cloudevents+json. It returns once the service
// has stored the message; its errors are classed (an invalid message is
// Permanent, the rest Transient).
func (p *Publisher) Publish(ctx context.Context, ev cloudevents.Event) error {
	data, err := json.Marshal(ev)
	if err != nil {
		return failure.Permanent(fmt.Errorf("pubsub: encode event %s: %w", ev.ID(), err))
	}
	return p.PublishRaw(ctx, data, map[string]string{AttrMessageUUID: ev.ID(), AttrContentType: contentTypeCloudEventsJSON})
}

// PublishSentinel sends ev exactly as the HyperFleet broker library does
// for Sentinel: JSON data and only the _watermill_message_uuid attribute.
func (p *Publisher) PublishSentinel(ctx context.Context, ev cloudevents.Event) error {
	data, err := json.Marshal(ev)
	if err != nil {
		return failure.Permanent(fmt.Errorf("pubsub: encode event %s: %w", ev.ID(), err))
	}
	return p.PublishRaw(ctx, data, map[string]string{AttrMessageUUID: ev.ID()})
}

// PublishRaw publishes data with attributes as given and waits for the
// service to store it.
func (p *Publisher) PublishRaw(ctx context.Context, data []byte, attrs map[string]string) error {
	if _, err := p.pub.Publish(ctx, &gpubsub.Message{Data: data, Attributes: attrs}).Get(ctx); err != nil {
		return classify(fmt.Errorf("pubsub: publish to topic %s: %w", p.cfg.Topic, err))
	}
	return nil
}

// Close flushes and stops the publisher; the client stays open.
func (p *Publisher) Close() error {
	p.pub.Stop()
	return nil
}
