package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Without --insecure (MAESTRO_INSECURE), the CLI refuses to talk to
// Maestro in clear: plaintext gRPC for writes, a token over http for
// reads. The refusal comes before any connection, so no server is needed.
func TestPlaintextNeedsInsecure(t *testing.T) {
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(t.TempDir(), "cm.yaml")
	if err := os.WriteFile(manifest, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: y\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"MAESTRO_GRPC_ENDPOINT": "127.0.0.1:1", "MAESTRO_HTTP_ENDPOINT": "http://127.0.0.1:1"}
	for _, tc := range []struct {
		name  string
		extra map[string]string
		args  []string
		wants []string
	}{
		{"plaintext gRPC", nil, []string{"apply", "-f", manifest, "--consumer", "c", "--name", "x"},
			[]string{"--grpc-endpoint (MAESTRO_GRPC_ENDPOINT)", "plaintext gRPC", "--insecure (MAESTRO_INSECURE=true)"}},
		{"token over http", map[string]string{"MAESTRO_TOKEN_FILE": token}, []string{"get", "--name", "x", "--consumer", "c"},
			[]string{"--token-file (MAESTRO_TOKEN_FILE)", "MAESTRO_HTTP_ENDPOINT", "in clear", "--insecure (MAESTRO_INSECURE=true)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := map[string]string{}
			for k, v := range env {
				e[k] = v
			}
			for k, v := range tc.extra {
				e[k] = v
			}
			r := runCLI(t, e, tc.args...).want(t, exitUsage)
			for _, w := range tc.wants {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr %q does not mention %q", r.stderr, w)
				}
			}
			if strings.Contains(r.stderr+r.stdout, "s3cret") {
				t.Error("the output shows the token")
			}
			// With the opt-in the settings pass, and the run fails only on
			// the unreachable server.
			e["MAESTRO_INSECURE"] = "true"
			r = runCLI(t, e, append(tc.args, "--dial-timeout", "200ms", "--unavailable-timeout", "500ms")...)
			if r.code != exitMaestro || strings.Contains(r.stderr, "plain http") {
				t.Errorf("with MAESTRO_INSECURE=true: exit %d, want %d (unreachable): %s", r.code, exitMaestro, r.stderr)
			}
		})
	}
}
