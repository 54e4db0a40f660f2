package main

// One invocation, from the arguments to the exit code: run, the exit codes
// and failure reasons, and how any error is classed into them (classify).

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/lmittmann/tint"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/remote"
)

// Exit codes. usage.go prints this table; the README copies it.
const (
	exitOK          = 0
	exitDifferent   = 1 // diff: the file differs from the stored work
	exitUsage       = 2 // bad flags, manifest file or manifests; unknown consumer; stale generation
	exitMaestro     = 3 // Maestro unreachable, refused the request, or failed
	exitTimeout     = 4 // --timeout ran out
	exitCondition   = 5 // the agent reported failure: Applied=False, or Degraded=True
	exitNotFound    = 6 // get, describe: no such work
	exitInterrupted = 130
)

// Failure reasons: the results file's reason (status-reporter format) and
// the maestro format's reason field.
const (
	reasonUsage                 = "InvalidArguments"
	reasonManifestFile          = "ManifestFileError"
	reasonInvalidManifest       = "InvalidManifest"
	reasonConsumerNotRegistered = "ConsumerNotRegistered"
	reasonStaleGeneration       = maestro.ReasonStaleGeneration
	reasonConflict              = "Conflict"
	reasonUnreachable           = "MaestroUnreachable"
	reasonMaestro               = "MaestroError"
	reasonTimeout               = "Timeout"
	reasonApplyFailed           = "ApplyFailed"
	reasonDegraded              = "Degraded"
	reasonNotFound              = "WorkNotFound"
	reasonInterrupted           = "Interrupted"
	reasonResults               = "ResultsNotWritten"
)

// failure is an error that knows its exit code and reason. Its message is
// the one line printed on stderr: what went wrong and where.
type failure struct {
	code   int
	reason string
	err    error
	// work is the work's last known state, for the results file.
	work *workv1.ManifestWork
}

func (f *failure) Error() string { return f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

func failf(code int, reason, format string, args ...any) *failure {
	return &failure{code: code, reason: reason, err: fmt.Errorf(format, args...)}
}

func usageErr(format string, args ...any) *failure {
	return failf(exitUsage, reasonUsage, format, args...)
}

// errTimedOut is the cause of the context of a command whose --timeout ran out.
var errTimedOut = errors.New("--timeout ran out")

// outcome is what a command that succeeded reports.
type outcome struct {
	code int // exitOK, or exitDifferent (diff)
	// status is the results file's status: the work's state (Applied,
	// Available, InProgress, Deleted, ...) or Succeeded for commands that
	// do not look at one work's state.
	status  string
	message string
	// work is the work as last seen, for the results' resources.
	work *workv1.ManifestWork
}

// invocation is one command being run: its settings and where output goes.
type invocation struct {
	cmd    *command
	g      globals
	o      cmdOpts
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger
	// clientLog is for the Maestro client: quieter than log.
	clientLog *slog.Logger
	// timeout is --timeout as given (for messages).
	timeout time.Duration
	// ctx is the invocation's context: its deadline is --timeout.
	ctx context.Context
}

// run is the whole CLI: it returns the exit code. env looks up environment
// variables (os.LookupEnv in main); stdin is read for --manifest-file -.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, env func(string) (string, bool)) int {
	if env == nil {
		env = func(string) (string, bool) { return "", false }
	}
	if len(args) == 0 {
		return reportEarly(args, stderr, env, "", usageErr("no command given; run 'maestro-cli --help' for the list"))
	}
	switch args[0] {
	case "version", "--version":
		fmt.Fprintln(stdout, version)
		return exitOK
	case "help", "-h", "-help", "--help":
		printUsage(stdout)
		return exitOK
	}
	cmd := lookupCommand(args[0])
	if cmd == nil {
		return reportEarly(args, stderr, env, "", usageErr("unknown command %q; run 'maestro-cli --help' for the list", args[0]))
	}

	inv := &invocation{cmd: cmd, stdin: stdin, stdout: stdout, stderr: stderr}
	if err := inv.g.fromEnv(env); err != nil {
		return reportEarly(args, stderr, env, cmd.name, err)
	}
	fs := flag.NewFlagSet("maestro-cli "+cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported in one line below
	inv.g.bind(fs)
	inv.o.bind(fs, cmd)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printCommandUsage(stdout, cmd, fs)
			return exitOK
		}
		return reportEarly(args, stderr, env, cmd.name, usageErr("%v (run 'maestro-cli %s --help')", err, cmd.name))
	}
	if fs.NArg() > 0 {
		return reportEarly(args, stderr, env, cmd.name, usageErr("unexpected argument %q: every input is a flag (run 'maestro-cli %s --help')", fs.Arg(0), cmd.name))
	}

	log, clientLog, err := newLoggers(inv.g.LogLevel, stderr)
	if err != nil {
		return inv.finish(nil, err)
	}
	inv.log, inv.clientLog = log.With("cmd", cmd.name), clientLog
	if id, _ := env(envEventID); id != "" {
		inv.log, inv.clientLog = inv.log.With("event_id", id), inv.clientLog.With("event_id", id)
	}
	if err := inv.g.validate(); err != nil {
		return inv.finish(nil, err)
	}
	if err := inv.o.validate(cmd); err != nil {
		return inv.finish(nil, err)
	}

	inv.timeout = inv.g.Timeout
	cctx, cancel := context.WithTimeoutCause(ctx, inv.g.Timeout, errTimedOut)
	defer cancel()
	inv.ctx = cctx
	out, err := cmd.run(inv)
	if err != nil && ctx.Err() != nil && cctx.Err() != nil && !errors.Is(context.Cause(cctx), errTimedOut) {
		// Interrupted (SIGINT/SIGTERM) rather than failed.
		err = &failure{code: exitInterrupted, reason: reasonInterrupted, err: fmt.Errorf("interrupted: %w", err), work: workOf(err)}
	}
	return inv.finish(out, err)
}

