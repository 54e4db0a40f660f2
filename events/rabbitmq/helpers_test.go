package rabbitmq_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/openshift-hyperfleet/maestro-adapter/events/rabbitmq"
	"github.com/openshift-hyperfleet/maestro-adapter/events/sourcetest"
)

// The machine's RabbitMQ; RABBITMQ_URL points the tests elsewhere.
const defaultURL = "amqp://guest:guest@127.0.0.1:5672/"

func brokerURL() string {
	if u := os.Getenv("RABBITMQ_URL"); u != "" {
		return u
	}
	return defaultURL
}

var (
	reachOnce sync.Once
	reachErr  error
)

// requireRabbitMQ returns the broker URL, or skips (fails under
// REQUIRE_INTEGRATION=1) when the broker does not answer.
func requireRabbitMQ(t testing.TB) string {
	t.Helper()
	reachOnce.Do(func() {
		conn, err := amqp.DialConfig(brokerURL(), amqp.Config{Dial: amqp.DefaultDial(3 * time.Second)})
		if err != nil {
			reachErr = err
			return
		}
		_ = conn.Close()
	})
	if reachErr != nil {
		sourcetest.Unavailable(t, "RabbitMQ at "+brokerURL(), reachErr)
	}
	return brokerURL()
}

// names is one test's private topology, deleted at the end of the test.
type names struct {
	Topic, SubscriptionID, Queue string
}

func newNames(t testing.TB) names {
	t.Helper()
	id := uuid.NewString()[:8]
	n := names{Topic: "test-" + id + "-clusters", SubscriptionID: "adapter"}
	n.Queue = n.Topic + "-" + n.SubscriptionID
	cleanupTopology(t, []string{n.Topic, n.Queue + ".dlx"}, []string{n.Queue, n.Queue + ".dlq"})
	return n
}

// cleanupTopology deletes exchanges and queues when the test ends.
func cleanupTopology(t testing.TB, exchanges, queues []string) {
	url := brokerURL()
	t.Cleanup(func() {
		conn, err := amqp.Dial(url)
		if err != nil {
			t.Logf("cleanup: %v", err)
			return
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			t.Logf("cleanup: %v", err)
			return
		}
		for _, q := range queues {
			if _, err := ch.QueueDelete(q, false, false, false); err != nil {
				t.Logf("cleanup: delete queue %s: %v", q, err)
			}
		}
		for _, e := range exchanges {
			if err := ch.ExchangeDelete(e, false, false); err != nil {
				t.Logf("cleanup: delete exchange %s: %v", e, err)
			}
		}
	})
}

func sourceConfig(url string, n names) rabbitmq.SourceConfig {
	return rabbitmq.SourceConfig{
		URL:              url,
		Exchange:         n.Topic,
		ExchangeType:     "topic",
		Queue:            n.Queue,
		Prefetch:         4,
		ReconnectInitial: 50 * time.Millisecond,
		ReconnectMax:     time.Second,
		Logger:           testLogger,
	}
}

// testLogger shows warnings and errors only: reconnections are expected in
// these tests, routine info is noise.
var testLogger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

func newSource(t testing.TB, cfg rabbitmq.SourceConfig) *rabbitmq.Source {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sourcetest.Timeout)
	defer cancel()
	src, err := rabbitmq.NewSource(ctx, cfg)
	if err != nil {
		t.Fatalf("NewSource: %v", err)
	}
	t.Cleanup(func() { _ = src.Close() })
	return src
}

func newPublisher(t testing.TB, url, exchange string) *rabbitmq.Publisher {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sourcetest.Timeout)
	defer cancel()
	p, err := rabbitmq.NewPublisher(ctx, rabbitmq.PublisherConfig{URL: url, Exchange: exchange, Logger: testLogger})
	if err != nil {
		t.Fatalf("NewPublisher: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func publishSentinel(t testing.TB, p *rabbitmq.Publisher, body []byte, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sourcetest.Timeout)
	defer cancel()
	if err := p.PublishRaw(ctx, rabbitmq.SentinelPublishing(body, id)); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// rawChannel opens a plain channel for inspecting the broker.
func rawChannel(t testing.TB, url string) *amqp.Channel {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("channel: %v", err)
	}
	return ch
}

// getN polls a queue with basic.get until n messages were taken (acked) or
// the deadline passes.
func getN(ctx context.Context, t testing.TB, ch *amqp.Channel, queue string, n int) []amqp.Delivery {
	t.Helper()
	var out []amqp.Delivery
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for len(out) < n {
		d, ok, err := ch.Get(queue, false)
		if err != nil {
			t.Fatalf("basic.get from %s: %v", queue, err)
		}
		if ok {
			if err := d.Ack(false); err != nil {
				t.Fatalf("ack: %v", err)
			}
			out = append(out, d)
			continue
		}
		select {
		case <-ctx.Done():
			t.Fatalf("queue %s: %d of %d messages before the deadline", queue, len(out), n)
		case <-tick.C:
		}
	}
	return out
}

// rabbitmqctl runs the broker's control tool with a timeout.
func rabbitmqctl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "rabbitmqctl", args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

var (
	ctlOnce sync.Once
	ctlErr  error
)

// requireRabbitmqctl skips tests that drive the broker when rabbitmqctl does
// not work here (a remote broker, no permissions).
func requireRabbitmqctl(t testing.TB) {
	t.Helper()
	ctlOnce.Do(func() {
		if os.Getenv("RABBITMQ_URL") != "" && os.Getenv("RABBITMQ_URL") != defaultURL {
			ctlErr = fmt.Errorf("RABBITMQ_URL points at another broker")
			return
		}
		if out, err := rabbitmqctl("-q", "status"); err != nil {
			ctlErr = fmt.Errorf("rabbitmqctl status: %v: %s", err, out)
		}
	})
	if ctlErr != nil {
		t.Skipf("skipping: cannot control the broker: %v", ctlErr)
	}
}

// killConnections closes, on the broker side, every connection whose client
// named itself connName: what a broker restart or a network cut looks like
// to the client, without disturbing other users of the shared broker.
func killConnections(t testing.TB, connName string) int {
	t.Helper()
	out, err := rabbitmqctl("-q", "list_connections", "--no-table-headers", "pid", "client_properties")
	if err != nil {
		t.Fatalf("rabbitmqctl list_connections: %v: %s", err, out)
	}
	killed := 0
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, `"`+connName+`"`) {
			continue
		}
		pid := strings.Fields(line)[0]
		if o, err := rabbitmqctl("close_connection", pid, "test: simulated broker failure"); err != nil {
			t.Fatalf("rabbitmqctl close_connection %s: %v: %s", pid, err, o)
		}
		killed++
	}
	return killed
}
