package pubsub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	gpubsub "cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/api/iterator"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

func topicName(project, id string) string { return "projects/" + project + "/topics/" + id }

func subscriptionName(project, id string) string {
	return "projects/" + project + "/subscriptions/" + id
}

// classify marks errors that retrying cannot fix Permanent, the rest
// Transient.
func classify(err error) error {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated, codes.FailedPrecondition, codes.Unimplemented:
		return failure.Permanent(err)
	}
	return failure.Transient(err)
}

// ensureTopic checks that a topic exists and creates it when allowed. A
// caller without pubsub.topics.get (roles/pubsub.publisher lacks it) cannot
// check: that is logged and the topic assumed to exist, as publishing will
// tell.
func ensureTopic(ctx context.Context, c *gpubsub.Client, id string, create bool, retention time.Duration, log *slog.Logger, setting string) error {
	name := topicName(c.Project(), id)
	_, err := c.TopicAdminClient.GetTopic(ctx, &pubsubpb.GetTopicRequest{Topic: name})
	switch status.Code(err) {
	case codes.OK:
		return nil
	case codes.PermissionDenied:
		log.Warn("pubsub: cannot check that the topic exists (no pubsub.topics.get); assuming it does", "topic", name)
		return nil
	case codes.NotFound:
	default:
		return classify(fmt.Errorf("get topic %s: %w", name, err))
	}
	if !create {
		return failure.Permanent(fmt.Errorf("topic %s does not exist; create it or set %s", name, setting))
	}
	t := &pubsubpb.Topic{Name: name}
	if retention > 0 {
		t.MessageRetentionDuration = durationpb.New(retention)
	}
	if _, err := c.TopicAdminClient.CreateTopic(ctx, t); err != nil && status.Code(err) != codes.AlreadyExists {
		return classify(fmt.Errorf("create topic %s: %w", name, err))
	}
	log.Info("pubsub: created topic", "topic", name)
	return nil
}

// librarySubscription is the subscription the HyperFleet library creates
// (its GenerateSubscription): the configured settings and, always, a
// dead-letter policy.
func librarySubscription(c SourceConfig, project string) *pubsubpb.Subscription {
	sub := &pubsubpb.Subscription{
		Name:                  subscriptionName(project, c.SubscriptionID),
		Topic:                 topicName(project, c.Topic),
		EnableMessageOrdering: c.EnableMessageOrdering,
		DeadLetterPolicy: &pubsubpb.DeadLetterPolicy{
			DeadLetterTopic:     topicName(project, c.DeadLetterTopic),
			MaxDeliveryAttempts: int32(c.MaxDeliveryAttempts),
		},
	}
	if c.AckDeadline > 0 {
		sub.AckDeadlineSeconds = int32(c.AckDeadline / time.Second)
	}
	if c.MessageRetention > 0 {
		sub.MessageRetentionDuration = durationpb.New(c.MessageRetention)
	}
	if c.ExpirationTTL != nil {
		sub.ExpirationPolicy = &pubsubpb.ExpirationPolicy{}
		if *c.ExpirationTTL > 0 {
			sub.ExpirationPolicy.Ttl = durationpb.New(*c.ExpirationTTL)
		}
	}
	if c.RetryMinBackoff > 0 || c.RetryMaxBackoff > 0 {
		sub.RetryPolicy = &pubsubpb.RetryPolicy{}
		if c.RetryMinBackoff > 0 {
			sub.RetryPolicy.MinimumBackoff = durationpb.New(c.RetryMinBackoff)
		}
		if c.RetryMaxBackoff > 0 {
			sub.RetryPolicy.MaximumBackoff = durationpb.New(c.RetryMaxBackoff)
		}
	}
	return sub
}

