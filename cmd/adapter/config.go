package main

import (
	"flag"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/openshift-hyperfleet/maestro-adapter/events/brokerconfig"
	"github.com/openshift-hyperfleet/maestro-adapter/redact"
)

// Config is every setting of the adapter. Each comes from the environment
// (the name in the envconfig tag); the commands' flags override it. The
// README lists them all; keep the two in step.
type Config struct {
	// What this deployment is.
	AdapterType string `envconfig:"ADAPTER_TYPE" desc:"adapter type: namespace, nodepool, pullsecret, idp, ingress or template"`
	AdapterName string `envconfig:"ADAPTER_NAME" desc:"adapter name in work names and status reports (default: the type)"`

	// Delivery.
	Delivery           string        `envconfig:"DELIVERY" desc:"where works go: maestro (a Maestro server over gRPC, see MAESTRO_*), job (a Kubernetes Job running maestro-cli per apply or delete, see JOB_* and MAESTRO_*), kubernetes (server-side apply to the cluster KUBECONFIG or in-cluster points at, see KUBE_*) or embedded (in-process Maestro stand-in with a simulated agent); adapter run requires it, replay defaults to embedded"`
	EmbeddedAgentDelay time.Duration `envconfig:"EMBEDDED_AGENT_DELAY" default:"0s" desc:"embedded backend: how long the simulated agent waits before reporting status"`
	SourceID           string        `envconfig:"MAESTRO_SOURCE_ID" desc:"Maestro source id (default: hyperfleet-adapter-<name>); replicas of one adapter share it, different adapters must not"`

	// DELIVERY=maestro: the Maestro server (maestro/remote.Options).
	MaestroGRPCEndpoint       string        `envconfig:"MAESTRO_GRPC_ENDPOINT" desc:"maestro delivery: Maestro's gRPC server for source clients, host:port (e.g. maestro-grpc:8090)"`
	MaestroHTTPEndpoint       string        `envconfig:"MAESTRO_HTTP_ENDPOINT" desc:"maestro delivery: Maestro's REST API base URL (e.g. http://maestro:8000); reads and the consumer check go there"`
	MaestroCAFile             string        `envconfig:"MAESTRO_CA_FILE" desc:"maestro delivery: CA (PEM) verifying Maestro's certificates; setting it turns on TLS for gRPC"`
	MaestroClientCertFile     string        `envconfig:"MAESTRO_CLIENT_CERT_FILE" desc:"maestro delivery: client certificate (PEM) for mTLS, with MAESTRO_CLIENT_KEY_FILE; re-read when it changes"`
	MaestroClientKeyFile      string        `envconfig:"MAESTRO_CLIENT_KEY_FILE" desc:"maestro delivery: client key (PEM) for mTLS, with MAESTRO_CLIENT_CERT_FILE"`
	MaestroTokenFile          string        `envconfig:"MAESTRO_TOKEN_FILE" desc:"maestro delivery: file holding a bearer token for gRPC and REST calls (needs TLS and an https REST URL); re-read when it changes"`
	MaestroInsecure           bool          `envconfig:"MAESTRO_INSECURE_SKIP_VERIFY" default:"false" desc:"maestro delivery: use TLS but do not verify Maestro's certificates (test setups only)"`
	MaestroPlaintext          bool          `envconfig:"MAESTRO_INSECURE" default:"false" desc:"maestro delivery: allow connections in clear: plaintext gRPC (no TLS setting) and a MAESTRO_TOKEN_FILE token over an http:// MAESTRO_HTTP_ENDPOINT (local stacks only)"`
	MaestroHealthiness        time.Duration `envconfig:"MAESTRO_SERVER_HEALTHINESS_TIMEOUT" default:"20s" desc:"maestro delivery: reconnect when no heartbeat came from Maestro for this long"`
	MaestroDialTimeout        time.Duration `envconfig:"MAESTRO_DIAL_TIMEOUT" default:"10s" desc:"maestro delivery: timeout of establishing one connection (TCP and TLS)"`
	MaestroRequestTimeout     time.Duration `envconfig:"MAESTRO_REQUEST_TIMEOUT" default:"30s" desc:"maestro delivery: timeout of one REST request"`
	MaestroUnavailableTimeout time.Duration `envconfig:"MAESTRO_UNAVAILABLE_TIMEOUT" default:"30s" desc:"maestro delivery: how long one apply/delete keeps retrying an unreachable Maestro before the attempt fails (transiently)"`
	ConsumerWait              time.Duration `envconfig:"CONSUMER_WAIT" default:"3m" desc:"maestro delivery: how long a consumer Maestro does not know is waited for (the event retried, MAX_ATTEMPTS notwithstanding) before the event fails permanently"`
	MaestroDeletePropagation  string        `envconfig:"MAESTRO_DELETE_PROPAGATION" default:"Foreground" desc:"maestro delivery: spec.deleteOption of works: Foreground (deleting a work deletes its resources) or Orphan"`

	// DELIVERY=job: a Kubernetes Job per apply or delete runs maestro-cli
	// (maestro/jobs.Options); it reaches Maestro at MAESTRO_GRPC_ENDPOINT and
	// MAESTRO_HTTP_ENDPOINT as MAESTRO_SOURCE_ID. The Kubernetes client comes
	// from KUBECONFIG, or in-cluster.
	JobNamespace           string        `envconfig:"JOB_NAMESPACE" desc:"job delivery: namespace of the Jobs and their ConfigMaps or Secrets (default: the adapter's own, or the KUBECONFIG context's)"`
	JobImage               string        `envconfig:"JOB_IMAGE" default:"quay.io/openshift-hyperfleet/maestro-adapter:latest" desc:"job delivery: image running maestro-cli (the adapter's image ships it)"`
	JobServiceAccount      string        `envconfig:"JOB_SERVICE_ACCOUNT" desc:"job delivery: service account of the Jobs' pods (default: the namespace's default); with a status-reporter it needs get jobs, update jobs/status, get/list pods"`
	JobCPURequest          string        `envconfig:"JOB_CPU_REQUEST" default:"50m" desc:"job delivery: maestro-cli container's CPU request"`
	JobCPULimit            string        `envconfig:"JOB_CPU_LIMIT" default:"200m" desc:"job delivery: maestro-cli container's CPU limit"`
	JobMemoryRequest       string        `envconfig:"JOB_MEMORY_REQUEST" default:"64Mi" desc:"job delivery: maestro-cli container's memory request"`
	JobMemoryLimit         string        `envconfig:"JOB_MEMORY_LIMIT" default:"256Mi" desc:"job delivery: maestro-cli container's memory limit"`
	JobCLITimeout          time.Duration `envconfig:"JOB_CLI_TIMEOUT" default:"5m" desc:"job delivery: maestro-cli --timeout, how long it waits for the agent to report the work available (or gone)"`
	JobActiveDeadline      time.Duration `envconfig:"JOB_ACTIVE_DEADLINE" default:"10m" desc:"job delivery: the Jobs' activeDeadlineSeconds (at least JOB_CLI_TIMEOUT + 30s); past it the Job fails with DeadlineExceeded"`
	JobTTLAfterFinished    time.Duration `envconfig:"JOB_TTL_AFTER_FINISHED" default:"1h" desc:"job delivery: the Jobs' ttlSecondsAfterFinished; while a finished Job stays, events for the same work and generation follow it instead of running maestro-cli again"`
	JobBackoffLimit        int32         `envconfig:"JOB_BACKOFF_LIMIT" default:"0" desc:"job delivery: the Jobs' backoffLimit (0: one pod, one verdict, as the status-reporter expects)"`
	JobStatusReporterImage string        `envconfig:"JOB_STATUS_REPORTER_IMAGE" desc:"job delivery: HyperFleet status-reporter image, run as a sidecar that writes the outcome onto the Job; empty: the outcome is read from the Job and maestro-cli's container status"`
	JobMaestroTLSSecret    string        `envconfig:"JOB_MAESTRO_TLS_SECRET" desc:"job delivery: Secret (ca.crt, tls.crt, tls.key) mounted into the Jobs for mTLS to Maestro"`
	JobDeleteWait          time.Duration `envconfig:"JOB_DELETE_WAIT" default:"30s" desc:"job delivery: how long a delete follows its Job, so that a failed deletion is reported as one"`

	// DELIVERY=kubernetes: the manifests are server-side applied to the
	// Kubernetes API of KUBECONFIG, or in-cluster (maestro/kubeapply.Options).
	KubeWorkNamespace     string `envconfig:"KUBE_WORK_NAMESPACE" desc:"kubernetes delivery: namespace of the work records, one Secret per work (default: the adapter's own, or the KUBECONFIG context's)"`
	KubeFieldManager      string `envconfig:"KUBE_FIELD_MANAGER" desc:"kubernetes delivery: server-side apply field manager of the records and of manifests whose work names none, also the hyperfleet.io/delivered-by label of everything written (default: hyperfleet-adapter-<name>); replicas share it, different adapters must not"`
	KubeDeletePropagation string `envconfig:"KUBE_DELETE_PROPAGATION" default:"Foreground" desc:"kubernetes delivery: what deleting a work (or dropping a manifest) does to its objects: Foreground or Background (deleted with that propagation) or Orphan (kept)"`

	// The resources.
	APIURL         string        `envconfig:"HYPERFLEET_API_URL" desc:"HyperFleet API base URL; resources are read with GET href"`
	APITokenFile   string        `envconfig:"HYPERFLEET_API_TOKEN_FILE" desc:"file holding the API bearer token (re-read on every call); needs an https HYPERFLEET_API_URL unless HYPERFLEET_API_INSECURE=true"`
	APIInsecure    bool          `envconfig:"HYPERFLEET_API_INSECURE" default:"false" desc:"let the API bearer token travel over an http:// HYPERFLEET_API_URL, in clear (local stacks only)"`
	APITimeout     time.Duration `envconfig:"HYPERFLEET_API_TIMEOUT" default:"10s" desc:"timeout of one API request"`
	APIMaxAttempts int           `envconfig:"HYPERFLEET_API_MAX_ATTEMPTS" default:"5" desc:"tries of one API call on 5xx/408/429/network errors"`
	APIDir         string        `envconfig:"API_DIR" desc:"read resources from DIR/<href without /api/hyperfleet/v1/>.json instead of the API"`

	// What is built.
	Consumer         string        `envconfig:"CONSUMER_RULE" default:"name" desc:"Maestro consumer of a cluster: name, fixed:<value>, label:<key> or spec:<dot.path>"`
	Naming           string        `envconfig:"NAMING" desc:"work naming pattern: per-adapter (A) or per-resource (B); default by type"`
	Namespace        string        `envconfig:"LANDING_ZONE_NAMESPACE" default:"{cluster-id}" desc:"landing-zone namespace on the target; {cluster-id} and {cluster-name} placeholders"`
	TemplateDir      string        `envconfig:"TEMPLATE_DIR" desc:"template type: directory of Go templates rendered into manifests"`
	TemplateKinds    []string      `envconfig:"TEMPLATE_KINDS" desc:"template type: resource kinds handled (comma-separated, default Cluster)"`
	TemplateAllowed  []string      `envconfig:"TEMPLATE_ALLOWED_KINDS" desc:"template type: kinds of object the templates may make, Kind or Kind.group, comma-separated (default: those they make for a sample resource at start; ClusterRole, ClusterRoleBinding and other kinds of cluster-wide power only when listed)"`
	TemplateTimeout  time.Duration `envconfig:"TEMPLATE_TIMEOUT" default:"2s" desc:"template type: longest render of one event's templates"`
	MaxManifestBytes int           `envconfig:"MAX_MANIFEST_BYTES" default:"512000" desc:"largest work: its manifests' bytes added up (Maestro's limit is 500 KiB)"`
	MaxManifests     int           `envconfig:"MAX_MANIFESTS" default:"100" desc:"most manifests in one work"`
	PullSecretFile   string        `envconfig:"PULL_SECRET_FILE" desc:"pullsecret type: dockerconfigjson used when a cluster spec has no pullSecret"`
	IngressReplicas  int32         `envconfig:"INGRESS_REPLICAS" default:"0" desc:"ingress type: IngressController replicas (0: default 2)"`
	TemplateValues   string        `envconfig:"TEMPLATE_VALUES_FILE" desc:"template type: YAML or JSON file of free-form values templates read as .Values"`
	EventKinds       []string      `envconfig:"EVENT_KINDS" desc:"extra resource kinds accepted in events besides Cluster and NodePool"`

	// When to act: CEL preconditions (pipeline/preconditions).
	Preconditions     string `envconfig:"PRECONDITIONS" desc:"CEL expressions over resource, cluster, adapter, statuses and cluster_statuses, one per line, that must all hold before anything is delivered"`
	PreconditionsFile string `envconfig:"PRECONDITIONS_FILE" desc:"YAML list of {name, expression}: named CEL preconditions (instead of PRECONDITIONS)"`

	// How events are handled.
	Concurrency    int           `envconfig:"CONCURRENCY" default:"4" desc:"events handled at once (one at a time per resource)"`
	MaxAttempts    int           `envconfig:"MAX_ATTEMPTS" default:"5" desc:"tries of one event before it is dead-lettered"`
	RetryBaseDelay time.Duration `envconfig:"RETRY_BASE_DELAY" default:"500ms" desc:"first backoff between tries; doubles up to RETRY_MAX_DELAY"`
	RetryMaxDelay  time.Duration `envconfig:"RETRY_MAX_DELAY" default:"30s" desc:"longest backoff between tries"`
	StatusTimeout  time.Duration `envconfig:"STATUS_TIMEOUT" default:"30s" desc:"how long to wait for the agent's status before reporting what is known"`
	DrainTimeout   time.Duration `envconfig:"DRAIN_TIMEOUT" default:"25s" desc:"on SIGTERM, how long in-flight events may finish"`
	StatusWatch    string        `envconfig:"STATUS_WATCH" default:"delivered" desc:"adapter run: which works' status changes are reported between events: delivered (those this replica wrote last), all, or off"`

	// Where events come from (adapter run) and where status goes.
	Source      string   `envconfig:"SOURCE" default:"broker" desc:"adapter run: event source: broker (configured by broker.yaml / BROKER_* as for the HyperFleet broker library) or file"`
	SourcePath  []string `envconfig:"SOURCE_PATH" desc:"file source: recordings to read (comma-separated)"`
	StatusOut   string   `envconfig:"STATUS_OUT" desc:"file status events are appended to as JSON lines, - for stdout (replay default: -)"`
	StatusToAPI bool     `envconfig:"STATUS_TO_API" default:"true" desc:"adapter run: also PUT each report to the HyperFleet API when HYPERFLEET_API_URL is set"`

	// Operations (adapter run).
	HealthAddr  string `envconfig:"HEALTH_ADDR" default:":8080" desc:"address of /healthz and /readyz; empty disables"`
	MetricsAddr string `envconfig:"METRICS_ADDR" default:":9090" desc:"address of /metrics (Prometheus); empty disables"`
	PprofAddr   string `envconfig:"PPROF_ADDR" desc:"address of /debug/pprof/ (CPU and heap profiles, for benchmarks and investigations); empty (default) disables"`

	// Logs.
	LogFormat string `envconfig:"LOG_FORMAT" default:"text" desc:"text (colour, for people) or json (for machines)"`
	LogLevel  string `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
}

// loadConfig reads the environment.
func loadConfig() (Config, error) {
	var c Config
	if err := envconfig.Process("", &c); err != nil {
		return c, fmt.Errorf("configuration: %w", err)
	}
	return c, nil
}

// bindFlags registers the flags people expect, defaulting to what the
// environment said, so a flag wins over its variable.
func (c *Config) bindFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.AdapterType, "adapter", c.AdapterType, "adapter type (env ADAPTER_TYPE)")
	fs.StringVar(&c.AdapterName, "adapter-name", c.AdapterName, "adapter name (env ADAPTER_NAME, default the type)")
	fs.StringVar(&c.Delivery, "delivery", c.Delivery, "delivery backend: maestro = a Maestro server, see MAESTRO_*; job = a Kubernetes Job running maestro-cli, see JOB_*; kubernetes = server-side apply to KUBECONFIG's cluster, see KUBE_*; embedded = in-process Maestro stand-in with a simulated agent (replay's default; run requires a choice) (env DELIVERY)")
	fs.StringVar(&c.APIDir, "api-dir", c.APIDir, "read resources from this directory instead of the API (env API_DIR)")
	fs.StringVar(&c.APIURL, "api-url", c.APIURL, "HyperFleet API base URL (env HYPERFLEET_API_URL)")
	fs.StringVar(&c.StatusOut, "status-out", c.StatusOut, "status events output file, - for stdout (env STATUS_OUT; replay default -)")
	fs.StringVar(&c.PreconditionsFile, "preconditions-file", c.PreconditionsFile, "YAML list of {name, expression}: CEL preconditions (env PRECONDITIONS_FILE)")
	fs.StringVar(&c.TemplateDir, "template-dir", c.TemplateDir, "template directory, for --adapter template (env TEMPLATE_DIR)")
	fs.StringVar(&c.Consumer, "consumer", c.Consumer, "consumer rule: name, fixed:<v>, label:<key>, spec:<path> (env CONSUMER_RULE)")
	fs.StringVar(&c.Naming, "naming", c.Naming, "naming pattern: per-adapter or per-resource (env NAMING)")
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "events handled at once (env CONCURRENCY)")
	fs.DurationVar(&c.StatusTimeout, "status-timeout", c.StatusTimeout, "wait for agent status (env STATUS_TIMEOUT)")
	fs.DurationVar(&c.EmbeddedAgentDelay, "agent-delay", c.EmbeddedAgentDelay, "embedded agent's delay before reporting (env EMBEDDED_AGENT_DELAY)")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "text or json (env LOG_FORMAT)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn, error (env LOG_LEVEL)")
}

// Validate checks what the packages do not check themselves.
func (c *Config) Validate() error {
	if c.AdapterType == "" {
		return fmt.Errorf("ADAPTER_TYPE (--adapter): not set")
	}
	if c.AdapterName == "" {
		c.AdapterName = c.AdapterType
	}
	switch c.Delivery {
	case "", "embedded", "maestro", "job", "kubernetes": // unset: each command decides (run refuses, replay takes embedded)
	default:
		return fmt.Errorf("DELIVERY (--delivery): %q is not a delivery backend, want %s", c.Delivery, deliveryChoices)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("LOG_FORMAT (--log-format): %q, want text or json", c.LogFormat)
	}
	if c.APIURL != "" && c.APIDir != "" {
		return fmt.Errorf("HYPERFLEET_API_URL and API_DIR are both set; choose one")
	}
	if strings.TrimSpace(c.Preconditions) != "" && c.PreconditionsFile != "" {
		return fmt.Errorf("PRECONDITIONS and PRECONDITIONS_FILE (--preconditions-file) are both set; choose one")
	}
	if c.SourceID == "" {
		c.SourceID = "hyperfleet-adapter-" + c.AdapterName
	}
	if c.KubeFieldManager == "" {
		c.KubeFieldManager = "hyperfleet-adapter-" + c.AdapterName
	}
	return nil
}

// deliveryChoices names DELIVERY's values for error messages.
const deliveryChoices = "maestro (a Maestro server), job (a Kubernetes Job running maestro-cli per change), kubernetes (server-side apply to the cluster of KUBECONFIG or in-cluster) or embedded (the in-process stand-in with a simulated agent, for tests)"

// validateRun checks what only adapter run requires. A forgotten DELIVERY
// must not fall back to the simulated agent: the adapter would acknowledge
// real events and report the simulation's Applied/Available as real.
func (c *Config) validateRun() error {
	if c.Delivery == "" {
		return fmt.Errorf("DELIVERY (--delivery): not set; adapter run needs a delivery backend chosen: %s", deliveryChoices)
	}
	return nil
}

// Redacted renders the effective configuration, one KEY=value line per
// setting in declaration order. Settings hold file paths, never secrets
// themselves, but URLs may carry a password: every value goes through the
// one redactor.
func (c Config) Redacted() string {
	var b strings.Builder
	v := reflect.ValueOf(c)
	for i := 0; i < v.NumField(); i++ {
		key := v.Type().Field(i).Tag.Get("envconfig")
		val := fmt.Sprint(v.Field(i).Interface())
		if f, ok := v.Field(i).Interface().([]string); ok {
			val = strings.Join(f, ",")
		}
		// One line per setting: PRECONDITIONS may hold several lines.
		fmt.Fprintf(&b, "%s=%s\n", key, strings.ReplaceAll(redact.Text(val), "\n", `\n`))
	}
	return b.String()
}

// brokerSettings renders the effective broker configuration (broker.yaml
// and BROKER_* as events/brokerconfig reads them), one broker.key=value
// line each, with the URL's password masked.
func brokerSettings(bc brokerconfig.Config) string {
	var b strings.Builder
	for _, a := range bc.LogValue().Group() {
		fmt.Fprintf(&b, "broker.%s=%s\n", a.Key, redact.Text(a.Value.String()))
	}
	return b.String()
}
