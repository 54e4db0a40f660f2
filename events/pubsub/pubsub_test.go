package pubsub_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	gpubsub "cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	cepubsub "github.com/cloudevents/sdk-go/protocol/pubsub/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/events/brokerconfig"
	"github.com/openshift-hyperfleet/maestro-adapter/events/pubsub"
	"github.com/openshift-hyperfleet/maestro-adapter/events/sourcetest"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), sourcetest.Timeout)
	t.Cleanup(cancel)
	return ctx
}

// A subscription this Source creates is the library's: named after the
// subscription ID, with its settings and a dead-letter policy to
// {subscriptionID}-dlq; and dead letters get a subscription to be kept in.
func TestCreatesLibrarySubscription(t *testing.T) {
	_, client := newPstest(t)
	topic, sub := ids()
	cfg := baseConfig(client, topic, sub)
	cfg.MaxDeliveryAttempts = 7
	cfg.AckDeadline = 60 * time.Second
	cfg.RetryMinBackoff, cfg.RetryMaxBackoff = 10*time.Second, 600*time.Second
	newSource(t, cfg)
	got, err := client.SubscriptionAdminClient.GetSubscription(ctxT(t), &pubsubpb.GetSubscriptionRequest{
		Subscription: "projects/" + project + "/subscriptions/" + sub})
	if err != nil {
		t.Fatal(err)
	}
	want := &pubsubpb.DeadLetterPolicy{DeadLetterTopic: "projects/" + project + "/topics/" + sub + "-dlq", MaxDeliveryAttempts: 7}
	if got.Topic != "projects/"+project+"/topics/"+topic || got.AckDeadlineSeconds != 60 ||
		got.GetDeadLetterPolicy().GetDeadLetterTopic() != want.DeadLetterTopic || got.GetDeadLetterPolicy().GetMaxDeliveryAttempts() != 7 {
		t.Errorf("subscription %v, want topic %s, ack deadline 60 and dead-letter policy %v", got, topic, want)
	}
	if got.GetRetryPolicy().GetMinimumBackoff().AsDuration() != 10*time.Second || got.GetRetryPolicy().GetMaximumBackoff().AsDuration() != 600*time.Second {
		t.Errorf("retry policy %v", got.GetRetryPolicy())
	}
	if _, err := client.SubscriptionAdminClient.GetSubscription(ctxT(t), &pubsubpb.GetSubscriptionRequest{
		Subscription: "projects/" + project + "/subscriptions/" + sub + "-dlq"}); err != nil {
		t.Errorf("no subscription keeps the dead letters: %v", err)
	}
}

func TestMissingSubscriptionWithoutCreate(t *testing.T) {
	_, client := newPstest(t)
	topic, sub := ids()
	cfg := baseConfig(client, topic, sub)
	cfg.CreateSubscriptionIfMissing = false
	_, err := pubsub.NewSource(ctxT(t), cfg)
	if err == nil || !failure.IsPermanent(err) || !strings.Contains(err.Error(), "create_subscription_if_missing") {
		t.Errorf("NewSource without the subscription: %v, want a permanent error naming create_subscription_if_missing", err)
	}
}

func TestMissingTopicWithoutCreate(t *testing.T) {
	_, client := newPstest(t)
	topic, sub := ids()
	cfg := baseConfig(client, topic, sub)
	cfg.CreateTopicIfMissing = false
	_, err := pubsub.NewSource(ctxT(t), cfg)
	if err == nil || !failure.IsPermanent(err) || !strings.Contains(err.Error(), "create_topic_if_missing") || !strings.Contains(err.Error(), topic) {
		t.Errorf("NewSource without the topic: %v, want a permanent error naming the topic and create_topic_if_missing", err)
	}
}

