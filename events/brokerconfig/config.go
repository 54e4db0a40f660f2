// Package brokerconfig reads the HyperFleet broker library's configuration
// (github.com/openshift-hyperfleet/hyperfleet-broker v1.1.1): its broker.yaml
// and the environment variables that override it, so that a deployment's
// existing configuration drives this adapter unchanged.
//
// The library reads the file with Viper: keys are case-insensitive, every key
// can be overridden by an environment variable named after it in upper case
// with dots replaced by underscores (broker.rabbitmq.url ->
// BROKER_RABBITMQ_URL), and scalar values are weakly typed ("10" is a valid
// prefetch_count). This package does the same without Viper: the file is
// read with sigs.k8s.io/yaml into a struct that declares every key and its
// environment variables (file.go), with two deliberate differences:
//
//   - an environment variable takes effect even when its key is absent from
//     the file (Viper's AutomaticEnv silently ignores those on Unmarshal);
//   - BROKER_CONFIG_FILE naming a file that does not exist is an error, not
//     an empty configuration: a mount that failed should not start an adapter
//     on defaults.
//
// The environment is read through a LookupEnv, not with envconfig (which
// cmd/adapter uses for its own settings): envconfig reads only the process
// environment, while tests and the manifests' check (deploy/kustomize) parse
// configurations from variables held in a map; and envconfig takes an empty
// variable as set and one name per field, where Viper ignores empty ones and
// the topic has two names.
//
// The topic and subscription ID are not part of broker.yaml in the library
// (callers pass them to Subscribe). They are read here from the environment
// names HyperFleet adapters use (HYPERFLEET_BROKER_TOPIC, then BROKER_TOPIC;
// HYPERFLEET_BROKER_SUBSCRIPTION_ID, then BROKER_SUBSCRIPTION_ID) or from
// broker.topic / broker.subscription_id in the file.
package brokerconfig

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/openshift-hyperfleet/maestro-adapter/redact"
)

// Broker types, as broker.type spells them.
const (
	TypeRabbitMQ     = "rabbitmq"
	TypeGooglePubSub = "googlepubsub"
)

// Defaults that differ from the zero value.
const (
	// DefaultExchangeType is the RabbitMQ exchange type when
	// broker.rabbitmq.exchange_type is unset. HyperFleet deployments use
	// topic exchanges; the library itself would declare fanout, so a broker
	// whose exchange was first declared by the library with no type set
	// needs exchange_type: fanout here (the declaration fails otherwise).
	DefaultExchangeType = "topic"
	// DefaultDeadLetterMaxAttempts is the library's default for
	// broker.googlepubsub.dead_letter_max_attempts.
	DefaultDeadLetterMaxAttempts = 5
	// DefaultParallelism is the library's subscriber.parallelism default.
	DefaultParallelism = 1
)

// EnvConfigFile names the broker.yaml to read, as in the library.
const EnvConfigFile = "BROKER_CONFIG_FILE"

// Config is the broker configuration. Zero numeric values mean "not set"
// unless noted.
type Config struct {
	// Type is TypeRabbitMQ or TypeGooglePubSub (broker.type).
	Type string
	// Topic is the input topic: the RabbitMQ exchange Sentinel publishes to
	// (unless RabbitMQ.Exchange names one) or the Pub/Sub topic.
	Topic string
	// SubscriptionID selects the consumer group: the RabbitMQ queue is
	// {topic}-{subscriptionID} (or {queue}-{subscriptionID}), the Pub/Sub
	// subscription is named SubscriptionID. Replicas sharing it compete.
	SubscriptionID string
	// StatusTopic is where status events are published (exchange or Pub/Sub
	// topic); empty means status events are not published to the broker.
	StatusTopic string
	// Parallelism is subscriber.parallelism (library default 1).
	Parallelism int
	// LogConfig is log_config: log the effective configuration at start.
	LogConfig bool

	RabbitMQ     RabbitMQ
	GooglePubSub GooglePubSub

	// File is the broker.yaml that was read; empty when none was.
	File string
}

