package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"time"

	"github.com/lmittmann/tint"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	workv1 "open-cluster-management.io/api/work/v1"
	"sigs.k8s.io/yaml"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/handlers"
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet/apiclient"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
	"github.com/openshift-hyperfleet/maestro-adapter/lifecycle"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/embedded"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/jobs"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/kubeapply"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/remote"
	"github.com/openshift-hyperfleet/maestro-adapter/pipeline"
	"github.com/openshift-hyperfleet/maestro-adapter/pipeline/preconditions"
	"github.com/openshift-hyperfleet/maestro-adapter/pipeline/tracing"
)

func newLogger(cfg Config, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return nil, fmt.Errorf("LOG_LEVEL (--log-level): %q, want debug, info, warn or error", cfg.LogLevel)
	}
	var log *slog.Logger
	if cfg.LogFormat == "json" {
		log = slog.New(pipeline.ContextHandler(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})))
	} else {
		log = slog.New(pipeline.ContextHandler(tint.NewHandler(w, &tint.Options{Level: level, NoColor: !isTerminal(w)})))
	}
	// The Maestro and Kubernetes clients log through klog; route it into
	// the same handler so every line has one format.
	klog.SetSlogLogger(log.With("component", "client"))
	return log, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// plan is what a pipeline is made of that can be checked without opening
// any connection: the handler (templates parsed), the resource reader, the
// delivery's settings. replay and run make it first, so that a bad setting
// fails before a broker or Maestro connection is opened.
type plan struct {
	cfg       Config
	pcfg      pipeline.Config
	decoder   *events.Decoder
	handler   handlers.Handler
	resources hyperfleet.ResourceReader
	// preconditions are compiled and type-checked; nil when there are none.
	preconditions *preconditions.Set
	// remote holds the maestro delivery's options, job the job delivery's
	// (with the Kubernetes client configuration it was checked with).
	remote remote.Options
	job    *jobPlan
	kube   *kubePlan
	// tracing says whether spans are exported (the standard OTEL_*
	// variables).
	tracing tracing.Settings
}

type jobPlan struct {
	kube *rest.Config
	opts jobs.Options
}

// preparePipeline checks every setting of the pipeline and builds what
// needs no connection. Errors name the environment variable (and flag).
func preparePipeline(cfg Config, pcfg pipeline.Config, log *slog.Logger) (*plan, error) {
	if err := pcfg.Validate(); err != nil {
		return nil, err
	}
	consumer, err := handlers.ParseConsumerRule(cfg.Consumer)
	if err != nil {
		return nil, fmt.Errorf("CONSUMER_RULE (--consumer): %w", err)
	}
	values, err := templateValues(cfg.TemplateValues)
	if err != nil {
		return nil, err
	}
	handler, err := handlers.New(handlers.Config{
		Type:             cfg.AdapterType,
		Name:             cfg.AdapterName,
		Naming:           handlers.NamingPattern(cfg.Naming),
		Consumer:         consumer,
		Namespace:        cfg.Namespace,
		TemplateDir:      cfg.TemplateDir,
		Kinds:            cfg.TemplateKinds,
		AllowedKinds:     cfg.TemplateAllowed,
		TemplateTimeout:  templateTimeout(cfg),
		MaxManifestBytes: cfg.MaxManifestBytes,
		MaxManifests:     cfg.MaxManifests,
		Values:           values,
		PullSecretFile:   cfg.PullSecretFile,
		IngressReplicas:  cfg.IngressReplicas,
	})
	if err != nil {
		return nil, nameHandlerSettings(err)
	}
	resources, err := resourceReader(cfg, log)
	if err != nil {
		return nil, err
	}
	gate, err := compilePreconditions(cfg)
	if err != nil {
		return nil, err
	}
	pl := &plan{cfg: cfg, pcfg: pcfg, decoder: events.NewDecoder(cfg.EventKinds...), handler: handler, resources: resources, preconditions: gate}
	if pl.tracing, err = tracing.SettingsFromEnv(os.Getenv); err != nil {
		return nil, err
	}
	switch cfg.Delivery {
	case "maestro":
		pl.remote = remote.Options{
			GRPCEndpoint: cfg.MaestroGRPCEndpoint, HTTPEndpoint: cfg.MaestroHTTPEndpoint, SourceID: cfg.SourceID,
			CAFile: cfg.MaestroCAFile, ClientCertFile: cfg.MaestroClientCertFile, ClientKeyFile: cfg.MaestroClientKeyFile,
			TokenFile: cfg.MaestroTokenFile, InsecureSkipVerify: cfg.MaestroInsecure, Insecure: cfg.MaestroPlaintext,
			ServerHealthinessTimeout: cfg.MaestroHealthiness, DialTimeout: cfg.MaestroDialTimeout,
			RequestTimeout: cfg.MaestroRequestTimeout, UnavailableTimeout: cfg.MaestroUnavailableTimeout,
			ConsumerWait:      cfg.ConsumerWait,
			DeletePropagation: workv1.DeletePropagationPolicyType(cfg.MaestroDeletePropagation),
			Logger:            log,
		}
		if err := pl.remote.Validate(); err != nil {
			return nil, fmt.Errorf("DELIVERY=maestro: %w", err)
		}
	case "job":
		jp, err := planJobDelivery(cfg, log)
		if err != nil {
			return nil, fmt.Errorf("DELIVERY=job: %w", err)
		}
		pl.job = jp
	case "kubernetes":
		kp, err := planKubeDelivery(cfg, log)
		if err != nil {
			return nil, fmt.Errorf("DELIVERY=kubernetes: %w", err)
		}
		pl.kube = kp
	}
	return pl, nil
}

