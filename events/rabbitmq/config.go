package rabbitmq

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/openshift-hyperfleet/maestro-adapter/events/brokerconfig"
	"github.com/openshift-hyperfleet/maestro-adapter/redact"
)

// Defaults for the zero values of SourceConfig and PublisherConfig.
const (
	DefaultShutdownGrace        = 30 * time.Second
	DefaultDeadLetterRetryDelay = 5 * time.Second
	DefaultReconnectInitial     = 500 * time.Millisecond
	DefaultReconnectMax         = 30 * time.Second
	DefaultDialTimeout          = 10 * time.Second
	DefaultHeartbeat            = 10 * time.Second
)

// SourceConfig configures a Source. Build it with SourceConfigFrom from the
// broker configuration, or by hand in tests.
type SourceConfig struct {
	// URL is the broker, amqp:// or amqps://, with credentials.
	URL string
	// Exchange is where Sentinel publishes (the topic, or
	// broker.rabbitmq.exchange).
	Exchange string
	// ExchangeType must match the existing exchange; default topic.
	ExchangeType string
	// Queue is the full queue name, {topic}-{subscriptionID} or
	// {queue}-{subscriptionID} (brokerconfig.Config.QueueName).
	Queue string
	// Prefetch is the Qos prefetch count: how many unacknowledged messages
	// the broker hands this consumer. Size it to the adapter's concurrency.
	// Default 1, the library's.
	Prefetch int
	// PrefetchSize bounds unacknowledged bytes; 0 is no limit.
	PrefetchSize int
	// ConsumerTag names the consumer; empty generates a unique one.
	ConsumerTag string
	// ConnectionName is shown by rabbitmqctl and the management UI.
	ConnectionName string

	// ShutdownGrace is how long after Close messages already handed out can
	// still be settled; then the connection closes and the broker
	// redelivers whatever is unsettled. Default DefaultShutdownGrace.
	ShutdownGrace time.Duration
	// DeadLetterRetryDelay is how long a message whose dead-letter publish
	// failed is held before it is requeued, so that a dead-letter outage is
	// not a hot redelivery loop. Default DefaultDeadLetterRetryDelay.
	DeadLetterRetryDelay time.Duration
	// ReconnectInitial and ReconnectMax bound the exponential backoff
	// between connection attempts. Defaults 500ms and 30s.
	ReconnectInitial time.Duration
	ReconnectMax     time.Duration
	// DialTimeout bounds the TCP connect and AMQP handshake. Default 10s.
	DialTimeout time.Duration
	// Heartbeat is the AMQP heartbeat interval: how fast a silently dead
	// connection is noticed. Default 10s.
	Heartbeat time.Duration

	// Logger receives connection events; default slog.Default().
	Logger *slog.Logger
}

// DeadLetterExchange is the exchange dead letters are published to.
func (c SourceConfig) DeadLetterExchange() string { return c.Queue + ".dlx" }

// DeadLetterQueue is the queue dead letters are kept in.
func (c SourceConfig) DeadLetterQueue() string { return c.Queue + ".dlq" }

// SourceConfigFrom derives a SourceConfig from the broker configuration.
// concurrency is the adapter's: the prefetch is sized to it, since a larger
// prefetch only parks messages in this process where other replicas cannot
// take them. The library's prefetch_count (a per-worker setting there) is
// used only when concurrency is not given.
func SourceConfigFrom(c brokerconfig.Config, concurrency int) SourceConfig {
	prefetch := concurrency
	if prefetch <= 0 {
		prefetch = c.RabbitMQ.PrefetchCount
	}
	return SourceConfig{
		URL:          c.RabbitMQ.URL,
		Exchange:     c.ExchangeName(),
		ExchangeType: c.RabbitMQ.ExchangeType,
		Queue:        c.QueueName(),
		Prefetch:     prefetch,
		PrefetchSize: c.RabbitMQ.PrefetchSize,
		ConsumerTag:  c.RabbitMQ.ConsumerTag,
	}
}

func (c SourceConfig) withDefaults() SourceConfig {
	c.ExchangeType = cmp.Or(c.ExchangeType, brokerconfig.DefaultExchangeType)
	c.DialTimeout = cmp.Or(c.DialTimeout, DefaultDialTimeout)
	c.Heartbeat = cmp.Or(c.Heartbeat, DefaultHeartbeat)
	c.Logger = cmp.Or(c.Logger, slog.Default())
	c.Prefetch = cmp.Or(c.Prefetch, 1)
	c.ShutdownGrace = cmp.Or(c.ShutdownGrace, DefaultShutdownGrace)
	c.DeadLetterRetryDelay = cmp.Or(c.DeadLetterRetryDelay, DefaultDeadLetterRetryDelay)
	c.ReconnectInitial = cmp.Or(c.ReconnectInitial, DefaultReconnectInitial)
	c.ReconnectMax = cmp.Or(c.ReconnectMax, DefaultReconnectMax)
	return c
}

