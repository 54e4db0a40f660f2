package main

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"syscall"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/events/recording"
	"github.com/openshift-hyperfleet/maestro-adapter/pipeline"
)

// replayCmd replays recordings through the whole pipeline. Every recorded
// event is handled in order (no coalescing), so each yields its own status
// event. Exit 1 when any event failed, with one line per failure.
func replayCmd(args []string, stdout, stderr io.Writer) int {
	cfg, err := loadConfig()
	if err != nil {
		fmt.Fprintln(stderr, "adapter:", err)
		return exitUsage
	}
	fs := newFlagSet("replay", stderr)
	cfg.bindFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: adapter replay [flags] PATH...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "adapter replay: no PATH given")
		fs.Usage()
		return exitUsage
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
	defer closeOut()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	pcfg := pipelineConfig(cfg)
	pcfg.Coalesce = false
	a, err := wire(ctx, cfg, pcfg, events.NewJSONLSink(out), nil, log)
	if err != nil {
		fmt.Fprintln(stderr, "adapter replay:", err)
		return exitUsage
	}
	defer a.Close()

	src := recording.NewSource(msgs)
	failed := 0
	src.OnSettle = func(o recording.Outcome) {
		if o.Settlement == "dead-letter" {
			failed++
			fmt.Fprintf(stderr, "FAILED %s: %s\n", o.TransportID, o.Reason)
		}
	}
	if err := a.pipeline.Run(ctx, src); err != nil {
		fmt.Fprintln(stderr, "adapter replay:", err)
		return exitFailed
	}
	stats := a.pipeline.Stats()
	fmt.Fprintf(stderr, "replay: %s\n", stats)
	if failed > 0 || stats.Counts()[pipeline.Requeued] > 0 {
		return exitFailed
	}
	return exitOK
}
