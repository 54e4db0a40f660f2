package remote_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/remote"
)

func validOptions() remote.Options {
	return remote.Options{
		GRPCEndpoint: "maestro-grpc:8090",
		HTTPEndpoint: "http://maestro:8000",
		SourceID:     "hyperfleet-adapter-namespace",
		Insecure:     true, // a local Maestro: plaintext
	}
}

func TestOptionsValidateNamesTheSetting(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	for _, tc := range []struct {
		name   string
		mutate func(*remote.Options)
		want   []string
	}{
		{"no gRPC endpoint", func(o *remote.Options) { o.GRPCEndpoint = "" }, []string{"MAESTRO_GRPC_ENDPOINT", "not set"}},
		{"gRPC endpoint without port", func(o *remote.Options) { o.GRPCEndpoint = "maestro" }, []string{"MAESTRO_GRPC_ENDPOINT", "not host:port"}},
		{"gRPC endpoint as URL", func(o *remote.Options) { o.GRPCEndpoint = "http://maestro:8090" }, []string{"MAESTRO_GRPC_ENDPOINT"}},
		{"no HTTP endpoint", func(o *remote.Options) { o.HTTPEndpoint = "" }, []string{"MAESTRO_HTTP_ENDPOINT", "not set"}},
		{"HTTP endpoint without scheme", func(o *remote.Options) { o.HTTPEndpoint = "maestro:8000" }, []string{"MAESTRO_HTTP_ENDPOINT", "not an http://"}},
		{"HTTP endpoint with password", func(o *remote.Options) { o.HTTPEndpoint = "https://u:p@maestro:8000" }, []string{"MAESTRO_HTTP_ENDPOINT", "credentials"}},
		{"no source id", func(o *remote.Options) { o.SourceID = "" }, []string{"MAESTRO_SOURCE_ID", "not set"}},
		{"source id with quote", func(o *remote.Options) { o.SourceID = "a'b" }, []string{"MAESTRO_SOURCE_ID", "quotes"}},
		{"CA file missing", func(o *remote.Options) { o.CAFile = missing }, []string{"MAESTRO_CA_FILE", "no such file"}},
		{"cert without key", func(o *remote.Options) { o.ClientCertFile = file }, []string{"MAESTRO_CLIENT_KEY_FILE", "set both"}},
		{"key without cert", func(o *remote.Options) { o.ClientKeyFile = file }, []string{"MAESTRO_CLIENT_CERT_FILE", "set both"}},
		{"cert file missing", func(o *remote.Options) { o.ClientCertFile, o.ClientKeyFile = missing, file }, []string{"MAESTRO_CLIENT_CERT_FILE", "no such file"}},
		{"token file missing", func(o *remote.Options) { o.HTTPEndpoint = "https://m"; o.TokenFile = missing }, []string{"MAESTRO_TOKEN_FILE", "no such file"}},
		{"token over http", func(o *remote.Options) { o.TokenFile, o.Insecure = file, false }, []string{"MAESTRO_TOKEN_FILE", "MAESTRO_HTTP_ENDPOINT", "in clear", "MAESTRO_INSECURE=true"}},
		{"plaintext gRPC", func(o *remote.Options) { o.Insecure = false }, []string{"MAESTRO_GRPC_ENDPOINT", "plaintext gRPC", "MAESTRO_INSECURE=true"}},
		{"negative healthiness", func(o *remote.Options) { o.ServerHealthinessTimeout = -time.Second }, []string{"MAESTRO_SERVER_HEALTHINESS_TIMEOUT", "negative"}},
		{"negative dial timeout", func(o *remote.Options) { o.DialTimeout = -time.Second }, []string{"MAESTRO_DIAL_TIMEOUT"}},
		{"negative request timeout", func(o *remote.Options) { o.RequestTimeout = -time.Second }, []string{"MAESTRO_REQUEST_TIMEOUT"}},
		{"negative unavailable timeout", func(o *remote.Options) { o.UnavailableTimeout = -time.Second }, []string{"MAESTRO_UNAVAILABLE_TIMEOUT"}},
		{"unknown propagation", func(o *remote.Options) { o.DeletePropagation = "Background" }, []string{"MAESTRO_DELETE_PROPAGATION", "Foreground or Orphan"}},
		{"bad source options", func(o *remote.Options) { o.Source = maestro.SourceOptions{ConflictRetries: -1} }, []string{"ConflictRetries"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := validOptions()
			tc.mutate(&o)
			err := o.Validate()
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestOptionsValidateAcceptsGoodSettings(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*remote.Options){
		"plaintext":                 func(*remote.Options) {},
		"mTLS":                      func(o *remote.Options) { o.CAFile, o.ClientCertFile, o.ClientKeyFile = file, file, file },
		"token https":               func(o *remote.Options) { o.HTTPEndpoint, o.TokenFile, o.CAFile = "https://maestro:8000/", file, file },
		"TLS, no opt-in":            func(o *remote.Options) { o.CAFile, o.Insecure = file, false },
		"token over http, opted in": func(o *remote.Options) { o.TokenFile = file },
		"orphan":                    func(o *remote.Options) { o.DeletePropagation = "Orphan" },
		"timings":                   func(o *remote.Options) { o.DialTimeout, o.UnavailableTimeout = time.Second, time.Minute },
	} {
		o := validOptions()
		mutate(&o)
		if err := o.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// Every problem is reported at once, not one per restart.
func TestOptionsValidateReportsAllProblems(t *testing.T) {
	err := remote.Options{}.Validate()
	if err == nil {
		t.Fatal("empty options accepted")
	}
	for _, env := range []string{remote.EnvGRPCEndpoint, remote.EnvHTTPEndpoint, remote.EnvSourceID} {
		if !strings.Contains(err.Error(), env) {
			t.Errorf("error %q does not mention %s", err, env)
		}
	}
}
