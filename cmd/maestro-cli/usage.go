package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// commands is the command table, in help order.
func commands() []*command {
	return []*command{
		{
			name:    "apply",
			summary: "create or update one ManifestWork from a file (gRPC); --watch waits for the agent",
			flags:   []string{"manifest-file", "consumer", "name", "watch", "condition"},
			flagHelp: map[string]string{
				"name":      "ManifestWork name (default: metadata.name of the ManifestWork in the file; required for plain manifests)",
				"watch":     "wait until the agent reports --condition for the applied generation (exit 4 on --timeout, 5 on failure)",
				"condition": "with --watch: Applied or Available",
			},
			conditions:       []string{condApplied, condAvailable},
			conditionDefault: condApplied,
			details: `The file holds either one ManifestWork (work.open-cluster-management.io/v1) or plain
Kubernetes manifests, one or many YAML documents (a v1 List is expanded), which the CLI
wraps into a ManifestWork named --name. The work is complete: manifests not in the file
are removed from it. Unchanged works are not rewritten. A ManifestWork carrying
metadata.generation (as 'build' and 'get -o yaml' write it) is applied only while the
stored work is still at that generation (exit 2, reason Conflict, otherwise); one
carrying the annotation hyperfleet.io/generation is never applied over a newer one
(exit 2, reason StaleGeneration).`,
			run: cmdApply,
		},
		{
			name:    "delete",
			summary: "delete a ManifestWork (gRPC); deleting a missing work is not an error",
			flags:   []string{"name", "consumer", "all", "watch"},
			flagHelp: map[string]string{
				"name":  "ManifestWork name",
				"all":   "with --name: the whole work, every manifest in it (what delete always does; accepted for the spike's command lines); without --name: every work of this --source-id on the consumer",
				"watch": "wait until the agent confirms the deletion (exit 4 on --timeout)",
			},
			details: `A work is always deleted whole: Maestro cannot remove part of one (apply a file
without the manifest to do that). Its spec.deleteOption decides whether the resources
on the cluster go with it (Foreground, the default of works written by this CLI and the
adapter) or stay (Orphan).`,
			run: cmdDelete,
		},
		{
			name:         "get",
			summary:      "show one ManifestWork and its state (REST)",
			flags:        []string{"name", "consumer"},
			nameRequired: true,
			run:          cmdGet,
		},
		{
			name:    "list",
			summary: "list this source's ManifestWorks (REST)",
			flags:   []string{"consumer", "status"},
			flagHelp: map[string]string{
				"consumer": "only works on this consumer (default: every consumer)",
				"status":   "only works whose condition is True at their current generation (Applied, Available, Progressing, Degraded) or whose state is this (InProgress, Failed, Deleting); comma-separated for several",
			},
			run: cmdList,
		},
		{
			name:         "describe",
			summary:      "show one ManifestWork for a person: manifests, conditions, feedback, ages (REST)",
			flags:        []string{"name", "consumer", "show-secrets"},
			nameRequired: true,
			run:          cmdDescribe,
		},
		{
			name:         "wait",
			summary:      "wait until a ManifestWork is Applied, Available or Deleted, printing progress",
			flags:        []string{"name", "consumer", "condition", "watch"},
			nameRequired: true,
			flagHelp: map[string]string{
				"condition": "Applied, Available or Deleted (required)",
				"watch":     "accepted for the spike's command lines; wait always watches",
			},
			conditions: []string{condApplied, condAvailable, condDeleted},
			details: `Applied and Available are met when the agent reports them True for the work's current
generation; a work that does not exist yet is waited for. Applied=False (and, for
Available, Degraded=True) at the current generation ends the wait with exit 5.
Status arrives over the gRPC source client's watch, not by polling.`,
			run: cmdWait,
		},
		{
			name:    "validate",
			summary: "check a manifest file offline, and the consumer when Maestro is reachable",
			flags:   []string{"manifest-file", "consumer", "name"},
			flagHelp: map[string]string{
				"name": "ManifestWork name to check (default: the file's)",
			},
			details: `Offline: the file is readable, well-formed YAML/JSON; every manifest has apiVersion,
kind and an RFC 1123 metadata.name (RBAC kinds: a path segment), namespaces are RFC 1123
labels, no manifest appears twice, no generateName, and the manifests fit Maestro's
500 KiB limit. When --http-endpoint is set and answers, the consumer must exist.
Problems are printed to stdout, one per line; the exit code is 2 when there is any.`,
			run: cmdValidate,
		},
		{
			name:         "diff",
			summary:      "show what apply would change; exit 0 when nothing, 1 when something",
			flags:        []string{"name", "consumer", "manifest-file", "show-secrets"},
			nameRequired: false,
			flagHelp: map[string]string{
				"name": "ManifestWork name (default: the file's)",
			},
			run: cmdDiff,
		},
		{
			name:    "build",
			summary: "fetch the stored work, merge the file's manifests into it, print the result",
			flags:   []string{"name", "consumer", "manifest-file"},
			flagHelp: map[string]string{
				"name": "ManifestWork name (default: the file's)",
			},
			details: `Manifests are matched by API group, kind, namespace and name: a file manifest replaces
the stored one it matches (in place) or is appended; stored manifests the file does not
mention are kept. Labels and annotations are merged (the file wins); the file's
deleteOption and manifestConfigs win when set. A missing work gives the file's manifests
alone. The result is printed as YAML (-o json for JSON) with metadata.generation set to
the stored generation, so 'apply' of it fails (Conflict) if the work changed since:
fetch-and-merge without losing another writer's update.`,
			run: cmdBuild,
		},
	}
}

