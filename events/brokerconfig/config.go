// Package brokerconfig reads the HyperFleet broker library's configuration
// (github.com/openshift-hyperfleet/hyperfleet-broker v1.1.1): its broker.yaml
// and the environment variables that override it, so that a deployment's
// existing configuration drives this adapter unchanged.
//
// The library reads the file with Viper: keys are case-insensitive, every key
// can be overridden by an environment variable named after it in upper case
// with dots replaced by underscores (broker.rabbitmq.url ->
// BROKER_RABBITMQ_URL), and scalar values are weakly typed ("10" is a valid
// prefetch_count). This package does the same without Viper, with two
// deliberate differences:
//
//   - an environment variable takes effect even when its key is absent from
//     the file (Viper's AutomaticEnv silently ignores those on Unmarshal);
//   - BROKER_CONFIG_FILE naming a file that does not exist is an error, not
//     an empty configuration: a mount that failed should not start an adapter
//     on defaults.
//
// The topic and subscription ID are not part of broker.yaml in the library
// (callers pass them to Subscribe). They are read here from the environment
// names HyperFleet adapters use (HYPERFLEET_BROKER_TOPIC, then BROKER_TOPIC;
// HYPERFLEET_BROKER_SUBSCRIPTION_ID, then BROKER_SUBSCRIPTION_ID) or from
// broker.topic / broker.subscription_id in the file.
package brokerconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

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
	values, err := flatten(data)
	if err != nil {
		return Config{}, err
	}
	r := reader{values: values, lookup: lookup}
	c := Config{
		Type:           strings.ToLower(r.str(keyType)),
		LogConfig:      r.boolean(keyLogConfig),
		Parallelism:    r.integer(keyParallelism),
		Topic:          r.first(keyTopic, keyPubSubTopic),
		SubscriptionID: r.first(keySubscriptionID, keyPubSubSubscriptionID),
		StatusTopic:    r.str(keyStatusTopic),
		RabbitMQ: RabbitMQ{
			URL:              r.str(keyRabbitURL),
			Exchange:         r.str(keyRabbitExchange),
			ExchangeType:     strings.ToLower(r.str(keyRabbitExchangeType)),
			Queue:            r.str(keyRabbitQueue),
			RoutingKey:       r.str(keyRabbitRoutingKey),
			PrefetchCount:    r.integer(keyRabbitPrefetchCount),
			PrefetchSize:     r.integer(keyRabbitPrefetchSize),
			ConsumerTag:      r.str(keyRabbitConsumerTag),
			PublisherConfirm: r.boolean(keyRabbitPublisherConfirm),
		},
		GooglePubSub: GooglePubSub{
			ProjectID:                   r.str(keyProjectID),
			AckDeadlineSeconds:          r.integer(keyAckDeadline),
			MessageRetentionDuration:    r.duration(keyRetention),
			ExpirationTTL:               r.optDuration(keyExpirationTTL),
			EnableMessageOrdering:       r.boolean(keyOrdering),
			RetryMinBackoff:             r.duration(keyRetryMin),
			RetryMaxBackoff:             r.duration(keyRetryMax),
			DeadLetterTopic:             r.str(keyDeadLetterTopic),
			DeadLetterMaxAttempts:       r.integer(keyDeadLetterMaxAttempts),
			TopicRetentionDuration:      r.duration(keyTopicRetention),
			MaxOutstandingMessages:      r.integer(keyMaxOutstandingMessages),
			MaxOutstandingBytes:         r.integer(keyMaxOutstandingBytes),
			NumGoroutines:               r.integer(keyNumGoroutines),
			CreateTopicIfMissing:        r.boolean(keyCreateTopic),
			CreateSubscriptionIfMissing: r.boolean(keyCreateSubscription),
		},
	}
	if err := errors.Join(r.errs...); err != nil {
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

// subscriptionIDPattern is Pub/Sub's rule for subscription and topic IDs.
var subscriptionIDPattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$`)

// Validate checks the settings the way the library does, plus the topic and
// subscription ID this adapter needs. Every problem is reported, each naming
// its setting.
func (c Config) Validate() error {
	var errs []error
	bad := func(k key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", k, fmt.Sprintf(format, args...)))
	}
	if c.Topic == "" {
		bad(keyTopic, "required")
	} else if c.Type == TypeGooglePubSub && !subscriptionIDPattern.MatchString(c.Topic) {
		bad(keyTopic, "%q is not a valid Pub/Sub topic ID (3-255 characters, a letter first, then letters, digits and -_.~+%%)", c.Topic)
	}
	if c.SubscriptionID == "" {
		bad(keySubscriptionID, "required")
	} else if c.Type == TypeGooglePubSub && !subscriptionIDPattern.MatchString(c.SubscriptionID) {
		bad(keySubscriptionID, "%q is not a valid Pub/Sub subscription ID (3-255 characters, a letter first, then letters, digits and -_.~+%%)", c.SubscriptionID)
	}
	if c.Parallelism < 0 {
		bad(keyParallelism, "%d must not be negative", c.Parallelism)
	}
	switch c.Type {
	case TypeRabbitMQ:
		r := c.RabbitMQ
		switch {
		case r.URL == "":
			bad(keyRabbitURL, "required")
		case !strings.HasPrefix(r.URL, "amqp://") && !strings.HasPrefix(r.URL, "amqps://"):
			bad(keyRabbitURL, "%q must start with amqp:// or amqps://", redact.URL(r.URL))
		default:
			if _, err := url.Parse(r.URL); err != nil {
				bad(keyRabbitURL, "not a valid URL")
			}
		}
		switch r.ExchangeType {
		case "direct", "fanout", "topic", "headers":
		default:
			bad(keyRabbitExchangeType, "%q must be one of direct, fanout, topic, headers", r.ExchangeType)
		}
		if r.PrefetchCount < 0 {
			bad(keyRabbitPrefetchCount, "%d must not be negative", r.PrefetchCount)
		}
		if r.PrefetchSize < 0 {
			bad(keyRabbitPrefetchSize, "%d must not be negative", r.PrefetchSize)
		}
		if len(c.QueueName()) > 255 {
			bad(keyRabbitQueue, "queue name %q is longer than RabbitMQ's 255 bytes", c.QueueName())
		}
		if len(c.ExchangeName()) > 255 {
			bad(keyRabbitExchange, "exchange name %q is longer than RabbitMQ's 255 bytes", c.ExchangeName())
		}
	case TypeGooglePubSub:
		g := c.GooglePubSub
		if g.ProjectID == "" {
			bad(keyProjectID, "required")
		}
		if g.AckDeadlineSeconds != 0 && (g.AckDeadlineSeconds < 10 || g.AckDeadlineSeconds > 600) {
			bad(keyAckDeadline, "%d must be between 10 and 600 seconds", g.AckDeadlineSeconds)
		}
		if d := g.MessageRetentionDuration; d != 0 && (d < 10*time.Minute || d > 31*24*time.Hour) {
			bad(keyRetention, "%s must be between 10m and 31d", d)
		}
		if g.ExpirationTTL != nil && *g.ExpirationTTL != 0 && *g.ExpirationTTL < 24*time.Hour {
			bad(keyExpirationTTL, "%s must be at least 1d, or 0 to never expire", *g.ExpirationTTL)
		}
		if g.RetryMinBackoff < 0 || g.RetryMinBackoff > 600*time.Second {
			bad(keyRetryMin, "%s must be between 0s and 600s", g.RetryMinBackoff)
		}
		if g.RetryMaxBackoff < 0 || g.RetryMaxBackoff > 600*time.Second {
			bad(keyRetryMax, "%s must be between 0s and 600s", g.RetryMaxBackoff)
		}
		if g.RetryMinBackoff > 0 && g.RetryMaxBackoff > 0 && g.RetryMinBackoff > g.RetryMaxBackoff {
			bad(keyRetryMin, "%s must not exceed %s (%s)", g.RetryMinBackoff, keyRetryMax.name, g.RetryMaxBackoff)
		}
		if g.DeadLetterMaxAttempts < 5 || g.DeadLetterMaxAttempts > 100 {
			bad(keyDeadLetterMaxAttempts, "%d must be between 5 and 100", g.DeadLetterMaxAttempts)
		}
		if d := g.TopicRetentionDuration; d != 0 && (d < 10*time.Minute || d > 31*24*time.Hour) {
			bad(keyTopicRetention, "%s must be between 10m and 31d, or 0 (disabled)", d)
		}
		if g.DeadLetterTopic != "" && !subscriptionIDPattern.MatchString(g.DeadLetterTopic) {
			bad(keyDeadLetterTopic, "%q is not a valid topic name", g.DeadLetterTopic)
		}
		for _, n := range []struct {
			k key
			v int
		}{{keyMaxOutstandingMessages, g.MaxOutstandingMessages}, {keyMaxOutstandingBytes, g.MaxOutstandingBytes}, {keyNumGoroutines, g.NumGoroutines}} {
			if n.v < 0 {
				bad(n.k, "%d must not be negative", n.v)
			}
		}
	case "":
		bad(keyType, "required (rabbitmq or googlepubsub)")
	default:
		bad(keyType, "%q is not supported (rabbitmq or googlepubsub)", c.Type)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("broker config: %w", err)
	}
	return nil
}

// key is one setting: its dotted file key and the environment variables that
// override it, strongest first.
type key struct {
	name string
	env  []string
}

func (k key) String() string {
	if len(k.env) == 0 {
		return k.name
	}
	return k.name + " (" + strings.Join(k.env, " or ") + ")"
}

// libKey is a setting of the library: one environment variable derived from
// the key as Viper does.
func libKey(name string) key {
	return key{name: name, env: []string{strings.ToUpper(strings.ReplaceAll(name, ".", "_"))}}
}

var (
	keyType        = libKey("broker.type")
	keyLogConfig   = libKey("log_config")
	keyParallelism = libKey("subscriber.parallelism")

	keyTopic                = key{name: "broker.topic", env: []string{"HYPERFLEET_BROKER_TOPIC", "BROKER_TOPIC"}}
	keySubscriptionID       = key{name: "broker.subscription_id", env: []string{"HYPERFLEET_BROKER_SUBSCRIPTION_ID", "BROKER_SUBSCRIPTION_ID"}}
	keyStatusTopic          = libKey("broker.status_topic")
	keyPubSubTopic          = key{name: "broker.googlepubsub.topic"}
	keyPubSubSubscriptionID = key{name: "broker.googlepubsub.subscription_id"}

	keyRabbitURL              = libKey("broker.rabbitmq.url")
	keyRabbitExchange         = libKey("broker.rabbitmq.exchange")
	keyRabbitExchangeType     = libKey("broker.rabbitmq.exchange_type")
	keyRabbitQueue            = libKey("broker.rabbitmq.queue")
	keyRabbitRoutingKey       = libKey("broker.rabbitmq.routing_key")
	keyRabbitPrefetchCount    = libKey("broker.rabbitmq.prefetch_count")
	keyRabbitPrefetchSize     = libKey("broker.rabbitmq.prefetch_size")
	keyRabbitConsumerTag      = libKey("broker.rabbitmq.consumer_tag")
	keyRabbitPublisherConfirm = libKey("broker.rabbitmq.publisher_confirm")

	keyProjectID              = libKey("broker.googlepubsub.project_id")
	keyAckDeadline            = libKey("broker.googlepubsub.ack_deadline_seconds")
	keyRetention              = libKey("broker.googlepubsub.message_retention_duration")
	keyExpirationTTL          = libKey("broker.googlepubsub.expiration_ttl")
	keyOrdering               = libKey("broker.googlepubsub.enable_message_ordering")
	keyRetryMin               = libKey("broker.googlepubsub.retry_min_backoff")
	keyRetryMax               = libKey("broker.googlepubsub.retry_max_backoff")
	keyDeadLetterTopic        = libKey("broker.googlepubsub.dead_letter_topic")
	keyDeadLetterMaxAttempts  = libKey("broker.googlepubsub.dead_letter_max_attempts")
	keyTopicRetention         = libKey("broker.googlepubsub.topic_retention_duration")
	keyMaxOutstandingMessages = libKey("broker.googlepubsub.max_outstanding_messages")
	keyMaxOutstandingBytes    = libKey("broker.googlepubsub.max_outstanding_bytes")
	keyNumGoroutines          = libKey("broker.googlepubsub.num_goroutines")
	keyCreateTopic            = libKey("broker.googlepubsub.create_topic_if_missing")
	keyCreateSubscription     = libKey("broker.googlepubsub.create_subscription_if_missing")
)

// reader resolves settings from the flattened file and the environment,
// collecting every parse error.
type reader struct {
	values map[string]string
	lookup LookupEnv
	errs   []error
}

// raw returns the setting's value and whether it was set anywhere. Viper
// treats an empty environment variable as unset (AllowEmptyEnv is off).
func (r *reader) raw(k key) (string, bool) {
	for _, e := range k.env {
		if v, ok := r.lookup(e); ok && v != "" {
			return v, true
		}
	}
	v, ok := r.values[k.name]
	return v, ok
}

func (r *reader) str(k key) string {
	v, _ := r.raw(k)
	return strings.TrimSpace(v)
}

func (r *reader) first(keys ...key) string {
	for _, k := range keys {
		if v := r.str(k); v != "" {
			return v
		}
	}
	return ""
}

func (r *reader) integer(k key) int {
	v, ok := r.raw(k)
	v = strings.TrimSpace(v)
	if !ok || v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		// Weak typing as in mapstructure: a whole float ("10.0") is accepted.
		if f, ferr := strconv.ParseFloat(v, 64); ferr == nil && f == float64(int(f)) {
			return int(f)
		}
		r.errs = append(r.errs, fmt.Errorf("%s: %q is not an integer", k, v))
	}
	return n
}

func (r *reader) boolean(k key) bool {
	v, ok := r.raw(k)
	v = strings.TrimSpace(v)
	if !ok || v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("%s: %q is not a boolean (true or false)", k, v))
	}
	return b
}

func (r *reader) duration(k key) time.Duration {
	d := r.optDuration(k)
	if d == nil {
		return 0
	}
	return *d
}

func (r *reader) optDuration(k key) *time.Duration {
	v := r.str(k)
	if v == "" {
		return nil
	}
	d, err := ParseDuration(v)
	if err != nil {
		r.errs = append(r.errs, fmt.Errorf("%s: %w", k, err))
		return nil
	}
	return &d
}

// ParseDuration reads a Google Cloud duration as the library does: Go
// durations ("604800s", "10m", "1h"), whole days ("7d"), or "0".
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" {
		return 0, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.ParseInt(days, 10, 64); err == nil {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	}
	return 0, fmt.Errorf("%q is not a duration (e.g. 600s, 10m, 1h, 7d)", s)
}

// flatten turns YAML into lower-cased dotted keys with scalar values as
// strings, the way Viper sees them.
func flatten(data []byte) (map[string]string, error) {
	out := map[string]string{}
	if len(bytes.TrimSpace(data)) == 0 {
		return out, nil
	}
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("broker config: not valid YAML: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("broker config: not valid YAML: %w", err)
	}
	if doc == nil {
		return out, nil
	}
	root, ok := doc.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("broker config: the document must be a mapping, not %T", doc)
	}
	var walk func(prefix string, m map[string]any) error
	walk = func(prefix string, m map[string]any) error {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			name := strings.ToLower(k)
			if prefix != "" {
				name = prefix + "." + name
			}
			switch v := m[k].(type) {
			case map[string]any:
				if err := walk(name, v); err != nil {
					return err
				}
			case []any:
				return fmt.Errorf("broker config: %s: a list is not a valid value", name)
			case nil:
				out[name] = ""
			case string:
				out[name] = v
			case json.Number:
				out[name] = v.String()
			case bool:
				out[name] = strconv.FormatBool(v)
			default:
				out[name] = fmt.Sprint(v)
			}
		}
		return nil
	}
	if err := walk("", root); err != nil {
		return nil, err
	}
	return out, nil
}
