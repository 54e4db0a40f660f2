package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A token and an http:// URL refuse to start (exit 2), naming both
// settings and the opt-in; with the opt-in the adapter runs.
func TestTokenOverHTTPRefusedAtStart(t *testing.T) {
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("s3cret-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ADAPTER_TYPE", "namespace")
	t.Setenv("HYPERFLEET_API_INSECURE", "false") // whatever the shell exported
	t.Setenv("HYPERFLEET_API_URL", "http://hyperfleet-api.example:8000")
	t.Setenv("HYPERFLEET_API_TOKEN_FILE", token)
	recording := filepath.Join("..", "..", "testdata", "recordings", "namespace.jsonl")

	var stdout, stderr bytes.Buffer
	code := runMain([]string{"replay", recording}, &stdout, &stderr)
	if code != exitUsage {
		t.Fatalf("exit %d, want %d: %s", code, exitUsage, stderr.String())
	}
	for _, w := range []string{"HYPERFLEET_API_TOKEN_FILE", "HYPERFLEET_API_URL", "HYPERFLEET_API_INSECURE=true"} {
		if !strings.Contains(stderr.String(), w) {
			t.Errorf("stderr %q does not name %s", stderr.String(), w)
		}
	}
	if strings.Contains(stdout.String()+stderr.String(), "s3cret-token") {
		t.Error("the output shows the token")
	}

	// With the opt-in it starts; the recording carries snapshots, so the
	// unreachable API is never asked.
	t.Setenv("HYPERFLEET_API_INSECURE", "true")
	stdout.Reset()
	stderr.Reset()
	if code := runMain([]string{"replay", recording}, &stdout, &stderr); code != exitOK {
		t.Fatalf("with HYPERFLEET_API_INSECURE=true: exit %d: %s", code, stderr.String())
	}
}

// DELIVERY=maestro to a plaintext Maestro needs MAESTRO_INSECURE=true: the
// refusal comes before any connection.
func TestPlaintextMaestroRefusedAtStart(t *testing.T) {
	t.Setenv("ADAPTER_TYPE", "namespace")
	t.Setenv("DELIVERY", "maestro")
	t.Setenv("MAESTRO_INSECURE", "false") // maestro.sh env exports true
	t.Setenv("MAESTRO_GRPC_ENDPOINT", "127.0.0.1:1")
	t.Setenv("MAESTRO_HTTP_ENDPOINT", "http://127.0.0.1:1")
	var stdout, stderr bytes.Buffer
	code := runMain([]string{"replay", filepath.Join("..", "..", "testdata", "recordings", "namespace.jsonl")}, &stdout, &stderr)
	if code != exitUsage {
		t.Fatalf("exit %d, want %d: %s", code, exitUsage, stderr.String())
	}
	for _, w := range []string{"MAESTRO_GRPC_ENDPOINT", "plaintext gRPC", "MAESTRO_INSECURE=true"} {
		if !strings.Contains(stderr.String(), w) {
			t.Errorf("stderr %q does not name %s", stderr.String(), w)
		}
	}
}
