package pubsub_test

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"testing"

	gpubsub "cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"github.com/google/uuid"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/events/pubsub"
	"github.com/openshift-hyperfleet/maestro-adapter/events/sourcetest"
)

const project = "test-project"

var testLogger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

// newPstest starts an in-process Pub/Sub and a client for it; pstest is
// the only Pub/Sub that runs here.
func newPstest(t testing.TB, opts ...pstest.ServerReactorOption) (*pstest.Server, *gpubsub.Client) {
	t.Helper()
	srv := pstest.NewServer(opts...)
	conn, err := grpc.NewClient(srv.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	client, err := gpubsub.NewClient(context.Background(), project, option.WithGRPCConn(conn))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = client.Close()
		_ = conn.Close()
		_ = srv.Close()
	})
	return srv, client
}

func ids() (topic, sub string) {
	id := uuid.NewString()[:8]
	return "clusters-" + id, "adapter-" + id
}

func baseConfig(client *gpubsub.Client, topic, sub string) pubsub.SourceConfig {
	return pubsub.SourceConfig{
		Client:                      client,
		Topic:                       topic,
		SubscriptionID:              sub,
		CreateTopicIfMissing:        true,
		CreateSubscriptionIfMissing: true,
		MaxOutstandingMessages:      4,
		Logger:                      testLogger,
	}
}

func newSource(t testing.TB, cfg pubsub.SourceConfig) *pubsub.Source {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sourcetest.Timeout)
	defer cancel()
	src, err := pubsub.NewSource(ctx, cfg)
	if err != nil {
		t.Fatalf("NewSource: %v", err)
	}
	t.Cleanup(func() { _ = src.Close() })
	return src
}

func newPublisher(t testing.TB, client *gpubsub.Client, topic string) *pubsub.Publisher {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sourcetest.Timeout)
	defer cancel()
	p, err := pubsub.NewPublisher(ctx, pubsub.PublisherConfig{Client: client, Topic: topic, CreateTopicIfMissing: true, Logger: testLogger})
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func createSubscription(t testing.TB, client *gpubsub.Client, sub *pubsubpb.Subscription) {
	t.Helper()
	if _, err := client.SubscriptionAdminClient.CreateSubscription(context.Background(), sub); err != nil {
		t.Fatalf("create subscription %s: %v", sub.Name, err)
	}
}

func createTopic(t testing.TB, client *gpubsub.Client, id string) {
	t.Helper()
	if _, err := client.TopicAdminClient.CreateTopic(context.Background(), &pubsubpb.Topic{Name: "projects/" + project + "/topics/" + id}); err != nil {
		t.Fatalf("create topic %s: %v", id, err)
	}
}

// pull receives n messages from a subscription, acknowledging them.
func pull(ctx context.Context, t testing.TB, client *gpubsub.Client, sub string, n int) []*gpubsub.Message {
	t.Helper()
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	var out []*gpubsub.Message
	err := client.Subscriber(sub).Receive(cctx, func(_ context.Context, m *gpubsub.Message) {
		m.Ack()
		mu.Lock()
		defer mu.Unlock()
		if len(out) < n {
			out = append(out, m)
		}
		if len(out) == n {
			cancel()
		}
	})
	if err != nil {
		t.Fatalf("receive from %s: %v", sub, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(out) < n {
		t.Fatalf("subscription %s: %d of %d messages before the deadline", sub, len(out), n)
	}
	return out
}

// transport runs the conformance suite on a fresh pstest server per test.
type transport struct {
	client     *gpubsub.Client
	topic, sub string
	once       sync.Once
	pub        *pubsub.Publisher
}

func newTransport(t *testing.T) sourcetest.Transport {
	_, client := newPstest(t)
	topic, sub := ids()
	return &transport{client: client, topic: topic, sub: sub}
}

func (tr *transport) NewSource(t *testing.T, opts sourcetest.SourceOptions) events.Source {
	cfg := baseConfig(tr.client, tr.topic, tr.sub)
	cfg.MaxOutstandingMessages = opts.Concurrency
	cfg.ShutdownGrace = opts.ShutdownGrace
	return newSource(t, cfg)
}

func (tr *transport) Publish(t *testing.T, body []byte, id string) {
	tr.once.Do(func() { tr.pub = newPublisher(t, tr.client, tr.topic) })
	ctx, cancel := context.WithTimeout(context.Background(), sourcetest.Timeout)
	defer cancel()
	if err := tr.pub.PublishRaw(ctx, body, map[string]string{pubsub.AttrMessageUUID: id}); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

func (tr *transport) DeadLetters(ctx context.Context, t *testing.T, n int) []sourcetest.DeadLetter {
	var out []sourcetest.DeadLetter
	for _, m := range pull(ctx, t, tr.client, tr.sub+"-dlq", n) {
		out = append(out, sourcetest.DeadLetter{Body: m.Data, Reason: m.Attributes[pubsub.AttrDeadLetterReason],
			Attempts: m.Attributes[pubsub.AttrAttempts], Attributes: m.Attributes})
	}
	return out
}