// handlerSettings maps the handlers package's names of its settings to the
// environment variables (and flags) they come from.
var handlerSettings = map[string]string{
	"Type": "ADAPTER_TYPE (--adapter)", "Name": "ADAPTER_NAME (--adapter-name)", "Naming": "NAMING (--naming)",
	"Consumer": "CONSUMER_RULE (--consumer)", "Namespace": "LANDING_ZONE_NAMESPACE",
	"TemplateDir": "TEMPLATE_DIR (--template-dir)", "Kinds": "TEMPLATE_KINDS", "Values": "TEMPLATE_VALUES_FILE",
	"PullSecretFile": "PULL_SECRET_FILE", "IngressReplicas": "INGRESS_REPLICAS",
	// Settings the untrusted-templates work adds to handlers.Config.
	"AllowedKinds": "TEMPLATE_ALLOWED_KINDS", "TemplateTimeout": "TEMPLATE_TIMEOUT",
	"MaxManifestBytes": "MAX_MANIFEST_BYTES", "MaxManifests": "MAX_MANIFESTS",
}

var handlerSettingRE = regexp.MustCompile(`handlers config (\w+)`)

// nameHandlerSettings rewrites "handlers config Type" in the handlers
// package's errors into "ADAPTER_TYPE (--adapter)": an operator sets
// variables, not struct fields.
func nameHandlerSettings(err error) error {
	msg := handlerSettingRE.ReplaceAllStringFunc(err.Error(), func(m string) string {
		if name, ok := handlerSettings[handlerSettingRE.FindStringSubmatch(m)[1]]; ok {
			return name
		}
		return m
	})
	return errors.New(msg)
}

// startPipeline connects the delivery and starts it and its status tracker
// as parts of g, then builds the pipeline on them. It returns the
// delivery's readiness check (nil for the embedded backend). A part
// started before an error is stopped by g's shutdown.
func startPipeline(ctx context.Context, g *lifecycle.Group, pl *plan, sink events.StatusSink, obs pipeline.Observer, log *slog.Logger) (*pipeline.Pipeline, func(context.Context) error, error) {
	cfg := pl.cfg
	var delivery maestro.Delivery
	var ready func(context.Context) error
	switch cfg.Delivery {
	case "embedded":
		backend, err := embedded.New(embedded.Options{SourceID: cfg.SourceID, AgentDelay: cfg.EmbeddedAgentDelay, Logger: log})
		if err != nil {
			return nil, nil, err
		}
		g.Start(lifecycle.Part{Name: "delivery (embedded)", Close: backend.Close})
		delivery = backend
	case "maestro":
		backend, err := remote.New(ctx, pl.remote)
		if err != nil {
			return nil, nil, fmt.Errorf("DELIVERY=maestro: %w", err)
		}
		g.Start(lifecycle.Part{Name: "delivery (maestro)", Close: backend.Close})
		ready = backend.Ready
		delivery = backend
	case "job":
		backend, err := pl.job.connect(ctx, obs)
		if err != nil {
			return nil, nil, fmt.Errorf("DELIVERY=job: %w", err)
		}
		g.Start(lifecycle.Part{Name: "delivery (job)", Close: func() error { backend.Close(); return nil }})
		ready = backend.Ready
		delivery = backend
	case "kubernetes":
		backend, err := kubeapply.New(ctx, pl.kube.cfg, pl.kube.opts)
		if err != nil {
			return nil, nil, fmt.Errorf("DELIVERY=kubernetes: %w", err)
		}
		g.Start(lifecycle.Part{Name: "delivery (kubernetes)", Close: func() error { backend.Close(); return nil }})
		ready = backend.Ready
		delivery = backend
	default:
		return nil, nil, fmt.Errorf("DELIVERY (--delivery): not set")
	}
	if calls, ok := obs.(maestro.CallObserver); ok {
		delivery = maestro.Instrument(delivery, calls)
	}
	tracer, err := startTracing(ctx, g, pl, log)
	if err != nil {
		return nil, nil, err
	}
	tracker := maestro.NewTracker(delivery, log)
	g.Start(lifecycle.Part{Name: "status tracker", Run: tracker.Run})
	p, err := pipeline.New(pl.pcfg, pipeline.Deps{
		Decoder:   pl.decoder,
		Resources: pl.resources,
		Handler:   pl.handler,
		Delivery:  delivery,
		Tracker:   tracker,
		Sink:      sink,
		Logger:    log,
		Observer:  obs,
		Tracer:    tracer,

		Preconditions: pl.preconditions,
		Statuses:      statusReader(pl.resources),
	})
	if err != nil {
		return nil, nil, err
	}
	return p, ready, nil
}

