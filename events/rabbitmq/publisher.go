package rabbitmq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// ErrPublisherClosed is returned by Publish after Close.
var ErrPublisherClosed = failure.Permanent(errors.New("rabbitmq publisher closed"))

// Publisher publishes CloudEvents to one exchange with publisher confirms.
// It is the broker-side events.StatusSink and, with PublishSentinel, a
// stand-in for Sentinel in tests and benchmarks. Safe for concurrent use;
// after a lost connection the next publish reconnects.
type Publisher struct {
	cfg PublisherConfig
	log *slog.Logger

	mu     sync.Mutex // guards conn and ch while (re)connecting
	conn   *amqp.Connection
	ch     *amqp.Channel
	closed bool
}

var _ events.StatusSink = (*Publisher)(nil)

// NewPublisher validates cfg, connects and declares the exchange (durable,
// of cfg.ExchangeType, as the library declares it).
func NewPublisher(ctx context.Context, cfg PublisherConfig) (*Publisher, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, failure.Permanent(err)
	}
	p := &Publisher{cfg: cfg, log: cfg.Logger.With("exchange", cfg.Exchange)}
	if _, err := p.channel(ctx); err != nil {
		return nil, fmt.Errorf("rabbitmq publisher %s: %w", cfg.Exchange, err)
	}
	return p, nil
}

// Publish sends a status event: the whole CloudEvent as JSON in the body,
// header _watermill_message_uuid = id (Sentinel's form, so the HyperFleet
// library's consumers read it), plus content-type
// application/cloudevents+json and message-id properties (so CloudEvents-SDK
// consumers read it as structured mode). It returns nil only once the
// broker has confirmed; a nack, a lost connection or a missing confirm is
// Transient.
func (p *Publisher) Publish(ctx context.Context, ev cloudevents.Event) error {
	body, err := json.Marshal(ev)
	if err != nil {
		return failure.Permanent(fmt.Errorf("rabbitmq: encode event %s: %w", ev.ID(), err))
	}
	msg := amqp.Publishing{
		Headers:      amqp.Table{HeaderMessageUUID: ev.ID()},
		ContentType:  ContentTypeCloudEvents,
		MessageId:    ev.ID(),
		DeliveryMode: amqp.Persistent,
		Body:         body,
	}
	if !ev.Time().IsZero() {
		msg.Timestamp = ev.Time()
	}
	return p.PublishRaw(ctx, msg)
}

// PublishSentinel sends ev exactly as the HyperFleet broker library does
// for Sentinel: JSON body, only the _watermill_message_uuid header,
// persistent, no properties. Tests and benchmarks publish input events
// with it.
func (p *Publisher) PublishSentinel(ctx context.Context, ev cloudevents.Event) error {
	body, err := json.Marshal(ev)
	if err != nil {
		return failure.Permanent(fmt.Errorf("rabbitmq: encode event %s: %w", ev.ID(), err))
	}
	return p.PublishRaw(ctx, SentinelPublishing(body, ev.ID()))
}

// SentinelPublishing is the library's wire form of an event body with id.
func SentinelPublishing(body []byte, id string) amqp.Publishing {
	return amqp.Publishing{
		Headers:      amqp.Table{HeaderMessageUUID: id},
		DeliveryMode: amqp.Persistent,
		Body:         body,
	}
}

// PublishRaw publishes msg as given to the exchange with the configured
// routing key and waits for the broker's confirm.
func (p *Publisher) PublishRaw(ctx context.Context, msg amqp.Publishing) error {
	ch, err := p.channel(ctx)
	if err != nil {
		return err
	}
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, p.cfg.Exchange, p.cfg.RoutingKey, false, false, msg)
	if err != nil {
		p.forget(ch)
		return p.wrap(classify(err))
	}
	ok, err := dc.WaitContext(ctx)
	switch {
	case err != nil:
		return p.wrap(failure.Transient(fmt.Errorf("no publisher confirm (the event may or may not be stored): %w", err)))
	case !ok && ch.IsClosed():
		p.forget(ch)
		return p.wrap(failure.Transient(errors.New("connection lost before the publisher confirm")))
	case !ok:
		return p.wrap(failure.Transient(errors.New("the broker nacked the publish")))
	}
	return nil
}

func (p *Publisher) wrap(err error) error {
	return fmt.Errorf("rabbitmq: publish to exchange %s: %w", p.cfg.Exchange, err)
}

// channel returns the live confirm-mode channel, connecting first if there
// is none. One attempt per call: the caller's retry policy decides how often.
func (p *Publisher) channel(ctx context.Context) (*amqp.Channel, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrPublisherClosed
	}
	if p.ch != nil && !p.ch.IsClosed() {
		return p.ch, nil
	}
	if p.conn != nil {
		_ = p.conn.Close()
		p.conn, p.ch = nil, nil
		p.log.Info("rabbitmq: publisher reconnecting")
	}
	conn, err := dial(ctx, p.cfg.URL, p.cfg.ConnectionName, p.cfg.DialTimeout, p.cfg.Heartbeat)
	if err != nil {
		return nil, p.wrap(err)
	}
	ch, err := conn.Channel()
	if err == nil {
		err = ch.Confirm(false)
	}
	if err == nil {
		err = declareExchange(ch, p.cfg.Exchange, p.cfg.ExchangeType)
	}
	if err != nil {
		_ = conn.Close()
		return nil, p.wrap(classify(err))
	}
	p.conn, p.ch = conn, ch
	return ch, nil
}

// forget drops a channel that died so the next call reconnects; a live one
// stays, since other publishes may be waiting on its confirms.
func (p *Publisher) forget(ch *amqp.Channel) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ch == ch && p.conn != nil && ch.IsClosed() {
		_ = p.conn.Close()
		p.conn, p.ch = nil, nil
	}
}

// Close closes the connection; later publishes fail with ErrPublisherClosed.
func (p *Publisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.conn == nil {
		return nil
	}
	err := p.conn.Close()
	p.conn, p.ch = nil, nil
	if errors.Is(err, amqp.ErrClosed) {
		return nil
	}
	return err
}