// RabbitMQ is broker.rabbitmq.
type RabbitMQ struct {
	URL string // url: amqp:// or amqps://, may hold credentials
	// Exchange is a static exchange name; empty means the topic names it.
	Exchange string
	// ExchangeType is direct, fanout, topic or headers; DefaultExchangeType
	// when unset.
	ExchangeType string
	// Queue is the base of the queue name; empty means the topic.
	Queue string
	// RoutingKey is the routing key publishers use; queues are always bound
	// with "".
	RoutingKey       string
	PrefetchCount    int
	PrefetchSize     int
	ConsumerTag      string
	PublisherConfirm bool
}

// GooglePubSub is broker.googlepubsub.
type GooglePubSub struct {
	ProjectID string

	AckDeadlineSeconds       int           // 10-600, 0 = server default
	MessageRetentionDuration time.Duration // 10m-31d, 0 = server default
	// ExpirationTTL is nil when unset; zero means never expire.
	ExpirationTTL          *time.Duration
	EnableMessageOrdering  bool
	RetryMinBackoff        time.Duration // 0-600s
	RetryMaxBackoff        time.Duration // 0-600s
	DeadLetterTopic        string        // empty: {subscriptionID}-dlq
	DeadLetterMaxAttempts  int           // 5-100, DefaultDeadLetterMaxAttempts when unset
	TopicRetentionDuration time.Duration // 10m-31d, 0 = disabled

	MaxOutstandingMessages int
	MaxOutstandingBytes    int
	NumGoroutines          int

	CreateTopicIfMissing        bool
	CreateSubscriptionIfMissing bool
}

// ExchangeName is the exchange the input events arrive on.
func (c Config) ExchangeName() string {
	if c.RabbitMQ.Exchange != "" {
		return c.RabbitMQ.Exchange
	}
	return c.Topic
}

// QueueName is the RabbitMQ queue the library's subscriber with this
// subscription ID consumes from.
func (c Config) QueueName() string {
	base := c.Topic
	if c.RabbitMQ.Queue != "" {
		base = c.RabbitMQ.Queue
	}
	return base + "-" + c.SubscriptionID
}

// DeadLetterTopic is the Pub/Sub dead-letter topic: the library always
// attaches {subscriptionID}-dlq to the subscriptions it creates (it ignores
// dead_letter_topic). A dead_letter_topic that is set wins here, as its
// documentation promises.
func (c Config) DeadLetterTopic() string {
	if c.GooglePubSub.DeadLetterTopic != "" {
		return c.GooglePubSub.DeadLetterTopic
	}
	return c.SubscriptionID + "-dlq"
}

// LogValue renders the configuration for logs with the URL's password
// masked.
func (c Config) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("type", c.Type),
		slog.String("topic", c.Topic),
		slog.String("subscription_id", c.SubscriptionID),
		slog.String("status_topic", c.StatusTopic),
		slog.String("file", c.File),
	}
	switch c.Type {
	case TypeRabbitMQ:
		r := c.RabbitMQ
		attrs = append(attrs,
			slog.String("url", redact.URL(r.URL)),
			slog.String("exchange", c.ExchangeName()),
			slog.String("exchange_type", r.ExchangeType),
			slog.String("queue", c.QueueName()),
			slog.Int("prefetch_count", r.PrefetchCount))
	case TypeGooglePubSub:
		g := c.GooglePubSub
		attrs = append(attrs,
			slog.String("project_id", g.ProjectID),
			slog.String("dead_letter_topic", c.DeadLetterTopic()),
			slog.Int("dead_letter_max_attempts", g.DeadLetterMaxAttempts),
			slog.Int("max_outstanding_messages", g.MaxOutstandingMessages),
			slog.Bool("create_topic_if_missing", g.CreateTopicIfMissing),
			slog.Bool("create_subscription_if_missing", g.CreateSubscriptionIfMissing))
	}
	return slog.GroupValue(attrs...)
}

// LookupEnv reads one environment variable; os.LookupEnv is one.
type LookupEnv func(name string) (string, bool)

// Load reads the broker configuration the way the library finds it: the file
// named by BROKER_CONFIG_FILE, else broker.yaml beside the executable, else
// broker.yaml in the working directory (none is fine: environment variables
// alone can configure everything); then environment overrides; then
// validation.
func Load() (Config, error) {
	path, err := findFile(os.LookupEnv)
	if err != nil {
		return Config{}, err
	}
	return LoadFile(path, os.LookupEnv)
}