// ensureSubscription finds or creates the subscription and returns the
// full name of the dead-letter topic to publish to: the subscription's own
// policy's when it has one, so that the adapter's dead letters and the
// service's land together.
func ensureSubscription(ctx context.Context, c SourceConfig, log *slog.Logger) (deadLetterTopic string, err error) {
	project := c.Client.Project()
	name := subscriptionName(project, c.SubscriptionID)
	wantTopic := topicName(project, c.Topic)
	sub, err := c.Client.SubscriptionAdminClient.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: name})
	switch status.Code(err) {
	case codes.OK:
		// As the library (watermill) does: a subscription on another topic
		// is a configuration mistake, not something to consume from.
		if sub.Topic != wantTopic {
			return "", failure.Permanent(fmt.Errorf("subscription %s is attached to topic %s, expected %s", name, sub.Topic, wantTopic))
		}
		dl := topicName(project, c.DeadLetterTopic)
		if p := sub.GetDeadLetterPolicy(); p != nil && p.DeadLetterTopic != "" {
			dl = p.DeadLetterTopic
		}
		return dl, nil
	case codes.NotFound:
	default:
		return "", classify(fmt.Errorf("get subscription %s: %w", name, err))
	}
	if !c.CreateSubscriptionIfMissing {
		return "", failure.Permanent(fmt.Errorf("subscription %s does not exist; create it or set broker.googlepubsub.create_subscription_if_missing", name))
	}
	if err := ensureTopic(ctx, c.Client, c.Topic, c.CreateTopicIfMissing, c.TopicRetention, log, "broker.googlepubsub.create_topic_if_missing"); err != nil {
		return "", err
	}
	// The service refuses a dead-letter policy naming a missing topic.
	if err := ensureTopic(ctx, c.Client, c.DeadLetterTopic, c.CreateTopicIfMissing, c.TopicRetention, log, "broker.googlepubsub.create_topic_if_missing"); err != nil {
		return "", err
	}
	if _, err := c.Client.SubscriptionAdminClient.CreateSubscription(ctx, librarySubscription(c, project)); err != nil && status.Code(err) != codes.AlreadyExists {
		return "", classify(fmt.Errorf("create subscription %s: %w", name, err))
	}
	log.Info("pubsub: created subscription", "subscription", name, "dead_letter_topic", c.DeadLetterTopic, "max_delivery_attempts", c.MaxDeliveryAttempts)
	return topicName(project, c.DeadLetterTopic), nil
}

// ensureDeadLetterStore makes dead letters durable: a topic without
// subscriptions discards what is published to it. With permission to create
// subscriptions, one named like the dead-letter topic is created on it;
// otherwise a missing one is only warned about.
func ensureDeadLetterStore(ctx context.Context, c SourceConfig, dlTopic string, log *slog.Logger) error {
	project, id, ok := strings.Cut(strings.TrimPrefix(dlTopic, "projects/"), "/topics/")
	if !ok || project != c.Client.Project() {
		log.Info("pubsub: the dead-letter topic is in another project; not checking it", "dead_letter_topic", dlTopic)
		return nil
	}
	if err := ensureTopic(ctx, c.Client, id, c.CreateTopicIfMissing, c.TopicRetention, log, "broker.googlepubsub.create_topic_if_missing"); err != nil {
		return fmt.Errorf("dead-letter topic: %w", err)
	}
	if c.CreateSubscriptionIfMissing {
		sub := &pubsubpb.Subscription{Name: subscriptionName(c.Client.Project(), id), Topic: dlTopic}
		if _, err := c.Client.SubscriptionAdminClient.CreateSubscription(ctx, sub); err != nil && status.Code(err) != codes.AlreadyExists {
			return classify(fmt.Errorf("create dead-letter subscription %s: %w", sub.Name, err))
		}
		return nil
	}
	it := c.Client.TopicAdminClient.ListTopicSubscriptions(ctx, &pubsubpb.ListTopicSubscriptionsRequest{Topic: dlTopic})
	switch _, err := it.Next(); {
	case errors.Is(err, iterator.Done):
		log.Warn("pubsub: the dead-letter topic has no subscription: dead letters published there are discarded; "+
			"create one, or set broker.googlepubsub.create_subscription_if_missing", "dead_letter_topic", dlTopic)
	case err != nil:
		log.Info("pubsub: cannot list the dead-letter topic's subscriptions to check that dead letters are kept",
			"dead_letter_topic", dlTopic, "error", err)
	}
	return nil
}
