package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro/maestrotest"
)

// Every kind of bad input and trouble exits non-zero with one line naming
// what and where, and leaves a Failed result in either format.
func TestResultsOnFailure(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	consumer := w.consumer(maestrotest.AgentOptions{})
	slow := w.consumer(maestrotest.AgentOptions{Delay: 10 * time.Minute})
	good := w.file("cms.yaml", twoConfigMaps)
	broken := w.file("broken.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n")
	missing := filepath.Join(w.dir, "no-such.yaml")
	grpcClosed, httpClosed := closedAddr(t), closedAddr(t)

	for _, tc := range []struct {
		name   string
		env    map[string]string
		args   []string
		code   int
		reason string
		wants  []string // in the error line (and the result's message)
	}{
		{"missing file", w.env(), []string{"apply", "-f", missing, "--consumer", consumer, "--name", "x"},
			exitUsage, reasonManifestFile, []string{"--manifest-file", missing, "no such file"}},
		{"broken YAML", w.env(), []string{"apply", "-f", broken, "--consumer", consumer, "--name", "x"},
			exitUsage, reasonInvalidManifest, []string{broken + ":4:", "not valid YAML"}},
		{"unknown consumer", w.env(), []string{"apply", "-f", good, "--consumer", "nobody-" + suffix(t), "--name", "x"},
			exitUsage, reasonConsumerNotRegistered, []string{"--consumer", "is not registered", w.maestro.HTTPEndpoint}},
		{"unreachable endpoint", w.env("MAESTRO_GRPC_ENDPOINT", grpcClosed, "MAESTRO_HTTP_ENDPOINT", "http://"+httpClosed),
			[]string{"apply", "-f", good, "--consumer", consumer, "--name", "x", "--dial-timeout", "300ms", "--unavailable-timeout", "1s"},
			exitMaestro, reasonUnreachable, []string{"Maestro is unreachable", grpcClosed, httpClosed, "connection refused"}},
		{"unreachable endpoint, read", w.env("MAESTRO_HTTP_ENDPOINT", "http://"+httpClosed),
			[]string{"get", "--name", "x", "--consumer", consumer},
			exitMaestro, reasonUnreachable, []string{"Maestro is unreachable", httpClosed}},
		{"expired timeout", w.env(), []string{"apply", "-f", good, "--consumer", slow, "--name", "x", "--watch", "--timeout", "1s"},
			exitTimeout, reasonTimeout, []string{"timed out after 1s", slow + "/x", "Applied"}},
		{"bad flag", w.env(), []string{"apply", "-f", good, "--consumer", consumer, "--wach"},
			exitUsage, reasonUsage, []string{"flag provided but not defined: -wach"}},
		{"no endpoint", map[string]string{}, []string{"apply", "-f", good, "--consumer", consumer, "--name", "x"},
			exitUsage, reasonUsage, []string{"--grpc-endpoint (MAESTRO_GRPC_ENDPOINT) is not set"}},
		{"plain manifests without a name", w.env(), []string{"apply", "-f", good, "--consumer", consumer},
			exitUsage, reasonUsage, []string{"--name is required", good}},
	} {
		for _, format := range []string{formatMaestro, formatStatusReporter} {
			t.Run(tc.name+"/"+format, func(t *testing.T) {
				t.Parallel()
				path := filepath.Join(t.TempDir(), "result.json")
				args := append(append([]string{}, tc.args...), "--results-path", path, "--results-format", format)
				r := runCLI(t, tc.env, args...).want(t, tc.code)
				line := r.errorLine(t, tc.args[0])
				containsAll(t, "error line", line, tc.wants...)

				var message string
				if format == formatMaestro {
					got := readStatusResult(t, path)
					if got.Status != "Failed" || got.Reason != tc.reason || got.Consumer != flagValue(tc.args, "--consumer") {
						t.Errorf("result = %+v, want Failed/%s", got, tc.reason)
					}
					message = got.Message
				} else {
					got := readAdapterResult(t, path)
					if got.Status != "failure" || got.Reason != tc.reason || got.Details["exitCode"] != float64(tc.code) {
						t.Errorf("result = %+v, want failure/%s with exit code %d", got, tc.reason, tc.code)
					}
					message = got.Message
				}
				if !strings.HasSuffix(line, message) {
					t.Errorf("result message %q is not what stderr said: %q", message, line)
				}
			})
		}
	}
}

func flagValue(args []string, name string) string {
	v, _ := rawFlag(args, strings.TrimPrefix(name, "--"))
	return v
}

