package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/lmittmann/tint"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	workv1 "open-cluster-management.io/api/work/v1"
	"sigs.k8s.io/yaml"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/handlers"
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/embedded"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/jobs"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/remote"
	"github.com/openshift-hyperfleet/maestro-adapter/pipeline"
)

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("adapter "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

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

// app is the wired pipeline with what must be closed after it.
type app struct {
	pipeline *pipeline.Pipeline
	closers  []func() error
	// ready holds readiness checks of the delivery backend.
	ready map[string]func(context.Context) error
}

func (a *app) Close() error {
	var errs []error
	for i := len(a.closers) - 1; i >= 0; i-- {
		errs = append(errs, a.closers[i]())
	}
	return errors.Join(errs...)
}

// wire builds the pipeline: one of each seam, constructed once per process.
func wire(ctx context.Context, cfg Config, pcfg pipeline.Config, sink events.StatusSink, obs pipeline.Observer, log *slog.Logger) (*app, error) {
	a := &app{ready: map[string]func(context.Context) error{}}
	fail := func(err error) (*app, error) {
		_ = a.Close()
		return nil, err
	}

	consumer, err := handlers.ParseConsumerRule(cfg.Consumer)
	if err != nil {
		return fail(fmt.Errorf("CONSUMER_RULE (--consumer): %w", err))
	}
	values, err := templateValues(cfg.TemplateValues)
	if err != nil {
		return fail(err)
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
		return fail(err)
	}

	resources, err := resourceReader(cfg, log)
	if err != nil {
		return fail(err)
	}

	var delivery maestro.Delivery
	switch cfg.Delivery {
	case "embedded":
		backend, err := embedded.New(embedded.Options{SourceID: cfg.SourceID, AgentDelay: cfg.EmbeddedAgentDelay, Logger: log})
		if err != nil {
			return fail(err)
		}
		a.closers = append(a.closers, func() error { backend.Close(); return nil })
		delivery = backend
	case "maestro":
		backend, err := remote.New(ctx, remote.Options{
			GRPCEndpoint: cfg.MaestroGRPCEndpoint, HTTPEndpoint: cfg.MaestroHTTPEndpoint, SourceID: cfg.SourceID,
			CAFile: cfg.MaestroCAFile, ClientCertFile: cfg.MaestroClientCertFile, ClientKeyFile: cfg.MaestroClientKeyFile,
			TokenFile: cfg.MaestroTokenFile, InsecureSkipVerify: cfg.MaestroInsecure, Insecure: cfg.MaestroPlaintext,
			ServerHealthinessTimeout: cfg.MaestroHealthiness, DialTimeout: cfg.MaestroDialTimeout,
			RequestTimeout: cfg.MaestroRequestTimeout, UnavailableTimeout: cfg.MaestroUnavailableTimeout,
			DeletePropagation: workv1.DeletePropagationPolicyType(cfg.MaestroDeletePropagation),
			Logger:            log,
		})
		if err != nil {
			return fail(fmt.Errorf("DELIVERY=maestro: %w", err))
		}
		a.closers = append(a.closers, backend.Close)
		a.ready["maestro"] = backend.Ready
		delivery = backend
	case "job":
		backend, err := jobDelivery(ctx, cfg, obs, log)
		if err != nil {
			return fail(fmt.Errorf("DELIVERY=job: %w", err))
		}
		a.closers = append(a.closers, func() error { backend.Close(); return nil })
		a.ready["kubernetes"] = backend.Ready
		delivery = backend
	}

	if calls, ok := obs.(maestro.CallObserver); ok {
		delivery = maestro.Instrument(delivery, calls)
	}
	tracker := maestro.NewTracker(delivery, log)
	trackCtx, stopTracking := context.WithCancel(ctx)
	trackDone := make(chan struct{})
	go func() { defer close(trackDone); _ = tracker.Run(trackCtx) }()
	// Closers run last-first: the tracker stops before the delivery closes
	// under it.
	a.closers = append(a.closers, func() error { stopTracking(); <-trackDone; return nil })

	p, err := pipeline.New(pcfg, pipeline.Deps{
		Decoder:   events.NewDecoder(cfg.EventKinds...),
		Resources: resources,
		Handler:   handler,
		Delivery:  delivery,
		Tracker:   tracker,
		Sink:      sink,
		Logger:    log,
		Observer:  obs,
	})
	if err != nil {
		return fail(err)
	}
	a.pipeline = p
	return a, nil
}

// jobDelivery connects to Kubernetes (KUBECONFIG, or in-cluster) and
// builds the Job delivery in JOB_NAMESPACE, by default the adapter's own.
func jobDelivery(ctx context.Context, cfg Config, obs pipeline.Observer, log *slog.Logger) (*jobs.Delivery, error) {
	kcfg, namespace, err := jobs.ClientConfig()
	if err != nil {
		return nil, err
	}
	if cfg.JobNamespace != "" {
		namespace = cfg.JobNamespace
	}
	cs, err := kubernetes.NewForConfig(kcfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	// Kubernetes call metrics, when the pipeline's metrics take them.
	kube, _ := obs.(jobs.Observer)
	return jobs.New(ctx, cs, jobs.Options{
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
		Logger: log, Observer: kube,
	})
}

func resourceReader(cfg Config, log *slog.Logger) (hyperfleet.ResourceReader, error) {
	switch {
	case cfg.APIURL != "":
		return hyperfleet.NewClient(hyperfleet.ClientConfig{
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

// snapshotsOnly stands where no API is configured: recordings that carry
// snapshots still replay; anything else fails with a reason saying what to
// set.
type snapshotsOnly struct{}

func (snapshotsOnly) GetResource(_ context.Context, href string) (*hyperfleet.Resource, error) {
	return nil, events.Permanentf("cannot read %s: no HyperFleet API configured (set HYPERFLEET_API_URL or --api-dir, or replay a recording with snapshots)", href)
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
