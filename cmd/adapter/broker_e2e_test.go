package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/openshift-hyperfleet/maestro-adapter/events/rabbitmq"
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
)

const rabbitURL = "amqp://guest:guest@127.0.0.1:5672/"

// rabbitOrSkip connects to the machine's RabbitMQ; the test fails when it
// is unreachable under REQUIRE_INTEGRATION=1 (make test), skips otherwise.
func rabbitOrSkip(t *testing.T) *amqp.Connection {
	t.Helper()
	conn, err := amqp.Dial(rabbitURL)
	if err != nil {
		if os.Getenv("REQUIRE_INTEGRATION") == "1" {
			t.Fatalf("RabbitMQ at %s unreachable: %v", rabbitURL, err)
		}
		t.Skipf("RabbitMQ at %s unreachable (set REQUIRE_INTEGRATION=1 to fail instead): %v", rabbitURL, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func randomName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// brokerRig is one isolated RabbitMQ topology for a test: input topic,
// shared subscription, status topic with a collecting queue, an API
// directory the test writes resources into.
type brokerRig struct {
	t           *testing.T
	conn        *amqp.Connection
	topic       string
	sub         string
	statusTopic string
	apiDir      string
	pub         *rabbitmq.Publisher

	mu      sync.Mutex
	reports map[string][]hyperfleet.StatusReport // by resource id
}

func newBrokerRig(t *testing.T) *brokerRig {
	conn := rabbitOrSkip(t)
	r := &brokerRig{t: t, conn: conn, topic: randomName("e2e-clusters"), sub: "adapters",
		apiDir: t.TempDir(), reports: map[string][]hyperfleet.StatusReport{}}
	r.statusTopic = r.topic + "-status"
	// Collect status events before any adapter publishes one, into a durable
	// queue, re-consuming after a broker restart.
	collector := r.statusTopic + "-collector"
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(r.statusTopic, "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(collector, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(collector, "", r.statusTopic, false, nil); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for {
			select {
			case <-stop:
				return
			default:
			}
			c, err := amqp.Dial(rabbitURL)
			if err != nil {
				time.Sleep(200 * time.Millisecond) // broker restarting: retry the dial
				continue
			}
			cch, err := c.Channel()
			var deliveries <-chan amqp.Delivery
			if err == nil {
				deliveries, err = cch.Consume(collector, "", true, false, false, false, nil)
			}
			if err != nil {
				c.Close()
				time.Sleep(200 * time.Millisecond)
				continue
			}
			func() {
				defer c.Close()
				for {
					select {
					case <-stop:
						return
					case d, ok := <-deliveries:
						if !ok {
							return
						}
						r.collect(d.Body)
					}
				}
			}()
		}
	}()
	pub, err := rabbitmq.NewPublisher(context.Background(), rabbitmq.PublisherConfig{URL: rabbitURL, Exchange: r.topic})
	if err != nil {
		t.Fatal(err)
	}
	r.pub = pub
	t.Cleanup(func() {
		close(stop)
		<-collected
		_ = pub.Close()
		if c, err := conn.Channel(); err == nil {
			queue := r.topic + "-" + r.sub
			for _, q := range []string{queue, queue + ".dlq", collector} {
				_, _ = c.QueueDelete(q, false, false, false)
			}
			for _, x := range []string{r.topic, r.statusTopic, queue + ".dlx"} {
				_ = c.ExchangeDelete(x, false, false)
			}
			c.Close()
		}
		ch.Close()
	})
	return r
}

// collect records one status event from the status topic.
func (r *brokerRig) collect(body []byte) {
	var ev cloudevents.Event
	if json.Unmarshal(body, &ev) != nil {
		return
	}
	var env hyperfleet.StatusEnvelope
	if ev.DataAs(&env) != nil {
		return
	}
	r.mu.Lock()
	r.reports[env.Resource.ID] = append(r.reports[env.Resource.ID], env.Report)
	r.mu.Unlock()
}

func (r *brokerRig) env(extra ...string) []string {
	return append([]string{
		// The simulated agent: these tests are about the broker side.
		"ADAPTER_TYPE=namespace", "DELIVERY=embedded", "SOURCE=broker", "BROKER_TYPE=rabbitmq",
		"BROKER_RABBITMQ_URL=" + rabbitURL, "BROKER_RABBITMQ_EXCHANGE_TYPE=topic",
		"HYPERFLEET_BROKER_TOPIC=" + r.topic, "HYPERFLEET_BROKER_SUBSCRIPTION_ID=" + r.sub,
		"BROKER_STATUS_TOPIC=" + r.statusTopic, "API_DIR=" + r.apiDir,
		"HEALTH_ADDR=", "METRICS_ADDR=", "LOG_FORMAT=json", "LOG_LEVEL=debug",
		"CONCURRENCY=4", "STATUS_TIMEOUT=5s", "RETRY_BASE_DELAY=20ms", "RETRY_MAX_DELAY=200ms",
		"DRAIN_TIMEOUT=5s", "BROKER_CONFIG_FILE=",
	}, extra...)
}

// consumers reports how many consumers the shared queue has (0 when it
// does not exist yet).
func (r *brokerRig) queueState() (messages, consumers int) {
	ch, err := r.conn.Channel()
	if err != nil {
		return 0, 0
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(r.topic+"-"+r.sub, true, false, false, false, nil)
	if err != nil {
		return 0, 0
	}
	return q.Messages, q.Consumers
}

// writeCluster puts the cluster at generation gen into the API directory,
// atomically, as the API would answer it from now on.
func (r *brokerRig) writeCluster(id string, gen int64) string {
	href := "/api/hyperfleet/v1/clusters/" + id
	res := map[string]any{"kind": "Cluster", "id": id, "href": href, "name": "cl-" + id, "generation": gen,
		"labels": map[string]string{"gen": fmt.Sprint(gen)}, "spec": map[string]any{"dns": map[string]any{"baseDomain": "example.com"}}}
	b, _ := json.Marshal(res)
	dir := filepath.Join(r.apiDir, "clusters")
	_ = os.MkdirAll(dir, 0o755)
	tmp := filepath.Join(dir, id+".json.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, id+".json")); err != nil {
		r.t.Fatal(err)
	}
	return href
}

// publish sends a Sentinel event exactly as the HyperFleet broker does.
func (r *brokerRig) publish(eventID, clusterID string, gen int64) {
	href := r.writeCluster(clusterID, gen)
	ev := cloudevents.New()
	ev.SetID(eventID)
	ev.SetSource("hyperfleet-sentinel")
	ev.SetType("com.redhat.hyperfleet.cluster.reconcile")
	_ = ev.SetData(cloudevents.ApplicationJSON, map[string]any{"id": clusterID, "kind": "Cluster", "href": href, "generation": gen})
	if err := r.pub.PublishSentinel(context.Background(), ev); err != nil {
		r.t.Fatal(err)
	}
}

// reconciledAt reports whether every cluster has a report with
// Available=True at generation gen.
func (r *brokerRig) reconciledAt(clusters []string, gen int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range clusters {
		ok := false
		for _, rep := range r.reports[c] {
			if rep.ObservedGeneration == gen && rep.Condition(hyperfleet.ConditionAvailable).Status == hyperfleet.True {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func union(procs ...*proc) func(t *testing.T) map[string]string {
	return func(t *testing.T) map[string]string {
		all := map[string]string{}
		for _, p := range procs {
			for id, o := range p.settled(t) {
				all[id] = o
			}
		}
		return all
	}
}

// Three adapter processes sharing one subscription handle 1,000 events for
// 100 clusters: every event is settled by one of them, every cluster ends
// reported at its latest generation, and all three took a share.
// With killOne, one process is SIGKILLed mid-stream: its unacknowledged
// events are redelivered to the others and nothing is lost.
func TestConsumerGroupThreeReplicas(t *testing.T) {
	for _, killOne := range []bool{false, true} {
		t.Run(fmt.Sprintf("kill=%v", killOne), func(t *testing.T) {
			r := newBrokerRig(t)
			procs := []*proc{
				startAdapter(t, "a", r.env(), "run"),
				startAdapter(t, "b", r.env(), "run"),
				startAdapter(t, "c", r.env(), "run"),
			}
			waitFor(t, 30*time.Second, "three consumers on the shared queue", func() bool { _, c := r.queueState(); return c == 3 })

			const clusters, gens = 100, 10
			var ids []string
			for c := range clusters {
				ids = append(ids, fmt.Sprintf("019466a0-0000-7000-8000-%012d", c))
			}
			all := union(procs...)
			var want []string
			for g := int64(1); g <= gens; g++ {
				for c, id := range ids {
					evID := fmt.Sprintf("ev-%03d-%02d", c, g)
					want = append(want, evID)
					r.publish(evID, id, g)
				}
				if killOne && g == 3 {
					waitFor(t, 60*time.Second, "process a to settle some events", func() bool { return len(procs[0].settled(t)) >= 20 })
					_ = procs[0].cmd.Process.Kill()
					<-procs[0].done
				}
			}
			waitFor(t, 3*time.Minute, "every cluster reported Available at generation 10", func() bool { return r.reconciledAt(ids, gens) })
			waitFor(t, 60*time.Second, "every event settled", func() bool {
				got := all(t)
				for _, id := range want {
					if _, ok := got[id]; !ok {
						return false
					}
				}
				return true
			})
			got := all(t)
			for id, o := range got {
				if o == "failed" {
					t.Errorf("event %s failed", id)
				}
			}
			for _, p := range procs {
				if n := len(p.settled(t)); n == 0 {
					t.Errorf("process %s handled no events: the load was not spread", p.name)
				}
			}
			for _, p := range procs {
				if killOne && p == procs[0] {
					continue
				}
				if code := p.stop(t, 20*time.Second); code != 0 {
					t.Errorf("process %s exited %d after SIGTERM, want 0", p.name, code)
				}
			}
			if msgs, _ := r.queueState(); msgs != 0 {
				t.Errorf("%d messages left on the shared queue", msgs)
			}
		})
	}
}

// Each malformed input of the corpus lands in the dead-letter queue with a
// reason naming the problem, and the adapter keeps consuming.
func TestMalformedInputDeadLetteredAdapterKeepsConsuming(t *testing.T) {
	r := newBrokerRig(t)
	p := startAdapter(t, "a", r.env(), "run")
	waitFor(t, 30*time.Second, "the adapter to consume", func() bool { _, c := r.queueState(); return c == 1 })

	dir := filepath.Join("..", "..", "events", "testdata", "malformed")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	bodies := map[string][]byte{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		bodies[e.Name()] = b
	}
	big, _ := os.ReadFile(filepath.Join("..", "..", "testdata", "contracts", "sentinel-event-cluster.json"))
	bodies["5MiB"] = append(big, make([]byte, 5<<20)...)
	for name, b := range bodies {
		if err := r.pub.PublishRaw(context.Background(), rabbitmq.SentinelPublishing(b, "bad-"+name)); err != nil {
			t.Fatal(err)
		}
	}
	r.publish("good-1", "019466a0-0000-7000-8000-000000000001", 1)

	ch, err := r.conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	dlq := r.topic + "-" + r.sub + ".dlq"
	reasons := map[string]string{}
	waitFor(t, 60*time.Second, "every malformed message in the dead-letter queue", func() bool {
		for {
			d, ok, err := ch.Get(dlq, true)
			if err != nil || !ok {
				break
			}
			id, _ := d.Headers[rabbitmq.HeaderMessageUUID].(string)
			reason, _ := d.Headers[rabbitmq.HeaderDeadLetterReason].(string)
			reasons[id] = reason
		}
		return len(reasons) >= len(bodies)
	})
	want := map[string]string{
		"not-json.txt": "not a JSON object", "missing-id.json": "field id: missing",
		"generation-string.json": "must be a JSON integer", "generation-zero.json": "not a valid generation",
		"unknown-kind.json": "not a registered kind", "nodepool-without-owner.json": "owner_references.id: missing",
		"invalid-utf8.json": "not valid UTF-8", "5MiB": "exceeds the limit",
	}
	for name, frag := range want {
		if got := reasons["bad-"+name]; !strings.Contains(got, frag) {
			t.Errorf("%s: dead-letter reason %q does not contain %q", name, got, frag)
		}
	}
	waitFor(t, 30*time.Second, "the valid event after the malformed ones to be reported", func() bool {
		return r.reconciledAt([]string{"019466a0-0000-7000-8000-000000000001"}, 1)
	})
	if code := p.stop(t, 20*time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
}

// RabbitMQ restarted mid-stream: the adapter reconnects and continues;
// nothing is lost. Restarting the broker disturbs every other test using
// it, so this runs only in make test's serial disruptive phase.
func TestDisruptiveRabbitMQRestart(t *testing.T) {
	if os.Getenv("DISRUPTIVE_TESTS") != "1" {
		t.Skip("restarts the shared RabbitMQ; runs in make test's serial phase (DISRUPTIVE_TESTS=1)")
	}
	r := newBrokerRig(t)
	p := startAdapter(t, "a", r.env(), "run")
	waitFor(t, 30*time.Second, "the adapter to consume", func() bool { _, c := r.queueState(); return c == 1 })

	var ids, want []string
	for c := range 20 {
		ids = append(ids, fmt.Sprintf("019466a0-0000-7000-9000-%012d", c))
	}
	publish := func(g int64) {
		for c, id := range ids {
			evID := fmt.Sprintf("ev-%03d-%02d", c, g)
			want = append(want, evID)
			waitFor(t, 2*time.Minute, "publishing "+evID, func() bool {
				href := r.writeCluster(id, g)
				ev := cloudevents.New()
				ev.SetID(evID)
				ev.SetSource("hyperfleet-sentinel")
				ev.SetType("com.redhat.hyperfleet.cluster.reconcile")
				_ = ev.SetData(cloudevents.ApplicationJSON, map[string]any{"id": id, "kind": "Cluster", "href": href, "generation": g})
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				return r.pub.PublishSentinel(ctx, ev) == nil
			})
		}
	}
	publish(1)
	publish(2)
	for _, args := range [][]string{{"stop_app"}, {"start_app"}} {
		out, err := exec.Command("rabbitmqctl", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("rabbitmqctl %v: %v\n%s", args, err, out)
		}
	}
	publish(3)
	publish(4)
	waitFor(t, 3*time.Minute, "every cluster reported at generation 4 after the restart", func() bool { return r.reconciledAt(ids, 4) })
	// A generation-3 event read after generation 4 was written already
	// reports generation 4, so also wait for every event published after the
	// restart to be settled itself: none may be lost.
	afterRestart := want[2*len(ids):]
	waitFor(t, 2*time.Minute, "every event published after the restart to be settled", func() bool {
		settled := p.settled(t)
		for _, id := range afterRestart {
			if _, ok := settled[id]; !ok {
				return false
			}
		}
		return true
	})
	if code := p.stop(t, 30*time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}
}
