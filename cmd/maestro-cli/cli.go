package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lmittmann/tint"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	workv1 "open-cluster-management.io/api/work/v1"

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
	case errors.Is(err, maestro.ErrStaleGeneration):
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

// Environment variables. The MAESTRO_* ones are the adapter's (maestro/remote).
const (
	envGRPCEndpoint       = remote.EnvGRPCEndpoint
	envHTTPEndpoint       = remote.EnvHTTPEndpoint
	envSourceID           = remote.EnvSourceID
	envCAFile             = remote.EnvCAFile
	envClientCertFile     = remote.EnvClientCertFile
	envClientKeyFile      = remote.EnvClientKeyFile
	envTokenFile          = remote.EnvTokenFile
	envInsecure           = remote.EnvInsecureSkipVerify
	envPlaintext          = remote.EnvInsecure
	envDialTimeout        = remote.EnvDialTimeout
	envUnavailableTimeout = remote.EnvUnavailableTimeout
	envResultsPath        = "RESULTS_PATH"
	envResultsFormat      = "RESULTS_FORMAT"
	envTimeout            = "MAESTRO_CLI_TIMEOUT"
	envOutput             = "MAESTRO_CLI_OUTPUT"
	envLogLevel           = "LOG_LEVEL"
	// envEventID is the CloudEvent a Job's run was started for (the
	// spike's template sets it); it only labels the log lines.
	envEventID = "EVENT_ID"
)

// defaultSourceID is the source the CLI writes as when none is given. Works
// belong to their source: to update or delete the adapter's works, a Job's
// CLI must use the adapter's source id.
const defaultSourceID = "maestro-cli"

// globals are the settings every command takes. Each has an environment
// variable; the flag wins.
type globals struct {
	GRPCEndpoint       string
	HTTPEndpoint       string
	SourceID           string
	CAFile             string
	ClientCertFile     string
	ClientKeyFile      string
	TokenFile          string
	InsecureSkipVerify bool
	Insecure           bool
	Output             string
	ResultsPath        string
	ResultsFormat      string
	Timeout            time.Duration
	DialTimeout        time.Duration
	UnavailableTimeout time.Duration
	LogLevel           string
}

// setting describes one global setting: flag, variable, default, help.
type setting struct {
	flag, env, def, help string
	str                  func(g *globals) *string
	dur                  func(g *globals) *time.Duration
	boolean              func(g *globals) *bool
}

