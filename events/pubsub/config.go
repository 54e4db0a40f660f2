package pubsub

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	gpubsub "cloud.google.com/go/pubsub/v2"

	"github.com/openshift-hyperfleet/maestro-adapter/events/brokerconfig"
)

// Defaults for the zero values of SourceConfig.
const (
	DefaultMaxDeliveryAttempts  = brokerconfig.DefaultDeadLetterMaxAttempts
	DefaultShutdownGrace        = 30 * time.Second
	DefaultDeadLetterRetryDelay = 5 * time.Second
	DefaultReceiveRetryInitial  = 500 * time.Millisecond
	DefaultReceiveRetryMax      = 30 * time.Second
)

// SourceConfig configures a Source. Build it with SourceConfigFrom, or by
// hand in tests.
type SourceConfig struct {
	// Client talks to Pub/Sub (or pstest); the caller closes it.
	Client *gpubsub.Client
	// Topic and SubscriptionID are IDs within the client's project.
	Topic          string
	SubscriptionID string
	// DeadLetterTopic is where DeadLetter publishes when the subscription
	// has no dead-letter policy of its own; default {SubscriptionID}-dlq.
	DeadLetterTopic string
	// MaxDeliveryAttempts is the dead-letter policy of a subscription this
	// Source creates: 5-100, default 5.
	MaxDeliveryAttempts int
	// CreateTopicIfMissing and CreateSubscriptionIfMissing allow creating
	// the topic, the dead-letter topic, the subscription and a subscription
	// on the dead-letter topic (without one, Pub/Sub discards dead letters).
	CreateTopicIfMissing        bool
	CreateSubscriptionIfMissing bool

	// Settings of a subscription this Source creates, as the library sets
	// them; zero leaves the service's default.
	AckDeadline           time.Duration // 10s-600s
	MessageRetention      time.Duration
	ExpirationTTL         *time.Duration // zero: never expire
	EnableMessageOrdering bool
	RetryMinBackoff       time.Duration
	RetryMaxBackoff       time.Duration
	TopicRetention        time.Duration // for topics this Source creates

	// MaxOutstandingMessages is the flow control: how many messages may be
	// handed out unsettled. Size it to the adapter's concurrency. Default 1.
	MaxOutstandingMessages int
	MaxOutstandingBytes    int
	NumGoroutines          int

	// ShutdownGrace is how long after Close messages already handed out can
	// still be settled; then they are nacked for redelivery. Default 30s.
	ShutdownGrace time.Duration
	// DeadLetterRetryDelay is how long a message whose dead-letter publish
	// failed is held before it is nacked. Default 5s.
	DeadLetterRetryDelay time.Duration
	// ReceiveRetryInitial and ReceiveRetryMax bound the backoff between
	// Receive calls that failed. Defaults 500ms and 30s.
	ReceiveRetryInitial time.Duration
	ReceiveRetryMax     time.Duration

	// Logger; default slog.Default().
	Logger *slog.Logger
}

// SourceConfigFrom derives a SourceConfig from the broker configuration.
// concurrency sizes the flow control; the library's max_outstanding_messages
// is used only when concurrency is not given.
func SourceConfigFrom(c brokerconfig.Config, client *gpubsub.Client, concurrency int) SourceConfig {
	g := c.GooglePubSub
	outstanding := concurrency
	if outstanding <= 0 {
		outstanding = g.MaxOutstandingMessages
	}
	return SourceConfig{
		Client:                      client,
		Topic:                       c.Topic,
		SubscriptionID:              c.SubscriptionID,
		DeadLetterTopic:             c.DeadLetterTopic(),
		MaxDeliveryAttempts:         g.DeadLetterMaxAttempts,
		CreateTopicIfMissing:        g.CreateTopicIfMissing,
		CreateSubscriptionIfMissing: g.CreateSubscriptionIfMissing,
		AckDeadline:                 time.Duration(g.AckDeadlineSeconds) * time.Second,
		MessageRetention:            g.MessageRetentionDuration,
		ExpirationTTL:               g.ExpirationTTL,
		EnableMessageOrdering:       g.EnableMessageOrdering,
		RetryMinBackoff:             g.RetryMinBackoff,
		RetryMaxBackoff:             g.RetryMaxBackoff,
		TopicRetention:              g.TopicRetentionDuration,
		MaxOutstandingMessages:      outstanding,
		MaxOutstandingBytes:         g.MaxOutstandingBytes,
		NumGoroutines:               g.NumGoroutines,
	}
}