const exitCodesHelp = `exit codes:
  0    success
  1    diff: the file differs from the stored work
  2    bad input: unknown command or flag, missing or invalid flag value, unreadable
       manifest file, broken YAML, invalid manifests, unknown consumer, a stale or
       conflicting generation, the results file could not be written
  3    Maestro error: unreachable (after --unavailable-timeout), refused or failed
  4    --timeout ran out (waiting for the agent, or for Maestro)
  5    the agent reported failure: Applied=False, or Degraded=True (--watch, wait)
  6    get, describe: the work does not exist (for this --source-id)
  130  interrupted (SIGINT, SIGTERM)
`

func printUsage(w io.Writer) {
	var b strings.Builder
	b.WriteString(`usage: maestro-cli COMMAND [flags]

Manage Maestro ManifestWorks: writes over gRPC, reads over REST.

commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-9s %s\n", c.name, c.summary)
	}
	b.WriteString("  version   print the version\n\n")
	b.WriteString("global flags (every command; each has an environment variable, the flag wins):\n")
	for _, s := range settings {
		def := ""
		if s.def != "" {
			def = fmt.Sprintf(" (default %s)", s.def)
		}
		fmt.Fprintf(&b, "  --%-21s %s%s\n  %-23s   env %s\n", s.flag, s.help, def, "", s.env)
	}
	b.WriteString(`
results file (--results-path): written atomically on success and on every failure.
  maestro:         {"manifestWorkName","consumer","status","message","timestamp","resources"}
                   status: Applied, Available, InProgress, Deleted, Degraded, Failed, Succeeded
  status-reporter: {"status":"success"|"failure","reason","message","details"} (<= 1 MiB),
                   for HyperFleet's status-reporter sidecar

`)
	b.WriteString(exitCodesHelp)
	b.WriteString("\nRun 'maestro-cli COMMAND --help' for a command's flags.\n")
	fmt.Fprint(w, b.String())
}

func printCommandUsage(w io.Writer, c *command, fs *flag.FlagSet) {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: maestro-cli %s [flags]\n\n%s\n", c.name, c.summary)
	if c.details != "" {
		fmt.Fprintf(&b, "\n%s\n", c.details)
	}
	b.WriteString("\nflags:\n")
	for _, name := range c.flags {
		f := fs.Lookup(name)
		if f == nil {
			continue
		}
		fmt.Fprintf(&b, "  --%-15s %s\n", name, f.Usage)
	}
	b.WriteString("\nglobal flags: see 'maestro-cli --help'.\n\n")
	b.WriteString(exitCodesHelp)
	fmt.Fprint(w, b.String())
}