var settings = []setting{
	{flag: "grpc-endpoint", env: envGRPCEndpoint, help: "Maestro's gRPC server for source clients, host:port (writes: apply, delete; watching: --watch, wait)",
		str: func(g *globals) *string { return &g.GRPCEndpoint }},
	{flag: "http-endpoint", env: envHTTPEndpoint, help: "Maestro's REST API base URL, e.g. http://maestro:8000 (reads and the consumer check)",
		str: func(g *globals) *string { return &g.HTTPEndpoint }},
	{flag: "source-id", env: envSourceID, def: defaultSourceID, help: "Maestro source id the CLI acts as; works belong to their source, so use the adapter's id to touch the adapter's works",
		str: func(g *globals) *string { return &g.SourceID }},
	{flag: "ca-file", env: envCAFile, help: "CA (PEM) verifying Maestro's certificates; turns on TLS for gRPC",
		str: func(g *globals) *string { return &g.CAFile }},
	{flag: "client-cert-file", env: envClientCertFile, help: "client certificate (PEM) for mTLS, with --client-key-file",
		str: func(g *globals) *string { return &g.ClientCertFile }},
	{flag: "client-key-file", env: envClientKeyFile, help: "client key (PEM) for mTLS, with --client-cert-file",
		str: func(g *globals) *string { return &g.ClientKeyFile }},
	{flag: "token-file", env: envTokenFile, help: "file holding a bearer token for gRPC and REST (needs TLS, and an https REST URL unless --insecure)",
		str: func(g *globals) *string { return &g.TokenFile }},
	{flag: "insecure-skip-verify", env: envInsecure, def: "false", help: "use TLS without verifying Maestro's certificates (test setups only)",
		boolean: func(g *globals) *bool { return &g.InsecureSkipVerify }},
	{flag: "insecure", env: envPlaintext, def: "false", help: "allow connections in clear: plaintext gRPC (no --ca-file, --client-cert-file or --token-file) and --token-file over an http:// --http-endpoint (a local Maestro only)",
		boolean: func(g *globals) *bool { return &g.Insecure }},
	{flag: "output", env: envOutput, def: "table", help: "stdout format: table, json or yaml (also -o)",
		str: func(g *globals) *string { return &g.Output }},
	{flag: "results-path", env: envResultsPath, help: "write the result file here (atomically), on success and on failure",
		str: func(g *globals) *string { return &g.ResultsPath }},
	{flag: "results-format", env: envResultsFormat, def: formatMaestro, help: "results file format: maestro ({manifestWorkName, consumer, status, message, timestamp, resources}) or status-reporter ({status, reason, message, details})",
		str: func(g *globals) *string { return &g.ResultsFormat }},
	{flag: "timeout", env: envTimeout, def: "5m", help: "deadline of the whole command, waiting included",
		dur: func(g *globals) *time.Duration { return &g.Timeout }},
	{flag: "dial-timeout", env: envDialTimeout, def: "5s", help: "timeout of establishing one connection to Maestro",
		dur: func(g *globals) *time.Duration { return &g.DialTimeout }},
	{flag: "unavailable-timeout", env: envUnavailableTimeout, def: "15s", help: "how long a write keeps retrying an unreachable Maestro before failing (exit 3)",
		dur: func(g *globals) *time.Duration { return &g.UnavailableTimeout }},
	{flag: "log-level", env: envLogLevel, def: "info", help: "stderr log level: debug, info, warn or error",
		str: func(g *globals) *string { return &g.LogLevel }},
}

// fromEnv sets every global from its default, then its variable.
func (g *globals) fromEnv(env func(string) (string, bool)) *failure {
	for _, s := range settings {
		v := s.def
		if e, ok := env(s.env); ok && e != "" {
			v = e
		}
		switch {
		case s.str != nil:
			*s.str(g) = v
		case s.dur != nil:
			d, err := time.ParseDuration(v)
			if err != nil {
				return usageErr("%s: %q is not a duration (e.g. 30s, 5m)", s.env, v)
			}
			*s.dur(g) = d
		case s.boolean != nil:
			b, err := strconv.ParseBool(v)
			if err != nil {
				return usageErr("%s: %q is not true or false", s.env, v)
			}
			*s.boolean(g) = b
		}
	}
	return nil
}

// bind registers the global flags, defaulting to the values fromEnv set.
func (g *globals) bind(fs *flag.FlagSet) {
	for _, s := range settings {
		help := fmt.Sprintf("%s (env %s)", s.help, s.env)
		switch {
		case s.str != nil:
			fs.StringVar(s.str(g), s.flag, *s.str(g), help)
		case s.dur != nil:
			fs.DurationVar(s.dur(g), s.flag, *s.dur(g), help)
		case s.boolean != nil:
			fs.BoolVar(s.boolean(g), s.flag, *s.boolean(g), help)
		}
	}
	fs.StringVar(&g.Output, "o", g.Output, "short for --output")
}

func (g *globals) validate() *failure {
	switch g.Output {
	case "table", "json", "yaml":
	default:
		return usageErr("--output (-o, %s): %q, want table, json or yaml", envOutput, g.Output)
	}
	switch g.ResultsFormat {
	case formatMaestro, formatStatusReporter:
	default:
		return usageErr("--results-format (%s): %q, want %s or %s", envResultsFormat, g.ResultsFormat, formatMaestro, formatStatusReporter)
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{"--timeout", g.Timeout}, {"--dial-timeout", g.DialTimeout}, {"--unavailable-timeout", g.UnavailableTimeout}} {
		if d.v <= 0 {
			return usageErr("%s: %s, want a positive duration", d.flag, d.v)
		}
	}
	return nil
}

