// Command maestro-cli is the spike's command-line client for Maestro
// ManifestWorks: what a Kubernetes Job (or a person) runs to apply, delete,
// inspect and wait for one work. It shares the adapter's Maestro client
// (maestro/remote: writes over gRPC, reads over REST) and its apply logic
// (maestro.SourceDelivery); it is not a second implementation.
//
//	maestro-cli COMMAND [flags]     see `maestro-cli --help` for commands, flags and exit codes
//
// How one invocation goes: run (cli.go) reads the environment and the
// command's flags (settings.go), loads and checks the manifest file
// (manifests.go), connects (connect.go), runs the command (apply.go,
// delete.go, read.go, wait.go, validate.go, diff.go, build.go), prints to
// stdout (output.go), writes the results file when asked (results.go) and
// exits with a code from the table in usage.go.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/lmittmann/tint"
	"k8s.io/klog/v2"
)

// version is set at build time (-ldflags -X main.version=...).
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The Kubernetes and gRPC libraries log through klog: keep their lines
	// on stderr in the CLI's format, and only when they matter.
	klog.SetSlogLogger(slog.New(quietShutdown{tint.NewHandler(os.Stderr, &tint.Options{Level: slog.LevelWarn, NoColor: !isTerminal(os.Stderr)})}).With("component", "client"))
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.LookupEnv)
	stop()
	os.Exit(code)
}

// quietShutdown drops the OCM SDK's complaint that its stream ended when
// the CLI closes the client on its way out: every run would end with an
// error line that means nothing.
type quietShutdown struct{ slog.Handler }

func (h quietShutdown) Handle(ctx context.Context, r slog.Record) error {
	text := r.Message
	r.Attrs(func(a slog.Attr) bool {
		text += " " + a.Value.String()
		return true
	})
	for _, s := range []string{"client connection is closing", "code = Canceled", "context canceled"} {
		if strings.Contains(text, s) {
			return nil
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h quietShutdown) WithAttrs(as []slog.Attr) slog.Handler {
	return quietShutdown{h.Handler.WithAttrs(as)}
}

func (h quietShutdown) WithGroup(name string) slog.Handler {
	return quietShutdown{h.Handler.WithGroup(name)}
}
