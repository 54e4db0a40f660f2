package rabbitmq_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/events/brokerconfig"
	"github.com/openshift-hyperfleet/maestro-adapter/events/rabbitmq"
	"github.com/openshift-hyperfleet/maestro-adapter/events/sourcetest"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// statusQueue declares a private exchange for status events and a queue
// bound to it the way the library's subscribers bind (routing key "").
func statusQueue(t *testing.T, url string) (exchange, queue string, ch *amqp.Channel) {
	t.Helper()
	exchange = "test-status-" + uuid.NewString()[:8]
	queue = exchange + "-reader"
	cleanupTopology(t, []string{exchange}, []string{queue})
	ch = rawChannel(t, url)
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(exchange, "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(queue, "", exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	return exchange, queue, ch
}

func TestPublisherStatusEventWireForm(t *testing.T) {
	url := requireRabbitMQ(t)
	exchange, queue, ch := statusQueue(t, url)
	pub := newPublisher(t, url, exchange)
	ev := sourcetest.StatusEvent(t)
	ctx, cancel := context.WithTimeout(context.Background(), sourcetest.Timeout)
	defer cancel()
	if err := pub.Publish(ctx, ev); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	d := getN(ctx, t, ch, queue, 1)[0]
	if d.DeliveryMode != amqp.Persistent || d.ContentType != rabbitmq.ContentTypeCloudEvents || d.MessageId != ev.ID() {
		t.Errorf("properties: delivery mode %d, content-type %q, message-id %q", d.DeliveryMode, d.ContentType, d.MessageId)
	}
	if got := d.Headers[rabbitmq.HeaderMessageUUID]; got != ev.ID() {
		t.Errorf("header %s = %v, want %s", rabbitmq.HeaderMessageUUID, got, ev.ID())
	}
	// The HyperFleet library's consumer unmarshals the body into an event.
	var back cloudevents.Event
	if err := json.Unmarshal(d.Body, &back); err != nil {
		t.Fatalf("body is not a structured CloudEvent: %v", err)
	}
	if back.ID() != ev.ID() || back.Type() != events.StatusEventType || !reflect.DeepEqual(back.Data(), ev.Data()) {
		t.Errorf("round trip changed the event:\n got %s\nwant %s", back, ev)
	}
	if back.Extensions()["traceparent"] != ev.Extensions()["traceparent"] {
		t.Errorf("traceparent lost: %v", back.Extensions())
	}

	// Our own decoder, should a status event reach an input queue, rejects
	// it by type, permanently.
	m := &events.Message{Body: d.Body, Attributes: map[string]string{"content-type": d.ContentType, rabbitmq.HeaderMessageUUID: ev.ID()}}
	_, err := events.NewDecoder().Decode(m)
	if err == nil || !failure.IsPermanent(err) || !strings.Contains(err.Error(), "type") {
		t.Errorf("decoding a status event: %v, want a permanent error about its type", err)
	}
}

// What Sentinel sends through the library, byte for byte in the properties
// that matter: testdata/wire-rabbitmq-delivery.json.
func TestPublishSentinelMatchesLibraryWireForm(t *testing.T) {
	url := requireRabbitMQ(t)
	raw, err := os.ReadFile("../sourcetest/testdata/wire-rabbitmq-delivery.json")
	if err != nil {
		t.Fatal(err)
	}
	var sample struct {
		ExchangeType string `json:"exchange_type"`
		Properties   struct {
			DeliveryMode uint8             `json:"delivery_mode"`
			Headers      map[string]string `json:"headers"`
		} `json:"properties"`
		Body json.RawMessage `json:"body"`
	}
	if err := json.Unmarshal(raw, &sample); err != nil {
		t.Fatal(err)
	}
	var ev cloudevents.Event
	if err := json.Unmarshal(sample.Body, &ev); err != nil {
		t.Fatal(err)
	}
	exchange, queue, ch := statusQueue(t, url)
	pub := newPublisher(t, url, exchange)
	ctx, cancel := context.WithTimeout(context.Background(), sourcetest.Timeout)
	defer cancel()
	if err := pub.PublishSentinel(ctx, ev); err != nil {
		t.Fatal(err)
	}
	d := getN(ctx, t, ch, queue, 1)[0]
	headers := map[string]string{}
	for k, v := range d.Headers {
		headers[k], _ = v.(string)
	}
	if !reflect.DeepEqual(headers, sample.Properties.Headers) || d.DeliveryMode != sample.Properties.DeliveryMode || d.ContentType != "" {
		t.Errorf("wire form: headers %v delivery mode %d content-type %q; want %v, %d, none",
			headers, d.DeliveryMode, d.ContentType, sample.Properties.Headers, sample.Properties.DeliveryMode)
	}
	var got, want any
	_ = json.Unmarshal(d.Body, &got)
	_ = json.Unmarshal(sample.Body, &want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("body %s, want %s", d.Body, sample.Body)
	}
	// The exchange is what the library declares: a durable exchange of the
	// configured type; another type is refused.
	if err := ch.ExchangeDeclare(exchange, sample.ExchangeType, true, false, false, false, nil); err != nil {
		t.Errorf("the library's exchange declaration fails: %v", err)
	}
}

func TestPublisherConcurrentPublishesAllConfirmed(t *testing.T) {
	url := requireRabbitMQ(t)
	exchange, queue, ch := statusQueue(t, url)
	pub := newPublisher(t, url, exchange)
	const workers, each = 8, 25
	ctx, cancel := context.WithTimeout(context.Background(), sourcetest.Timeout)
	defer cancel()
	var wg sync.WaitGroup
	ids := make(chan string, workers*each)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				ev := sourcetest.StatusEvent(t)
				if err := pub.Publish(ctx, ev); err != nil {
					t.Errorf("Publish: %v", err)
					return
				}
				ids <- ev.ID()
			}
		}()
	}
	wg.Wait()
	close(ids)
	want := map[string]bool{}
	for id := range ids {
		want[id] = true
	}
	for _, d := range getN(ctx, t, ch, queue, len(want)) {
		delete(want, d.MessageId)
	}
	if len(want) != 0 {
		t.Errorf("%d confirmed events are not in the queue", len(want))
	}
}

