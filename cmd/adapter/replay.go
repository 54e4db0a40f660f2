package main

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/events/recording"
	"github.com/openshift-hyperfleet/maestro-adapter/lifecycle"
	"github.com/openshift-hyperfleet/maestro-adapter/pipeline"
)

// replayCmd replays recordings through the whole pipeline. Every recorded
// event is handled in order (no coalescing), so each yields its own status
// event. Exit 1 when any event failed, with one line per failure.
func replayCmd(args []string, stdout, stderr io.Writer) int {
	cfg, fs, code, ok := setup("replay", "replay [flags] PATH...", args, stdout, stderr, nil)
	if !ok {
		return code
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "adapter replay: no PATH given")
		fs.SetOutput(stderr)
		fs.Usage()
		return exitUsage
	}
	if cfg.Delivery == "" {
		cfg.Delivery = "embedded" // replays need no servers
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, "adapter replay:", err)
		return exitUsage
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "adapter replay:", err)
		return exitUsage
	}
	pcfg := pipelineConfig(cfg)
	pcfg.Coalesce = false
	pl, err := preparePipeline(cfg, pcfg, log)
	if err != nil {
		fmt.Fprintln(stderr, "adapter replay:", err)
		return exitUsage
	}
	msgs, err := recording.Load(fs.Args()...)
	if err != nil {
		fmt.Fprintln(stderr, "adapter replay:", err)
		return exitUsage
	}
	if cfg.StatusOut == "" {
		cfg.StatusOut = "-"
	}
	out, closeOut, err := openStatusOut(cfg.StatusOut, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "adapter replay:", err)
		return exitUsage
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	g := lifecycle.New(log)
	defer g.Shutdown()
	g.Start(lifecycle.Part{Name: "status output", Close: closeOut})
	p, _, err := startPipeline(ctx, g, pl, events.NewJSONLSink(out), nil, log)
	if err != nil {
		fmt.Fprintln(stderr, "adapter replay:", err)
		return exitFailed
	}
	src := recording.NewSource(msgs)
	failed := 0
	src.OnSettle = func(o recording.Outcome) {
		if o.Settlement == "dead-letter" {
			failed++
			fmt.Fprintf(stderr, "FAILED %s: %s\n", o.TransportID, o.Reason)
		}
	}
	g.Start(lifecycle.Part{Name: "pipeline", Run: func(ctx context.Context) error { return p.Run(ctx, src) }})
	if err := g.Wait(ctx); err != nil {
		fmt.Fprintln(stderr, "adapter replay:", err)
		return exitFailed
	}
	stats := p.Stats()
	fmt.Fprintf(stderr, "replay: %s\n", stats)
	if failed > 0 || stats.Counts()[pipeline.Requeued] > 0 {
		return exitFailed
	}
	return exitOK
}
