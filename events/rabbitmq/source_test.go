package rabbitmq_test

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/events/rabbitmq"
	"github.com/openshift-hyperfleet/maestro-adapter/events/sourcetest"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// transport runs the conformance suite against the real broker: one topic
// and subscription per test, deleted afterwards.
type transport struct {
	url string
	n   names
	pub *rabbitmq.Publisher
	dl  *amqp.Channel
}

func newTransport(t *testing.T) sourcetest.Transport {
	url := requireRabbitMQ(t)
	n := newNames(t)
	return &transport{url: url, n: n, pub: newPublisher(t, url, n.Topic), dl: rawChannel(t, url)}
}

func (tr *transport) NewSource(t *testing.T, opts sourcetest.SourceOptions) events.Source {
	cfg := sourceConfig(tr.url, tr.n)
	cfg.Prefetch = opts.Concurrency
	cfg.ShutdownGrace = opts.ShutdownGrace
	return newSource(t, cfg)
}

func (tr *transport) Publish(t *testing.T, body []byte, id string) {
	publishSentinel(t, tr.pub, body, id)
}

func (tr *transport) DeadLetters(ctx context.Context, t *testing.T, n int) []sourcetest.DeadLetter {
	var out []sourcetest.DeadLetter
	for _, d := range getN(ctx, t, tr.dl, tr.n.Queue+".dlq", n) {
		attrs := map[string]string{}
		for k, v := range d.Headers {
			s, ok := v.(string)
			if !ok {
				t.Errorf("dead-letter header %s is a %T, want a string (watermill readers reject others)", k, v)
			}
			attrs[k] = s
		}
		out = append(out, sourcetest.DeadLetter{Body: d.Body, Reason: attrs[rabbitmq.HeaderDeadLetterReason],
			Attempts: attrs[rabbitmq.HeaderAttempts], Attributes: attrs})
	}
	return out
}

func TestConformance(t *testing.T) {
	sourcetest.Run(t, sourcetest.Features{RequeueCountsAttempts: true}, newTransport)
}

// The queue, exchange and binding must be exactly what the HyperFleet
// broker library declares: RabbitMQ refuses a second declaration with other
// arguments, and replicas or other consumers share these objects.
func TestTopologyMatchesLibrary(t *testing.T) {
	url := requireRabbitMQ(t)
	n := newNames(t)
	src := newSource(t, sourceConfig(url, n))
	_ = src

	ch := rawChannel(t, url)
	// watermill-amqp's DefaultTopologyBuilder with NewDurablePubSubConfig
	// and exchange_type topic.
	if _, err := ch.QueueDeclare(n.Queue, true, false, false, false, nil); err != nil {
		t.Fatalf("the library's queue declaration fails against ours: %v", err)
	}
	if err := ch.ExchangeDeclare(n.Topic, "topic", true, false, false, false, nil); err != nil {
		t.Fatalf("the library's exchange declaration fails against ours: %v", err)
	}
	if err := ch.QueueBind(n.Queue, "", n.Topic, false, nil); err != nil {
		t.Fatalf("the library's binding fails: %v", err)
	}
	for _, q := range []string{n.Queue, n.Queue + ".dlq"} {
		if _, err := ch.QueueDeclarePassive(q, true, false, false, false, nil); err != nil {
			t.Fatalf("queue %s missing: %v", q, err)
		}
	}
	if err := ch.ExchangeDeclarePassive(n.Queue+".dlx", "fanout", true, false, false, false, nil); err != nil {
		t.Fatalf("dead-letter exchange missing: %v", err)
	}

	// The check can fail: a declaration with other arguments is refused.
	_, err := ch.QueueDeclare(n.Queue, true, false, false, false, amqp.Table{"x-dead-letter-exchange": "other"})
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != amqp.PreconditionFailed {
		t.Fatalf("declaring the queue with other arguments: %v, want PRECONDITION_FAILED", err)
	}
}