// LoadFile reads the named broker.yaml (none when path is empty) with
// overrides from lookup (nil means no environment), and validates.
func LoadFile(path string, lookup LookupEnv) (Config, error) {
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return Config{}, fmt.Errorf("broker config: read %s: %w", path, err)
		}
	}
	c, err := Parse(data, lookup)
	if err != nil {
		if path != "" {
			return Config{}, fmt.Errorf("%s: %w", path, err)
		}
		return Config{}, err
	}
	c.File = path
	return c, nil
}

func findFile(lookup LookupEnv) (string, error) {
	if p, ok := lookup(EnvConfigFile); ok && p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("broker config: %s=%s: %w", EnvConfigFile, p, err)
		}
		return p, nil
	}
	var candidates []string
	if exe, err := os.Executable(); err == nil {
		if exe, err = filepath.EvalSymlinks(exe); err == nil {
			candidates = append(candidates, filepath.Join(filepath.Dir(exe), "broker.yaml"))
		}
	}
	candidates = append(candidates, "broker.yaml")
	for _, p := range candidates {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("broker config: %s: %w", p, err)
		}
	}
	return "", nil
}

// Parse reads broker.yaml content (may be empty) with overrides from lookup
// (nil means no environment), applies defaults and validates. Errors name
// the setting, as both its file key and its environment variable.
func Parse(data []byte, lookup LookupEnv) (Config, error) {
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	f, err := readFile(data, lookup)
	if err != nil {
		return Config{}, err
	}
	b, r, g := &f.Broker, &f.Broker.RabbitMQ, &f.Broker.GooglePubSub
	var cv converter
	c := Config{
		Type:           strings.ToLower(b.Type.text),
		LogConfig:      cv.boolean(f.LogConfig),
		Parallelism:    cv.integer(f.Subscriber.Parallelism),
		Topic:          cmp.Or(b.Topic.text, g.Topic.text),
		SubscriptionID: cmp.Or(b.SubscriptionID.text, g.SubscriptionID.text),
		StatusTopic:    b.StatusTopic.text,
		RabbitMQ: RabbitMQ{
			URL:              r.URL.text,
			Exchange:         r.Exchange.text,
			ExchangeType:     strings.ToLower(r.ExchangeType.text),
			Queue:            r.Queue.text,
			RoutingKey:       r.RoutingKey.text,
			PrefetchCount:    cv.integer(r.PrefetchCount),
			PrefetchSize:     cv.integer(r.PrefetchSize),
			ConsumerTag:      r.ConsumerTag.text,
			PublisherConfirm: cv.boolean(r.PublisherConfirm),
		},
		GooglePubSub: GooglePubSub{
			ProjectID:                   g.ProjectID.text,
			AckDeadlineSeconds:          cv.integer(g.AckDeadlineSeconds),
			MessageRetentionDuration:    cv.duration(g.MessageRetentionDuration),
			ExpirationTTL:               cv.optDuration(g.ExpirationTTL),
			EnableMessageOrdering:       cv.boolean(g.EnableMessageOrdering),
			RetryMinBackoff:             cv.duration(g.RetryMinBackoff),
			RetryMaxBackoff:             cv.duration(g.RetryMaxBackoff),
			DeadLetterTopic:             g.DeadLetterTopic.text,
			DeadLetterMaxAttempts:       cv.integer(g.DeadLetterMaxAttempts),
			TopicRetentionDuration:      cv.duration(g.TopicRetentionDuration),
			MaxOutstandingMessages:      cv.integer(g.MaxOutstandingMessages),
			MaxOutstandingBytes:         cv.integer(g.MaxOutstandingBytes),
			NumGoroutines:               cv.integer(g.NumGoroutines),
			CreateTopicIfMissing:        cv.boolean(g.CreateTopicIfMissing),
			CreateSubscriptionIfMissing: cv.boolean(g.CreateSubscriptionIfMissing),
		},
	}
	if err := errors.Join(cv.errs...); err != nil {
		return Config{}, fmt.Errorf("broker config: %w", err)
	}
	if c.Parallelism == 0 {
		c.Parallelism = DefaultParallelism
	}
	if c.RabbitMQ.ExchangeType == "" {
		c.RabbitMQ.ExchangeType = DefaultExchangeType
	}
	if c.GooglePubSub.DeadLetterMaxAttempts == 0 {
		c.GooglePubSub.DeadLetterMaxAttempts = DefaultDeadLetterMaxAttempts
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}