// cmdOpts are the command flags; each command registers the ones it takes.
type cmdOpts struct {
	Name         string
	Consumer     string
	ManifestFile string
	Watch        bool
	All          bool
	Condition    string
	Status       string
	ShowSecrets  bool
}

func (o *cmdOpts) bind(fs *flag.FlagSet, cmd *command) {
	for _, f := range cmd.flags {
		switch f {
		case "name":
			fs.StringVar(&o.Name, "name", "", cmd.help(f, "ManifestWork name"))
		case "consumer":
			fs.StringVar(&o.Consumer, "consumer", "", cmd.help(f, "Maestro consumer (target cluster) name"))
		case "manifest-file":
			fs.StringVar(&o.ManifestFile, "manifest-file", "", cmd.help(f, "YAML or JSON file: one ManifestWork, or Kubernetes manifests (one or more documents); - reads standard input"))
			fs.StringVar(&o.ManifestFile, "f", "", "short for --manifest-file")
		case "watch":
			fs.BoolVar(&o.Watch, "watch", false, cmd.help(f, "wait for the agent's status"))
		case "all":
			fs.BoolVar(&o.All, "all", false, cmd.help(f, ""))
		case "condition":
			fs.StringVar(&o.Condition, "condition", cmd.conditionDefault, cmd.help(f, "condition to wait for"))
		case "status":
			fs.StringVar(&o.Status, "status", "", cmd.help(f, "only works in this state"))
		case "show-secrets":
			fs.BoolVar(&o.ShowSecrets, "show-secrets", false, cmd.help(f, "print Secret data and stringData values; by default each shows as its size"))
		}
	}
}

func (o *cmdOpts) validate(cmd *command) *failure {
	has := func(f string) bool {
		for _, x := range cmd.flags {
			if x == f {
				return true
			}
		}
		return false
	}
	if has("consumer") && cmd.name != "list" && o.Consumer == "" {
		return usageErr("--consumer is required")
	}
	if o.Consumer != "" {
		if err := checkConsumerName(o.Consumer); err != nil {
			return usageErr("--consumer %q: %v", o.Consumer, err)
		}
	}
	if has("manifest-file") && o.ManifestFile == "" {
		return usageErr("--manifest-file is required")
	}
	if o.Name != "" {
		if err := checkWorkName(o.Name); err != nil {
			return usageErr("--name %q: %v", o.Name, err)
		}
	}
	if cmd.nameRequired && o.Name == "" {
		return usageErr("--name is required")
	}
	if has("condition") {
		if o.Condition == "" {
			return usageErr("--condition is required: one of %s", strings.Join(cmd.conditions, ", "))
		}
		if !slices.Contains(cmd.conditions, o.Condition) {
			return usageErr("--condition %q, want one of %s", o.Condition, strings.Join(cmd.conditions, ", "))
		}
	}
	if cmd.name == "delete" && o.Name == "" && !o.All {
		return usageErr("--name is required (or --all, to delete every work of this source on the consumer)")
	}
	if o.Status != "" {
		for _, s := range strings.Split(o.Status, ",") {
			if !slices.Contains(listStatuses, s) {
				return usageErr("--status %q, want one or more (comma-separated) of %s", s, strings.Join(listStatuses, ", "))
			}
		}
	}
	return nil
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	// flags are the command's own flags, in help order.
	flags []string
	// flagHelp overrides the generic help of a flag.
	flagHelp         map[string]string
	nameRequired     bool
	conditions       []string
	conditionDefault string
	details          string
	run              func(inv *invocation) (*outcome, error)
}

func (c *command) help(flag, generic string) string {
	if h, ok := c.flagHelp[flag]; ok {
		return h
	}
	return generic
}

func lookupCommand(name string) *command {
	for _, c := range commands() {
		if c.name == name {
			return c
		}
	}
	return nil
}