func TestExistingSubscriptionOnAnotherTopic(t *testing.T) {
	_, client := newPstest(t)
	topic, sub := ids()
	createTopic(t, client, "other")
	createSubscription(t, client, &pubsubpb.Subscription{Name: "projects/" + project + "/subscriptions/" + sub, Topic: "projects/" + project + "/topics/other"})
	_, err := pubsub.NewSource(ctxT(t), baseConfig(client, topic, sub))
	if err == nil || !failure.IsPermanent(err) || !strings.Contains(err.Error(), "attached to topic") {
		t.Errorf("NewSource on a subscription of another topic: %v", err)
	}
}

// A subscription provisioned beforehand (Terraform, the library) with its
// own dead-letter policy: the adapter's dead letters go where the
// service's go.
func TestExistingDeadLetterPolicyWins(t *testing.T) {
	_, client := newPstest(t)
	topic, sub := ids()
	for _, id := range []string{topic, "provisioned-dlq"} {
		createTopic(t, client, id)
	}
	createSubscription(t, client, &pubsubpb.Subscription{Name: "projects/" + project + "/subscriptions/provisioned-dlq-reader",
		Topic: "projects/" + project + "/topics/provisioned-dlq"})
	createSubscription(t, client, &pubsubpb.Subscription{Name: "projects/" + project + "/subscriptions/" + sub,
		Topic: "projects/" + project + "/topics/" + topic, AckDeadlineSeconds: 30,
		DeadLetterPolicy: &pubsubpb.DeadLetterPolicy{DeadLetterTopic: "projects/" + project + "/topics/provisioned-dlq", MaxDeliveryAttempts: 10}})
	cfg := baseConfig(client, topic, sub)
	cfg.CreateTopicIfMissing, cfg.CreateSubscriptionIfMissing = false, false
	src := newSource(t, cfg)
	pub := newPublisher(t, client, topic)
	body, id := sourcetest.SentinelEvent(1)
	if err := pub.PublishRaw(ctxT(t), body, map[string]string{pubsub.AttrMessageUUID: id}); err != nil {
		t.Fatal(err)
	}
	m := sourcetest.Receive(t, src)
	if err := m.Settler.DeadLetter(ctxT(t), "bad", 1); err != nil {
		t.Fatal(err)
	}
	dl := pull(ctxT(t), t, client, "provisioned-dlq-reader", 1)[0]
	if string(dl.Data) != string(body) || dl.Attributes[pubsub.AttrDeadLetterReason] != "bad" ||
		dl.Attributes[pubsub.AttrOriginalSubscription] != "projects/"+project+"/subscriptions/"+sub || dl.Attributes[pubsub.AttrOriginalMessageID] != m.TransportID {
		t.Errorf("dead letter %s %v", dl.Data, dl.Attributes)
	}
}