// startTracing builds the tracer provider as a part of g, started before
// the pipeline so that it is flushed after the pipeline has drained.
func startTracing(ctx context.Context, g *lifecycle.Group, pl *plan, log *slog.Logger) (*tracing.Provider, error) {
	tp, err := tracing.New(ctx, pl.tracing, tracing.Service{Name: "hyperfleet-maestro-adapter", Version: version,
		AdapterType: pl.cfg.AdapterType, AdapterName: pl.cfg.AdapterName})
	if err != nil {
		return nil, err
	}
	if pl.tracing.Enabled {
		log.Info("exporting traces over OTLP", "protocol", pl.tracing.Protocol)
	}
	g.Start(lifecycle.Part{Name: "trace exporter", Close: func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return tp.Shutdown(ctx)
	}})
	return tp, nil
}

// planJobDelivery reads the Kubernetes client configuration (KUBECONFIG, or
// in-cluster; no connection yet) and checks the job delivery's options in
// JOB_NAMESPACE, by default the adapter's own.
func planJobDelivery(cfg Config, log *slog.Logger) (*jobPlan, error) {
	kcfg, namespace, err := jobs.ClientConfig()
	if err != nil {
		return nil, err
	}
	if cfg.JobNamespace != "" {
		namespace = cfg.JobNamespace
	}
	opts := jobs.Options{
		Namespace: namespace, Image: cfg.JobImage, ServiceAccount: cfg.JobServiceAccount,
		CPURequest: cfg.JobCPURequest, CPULimit: cfg.JobCPULimit,
		MemoryRequest: cfg.JobMemoryRequest, MemoryLimit: cfg.JobMemoryLimit,
		CLITimeout: cfg.JobCLITimeout, ActiveDeadline: cfg.JobActiveDeadline,
		TTLAfterFinished: cfg.JobTTLAfterFinished, BackoffLimit: cfg.JobBackoffLimit,
		StatusReporterImage: cfg.JobStatusReporterImage, DeleteWait: cfg.JobDeleteWait,
		Maestro: jobs.MaestroOptions{
			GRPCEndpoint: cfg.MaestroGRPCEndpoint, HTTPEndpoint: cfg.MaestroHTTPEndpoint, SourceID: cfg.SourceID,
			TLSSecret: cfg.JobMaestroTLSSecret, InsecureSkipVerify: cfg.MaestroInsecure, Insecure: cfg.MaestroPlaintext,
			DeletePropagation: workv1.DeletePropagationPolicyType(cfg.MaestroDeletePropagation),
		},
		Logger: log,
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &jobPlan{kube: kcfg, opts: opts}, nil
}

// connect builds the job delivery: its informers start and it checks its
// permissions with the API server.
func (jp *jobPlan) connect(ctx context.Context, obs pipeline.Observer) (*jobs.Delivery, error) {
	cs, err := kubernetes.NewForConfig(jp.kube)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	opts := jp.opts
	// Kubernetes call metrics, when the pipeline's metrics take them.
	opts.Observer, _ = obs.(jobs.Observer)
	return jobs.New(ctx, cs, opts)
}

// kubePlan is the kubernetes delivery's client configuration and options.
type kubePlan struct {
	cfg  *rest.Config
	opts kubeapply.Options
}

// planKubeDelivery reads the Kubernetes client configuration (KUBECONFIG,
// or in-cluster; no connection yet) and checks the kubernetes delivery's
// options; the records go to KUBE_WORK_NAMESPACE, by default the adapter's
// own namespace.
func planKubeDelivery(cfg Config, log *slog.Logger) (*kubePlan, error) {
	kcfg, namespace, err := jobs.ClientConfig()
	if err != nil {
		return nil, err
	}
	if cfg.KubeWorkNamespace != "" {
		namespace = cfg.KubeWorkNamespace
	}
	opts := kubeapply.Options{
		Namespace:         namespace,
		FieldManager:      cfg.KubeFieldManager,
		DeletePropagation: metav1.DeletionPropagation(cfg.KubeDeletePropagation),
		Logger:            log,
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &kubePlan{cfg: kcfg, opts: opts}, nil
}

func resourceReader(cfg Config, log *slog.Logger) (hyperfleet.ResourceReader, error) {
	switch {
	case cfg.APIURL != "":
		return apiclient.New(apiclient.Config{
			BaseURL: cfg.APIURL, TokenFile: cfg.APITokenFile, Insecure: cfg.APIInsecure, Timeout: cfg.APITimeout,
			MaxAttempts: cfg.APIMaxAttempts, Logger: log,
		})
	case cfg.APIDir != "":
		st, err := os.Stat(cfg.APIDir)
		if err != nil || !st.IsDir() {
			return nil, fmt.Errorf("API_DIR (--api-dir): %q is not a directory", cfg.APIDir)
		}
		return hyperfleet.DirReader{Dir: cfg.APIDir}, nil
	default:
		return snapshotsOnly{}, nil
	}
}

// compilePreconditions reads PRECONDITIONS or PRECONDITIONS_FILE and
// compiles them, so that a bad expression stops the start (exit 2),
// named, before any connection is opened.
func compilePreconditions(cfg Config) (*preconditions.Set, error) {
	list := preconditions.Parse(cfg.Preconditions)
	setting := "PRECONDITIONS"
	if cfg.PreconditionsFile != "" {
		setting = "PRECONDITIONS_FILE (--preconditions-file)"
		var err error
		if list, err = preconditions.LoadFile(cfg.PreconditionsFile); err != nil {
			return nil, fmt.Errorf("%s: %w", setting, err)
		}
	}
	set, err := preconditions.Compile(list)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setting, err)
	}
	return set, nil
}