// RESULTS_PATH sets the path; --results-path wins; success writes too,
// in the status-reporter's form when asked.
func TestResultsPathAndSuccess(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	consumer := w.consumer(maestrotest.AgentOptions{})
	file := w.file("cms.yaml", twoConfigMaps)
	fromEnv := filepath.Join(w.dir, "env.json")
	fromFlag := filepath.Join(w.dir, "flag.json")

	env := w.env("RESULTS_PATH", fromEnv, "RESULTS_FORMAT", formatStatusReporter)
	runCLI(t, env, "apply", "-f", file, "--consumer", consumer, "--name", "r", "--watch").want(t, exitOK)
	got := readAdapterResult(t, fromEnv)
	if got.Status != "success" || got.Reason != "Applied" || got.Details["manifestWorkName"] != "r" || got.Details["generation"] != float64(1) {
		t.Errorf("status-reporter result = %+v, want success/Applied for r at generation 1", got)
	}
	if res, ok := got.Details["resources"].([]any); !ok || len(res) != 2 {
		t.Errorf("details.resources = %v, want the two ConfigMaps", got.Details["resources"])
	}

	runCLI(t, env, "apply", "-f", file, "--consumer", consumer, "--name", "r", "--results-path", fromFlag, "--results-format", formatMaestro).want(t, exitOK)
	if r := readStatusResult(t, fromFlag); r.ManifestWorkName != "r" || r.Timestamp.IsZero() {
		t.Errorf("flag path result = %+v", r)
	}
	// The flag won: the env path still holds the first run's result.
	if again := readAdapterResult(t, fromEnv); again.Reason != "Applied" {
		t.Errorf("env path was rewritten: %+v", again)
	}
	// Nothing but the result is left in the directory (the write is a
	// rename of a temporary file).
	entries, _ := os.ReadDir(w.dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	if strings.Join(names, " ") != "cms.yaml env.json flag.json" {
		t.Errorf("directory holds %v", names)
	}

	// An unwritable results path turns success into exit 2, saying so.
	r := w.cli("get", "--name", "r", "--consumer", consumer, "--results-path", filepath.Join(w.dir, "no-dir", "r.json")).want(t, exitUsage)
	containsAll(t, "error line", r.errorLine(t, "get"), "writing the results file", "no-dir")
}

// The results files have the fields of the contract samples.
func TestResultFormatsMatchSamples(t *testing.T) {
	t.Parallel()
	inv := &invocation{cmd: &command{name: "apply"}, o: cmdOpts{Name: "w", Consumer: "c"}}
	for _, tc := range []struct {
		sample string
		format string
		res    result
	}{
		{"maestro-cli-statusresult-deprecated.json", formatMaestro, succeededResult(inv, &outcome{status: "Applied", message: "ok"})},
		{"status-reporter-result-success.json", formatStatusReporter, succeededResult(inv, &outcome{status: "Applied", message: "ok"})},
		{"status-reporter-result-failure.json", formatStatusReporter, failedResult(inv, failf(exitTimeout, reasonTimeout, "late"))},
	} {
		data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "contracts", tc.sample))
		if err != nil {
			t.Fatal(err)
		}
		var sample map[string]any
		if err := json.Unmarshal(data, &sample); err != nil {
			t.Fatal(err)
		}
		out, err := tc.res.encode(tc.format)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatal(err)
		}
		for k, v := range sample {
			gv, ok := got[k]
			if !ok {
				t.Errorf("%s: result lacks %q:\n%s", tc.sample, k, out)
				continue
			}
			if _, isStr := v.(string); isStr {
				if _, gotStr := gv.(string); !gotStr {
					t.Errorf("%s: %q is %T, want a string", tc.sample, k, gv)
				}
			}
		}
		if tc.format == formatStatusReporter {
			if got["status"] != sample["status"] {
				t.Errorf("%s: status %v, want %v", tc.sample, got["status"], sample["status"])
			}
		}
	}
}

// A result over the status-reporter's 1 MiB limit loses its resource list,
// not its verdict.
func TestStatusReporterSizeLimit(t *testing.T) {
	t.Parallel()
	r := result{command: "apply", name: "w", consumer: "c", status: "Failed", reason: reasonApplyFailed, message: "bad"}
	for i := 0; i < 20000; i++ {
		r.resources = append(r.resources, resourceStatus{APIVersion: "v1", Kind: "ConfigMap", Name: strings.Repeat("n", 40), Status: "Failed", Message: strings.Repeat("m", 40)})
	}
	data, err := r.encode(formatStatusReporter)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > maxStatusReporterSize {
		t.Fatalf("%d bytes, over %d", len(data), maxStatusReporterSize)
	}
	var got adapterResult
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if got.Status != "failure" || got.Reason != reasonApplyFailed || got.Details["resources"] != nil || got.Details["resourcesOmitted"] == nil {
		t.Errorf("trimmed result = %+v", got)
	}
}
