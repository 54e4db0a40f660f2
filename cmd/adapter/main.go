// Command adapter is the HyperFleet Maestro adapter: it consumes Sentinel's
// reconcile events, builds the ManifestWorks of its adapter type, delivers
// them through Maestro and reports status back.
//
//	adapter replay [flags] PATH...   replay recorded events (embedded delivery by default)
//	adapter run [flags]              consume events from the configured source until SIGTERM (DELIVERY required)
//	adapter record [flags]           write the broker's events (and resource snapshots) as a recording
//	adapter config                   print the effective configuration
//	adapter version                  print the version
//
// The path of one event: replay/run check their configuration and build a
// pipeline (wire.go), start it with what it depends on as parts of one
// lifecycle.Group (run.go), and pipeline.Run receives, decodes, reads the
// resource, dispatches to the handler, delivers, awaits status, reports and
// settles.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/openshift-hyperfleet/maestro-adapter/events/brokerconfig"
	"github.com/openshift-hyperfleet/maestro-adapter/redact"
)

// version is set at build time (-ldflags -X main.version=...).
var version = "dev"

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1 // some events failed (replay), or the run stopped on an error
	exitUsage  = 2 // bad flags or configuration
)

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

func runMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "replay":
		return replayCmd(args[1:], stdout, stderr)
	case "run":
		return runCmd(args[1:], stdout, stderr)
	case "record":
		return recordCmd(args[1:], stdout, stderr)
	case "config":
		return configCmd(args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, version)
		return exitOK
	case "help", "-h", "--help":
		usage(stdout)
		return exitOK
	default:
		fmt.Fprintf(stderr, "adapter: unknown command %q\n", args[0])
		usage(stderr)
		return exitUsage
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: adapter <command> [flags]

commands:
  replay [flags] PATH...  replay recorded events: a file with one CloudEvent JSON, a JSONL
                          file (CloudEvents, or {"event","resource","cluster"} lines), or a
                          directory of these; status events go to --status-out
  run [flags]             consume events from the configured source until SIGTERM
  record [flags]          subscribe with a subscription of its own and append every event,
                          with the resource snapshot when the API is reachable, as JSONL
                          that replay reads (--out FILE, --subscription-id ID, --max N)
  config                  print the effective configuration and broker settings (secrets masked)
  version                 print the version

replay's delivery defaults to "embedded": an in-process stand-in for Maestro with a
simulated agent, so replays need no servers. run has no default: DELIVERY (--delivery)
must say maestro, job or embedded. Every flag has an environment variable; see
'adapter COMMAND -h' and the README.

exit codes: 0 every event handled (run: stopped by SIGTERM and drained); 1 some event
failed (one line each on stderr), or run stopped on an error or could not connect;
2 bad flags or configuration (found before any connection is opened).
`)
}

// setup reads the environment and then the command's flags, which
// override it. extra registers flags of the command's own. When ok is
// false the command ends with code: 0 after -h/--help (usage on stdout), 2
// for a bad flag or environment.
func setup(name, synopsis string, args []string, stdout, stderr io.Writer, extra func(*flag.FlagSet)) (cfg Config, fs *flag.FlagSet, code int, ok bool) {
	cfg, envErr := loadConfig()
	fs = flag.NewFlagSet("adapter "+name, flag.ContinueOnError)
	var out bytes.Buffer
	fs.SetOutput(&out)
	fs.Usage = func() {
		fmt.Fprintf(&out, "usage: adapter %s\n\nflags (each overrides the environment variable it names; the README lists every setting):\n", synopsis)
		fs.PrintDefaults()
	}
	cfg.bindFlags(fs)
	if extra != nil {
		extra(fs)
	}
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		_, _ = out.WriteTo(stdout)
		return cfg, fs, exitOK, false
	case err != nil:
		_, _ = out.WriteTo(stderr)
		return cfg, fs, exitUsage, false
	case envErr != nil:
		fmt.Fprintln(stderr, "adapter "+name+":", envErr)
		return cfg, fs, exitUsage, false
	}
	fs.SetOutput(stderr)
	return cfg, fs, exitOK, true
}

func configCmd(args []string, stdout, stderr io.Writer) int {
	cfg, _, code, ok := setup("config", "config [flags]", args, stdout, stderr, nil)
	if !ok {
		return code
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, "adapter:", err)
		return exitUsage
	}
	fmt.Fprint(stdout, cfg.Redacted())
	// The broker settings too: they are where the one password of the
	// configuration lives (BROKER_RABBITMQ_URL), shown masked.
	bc, err := brokerconfig.Load()
	if err != nil {
		if cfg.Source == "broker" {
			fmt.Fprintln(stderr, "adapter:", redact.Text(err.Error()))
			return exitUsage
		}
		return exitOK // no broker in use: nothing to show
	}
	fmt.Fprint(stdout, brokerSettings(bc))
	return exitOK
}
