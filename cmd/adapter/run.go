package main

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/openshift-hyperfleet/maestro-adapter/pipeline"
)

// runCmd consumes the configured source until it is exhausted or SIGTERM
// arrives; then intake stops, /readyz turns 503, in-flight events get
// DRAIN_TIMEOUT to finish, the rest go back to the broker, and the process
// exits 0.
func runCmd(args []string, stdout, stderr io.Writer) int {
	cfg, err := loadConfig()
	if err != nil {
		fmt.Fprintln(stderr, "adapter:", err)
		return exitUsage
	}
	fs := newFlagSet("run", stderr)
	cfg.bindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, "adapter run:", err)
		return exitUsage
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "adapter run:", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	ends, err := openSource(ctx, cfg, "", true, log)
	if err != nil {
		fmt.Fprintln(stderr, "adapter run:", err)
		return exitUsage
	}
	defer ends.Close()
	sink, closeSinks, err := statusSinks(cfg, ends.publisher, stdout, log)
	if err != nil {
		fmt.Fprintln(stderr, "adapter run:", err)
		return exitUsage
	}
	defer closeSinks()

	reg := newRegistry()
	ready := newReadiness()
	for name, check := range ends.ready {
		ready.add(name, check)
	}
	a, err := wire(ctx, cfg, pipelineConfig(cfg), sink, pipeline.NewMetrics(reg, cfg.AdapterType), log)
	if err != nil {
		fmt.Fprintln(stderr, "adapter run:", err)
		return exitUsage
	}
	defer a.Close()
	for name, check := range a.ready {
		ready.add(name, check)
	}
	stopOps, err := startOps(cfg.HealthAddr, cfg.MetricsAddr, cfg.PprofAddr, reg, ready, log)
	if err != nil {
		fmt.Fprintln(stderr, "adapter run:", err)
		return exitUsage
	}
	defer stopOps()
	// From the moment shutdown starts, /readyz answers 503 so that no new
	// traffic is routed here while in-flight events drain.
	go func() { <-ctx.Done(); ready.shutdown.Store(true) }()

	// Status changes Maestro reports between events become status events at
	// once (run mode only: a replay reports per recorded event).
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	go func() { _ = a.pipeline.WatchStatus(watchCtx) }()

	log.Info("adapter running", "adapter_type", cfg.AdapterType, "adapter_name", cfg.AdapterName,
		"delivery", cfg.Delivery, "source", cfg.Source, "version", version)
	if err := a.pipeline.Run(ctx, ends.source); err != nil {
		log.Error("adapter stopped", "err", err)
		return exitFailed
	}
	log.Info("adapter stopped", "summary", a.pipeline.Stats().String())
	return exitOK
}
