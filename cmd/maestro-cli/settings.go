package main

// The CLI's settings: the global ones (each a flag, an environment
// variable and a default, in one table), the command flags, their checks,
// and the command type the command table (usage.go) is made of.

import (
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro/remote"
)

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