func (c SourceConfig) withDefaults() SourceConfig {
	if c.DeadLetterTopic == "" && c.SubscriptionID != "" {
		c.DeadLetterTopic = c.SubscriptionID + "-dlq"
	}
	c.MaxDeliveryAttempts = cmp.Or(c.MaxDeliveryAttempts, DefaultMaxDeliveryAttempts)
	c.MaxOutstandingMessages = cmp.Or(c.MaxOutstandingMessages, 1)
	c.ShutdownGrace = cmp.Or(c.ShutdownGrace, DefaultShutdownGrace)
	c.DeadLetterRetryDelay = cmp.Or(c.DeadLetterRetryDelay, DefaultDeadLetterRetryDelay)
	c.ReceiveRetryInitial = cmp.Or(c.ReceiveRetryInitial, DefaultReceiveRetryInitial)
	c.ReceiveRetryMax = cmp.Or(c.ReceiveRetryMax, DefaultReceiveRetryMax)
	c.Logger = cmp.Or(c.Logger, slog.Default())
	return c
}

// idPattern is Pub/Sub's rule for topic and subscription IDs.
var idPattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$`)

// Validate reports every invalid field, naming it.
func (c SourceConfig) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("pubsub source: %s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.Client == nil {
		bad("Client", "required")
	}
	for _, id := range []struct{ field, v string }{{"Topic", c.Topic}, {"SubscriptionID", c.SubscriptionID}, {"DeadLetterTopic", c.DeadLetterTopic}} {
		if id.v == "" {
			bad(id.field, "required")
		} else if !idPattern.MatchString(id.v) {
			bad(id.field, "%q is not a valid Pub/Sub ID (3-255 characters, a letter first, then letters, digits and -_.~+%%)", id.v)
		}
	}
	if c.MaxDeliveryAttempts < 5 || c.MaxDeliveryAttempts > 100 {
		bad("MaxDeliveryAttempts", "%d must be between 5 and 100", c.MaxDeliveryAttempts)
	}
	if c.AckDeadline != 0 && (c.AckDeadline < 10*time.Second || c.AckDeadline > 600*time.Second) {
		bad("AckDeadline", "%s must be between 10s and 600s", c.AckDeadline)
	}
	if c.MaxOutstandingMessages < 0 || c.MaxOutstandingBytes < 0 || c.NumGoroutines < 0 {
		bad("MaxOutstandingMessages/MaxOutstandingBytes/NumGoroutines", "must not be negative")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"ShutdownGrace", c.ShutdownGrace}, {"DeadLetterRetryDelay", c.DeadLetterRetryDelay},
		{"ReceiveRetryInitial", c.ReceiveRetryInitial}, {"ReceiveRetryMax", c.ReceiveRetryMax},
		{"RetryMinBackoff", c.RetryMinBackoff}, {"RetryMaxBackoff", c.RetryMaxBackoff}} {
		if d.v < 0 {
			bad(d.name, "%s must not be negative", d.v)
		}
	}
	return errors.Join(errs...)
}

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// Client talks to Pub/Sub; the caller closes it.
	Client *gpubsub.Client
	// Topic receives the status events.
	Topic string
	// CreateTopicIfMissing allows creating the topic at start.
	CreateTopicIfMissing bool
	// TopicRetention is set on a topic this Publisher creates.
	TopicRetention time.Duration
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// PublisherConfigFrom derives the status publisher's configuration: topic
// broker.status_topic.
func PublisherConfigFrom(c brokerconfig.Config, client *gpubsub.Client) PublisherConfig {
	return PublisherConfig{
		Client:               client,
		Topic:                c.StatusTopic,
		CreateTopicIfMissing: c.GooglePubSub.CreateTopicIfMissing,
		TopicRetention:       c.GooglePubSub.TopicRetentionDuration,
	}
}

// Validate reports every invalid field, naming it.
func (c PublisherConfig) Validate() error {
	var errs []error
	if c.Client == nil {
		errs = append(errs, errors.New("pubsub publisher: Client: required"))
	}
	if c.Topic == "" {
		errs = append(errs, errors.New("pubsub publisher: Topic: required (the status topic)"))
	} else if !idPattern.MatchString(c.Topic) {
		errs = append(errs, fmt.Errorf("pubsub publisher: Topic: %q is not a valid Pub/Sub topic ID", c.Topic))
	}
	return errors.Join(errs...)
}
