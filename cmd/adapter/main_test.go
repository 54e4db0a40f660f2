package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReplayCommandPrintsOneStatusEventPerRecordedEvent(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := runMain([]string{"replay", "--adapter", "nodepool", filepath.Join("..", "..", "testdata", "recordings", "nodepool.jsonl")}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d status events: %s", len(lines), stdout.String())
	}
	for _, l := range lines {
		var ev map[string]any
		if err := json.Unmarshal([]byte(l), &ev); err != nil || ev["type"] != "com.redhat.hyperfleet.adapter.status" {
			t.Fatalf("not a status event: %s", l)
		}
	}
	if !strings.Contains(stderr.String(), "replay: 6 events, reconciled 6") {
		t.Fatalf("summary missing: %s", stderr.String())
	}
}

func TestReplayCommandFailuresExitOneAndNameTheEvent(t *testing.T) {
	dir := t.TempDir()
	good, _ := os.ReadFile(filepath.Join("..", "..", "testdata", "contracts", "sentinel-event-cluster.json"))
	bad, _ := os.ReadFile(filepath.Join("..", "..", "events", "testdata", "malformed", "generation-zero.json"))
	if err := os.WriteFile(filepath.Join(dir, "a-good.json"), good, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "b-bad.json"), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "status.jsonl")
	var stdout, stderr bytes.Buffer
	code := runMain([]string{"replay", "--adapter", "namespace", "--api-dir", filepath.Join("..", "..", "testdata", "api"), "--status-out", out, dir}, &stdout, &stderr)
	if code != exitFailed {
		t.Fatalf("exit %d, want 1: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "FAILED "+filepath.Join(dir, "b-bad.json")+": event 0198d2a4-5c1e-7f3a-8b2d-4e6f8a0c2e41: decode: field data.generation: 0 is not a valid generation") {
		t.Fatalf("failure line missing: %s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "failed 1") || !strings.Contains(stderr.String(), "reconciled 1") {
		t.Fatalf("summary: %s", stderr.String())
	}
	data, err := os.ReadFile(out)
	if err != nil || strings.Count(string(data), "\n") != 1 {
		t.Fatalf("status out: %q %v", data, err)
	}
}

func TestUsageErrorsExitTwo(t *testing.T) {
	cases := [][]string{
		{"replay"},
		{"replay", "--adapter", "nope", "x.json"},
		{"replay", "--adapter", "namespace", "--delivery", "carrier-pigeon", "x.json"},
		{"replay", "--adapter", "namespace", "--consumer", "sometimes:x", "../../testdata/recordings"},
		{"bogus"},
	}
	for _, args := range cases {
		var stdout, stderr bytes.Buffer
		if code := runMain(args, &stdout, &stderr); code != exitUsage || stderr.Len() == 0 {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr.String())
		}
	}
}

func TestConfigCommandMasksPasswords(t *testing.T) {
	t.Setenv("BROKER_CONFIG_FILE", "")
	t.Setenv("ADAPTER_TYPE", "namespace")
	t.Setenv("HYPERFLEET_API_URL", "https://user:hunter2@api.example.com")
	t.Setenv("HYPERFLEET_BROKER_TOPIC", "hyperfleet-system-clusters")
	t.Setenv("HYPERFLEET_BROKER_SUBSCRIPTION_ID", "hyperfleet-adapter-namespace")
	t.Setenv("BROKER_TYPE", "rabbitmq")
	for _, brokerURL := range []string{"amqp://u:b4dpass@rabbit:5672/", "amqp://u:b4dp%zz@rabbit:5672/", "amqp://u:b4d pass@rabbit/"} {
		t.Setenv("BROKER_RABBITMQ_URL", brokerURL)
		var stdout, stderr bytes.Buffer
		code := runMain([]string{"config"}, &stdout, &stderr)
		out := stdout.String() + stderr.String()
		for _, secret := range []string{"hunter2", "b4d"} {
			if strings.Contains(out, secret) {
				t.Errorf("broker URL %q: output shows %q:\n%s", brokerURL, secret, out)
			}
		}
		if brokerURL == "amqp://u:b4dpass@rabbit:5672/" {
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			for _, want := range []string{"ADAPTER_TYPE=namespace", "CONCURRENCY=4", "broker.type=rabbitmq", "broker.url=amqp://u:xxxxx@rabbit:5672/", "broker.queue=hyperfleet-system-clusters-hyperfleet-adapter-namespace"} {
				if !strings.Contains(out, want) {
					t.Errorf("config output lacks %q:\n%s", want, out)
				}
			}
		}
	}
}

// -h and --help print the usage on stdout and exit 0 on every command, even
// with a bad environment (help must work to fix it).
func TestHelpExitsZero(t *testing.T) {
	t.Setenv("CONCURRENCY", "not-a-number")
	for _, args := range [][]string{
		{"-h"}, {"--help"}, {"help"},
		{"replay", "-h"}, {"replay", "--help"}, {"run", "-h"}, {"run", "--help"},
		{"record", "-h"}, {"record", "--help"}, {"config", "-h"}, {"config", "--help"},
	} {
		var stdout, stderr bytes.Buffer
		code := runMain(args, &stdout, &stderr)
		if code != exitOK || !strings.Contains(stdout.String(), "usage: adapter") || stderr.Len() != 0 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, stdout.String(), stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := runMain([]string{"run", "--delivery", "maestro"}, &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), "CONCURRENCY") {
		t.Errorf("run with a bad CONCURRENCY: exit %d, stderr %q", code, stderr.String())
	}
}

// Errors about the handler's settings name the environment variable and
// flag, not the handlers package's field.
func TestHandlerErrorsNameTheVariable(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"replay", "--adapter", "nope", "x.json"}, `ADAPTER_TYPE (--adapter): "nope" is not an adapter type`},
		{[]string{"replay", "--adapter", "template", "x.json"}, "TEMPLATE_DIR (--template-dir): is required"},
		{[]string{"replay", "--adapter", "namespace", "--naming", "sideways", "x.json"}, "NAMING (--naming):"},
	} {
		var stdout, stderr bytes.Buffer
		code := runMain(tc.args, &stdout, &stderr)
		if code != exitUsage || !strings.Contains(stderr.String(), tc.want) || strings.Contains(stderr.String(), "handlers config") {
			t.Errorf("%v: exit %d, stderr %q, want it to name %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}

// adapter run has no default delivery: unset, it exits 2 naming DELIVERY
// and its values, before reading anything else.
func TestRunRequiresDelivery(t *testing.T) {
	t.Setenv("ADAPTER_TYPE", "namespace")
	t.Setenv("DELIVERY", "")
	var stdout, stderr bytes.Buffer
	code := runMain([]string{"run"}, &stdout, &stderr)
	for _, want := range []string{"DELIVERY (--delivery): not set", "maestro", "job", "embedded"} {
		if code != exitUsage || !strings.Contains(stderr.String(), want) {
			t.Fatalf("exit %d, stderr %q, want exit 2 naming %q", code, stderr.String(), want)
		}
	}
}