// finish writes the results file, prints the error line and returns the
// exit code.
func (inv *invocation) finish(out *outcome, err error) int {
	code := exitOK
	var res result
	if err != nil {
		f := inv.classify(err)
		code = f.code
		res = failedResult(inv, f)
	} else {
		code = out.code
		res = succeededResult(inv, out)
	}
	if werr := writeResults(inv.g.ResultsPath, inv.g.ResultsFormat, res); werr != nil {
		if err == nil {
			code = exitUsage
		}
		fmt.Fprintf(inv.stderr, "maestro-cli %s: writing the results file: %s\n", inv.cmd.name, oneLine(werr.Error()))
	}
	if err != nil {
		fmt.Fprintf(inv.stderr, "maestro-cli %s: %s\n", inv.cmd.name, oneLine(err.Error()))
	}
	return code
}

// reportEarly handles a failure before the flags could be parsed: the
// results path is then looked for in the raw arguments and the environment.
func reportEarly(args []string, stderr io.Writer, env func(string) (string, bool), cmdName string, f *failure) int {
	name := cmdName
	if name == "" {
		name = "maestro-cli"
	} else {
		name = "maestro-cli " + name
	}
	path, _ := env(envResultsPath)
	format, _ := env(envResultsFormat)
	if p, ok := rawFlag(args, "results-path"); ok {
		path = p
	}
	if p, ok := rawFlag(args, "results-format"); ok {
		format = p
	}
	if format == "" {
		format = formatMaestro
	}
	inv := &invocation{cmd: &command{name: cmdName}}
	if n, ok := rawFlag(args, "name"); ok {
		inv.o.Name = n
	}
	if c, ok := rawFlag(args, "consumer"); ok {
		inv.o.Consumer = c
	}
	if format != formatMaestro && format != formatStatusReporter {
		format = formatMaestro
	}
	if err := writeResults(path, format, failedResult(inv, f)); err != nil {
		fmt.Fprintf(stderr, "%s: writing the results file: %s\n", name, oneLine(err.Error()))
	}
	fmt.Fprintf(stderr, "%s: %s\n", name, oneLine(f.Error()))
	return f.code
}

// rawFlag finds --name=value, -name=value or --name value in args.
func rawFlag(args []string, name string) (string, bool) {
	for i, a := range args {
		for _, p := range []string{"--" + name, "-" + name} {
			if v, ok := strings.CutPrefix(a, p+"="); ok {
				return v, true
			}
			if a == p && i+1 < len(args) {
				return args[i+1], true
			}
		}
	}
	return "", false
}

// classify turns any error into a failure with an exit code and reason.
func (inv *invocation) classify(err error) *failure {
	var f *failure
	if errors.As(err, &f) {
		return f
	}
	timedOut := inv.ctx != nil && errors.Is(context.Cause(inv.ctx), errTimedOut)
	switch {
	case errors.Is(err, remote.ErrConsumerNotRegistered):
		return &failure{code: exitUsage, reason: reasonConsumerNotRegistered, err: err}
	case errors.Is(err, workmeta.ErrStaleGeneration):
		return &failure{code: exitUsage, reason: reasonStaleGeneration, err: err}
	case errors.Is(err, remote.ErrUnreachable):
		if timedOut {
			err = fmt.Errorf("%w (gave up when --timeout %s ran out)", err, inv.timeout)
		}
		return &failure{code: exitMaestro, reason: reasonUnreachable, err: err}
	case timedOut:
		return &failure{code: exitTimeout, reason: reasonTimeout, err: fmt.Errorf("--timeout %s ran out: %w", inv.timeout, err)}
	case apierrors.IsNotFound(err):
		return &failure{code: exitNotFound, reason: reasonNotFound, err: err}
	default:
		return &failure{code: exitMaestro, reason: reasonMaestro, err: err}
	}
}

func workOf(err error) *workv1.ManifestWork {
	var f *failure
	if errors.As(err, &f) {
		return f.work
	}
	return nil
}

// oneLine keeps an error message on one line.
func oneLine(s string) string {
	s = strings.TrimSpace(s)
	s = strings.ReplaceAll(s, "\r", "")
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ; ")), " ")
}

func newLoggers(level string, w io.Writer) (log, client *slog.Logger, err error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, nil, usageErr("--log-level (%s): %q, want debug, info, warn or error", envLogLevel, level)
	}
	noColor := !isTerminal(w)
	log = slog.New(tint.NewHandler(w, &tint.Options{Level: l, NoColor: noColor, TimeFormat: time.TimeOnly}))
	// The Maestro client's routine lines (connected, subscribed) are noise
	// for a person; its warnings are not.
	client = slog.New(tint.NewHandler(w, &tint.Options{Level: max(l, slog.LevelWarn), NoColor: noColor, TimeFormat: time.TimeOnly}))
	return log, client, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