// The three wire forms the decoder accepts all pass through unchanged:
// the HyperFleet library's (Sentinel), CloudEvents binary mode and
// structured mode.
func TestDeliversAllThreeWireForms(t *testing.T) {
	_, client := newPstest(t)
	topic, sub := ids()
	src := newSource(t, baseConfig(client, topic, sub))
	pub := newPublisher(t, client, topic)
	want := map[string]string{}

	sentinel, id := sourcetest.SentinelEvent(1)
	if err := pub.PublishRaw(ctxT(t), sentinel, map[string]string{pubsub.AttrMessageUUID: id}); err != nil {
		t.Fatal(err)
	}
	want[id] = "sentinel"

	var ev cloudevents.Event
	body, id := sourcetest.SentinelEvent(2)
	if err := json.Unmarshal(body, &ev); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"binary", "structured"} {
		ev.SetID(mode + "-" + ev.ID())
		ctx := binding.WithForceBinary(context.Background())
		if mode == "structured" {
			ctx = binding.WithForceStructured(context.Background())
		}
		msg := &gpubsub.Message{Attributes: map[string]string{}}
		if err := cepubsub.WritePubSubMessage(ctx, binding.ToMessage(&ev), msg); err != nil {
			t.Fatal(err)
		}
		if err := pub.PublishRaw(ctxT(t), msg.Data, msg.Attributes); err != nil {
			t.Fatal(err)
		}
		want[ev.ID()] = mode
	}

	dec := events.NewDecoder()
	for range want {
		m := sourcetest.Receive(t, src)
		got, err := dec.Decode(m)
		if err != nil {
			t.Fatalf("decode %v %s: %v", m.Attributes, m.Body, err)
		}
		mode, ok := want[got.ID]
		if !ok {
			t.Fatalf("unexpected event %s", got.ID)
		}
		delete(want, got.ID)
		if got.Kind != "Cluster" || got.Generation < 1 {
			t.Errorf("%s mode decoded to %+v", mode, got)
		}
		if err := m.Settler.Ack(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
}

// Requeued past the subscription's max delivery attempts, the service
// itself dead-letters the message; Attempt follows DeliveryAttempt.
func TestServiceDeadLettersAfterMaxAttempts(t *testing.T) {
	_, client := newPstest(t)
	topic, sub := ids()
	cfg := baseConfig(client, topic, sub)
	cfg.MaxOutstandingMessages = 1
	src := newSource(t, cfg)
	pub := newPublisher(t, client, topic)
	body, id := sourcetest.SentinelEvent(1)
	if err := pub.PublishRaw(ctxT(t), body, map[string]string{pubsub.AttrMessageUUID: id}); err != nil {
		t.Fatal(err)
	}
	for want := 1; want <= pubsub.DefaultMaxDeliveryAttempts; want++ {
		m := sourcetest.Receive(t, src)
		if m.Attempt != want {
			t.Fatalf("delivery %d has Attempt %d", want, m.Attempt)
		}
		if err := m.Settler.Requeue(ctxT(t), "transient"); err != nil {
			t.Fatal(err)
		}
	}
	dl := pull(ctxT(t), t, client, sub+"-dlq", 1)[0]
	if string(dl.Data) != string(body) {
		t.Errorf("dead letter %s, want %s", dl.Data, body)
	}
}

// A failed dead-letter publish must not lose the message: not
// acknowledged, nacked after the delay, delivered again. The subscription
// is provisioned without a dead-letter policy and the configured
// dead-letter topic is deleted after start (pstest refuses to delete a
// topic that a policy names).
func TestDeadLetterFailureKeepsMessage(t *testing.T) {
	_, client := newPstest(t)
	topic, sub := ids()
	createTopic(t, client, topic)
	createTopic(t, client, "doomed-dlq")
	createSubscription(t, client, &pubsubpb.Subscription{Name: "projects/" + project + "/subscriptions/" + sub, Topic: "projects/" + project + "/topics/" + topic})
	cfg := baseConfig(client, topic, sub)
	cfg.CreateTopicIfMissing, cfg.CreateSubscriptionIfMissing = false, false
	cfg.DeadLetterTopic = "doomed-dlq"
	cfg.DeadLetterRetryDelay = 50 * time.Millisecond
	src := newSource(t, cfg)
	pub := newPublisher(t, client, topic)
	if err := client.TopicAdminClient.DeleteTopic(ctxT(t), &pubsubpb.DeleteTopicRequest{Topic: "projects/" + project + "/topics/doomed-dlq"}); err != nil {
		t.Fatal(err)
	}
	body, id := sourcetest.SentinelEvent(1)
	if err := pub.PublishRaw(ctxT(t), body, map[string]string{pubsub.AttrMessageUUID: id}); err != nil {
		t.Fatal(err)
	}
	m := sourcetest.Receive(t, src)
	err := m.Settler.DeadLetter(ctxT(t), "bad", 1)
	if err == nil || failure.IsPermanent(err) || !strings.Contains(err.Error(), "not acknowledged") || !strings.Contains(err.Error(), "doomed-dlq") {
		t.Fatalf("DeadLetter to a deleted topic: %v, want a transient error saying the message was kept", err)
	}
	again := sourcetest.Receive(t, src)
	if sourcetest.EventID(again.Body) != id || again.Attempt < 2 {
		t.Fatalf("got %s attempt %d, want %s back", again.Body, again.Attempt, id)
	}
	if err := again.Settler.Ack(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

func TestReceiveAfterClose(t *testing.T) {
	_, client := newPstest(t)
	topic, sub := ids()
	src := newSource(t, baseConfig(client, topic, sub))
	if err := src.Ready(); err != nil {
		t.Errorf("Ready on a receiving source: %v", err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if err := src.Ready(); !errors.Is(err, pubsub.ErrClosed) {
		t.Errorf("Ready after Close: %v", err)
	}
	if _, err := src.Receive(context.Background()); !errors.Is(err, io.EOF) || !errors.Is(err, pubsub.ErrClosed) {
		t.Errorf("Receive after Close: %v, want ErrClosed (io.EOF)", err)
	}
}

func TestPublisherStatusEventWireForm(t *testing.T) {
	_, client := newPstest(t)
	topic, _ := ids()
	pub := newPublisher(t, client, topic)
	createSubscription(t, client, &pubsubpb.Subscription{Name: "projects/" + project + "/subscriptions/reader", Topic: "projects/" + project + "/topics/" + topic})
	ev := sourcetest.StatusEvent(t)
	if err := pub.Publish(ctxT(t), ev); err != nil {
		t.Fatal(err)
	}
	pm := pull(ctxT(t), t, client, "reader", 1)[0]
	if pm.Attributes[pubsub.AttrMessageUUID] != ev.ID() || pm.Attributes[pubsub.AttrContentType] != "application/cloudevents+json" {
		t.Errorf("attributes %v", pm.Attributes)
	}
	// The HyperFleet library's consumers unmarshal the data into an event.
	var back cloudevents.Event
	if err := json.Unmarshal(pm.Data, &back); err != nil || back.ID() != ev.ID() || !reflect.DeepEqual(back.Data(), ev.Data()) {
		t.Errorf("data does not round-trip (%v): %s", err, pm.Data)
	}
	// CloudEvents-SDK consumers read it as structured mode.
	msg := cepubsub.NewMessage(pm)
	if msg.ReadEncoding() != binding.EncodingStructured {
		t.Errorf("CloudEvents SDK sees encoding %v, want structured", msg.ReadEncoding())
	}
	if sdkEv, err := binding.ToEvent(context.Background(), msg); err != nil || sdkEv.ID() != ev.ID() || sdkEv.Type() != events.StatusEventType {
		t.Errorf("CloudEvents SDK reads %v, %v", sdkEv, err)
	}
	// Our decoder, should a status event reach an input subscription,
	// rejects it by type, permanently.
	_, err := events.NewDecoder().Decode(&events.Message{Body: pm.Data, Attributes: pm.Attributes})
	if err == nil || !failure.IsPermanent(err) || !strings.Contains(err.Error(), "type") {
		t.Errorf("decoding a status event: %v, want a permanent error about its type", err)
	}
}

// What Sentinel publishes through the library: testdata/wire-pubsub-message.json.
func TestPublishSentinelMatchesLibraryWireForm(t *testing.T) {
	raw, err := os.ReadFile("../sourcetest/testdata/wire-pubsub-message.json")
	if err != nil {
		t.Fatal(err)
	}
	var sample struct {
		Attributes map[string]string `json:"attributes"`
		Data       json.RawMessage   `json:"data"`
	}
	if err := json.Unmarshal(raw, &sample); err != nil {
		t.Fatal(err)
	}
	var ev cloudevents.Event
	if err := json.Unmarshal(sample.Data, &ev); err != nil {
		t.Fatal(err)
	}
	_, client := newPstest(t)
	topic, _ := ids()
	pub := newPublisher(t, client, topic)
	createSubscription(t, client, &pubsubpb.Subscription{Name: "projects/" + project + "/subscriptions/reader", Topic: "projects/" + project + "/topics/" + topic})
	if err := pub.PublishSentinel(ctxT(t), ev); err != nil {
		t.Fatal(err)
	}
	pm := pull(ctxT(t), t, client, "reader", 1)[0]
	if !reflect.DeepEqual(pm.Attributes, sample.Attributes) {
		t.Errorf("attributes %v, want %v", pm.Attributes, sample.Attributes)
	}
	var got, want any
	_ = json.Unmarshal(pm.Data, &got)
	_ = json.Unmarshal(sample.Data, &want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("data %s, want %s", pm.Data, sample.Data)
	}
}

func TestPublisherMissingTopic(t *testing.T) {
	_, client := newPstest(t)
	_, err := pubsub.NewPublisher(ctxT(t), pubsub.PublisherConfig{Client: client, Topic: "statuses", Logger: testLogger})
	if err == nil || !failure.IsPermanent(err) || !strings.Contains(err.Error(), "create_topic_if_missing") {
		t.Errorf("NewPublisher on a missing topic: %v", err)
	}
}

func TestConfigValidationAndMapping(t *testing.T) {
	_, err := pubsub.NewSource(context.Background(), pubsub.SourceConfig{Topic: "1bad", SubscriptionID: "s", MaxDeliveryAttempts: 200, AckDeadline: time.Second})
	for _, want := range []string{"Client: required", "Topic", "SubscriptionID", "MaxDeliveryAttempts", "AckDeadline"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %q", err, want)
		}
	}
	c, err := brokerconfig.Parse([]byte(`
broker:
  type: googlepubsub
  googlepubsub: {project_id: p, dead_letter_max_attempts: 9, ack_deadline_seconds: 30, create_topic_if_missing: true,
                 max_outstanding_messages: 50, expiration_ttl: "0"}
`), func(k string) (string, bool) {
		v, ok := map[string]string{"BROKER_TOPIC": "clusters", "BROKER_SUBSCRIPTION_ID": "adapter", "BROKER_STATUS_TOPIC": "statuses"}[k]
		return v, ok
	})
	if err != nil {
		t.Fatal(err)
	}
	s := pubsub.SourceConfigFrom(c, nil, 8)
	if s.Topic != "clusters" || s.SubscriptionID != "adapter" || s.DeadLetterTopic != "adapter-dlq" || s.MaxDeliveryAttempts != 9 ||
		s.AckDeadline != 30*time.Second || !s.CreateTopicIfMissing || s.CreateSubscriptionIfMissing || s.MaxOutstandingMessages != 8 ||
		s.ExpirationTTL == nil || *s.ExpirationTTL != 0 {
		t.Errorf("SourceConfigFrom = %+v", s)
	}
	if pubsub.SourceConfigFrom(c, nil, 0).MaxOutstandingMessages != 50 {
		t.Error("without a concurrency the library's max_outstanding_messages applies")
	}
	if p := pubsub.PublisherConfigFrom(c, nil); p.Topic != "statuses" || !p.CreateTopicIfMissing {
		t.Errorf("PublisherConfigFrom = %+v", p)
	}
}

// When the subscription is deleted under it, the Source keeps retrying and
// says so through Ready. pstest keeps open streams alive after a deletion
// (the service closes them), so streams are made to end every 100ms, as the
// service's do every 30 minutes: the next one meets NotFound.
func TestReadyReportsReceiveFailure(t *testing.T) {
	srv, client := newPstest(t)
	srv.SetStreamTimeout(100 * time.Millisecond)
	topic, sub := ids()
	cfg := baseConfig(client, topic, sub)
	cfg.ReceiveRetryInitial, cfg.ReceiveRetryMax = 20*time.Millisecond, 100*time.Millisecond
	src := newSource(t, cfg)
	if err := src.Ready(); err != nil {
		t.Fatalf("Ready on a receiving source: %v", err)
	}
	if err := client.SubscriptionAdminClient.DeleteSubscription(ctxT(t), &pubsubpb.DeleteSubscriptionRequest{
		Subscription: "projects/" + project + "/subscriptions/" + sub}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(sourcetest.Timeout)
	for src.Ready() == nil {
		if time.Now().After(deadline) {
			t.Fatal("Ready still nil after the subscription was deleted")
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
	if err := src.Ready(); !strings.Contains(err.Error(), sub) || !strings.Contains(err.Error(), "NotFound") {
		t.Errorf("Ready: %v, want the subscription and the cause named", err)
	}
}