// statusReader is the resource reader's own GET .../statuses (the API
// client's, with its retries, or API_DIR's statuses.json files).
func statusReader(r hyperfleet.ResourceReader) hyperfleet.StatusReader {
	if s, ok := r.(hyperfleet.StatusReader); ok {
		return s
	}
	return nil
}

// snapshotsOnly stands where no API is configured: recordings that carry
// snapshots still replay; anything else fails with a reason saying what to
// set.
type snapshotsOnly struct{}

func (snapshotsOnly) GetResource(_ context.Context, href string) (*hyperfleet.Resource, error) {
	return nil, failure.Permanentf("cannot read %s: no HyperFleet API configured (set HYPERFLEET_API_URL or --api-dir, or replay a recording with snapshots)", href)
}

func pipelineConfig(cfg Config) pipeline.Config {
	pc := pipeline.DefaultConfig()
	pc.AdapterName = cfg.AdapterName
	pc.Concurrency = cfg.Concurrency
	pc.MaxAttempts = cfg.MaxAttempts
	pc.RetryBaseDelay = cfg.RetryBaseDelay
	pc.RetryMaxDelay = cfg.RetryMaxDelay
	pc.StatusTimeout = cfg.StatusTimeout
	pc.DrainTimeout = cfg.DrainTimeout
	pc.StatusWatch = cfg.StatusWatch
	return pc
}

// openStatusOut opens the status output: "-" is stdout.
func openStatusOut(path string, stdout io.Writer) (io.Writer, func() error, error) {
	if path == "" || path == "-" {
		return stdout, func() error { return nil }, nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("STATUS_OUT (--status-out): %w", err)
	}
	return f, f.Close, nil
}

// templateTimeout is TEMPLATE_TIMEOUT where the template type uses it
// (other types refuse the setting).
func templateTimeout(cfg Config) time.Duration {
	if cfg.AdapterType != handlers.TypeTemplate {
		return 0
	}
	return cfg.TemplateTimeout
}

// templateValues reads TEMPLATE_VALUES_FILE (YAML or JSON) once.
func templateValues(file string) (map[string]any, error) {
	if file == "" {
		return nil, nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("TEMPLATE_VALUES_FILE: %w", err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("TEMPLATE_VALUES_FILE %s: not a YAML or JSON object: %w", file, err)
	}
	return v, nil
}

func jsonOf(v any) ([]byte, error) { return json.Marshal(v) }

// The pipeline's Prometheus metrics also time the delivery backends' calls.
var (
	_ maestro.CallObserver = (*pipeline.Metrics)(nil)
	_ jobs.Observer        = (*pipeline.Metrics)(nil)
)
