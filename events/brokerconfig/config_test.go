package brokerconfig_test

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openshift-hyperfleet/maestro-adapter/events/brokerconfig"
)

func env(kv ...string) brokerconfig.LookupEnv {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

// The RabbitMQ example from the library's README, as deployments copy it.
const readmeRabbitMQ = `
broker:
  type: rabbitmq
  rabbitmq:
    url: amqp://guest:guest@localhost:5672/
    exchange_type: topic
    prefetch_count: 10
    publisher_confirm: false
subscriber:
  parallelism: 10
log_config: false
`

func TestParseLibraryRabbitMQExample(t *testing.T) {
	c, err := brokerconfig.Parse([]byte(readmeRabbitMQ), env(
		"BROKER_TOPIC", "hyperfleet-system-clusters",
		"BROKER_SUBSCRIPTION_ID", "maestro-adapter"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Type != brokerconfig.TypeRabbitMQ || c.RabbitMQ.URL != "amqp://guest:guest@localhost:5672/" ||
		c.RabbitMQ.ExchangeType != "topic" || c.RabbitMQ.PrefetchCount != 10 || c.Parallelism != 10 {
		t.Errorf("parsed %+v", c)
	}
	if got, want := c.ExchangeName(), "hyperfleet-system-clusters"; got != want {
		t.Errorf("ExchangeName() = %q, want %q", got, want)
	}
	if got, want := c.QueueName(), "hyperfleet-system-clusters-maestro-adapter"; got != want {
		t.Errorf("QueueName() = %q, want %q", got, want)
	}
}

func TestQueueAndExchangeOverrides(t *testing.T) {
	c, err := brokerconfig.Parse([]byte(`
broker:
  type: rabbitmq
  topic: clusters
  subscription_id: adapter-1
  rabbitmq: {url: "amqp://h/", exchange: hyperfleet-clusters, queue: my-adapter}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.ExchangeName() != "hyperfleet-clusters" || c.QueueName() != "my-adapter-adapter-1" {
		t.Errorf("exchange %q queue %q", c.ExchangeName(), c.QueueName())
	}
	if c.RabbitMQ.ExchangeType != brokerconfig.DefaultExchangeType {
		t.Errorf("exchange type defaults to %q, want %q", c.RabbitMQ.ExchangeType, brokerconfig.DefaultExchangeType)
	}
}

func TestEnvironmentOverrides(t *testing.T) {
	file := []byte(`
broker:
  type: rabbitmq
  rabbitmq:
    url: amqp://file/
    prefetch_count: 1
`)
	c, err := brokerconfig.Parse(file, env(
		"BROKER_RABBITMQ_URL", "amqp://env/",
		"BROKER_RABBITMQ_PREFETCH_COUNT", "25",
		// Not in the file: Viper would ignore it, this reader does not.
		"BROKER_RABBITMQ_EXCHANGE_TYPE", "fanout",
		"BROKER_RABBITMQ_PUBLISHER_CONFIRM", "true",
		// Empty means unset, as with Viper.
		"BROKER_TYPE", "",
		"HYPERFLEET_BROKER_TOPIC", "preferred",
		"BROKER_TOPIC", "legacy",
		"BROKER_SUBSCRIPTION_ID", "sub-1",
		"BROKER_STATUS_TOPIC", "statuses"))
	if err != nil {
		t.Fatal(err)
	}
	r := c.RabbitMQ
	if r.URL != "amqp://env/" || r.PrefetchCount != 25 || r.ExchangeType != "fanout" || !r.PublisherConfirm {
		t.Errorf("environment did not override the file: %+v", r)
	}
	if c.Type != "rabbitmq" {
		t.Errorf("empty BROKER_TYPE replaced the file's type: %q", c.Type)
	}
	if c.Topic != "preferred" || c.SubscriptionID != "sub-1" || c.StatusTopic != "statuses" {
		t.Errorf("topic %q subscription %q status %q", c.Topic, c.SubscriptionID, c.StatusTopic)
	}
}

func TestEnvironmentOnly(t *testing.T) {
	c, err := brokerconfig.Parse(nil, env(
		"BROKER_TYPE", "googlepubsub",
		"BROKER_GOOGLEPUBSUB_PROJECT_ID", "proj",
		"BROKER_GOOGLEPUBSUB_DEAD_LETTER_MAX_ATTEMPTS", "12",
		"BROKER_GOOGLEPUBSUB_CREATE_SUBSCRIPTION_IF_MISSING", "1",
		"BROKER_TOPIC", "clusters",
		"BROKER_SUBSCRIPTION_ID", "adapter"))
	if err != nil {
		t.Fatal(err)
	}
	g := c.GooglePubSub
	if g.ProjectID != "proj" || g.DeadLetterMaxAttempts != 12 || !g.CreateSubscriptionIfMissing {
		t.Errorf("parsed %+v", g)
	}
	if got := c.DeadLetterTopic(); got != "adapter-dlq" {
		t.Errorf("DeadLetterTopic() = %q, want adapter-dlq", got)
	}
}

func TestGooglePubSubFullExample(t *testing.T) {
	c, err := brokerconfig.Parse([]byte(`
Broker:
  Type: googlepubsub
  googlepubsub:
    project_id: my-gcp-project
    topic: cluster-events
    subscription_id: my-adapter-sub
    ack_deadline_seconds: "60"
    message_retention_duration: "7d"
    expiration_ttl: "0"
    retry_min_backoff: "10s"
    retry_max_backoff: "600s"
    dead_letter_topic: "my-dead-letters"
    max_outstanding_messages: 1000
    max_outstanding_bytes: 104857600
    num_goroutines: 10
    create_topic_if_missing: true
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	g := c.GooglePubSub
	if c.Topic != "cluster-events" || c.SubscriptionID != "my-adapter-sub" {
		t.Errorf("topic %q subscription %q", c.Topic, c.SubscriptionID)
	}
	if g.AckDeadlineSeconds != 60 || g.MessageRetentionDuration != 7*24*time.Hour ||
		g.RetryMinBackoff != 10*time.Second || g.RetryMaxBackoff != 600*time.Second ||
		g.MaxOutstandingMessages != 1000 || g.MaxOutstandingBytes != 104857600 || g.NumGoroutines != 10 ||
		!g.CreateTopicIfMissing || g.CreateSubscriptionIfMissing || g.DeadLetterMaxAttempts != 5 {
		t.Errorf("parsed %+v", g)
	}
	if g.ExpirationTTL == nil || *g.ExpirationTTL != 0 {
		t.Errorf("expiration_ttl \"0\" must mean never expire (set, zero), got %v", g.ExpirationTTL)
	}
	if c.DeadLetterTopic() != "my-dead-letters" {
		t.Errorf("DeadLetterTopic() = %q", c.DeadLetterTopic())
	}
}

func TestValidationNamesTheSetting(t *testing.T) {
	ids := env("BROKER_TOPIC", "clusters", "BROKER_SUBSCRIPTION_ID", "adapter")
	cases := []struct {
		name string
		yaml string
		env  brokerconfig.LookupEnv
		want []string
	}{
		{"no type", `broker: {}`, ids, []string{"broker.type (BROKER_TYPE): required"}},
		{"unknown type", `broker: {type: kafka}`, ids, []string{`broker.type (BROKER_TYPE): "kafka" is not supported`}},
		{"missing url", `broker: {type: rabbitmq}`, ids, []string{"broker.rabbitmq.url (BROKER_RABBITMQ_URL): required"}},
		{"http url", `broker: {type: rabbitmq, rabbitmq: {url: "http://u:secret@h/"}}`, ids,
			[]string{"broker.rabbitmq.url (BROKER_RABBITMQ_URL)", "must start with amqp://"}},
		{"exchange type", `broker: {type: rabbitmq, rabbitmq: {url: "amqp://h/", exchange_type: queue}}`, ids,
			[]string{`broker.rabbitmq.exchange_type (BROKER_RABBITMQ_EXCHANGE_TYPE): "queue" must be one of`}},
		{"prefetch not a number", `broker: {type: rabbitmq, rabbitmq: {url: "amqp://h/", prefetch_count: ten}}`, ids,
			[]string{`broker.rabbitmq.prefetch_count (BROKER_RABBITMQ_PREFETCH_COUNT): "ten" is not an integer`}},
		{"negative prefetch", `broker: {type: rabbitmq, rabbitmq: {url: "amqp://h/", prefetch_count: -1}}`, ids,
			[]string{"broker.rabbitmq.prefetch_count (BROKER_RABBITMQ_PREFETCH_COUNT): -1 must not be negative"}},
		{"bad boolean", `broker: {type: rabbitmq, rabbitmq: {url: "amqp://h/", publisher_confirm: maybe}}`, ids,
			[]string{`broker.rabbitmq.publisher_confirm (BROKER_RABBITMQ_PUBLISHER_CONFIRM): "maybe" is not a boolean`}},
		{"no project", `broker: {type: googlepubsub}`, ids, []string{"broker.googlepubsub.project_id (BROKER_GOOGLEPUBSUB_PROJECT_ID): required"}},
		{"attempts", `broker: {type: googlepubsub, googlepubsub: {project_id: p, dead_letter_max_attempts: 3}}`, ids,
			[]string{"broker.googlepubsub.dead_letter_max_attempts (BROKER_GOOGLEPUBSUB_DEAD_LETTER_MAX_ATTEMPTS): 3 must be between 5 and 100"}},
		{"ack deadline", `broker: {type: googlepubsub, googlepubsub: {project_id: p, ack_deadline_seconds: 5}}`, ids,
			[]string{"broker.googlepubsub.ack_deadline_seconds (BROKER_GOOGLEPUBSUB_ACK_DEADLINE_SECONDS): 5 must be between 10 and 600"}},
		{"duration", `broker: {type: googlepubsub, googlepubsub: {project_id: p, retry_min_backoff: soon}}`, ids,
			[]string{`broker.googlepubsub.retry_min_backoff (BROKER_GOOGLEPUBSUB_RETRY_MIN_BACKOFF): "soon" is not a duration`}},
		{"backoff order", `broker: {type: googlepubsub, googlepubsub: {project_id: p, retry_min_backoff: 60s, retry_max_backoff: 10s}}`, ids,
			[]string{"broker.googlepubsub.retry_min_backoff (BROKER_GOOGLEPUBSUB_RETRY_MIN_BACKOFF): 1m0s must not exceed"}},
		{"ttl", `broker: {type: googlepubsub, googlepubsub: {project_id: p, expiration_ttl: 1h}}`, ids,
			[]string{"broker.googlepubsub.expiration_ttl (BROKER_GOOGLEPUBSUB_EXPIRATION_TTL): 1h0m0s must be at least 1d"}},
		{"no topic or subscription", `broker: {type: rabbitmq, rabbitmq: {url: "amqp://h/"}}`, nil, []string{
			"broker.topic (HYPERFLEET_BROKER_TOPIC or BROKER_TOPIC): required",
			"broker.subscription_id (HYPERFLEET_BROKER_SUBSCRIPTION_ID or BROKER_SUBSCRIPTION_ID): required"}},
		{"pubsub subscription id", `broker: {type: googlepubsub, googlepubsub: {project_id: p}}`,
			env("BROKER_TOPIC", "clusters", "BROKER_SUBSCRIPTION_ID", "1x"),
			[]string{`broker.subscription_id (HYPERFLEET_BROKER_SUBSCRIPTION_ID or BROKER_SUBSCRIPTION_ID): "1x" is not a valid Pub/Sub subscription ID`}},
		{"list value", `broker: {type: [rabbitmq]}`, ids, []string{"broker.type: a list is not a valid value"}},
		{"not a mapping", `- a`, ids, []string{"must be a mapping"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := brokerconfig.Parse([]byte(tc.yaml), tc.env)
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error leaks the password: %q", err)
			}
		})
	}
}

func TestLoadFromConfigFileVariable(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "broker.yaml")
	if err := os.WriteFile(path, []byte(readmeRabbitMQ), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(brokerconfig.EnvConfigFile, path)
	t.Setenv("BROKER_TOPIC", "clusters")
	t.Setenv("BROKER_SUBSCRIPTION_ID", "adapter")
	c, err := brokerconfig.Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.File != path || c.RabbitMQ.PrefetchCount != 10 {
		t.Errorf("loaded %+v", c)
	}

	t.Setenv(brokerconfig.EnvConfigFile, filepath.Join(dir, "missing.yaml"))
	if _, err := brokerconfig.Load(); err == nil || !strings.Contains(err.Error(), "BROKER_CONFIG_FILE") {
		t.Errorf("a missing BROKER_CONFIG_FILE must be an error naming it, got %v", err)
	}
}

func TestLoadFileReportsPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broker.yaml")
	if err := os.WriteFile(path, []byte("broker: {type: rabbitmq}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := brokerconfig.LoadFile(path, env("BROKER_TOPIC", "t-1", "BROKER_SUBSCRIPTION_ID", "s-1"))
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "broker.rabbitmq.url") {
		t.Errorf("want an error naming %s and the url setting, got %v", path, err)
	}
}

func TestLogValueMasksPassword(t *testing.T) {
	c, err := brokerconfig.Parse([]byte(`broker: {type: rabbitmq, rabbitmq: {url: "amqp://user:hunter2@rabbit:5672/"}}`),
		env("BROKER_TOPIC", "clusters", "BROKER_SUBSCRIPTION_ID", "adapter"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("broker", "config", c)
	out := buf.String()
	if strings.Contains(out, "hunter2") {
		t.Errorf("log leaks the password: %s", out)
	}
	if !strings.Contains(out, "user:xxxxx@rabbit") || !strings.Contains(out, "clusters-adapter") {
		t.Errorf("log lacks the masked URL or the queue: %s", out)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"604800s": 7 * 24 * time.Hour, "10m": 10 * time.Minute, "2d": 48 * time.Hour, "0": 0, "0s": 0} {
		got, err := brokerconfig.ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := brokerconfig.ParseDuration("xd"); err == nil {
		t.Error(`ParseDuration("xd") succeeded`)
	}
}

// Every environment variable the HyperFleet broker library v1.1.1 reads
// (Viper's names for the mapstructure keys of broker/config.go, rabbitmq.go
// and googlepubsub.go), and the adapter's own topic, subscription and
// status topic names, are read here.
func TestReadsEveryLibraryVariable(t *testing.T) {
	library := []string{"LOG_CONFIG", "BROKER_TYPE", "SUBSCRIBER_PARALLELISM",
		"BROKER_RABBITMQ_URL", "BROKER_RABBITMQ_EXCHANGE", "BROKER_RABBITMQ_EXCHANGE_TYPE", "BROKER_RABBITMQ_QUEUE",
		"BROKER_RABBITMQ_ROUTING_KEY", "BROKER_RABBITMQ_PREFETCH_COUNT", "BROKER_RABBITMQ_PREFETCH_SIZE",
		"BROKER_RABBITMQ_CONSUMER_TAG", "BROKER_RABBITMQ_PUBLISHER_CONFIRM",
		"BROKER_GOOGLEPUBSUB_PROJECT_ID", "BROKER_GOOGLEPUBSUB_ACK_DEADLINE_SECONDS",
		"BROKER_GOOGLEPUBSUB_MESSAGE_RETENTION_DURATION", "BROKER_GOOGLEPUBSUB_EXPIRATION_TTL",
		"BROKER_GOOGLEPUBSUB_ENABLE_MESSAGE_ORDERING", "BROKER_GOOGLEPUBSUB_RETRY_MIN_BACKOFF",
		"BROKER_GOOGLEPUBSUB_RETRY_MAX_BACKOFF", "BROKER_GOOGLEPUBSUB_DEAD_LETTER_TOPIC",
		"BROKER_GOOGLEPUBSUB_DEAD_LETTER_MAX_ATTEMPTS", "BROKER_GOOGLEPUBSUB_TOPIC_RETENTION_DURATION",
		"BROKER_GOOGLEPUBSUB_MAX_OUTSTANDING_MESSAGES", "BROKER_GOOGLEPUBSUB_MAX_OUTSTANDING_BYTES",
		"BROKER_GOOGLEPUBSUB_NUM_GOROUTINES", "BROKER_GOOGLEPUBSUB_CREATE_TOPIC_IF_MISSING",
		"BROKER_GOOGLEPUBSUB_CREATE_SUBSCRIPTION_IF_MISSING"}
	adapter := []string{"HYPERFLEET_BROKER_TOPIC", "BROKER_TOPIC", "HYPERFLEET_BROKER_SUBSCRIPTION_ID",
		"BROKER_SUBSCRIPTION_ID", "BROKER_STATUS_TOPIC"}
	read := brokerconfig.EnvironmentVariables()
	for _, name := range append(library, adapter...) {
		if !slices.Contains(read, name) {
			t.Errorf("%s is not read", name)
		}
	}
	if len(read) != len(library)+len(adapter) {
		t.Errorf("reads %d variables, want %d: %v", len(read), len(library)+len(adapter), read)
	}
}