func TestPublisherReconnects(t *testing.T) {
	url := requireRabbitMQ(t)
	requireRabbitmqctl(t)
	exchange, queue, ch := statusQueue(t, url)
	name := "test-publisher-" + uuid.NewString()[:8]
	ctx, cancel := context.WithTimeout(context.Background(), sourcetest.Timeout)
	defer cancel()
	pub, err := rabbitmq.NewPublisher(ctx, rabbitmq.PublisherConfig{URL: url, Exchange: exchange, ConnectionName: name, Logger: testLogger})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	if err := pub.Publish(ctx, sourcetest.StatusEvent(t)); err != nil {
		t.Fatal(err)
	}
	if k := killConnections(t, name); k != 1 {
		t.Fatalf("closed %d connections, want 1", k)
	}
	// The first publish may still meet the dying connection: that must be
	// a transient error, and a later one must get through.
	var delivered string
	for delivered == "" {
		ev := sourcetest.StatusEvent(t)
		err := pub.Publish(ctx, ev)
		switch {
		case err == nil:
			delivered = ev.ID()
		case failure.IsPermanent(err):
			t.Fatalf("publish after a lost connection: permanent error %v", err)
		case ctx.Err() != nil:
			t.Fatalf("no publish got through after the connection was killed: %v", err)
		}
	}
	found := false
	for _, d := range getN(ctx, t, ch, queue, 2) {
		found = found || d.MessageId == delivered
	}
	if !found {
		t.Errorf("event %s confirmed after reconnecting is not in the queue", delivered)
	}
}

func TestPublisherClosed(t *testing.T) {
	url := requireRabbitMQ(t)
	exchange, _, _ := statusQueue(t, url)
	pub := newPublisher(t, url, exchange)
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	err := pub.Publish(context.Background(), sourcetest.StatusEvent(t))
	if !errors.Is(err, rabbitmq.ErrPublisherClosed) {
		t.Errorf("Publish after Close: %v, want ErrPublisherClosed", err)
	}
}

func TestPublisherExpiredContextIsTransient(t *testing.T) {
	url := requireRabbitMQ(t)
	exchange, _, _ := statusQueue(t, url)
	pub := newPublisher(t, url, exchange)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := pub.Publish(ctx, sourcetest.StatusEvent(t))
	if err == nil || failure.IsPermanent(err) {
		t.Errorf("Publish with a cancelled context: %v, want a transient error", err)
	}
}

func TestPublisherValidates(t *testing.T) {
	_, err := rabbitmq.NewPublisher(context.Background(), rabbitmq.PublisherConfig{URL: "amqp//x", ExchangeType: "x"})
	for _, want := range []string{"URL", "Exchange: required", "ExchangeType"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %q", err, want)
		}
	}
}

func TestConfigFromBrokerConfig(t *testing.T) {
	c, err := brokerconfig.Parse([]byte(`
broker:
  type: rabbitmq
  rabbitmq: {url: "amqp://u:p@rabbit:5672/", exchange: hyperfleet-clusters, queue: maestro, exchange_type: fanout,
             prefetch_count: 3, consumer_tag: tag-1, routing_key: rk}
`), func(k string) (string, bool) {
		v, ok := map[string]string{"BROKER_TOPIC": "clusters", "BROKER_SUBSCRIPTION_ID": "adapter", "BROKER_STATUS_TOPIC": "statuses"}[k]
		return v, ok
	})
	if err != nil {
		t.Fatal(err)
	}
	s := rabbitmq.SourceConfigFrom(c, 16)
	if s.Exchange != "hyperfleet-clusters" || s.Queue != "maestro-adapter" || s.ExchangeType != "fanout" ||
		s.Prefetch != 16 || s.ConsumerTag != "tag-1" || s.URL != "amqp://u:p@rabbit:5672/" {
		t.Errorf("SourceConfigFrom = %+v", s)
	}
	if s.DeadLetterExchange() != "maestro-adapter.dlx" || s.DeadLetterQueue() != "maestro-adapter.dlq" {
		t.Errorf("dead-letter names %s %s", s.DeadLetterExchange(), s.DeadLetterQueue())
	}
	if got := rabbitmq.SourceConfigFrom(c, 0).Prefetch; got != 3 {
		t.Errorf("without a concurrency the library's prefetch_count applies: got %d", got)
	}
	p := rabbitmq.PublisherConfigFrom(c)
	if p.Exchange != "statuses" || p.ExchangeType != "fanout" || p.RoutingKey != "rk" {
		t.Errorf("PublisherConfigFrom = %+v", p)
	}
}