// Validate reports every invalid field, naming it.
func (c SourceConfig) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("rabbitmq source: %s: %s", field, fmt.Sprintf(format, args...)))
	}
	checkConnection(bad, c.URL, c.ExchangeType, c.DialTimeout, c.Heartbeat)
	if c.Exchange == "" {
		bad("Exchange", "required")
	}
	if c.Queue == "" {
		bad("Queue", "required")
	} else if len(c.DeadLetterQueue()) > 255 {
		bad("Queue", "%q is too long to derive the dead-letter queue name (255 bytes at most)", c.Queue)
	}
	if c.Prefetch < 0 || c.Prefetch > 65535 {
		bad("Prefetch", "%d must be between 0 and 65535", c.Prefetch)
	}
	if c.PrefetchSize < 0 {
		bad("PrefetchSize", "%d must not be negative", c.PrefetchSize)
	}
	notNegative(bad, namedDuration{"ShutdownGrace", c.ShutdownGrace}, namedDuration{"DeadLetterRetryDelay", c.DeadLetterRetryDelay},
		namedDuration{"ReconnectInitial", c.ReconnectInitial}, namedDuration{"ReconnectMax", c.ReconnectMax})
	if c.ReconnectInitial > 0 && c.ReconnectMax > 0 && c.ReconnectInitial > c.ReconnectMax {
		bad("ReconnectInitial", "%s exceeds ReconnectMax %s", c.ReconnectInitial, c.ReconnectMax)
	}
	return errors.Join(errs...)
}

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// URL is the broker, amqp:// or amqps://, with credentials.
	URL string
	// Exchange receives the events; declared durable with ExchangeType.
	Exchange string
	// ExchangeType must match the existing exchange; default topic.
	ExchangeType string
	// RoutingKey is used for every publish; the library's subscribers bind
	// with "", so leave it empty unless consumers bind otherwise.
	RoutingKey string
	// ConnectionName is shown by rabbitmqctl and the management UI.
	ConnectionName string
	// DialTimeout bounds the TCP connect and AMQP handshake. Default 10s.
	DialTimeout time.Duration
	// Heartbeat is the AMQP heartbeat interval. Default 10s.
	Heartbeat time.Duration
	// Logger receives connection events; default slog.Default().
	Logger *slog.Logger
}

// PublisherConfigFrom derives the status publisher's configuration:
// exchange broker.status_topic, with the input exchange's type and the
// configured routing key.
func PublisherConfigFrom(c brokerconfig.Config) PublisherConfig {
	return PublisherConfig{
		URL:          c.RabbitMQ.URL,
		Exchange:     c.StatusTopic,
		ExchangeType: c.RabbitMQ.ExchangeType,
		RoutingKey:   c.RabbitMQ.RoutingKey,
	}
}

func (c PublisherConfig) withDefaults() PublisherConfig {
	c.ExchangeType = cmp.Or(c.ExchangeType, brokerconfig.DefaultExchangeType)
	c.DialTimeout = cmp.Or(c.DialTimeout, DefaultDialTimeout)
	c.Heartbeat = cmp.Or(c.Heartbeat, DefaultHeartbeat)
	c.Logger = cmp.Or(c.Logger, slog.Default())
	return c
}

// Validate reports every invalid field, naming it.
func (c PublisherConfig) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("rabbitmq publisher: %s: %s", field, fmt.Sprintf(format, args...)))
	}
	checkConnection(bad, c.URL, c.ExchangeType, c.DialTimeout, c.Heartbeat)
	if c.Exchange == "" {
		bad("Exchange", "required (the status topic)")
	}
	return errors.Join(errs...)
}

// checkConnection checks the settings SourceConfig and PublisherConfig
// share: both dial the broker and declare an exchange with them.
func checkConnection(bad func(field, format string, args ...any), url, exchangeType string, dialTimeout, heartbeat time.Duration) {
	if err := validateURL(url); err != nil {
		bad("URL", "%v", err)
	}
	if err := validateExchangeType(exchangeType); err != nil {
		bad("ExchangeType", "%v", err)
	}
	notNegative(bad, namedDuration{"DialTimeout", dialTimeout}, namedDuration{"Heartbeat", heartbeat})
}

type namedDuration struct {
	field string
	d     time.Duration
}

// notNegative reports each duration that is negative.
func notNegative(bad func(field, format string, args ...any), durations ...namedDuration) {
	for _, n := range durations {
		if n.d < 0 {
			bad(n.field, "%s must not be negative", n.d)
		}
	}
}

func validateURL(raw string) error {
	if raw == "" {
		return errors.New("required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a valid URL")
	}
	if u.Scheme != "amqp" && u.Scheme != "amqps" {
		return fmt.Errorf("%q must start with amqp:// or amqps://", redact.URL(raw))
	}
	return nil
}

func validateExchangeType(t string) error {
	switch strings.ToLower(t) {
	case "", "direct", "fanout", "topic", "headers":
		return nil
	}
	return fmt.Errorf("%q must be one of direct, fanout, topic, headers", t)
}