func TestExchangeOfAnotherTypeFailsAtOnce(t *testing.T) {
	url := requireRabbitMQ(t)
	n := newNames(t)
	ch := rawChannel(t, url)
	// What the library declares when exchange_type is not configured.
	if err := ch.ExchangeDeclare(n.Topic, "fanout", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), sourcetest.Timeout)
	defer cancel()
	start := time.Now()
	_, err := rabbitmq.NewSource(ctx, sourceConfig(url, n))
	if err == nil {
		t.Fatal("NewSource succeeded against a fanout exchange while configured for topic")
	}
	if !failure.IsPermanent(err) || !strings.Contains(err.Error(), "exchange_type") || !strings.Contains(err.Error(), n.Topic) {
		t.Errorf("error %q: want a permanent error naming the exchange and broker.rabbitmq.exchange_type", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("NewSource retried a configuration error for %s", time.Since(start))
	}
}

func TestNewSourceValidates(t *testing.T) {
	_, err := rabbitmq.NewSource(context.Background(), rabbitmq.SourceConfig{URL: "http://x/", ExchangeType: "queue", Prefetch: -1})
	for _, want := range []string{"URL", "Exchange: required", "Queue: required", "ExchangeType", "Prefetch"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %q", err, want)
		}
	}
	if !failure.IsPermanent(err) {
		t.Errorf("configuration error %v is not permanent", err)
	}
}

