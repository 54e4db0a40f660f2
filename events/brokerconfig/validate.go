package brokerconfig

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/openshift-hyperfleet/maestro-adapter/redact"
)

// subscriptionIDPattern is Pub/Sub's rule for subscription and topic IDs.
var subscriptionIDPattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$`)

// Validate checks the settings the way the library does, plus the topic and
// subscription ID this adapter needs. Every problem is reported, each naming
// its setting.
func (c Config) Validate() error {
	var errs []error
	bad := func(s *setting, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", s, fmt.Sprintf(format, args...)))
	}
	rs, gs := &schema.Broker.RabbitMQ, &schema.Broker.GooglePubSub
	if c.Topic == "" {
		bad(&schema.Broker.Topic, "required")
	} else if c.Type == TypeGooglePubSub && !subscriptionIDPattern.MatchString(c.Topic) {
		bad(&schema.Broker.Topic, "%q is not a valid Pub/Sub topic ID (3-255 characters, a letter first, then letters, digits and -_.~+%%)", c.Topic)
	}
	if c.SubscriptionID == "" {
		bad(&schema.Broker.SubscriptionID, "required")
	} else if c.Type == TypeGooglePubSub && !subscriptionIDPattern.MatchString(c.SubscriptionID) {
		bad(&schema.Broker.SubscriptionID, "%q is not a valid Pub/Sub subscription ID (3-255 characters, a letter first, then letters, digits and -_.~+%%)", c.SubscriptionID)
	}
	if c.Parallelism < 0 {
		bad(&schema.Subscriber.Parallelism, "%d must not be negative", c.Parallelism)
	}
	switch c.Type {
	case TypeRabbitMQ:
		r := c.RabbitMQ
		switch {
		case r.URL == "":
			bad(&rs.URL, "required")
		case !strings.HasPrefix(r.URL, "amqp://") && !strings.HasPrefix(r.URL, "amqps://"):
			bad(&rs.URL, "%q must start with amqp:// or amqps://", redact.URL(r.URL))
		default:
			if _, err := url.Parse(r.URL); err != nil {
				bad(&rs.URL, "not a valid URL")
			}
		}
		switch r.ExchangeType {
		case "direct", "fanout", "topic", "headers":
		default:
			bad(&rs.ExchangeType, "%q must be one of direct, fanout, topic, headers", r.ExchangeType)
		}
		if r.PrefetchCount < 0 {
			bad(&rs.PrefetchCount, "%d must not be negative", r.PrefetchCount)
		}
		if r.PrefetchSize < 0 {
			bad(&rs.PrefetchSize, "%d must not be negative", r.PrefetchSize)
		}
		if len(c.QueueName()) > 255 {
			bad(&rs.Queue, "queue name %q is longer than RabbitMQ's 255 bytes", c.QueueName())
		}
		if len(c.ExchangeName()) > 255 {
			bad(&rs.Exchange, "exchange name %q is longer than RabbitMQ's 255 bytes", c.ExchangeName())
		}
	case TypeGooglePubSub:
		g := c.GooglePubSub
		if g.ProjectID == "" {
			bad(&gs.ProjectID, "required")
		}
		if g.AckDeadlineSeconds != 0 && (g.AckDeadlineSeconds < 10 || g.AckDeadlineSeconds > 600) {
			bad(&gs.AckDeadlineSeconds, "%d must be between 10 and 600 seconds", g.AckDeadlineSeconds)
		}
		if d := g.MessageRetentionDuration; d != 0 && (d < 10*time.Minute || d > 31*24*time.Hour) {
			bad(&gs.MessageRetentionDuration, "%s must be between 10m and 31d", d)
		}
		if g.ExpirationTTL != nil && *g.ExpirationTTL != 0 && *g.ExpirationTTL < 24*time.Hour {
			bad(&gs.ExpirationTTL, "%s must be at least 1d, or 0 to never expire", *g.ExpirationTTL)
		}
		if g.RetryMinBackoff < 0 || g.RetryMinBackoff > 600*time.Second {
			bad(&gs.RetryMinBackoff, "%s must be between 0s and 600s", g.RetryMinBackoff)
		}
		if g.RetryMaxBackoff < 0 || g.RetryMaxBackoff > 600*time.Second {
			bad(&gs.RetryMaxBackoff, "%s must be between 0s and 600s", g.RetryMaxBackoff)
		}
		if g.RetryMinBackoff > 0 && g.RetryMaxBackoff > 0 && g.RetryMinBackoff > g.RetryMaxBackoff {
			bad(&gs.RetryMinBackoff, "%s must not exceed %s (%s)", g.RetryMinBackoff, gs.RetryMaxBackoff.key, g.RetryMaxBackoff)
		}
		if g.DeadLetterMaxAttempts < 5 || g.DeadLetterMaxAttempts > 100 {
			bad(&gs.DeadLetterMaxAttempts, "%d must be between 5 and 100", g.DeadLetterMaxAttempts)
		}
		if d := g.TopicRetentionDuration; d != 0 && (d < 10*time.Minute || d > 31*24*time.Hour) {
			bad(&gs.TopicRetentionDuration, "%s must be between 10m and 31d, or 0 (disabled)", d)
		}
		if g.DeadLetterTopic != "" && !subscriptionIDPattern.MatchString(g.DeadLetterTopic) {
			bad(&gs.DeadLetterTopic, "%q is not a valid topic name", g.DeadLetterTopic)
		}
		for _, n := range []struct {
			k *setting
			v int
		}{{&gs.MaxOutstandingMessages, g.MaxOutstandingMessages}, {&gs.MaxOutstandingBytes, g.MaxOutstandingBytes}, {&gs.NumGoroutines, g.NumGoroutines}} {
			if n.v < 0 {
				bad(n.k, "%d must not be negative", n.v)
			}
		}
	case "":
		bad(&schema.Broker.Type, "required (rabbitmq or googlepubsub)")
	default:
		bad(&schema.Broker.Type, "%q is not supported (rabbitmq or googlepubsub)", c.Type)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("broker config: %w", err)
	}
	return nil
}
