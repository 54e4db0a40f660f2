package main

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"syscall"
	"time"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/events/recording"
	"github.com/openshift-hyperfleet/maestro-adapter/lifecycle"
	"github.com/openshift-hyperfleet/maestro-adapter/pipeline"
)

// settleMargin is how long after the drain deadline the broker source
// still accepts settlements: the pipeline's last acks and requeues need
// the connection.
const settleMargin = 15 * time.Second

// runCmd consumes the configured source until it is exhausted or SIGTERM
// arrives.
//
// Start: every setting is checked (handler and templates built, broker
// configuration read, listeners bound) before any connection is opened, so
// a bad setting exits 2 with the broker's queue untouched. Then the parts
// start in the order they depend on each other: operations endpoints,
// status sinks (the broker's status publisher), delivery, status tracker,
// status watcher, and last the source, whose consumer attaches only when
// everything behind it is ready.
//
// Shutdown (lifecycle.Group, last-started first): /readyz turns 503; intake
// stops (the broker takes back what was prefetched); in-flight events get
// DRAIN_TIMEOUT to finish, with tracker, watcher, delivery and sinks still
// live, and those that finish are reported and acknowledged; the ones still
// running then go back to the broker unreported; then the watcher, the
// tracker, the delivery and the broker connections close, and the process
// exits 0.
func runCmd(args []string, stdout, stderr io.Writer) int {
	cfg, _, code, ok := setup("run", "run [flags]", args, stdout, stderr, nil)
	if !ok {
		return code
	}
	usageErr := func(err error) int {
		fmt.Fprintln(stderr, "adapter run:", err)
		return exitUsage
	}
	if err := cfg.validateRun(); err != nil {
		return usageErr(err)
	}
	if err := cfg.Validate(); err != nil {
		return usageErr(err)
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
		return usageErr(err)
	}

	// 1. Everything that needs no connection.
	pl, err := preparePipeline(cfg, pipelineConfig(cfg), log)
	if err != nil {
		return usageErr(err)
	}
	sp, err := planSource(cfg, "")
	if err != nil {
		return usageErr(err)
	}
	if err := checkSinks(cfg, sp); err != nil {
		return usageErr(err)
	}
	reg := newRegistry()
	ready := newReadiness()
	ops, err := listenOps(cfg.HealthAddr, cfg.MetricsAddr, cfg.PprofAddr, reg, ready, log)
	if err != nil {
		return usageErr(err)
	}
	if cfg.Delivery == "embedded" {
		log.Warn("DELIVERY=embedded: works go to the in-process stand-in and its simulated agent's status is reported as real; use it for tests only")
	}

	// 2. Connect and start, each part stopped in the reverse order.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	g := lifecycle.New(log)
	defer g.Shutdown()
	startFailed := func(err error) int {
		fmt.Fprintln(stderr, "adapter run:", err)
		if serr := g.Shutdown(); serr != nil {
			fmt.Fprintln(stderr, "adapter run:", serr)
		}
		return exitFailed
	}
	g.Start(lifecycle.Part{Name: "operations endpoints", Run: ops.Run, Close: ops.Close})
	go func() { <-g.Stopping(); ready.shutdown.Store(true) }()

	var publisher events.StatusSink
	var brk *broker
	if sp.broker != nil {
		log.Info("broker", "config", *sp.broker)
		if brk, err = connectBroker(ctx, *sp.broker, log); err != nil {
			return startFailed(err)
		}
		g.Start(lifecycle.Part{Name: "broker client", Close: brk.Close})
		if sp.broker.StatusTopic != "" {
			pub, err := brk.publisher(ctx)
			if err != nil {
				return startFailed(err)
			}
			g.Start(lifecycle.Part{Name: "status publisher", Close: pub.Close})
			publisher = pub
		}
	}
	sink, closeSinks, err := statusSinks(cfg, publisher, stdout, log)
	if err != nil {
		return startFailed(err)
	}
	g.Start(lifecycle.Part{Name: "status sinks", Close: closeSinks})

	p, deliveryReady, err := startPipeline(ctx, g, pl, sink, pipeline.NewMetrics(reg, cfg.AdapterType), log)
	if err != nil {
		return startFailed(err)
	}
	if deliveryReady != nil {
		ready.add(map[string]string{"maestro": "maestro", "job": "kubernetes"}[cfg.Delivery], deliveryReady)
	}
	// Status changes Maestro reports between events become status events at
	// once (run only: a replay reports per recorded event).
	g.Start(lifecycle.Part{Name: "status watcher", Run: p.WatchStatus})

	var src events.Source
	var closeSource func() error
	if brk != nil {
		bs, err := brk.source(ctx, cfg.Concurrency, cfg.DrainTimeout+settleMargin)
		if err != nil {
			return startFailed(err)
		}
		ready.add("broker", func(context.Context) error { return bs.Ready() })
		src, closeSource = bs, bs.Close
	} else {
		fs := recording.NewSource(sp.recordings)
		src, closeSource = fs, fs.Close
	}
	g.Start(lifecycle.Part{Name: "pipeline", Close: closeSource, Run: func(ctx context.Context) error {
		// Intake stops the moment shutdown reaches the pipeline: the source
		// gives what it prefetched back to the broker at once, while the
		// messages handed out stay settleable through the drain.
		stopIntake := context.AfterFunc(ctx, func() { _ = closeSource() })
		defer stopIntake()
		return p.Run(ctx, src)
	}})
	ready.started.Store(true)
	log.Info("adapter running", "adapter_type", cfg.AdapterType, "adapter_name", cfg.AdapterName,
		"delivery", cfg.Delivery, "source", cfg.Source, "version", version)

	if err := g.Wait(ctx); err != nil {
		log.Error("adapter stopped", "err", err, "summary", p.Stats().String())
		return exitFailed
	}
	log.Info("adapter stopped", "summary", p.Stats().String())
	return exitOK
}