func TestNewSourceUnreachableBrokerHonoursContext(t *testing.T) {
	cfg := rabbitmq.SourceConfig{URL: "amqp://guest:guest@127.0.0.1:1/", Exchange: "x", Queue: "q",
		ReconnectInitial: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := rabbitmq.NewSource(ctx, cfg)
	if err == nil {
		t.Fatal("NewSource succeeded against a closed port")
	}
	if ctx.Err() == nil {
		t.Errorf("NewSource gave up before its context ended: %v", err)
	}
}

// A failed dead-letter publish must not lose the message: it is neither
// acknowledged nor dropped, and comes back.
func TestDeadLetterFailureKeepsMessage(t *testing.T) {
	url := requireRabbitMQ(t)
	n := newNames(t)
	cfg := sourceConfig(url, n)
	cfg.DeadLetterRetryDelay = 50 * time.Millisecond
	src := newSource(t, cfg)
	pub := newPublisher(t, url, n.Topic)
	body, id := sourcetest.SentinelEvent(1)
	publishSentinel(t, pub, body, id)

	// Someone deletes the dead-letter queue: publishes to the DLX are
	// unroutable from now on.
	ch := rawChannel(t, url)
	if _, err := ch.QueueDelete(n.Queue+".dlq", false, false, false); err != nil {
		t.Fatal(err)
	}
	m := sourcetest.Receive(t, src)
	ctx, cancel := context.WithTimeout(context.Background(), sourcetest.Timeout)
	defer cancel()
	err := m.Settler.DeadLetter(ctx, "bad event", 1)
	if err == nil {
		t.Fatal("DeadLetter succeeded although the dead-letter queue is gone")
	}
	if failure.IsPermanent(err) || !strings.Contains(err.Error(), "not acknowledged") {
		t.Errorf("error %q: want a transient error saying the message was kept", err)
	}
	again := sourcetest.Receive(t, src)
	if sourcetest.EventID(again.Body) != id || again.Attempt < 2 {
		t.Fatalf("got %s attempt %d, want %s back with attempt >= 2", again.Body, again.Attempt, id)
	}
	// The failure declared the dead-letter queue again: now it works.
	if err := again.Settler.DeadLetter(ctx, "bad event", again.Attempt); err != nil {
		t.Fatalf("second DeadLetter: %v", err)
	}
	dl := getN(ctx, t, ch, n.Queue+".dlq", 1)[0]
	if string(dl.Body) != string(body) || dl.Headers[rabbitmq.HeaderAttempts] != "2" {
		t.Errorf("dead letter %s with attempts %v", dl.Body, dl.Headers[rabbitmq.HeaderAttempts])
	}
}

// A dead-letter queue that refuses messages (a max-length policy with
// reject-publish, set by an operator) makes the broker nack the publish: the
// original must stay queued.
func TestDeadLetterNackedKeepsMessage(t *testing.T) {
	url := requireRabbitMQ(t)
	requireRabbitmqctl(t)
	n := newNames(t)
	cfg := sourceConfig(url, n)
	cfg.DeadLetterRetryDelay = 50 * time.Millisecond
	src := newSource(t, cfg)
	pub := newPublisher(t, url, n.Topic)
	policy := "test-reject-" + uuid.NewString()[:8]
	if out, err := rabbitmqctl("set_policy", "--apply-to", "queues", policy, "^"+n.Queue+`\.dlq$`,
		`{"max-length":0,"overflow":"reject-publish"}`); err != nil {
		t.Fatalf("set_policy: %v: %s", err, out)
	}
	t.Cleanup(func() { _, _ = rabbitmqctl("clear_policy", policy) })

	body, id := sourcetest.SentinelEvent(1)
	publishSentinel(t, pub, body, id)
	m := sourcetest.Receive(t, src)
	ctx, cancel := context.WithTimeout(context.Background(), sourcetest.Timeout)
	defer cancel()
	// The policy takes effect asynchronously; until it does, the publish
	// succeeds, which would end the test early without proving anything.
	err := m.Settler.DeadLetter(ctx, "bad event", 1)
	for attempt := 0; err == nil && attempt < 50; attempt++ {
		dl := getN(ctx, t, rawChannel(t, url), n.Queue+".dlq", 1)
		publishSentinel(t, pub, dl[0].Body, id)
		m = sourcetest.Receive(t, src)
		time.Sleep(20 * time.Millisecond) // polling for the policy, bounded
		err = m.Settler.DeadLetter(ctx, "bad event", 1)
	}
	if err == nil {
		t.Fatal("DeadLetter kept succeeding under a reject-publish policy")
	}
	if !strings.Contains(err.Error(), "nacked") || !strings.Contains(err.Error(), "not acknowledged") {
		t.Errorf("error %q: want the nack reported and the message kept", err)
	}
	again := sourcetest.Receive(t, src)
	if sourcetest.EventID(again.Body) != id {
		t.Fatalf("got %s back, want %s", again.Body, id)
	}
	if err := again.Settler.Ack(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestAttributesCarryHeadersAndContentType(t *testing.T) {
	url := requireRabbitMQ(t)
	n := newNames(t)
	src := newSource(t, sourceConfig(url, n))
	pub := newPublisher(t, url, n.Topic)
	body, id := sourcetest.SentinelEvent(1)
	ctx, cancel := context.WithTimeout(context.Background(), sourcetest.Timeout)
	defer cancel()
	err := pub.PublishRaw(ctx, amqp.Publishing{
		ContentType: "application/cloudevents+json",
		Headers: amqp.Table{rabbitmq.HeaderMessageUUID: id, "x-int": int32(7), "x-bool": true,
			"x-table": amqp.Table{"a": "b"}, "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
		Body: body,
	})
	if err != nil {
		t.Fatal(err)
	}
	m := sourcetest.Receive(t, src)
	want := map[string]string{rabbitmq.HeaderMessageUUID: id, "x-int": "7", "x-bool": "true", "x-table": `{"a":"b"}`,
		"content-type": "application/cloudevents+json", "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	for k, v := range want {
		if m.Attributes[k] != v {
			t.Errorf("attribute %s = %q, want %q", k, m.Attributes[k], v)
		}
	}
	if ev, err := events.NewDecoder().Decode(m); err != nil || ev.ID != id {
		t.Errorf("structured-mode message does not decode: %v", err)
	}
	if err := m.Settler.Ack(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestReadyAndReceiveAfterClose(t *testing.T) {
	url := requireRabbitMQ(t)
	src := newSource(t, sourceConfig(url, newNames(t)))
	if err := src.Ready(); err != nil {
		t.Fatalf("Ready on a consuming source: %v", err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if err := src.Ready(); err == nil {
		t.Error("Ready after Close returned nil")
	}
	if _, err := src.Receive(context.Background()); !errors.Is(err, io.EOF) || !errors.Is(err, rabbitmq.ErrClosed) {
		t.Errorf("Receive after Close: %v, want ErrClosed (io.EOF)", err)
	}
}

// The broker drops the Source's connection mid-stream (what a restart or a
// network cut looks like from the client): the Source reconnects, no
// message is lost, and settling a message of the dead channel fails with
// ErrChannelClosed instead of panicking. The connection is closed with
// rabbitmqctl close_connection, which reaches only this test's connection;
// stop_app would also break other packages' tests running against the
// shared broker (see TestBrokerRestart for the full restart, opt-in).
func TestReconnectAfterConnectionKilled(t *testing.T) {
	url := requireRabbitMQ(t)
	requireRabbitmqctl(t)
	n := newNames(t)
	cfg := sourceConfig(url, n)
	cfg.ConnectionName = "test-reconnect-" + uuid.NewString()[:8]
	src := newSource(t, cfg)
	pub := newPublisher(t, url, n.Topic)

	const total = 20
	sent := map[string]bool{}
	for i := 0; i < total; i++ {
		body, id := sourcetest.SentinelEvent(int64(i + 1))
		publishSentinel(t, pub, body, id)
		sent[id] = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), sourcetest.Timeout)
	defer cancel()
	acked := map[string]bool{}
	for i := 0; i < 5; i++ {
		m := sourcetest.Receive(t, src)
		if err := m.Settler.Ack(ctx); err != nil {
			t.Fatal(err)
		}
		acked[sourcetest.EventID(m.Body)] = true
	}
	held := sourcetest.Receive(t, src)

	if k := killConnections(t, cfg.ConnectionName); k != 1 {
		t.Fatalf("closed %d connections named %s, want 1", k, cfg.ConnectionName)
	}
	// Settling a message of the dead channel: a clear error, no panic. Wait
	// until the Source is on its second connection: the first is then dead.
	deadline := time.Now().Add(sourcetest.Timeout)
	for rabbitmq.Sessions(src) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the source did not reconnect")
		}
		time.Sleep(10 * time.Millisecond) // polling a condition with a deadline
	}
	err := held.Settler.Ack(ctx)
	if !errors.Is(err, rabbitmq.ErrChannelClosed) || failure.IsPermanent(err) {
		t.Fatalf("Ack on the dead channel: %v, want ErrChannelClosed (transient)", err)
	}

	for len(acked) < total {
		m := sourcetest.Receive(t, src)
		id := sourcetest.EventID(m.Body)
		if !sent[id] {
			t.Fatalf("unexpected message %s", m.Body)
		}
		if err := m.Settler.Ack(ctx); err != nil {
			t.Fatalf("Ack after reconnect: %v", err)
		}
		acked[id] = true
	}
	if err := src.Ready(); err != nil {
		t.Errorf("Ready after reconnect: %v", err)
	}
}

// TestBrokerRestart stops and starts the RabbitMQ application mid-stream.
// It disrupts every other user of the broker for several seconds, so it
// runs only with RABBITMQ_RESTART_TEST=1; TestReconnectAfterConnectionKilled
// covers the client side of the same path on every run.
func TestBrokerRestart(t *testing.T) {
	if testing.Short() || os.Getenv("RABBITMQ_RESTART_TEST") != "1" {
		t.Skip("set RABBITMQ_RESTART_TEST=1 to restart the shared broker (rabbitmqctl stop_app/start_app)")
	}
	url := requireRabbitMQ(t)
	requireRabbitmqctl(t)
	n := newNames(t)
	cfg := sourceConfig(url, n)
	cfg.ConnectionName = "test-restart-" + uuid.NewString()[:8]
	src := newSource(t, cfg)
	pub := newPublisher(t, url, n.Topic)

	const total = 30
	sent := map[string]bool{}
	for i := 0; i < total; i++ {
		body, id := sourcetest.SentinelEvent(int64(i + 1))
		publishSentinel(t, pub, body, id)
		sent[id] = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	got := map[string]bool{}
	for i := 0; i < 10; i++ {
		m := sourcetest.Receive(t, src)
		if err := m.Settler.Ack(ctx); err != nil {
			t.Fatal(err)
		}
		got[sourcetest.EventID(m.Body)] = true
	}
	var restart sync.WaitGroup
	restart.Add(1)
	go func() {
		defer restart.Done()
		if out, err := rabbitmqctl("stop_app"); err != nil {
			t.Errorf("stop_app: %v: %s", err, out)
		}
		if out, err := rabbitmqctl("start_app"); err != nil {
			t.Errorf("start_app: %v: %s", err, out)
		}
	}()
	for len(got) < total {
		m, err := src.Receive(ctx)
		if err != nil {
			t.Fatalf("Receive across the restart: %v (%d of %d received)", err, len(got), total)
		}
		if err := m.Settler.Ack(ctx); err != nil {
			// Settled on the channel that died: the broker redelivers it.
			if !errors.Is(err, rabbitmq.ErrChannelClosed) {
				t.Fatalf("Ack: %v", err)
			}
			continue
		}
		got[sourcetest.EventID(m.Body)] = true
	}
	restart.Wait()
	for id := range sent {
		if !got[id] {
			t.Errorf("event %s lost across the restart", id)
		}
	}
}
