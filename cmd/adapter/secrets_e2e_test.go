package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/maestrotest"
)

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// maestroCLI builds cmd/maestro-cli once for this test.
func maestroCLI(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "maestro-cli")
	out, err := exec.Command("go", "build", "-o", bin, "../maestro-cli").CombinedOutput()
	if err != nil {
		t.Fatalf("go build maestro-cli: %v\n%s", err, out)
	}
	return bin
}

// TestNoSecretInAnyOutput is issue 13's done-when: a full replay with a
// pull secret (in a cluster's spec and in PULL_SECRET_FILE), an API token
// and a broker password set, to the real local Maestro; then adapter config
// and maestro-cli's views of the works. None of the secrets may appear in
// the logs, the status reports, or any of those outputs.
//
// The broker is configured but not connected to (replay reads a
// recording): the shared RabbitMQ only knows guest/guest, a password no
// grep can tell from the user name. adapter config still prints it.
func TestNoSecretInAnyOutput(t *testing.T) {
	menv := maestrotest.Require(t)
	suffix := randomHex(t, 4)
	consumer := "secrets-" + suffix
	source := "hyperfleet-adapter-secrets-" + suffix
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := maestrotest.RegisterConsumer(ctx, menv.HTTPEndpoint, consumer); err != nil {
		t.Fatal(err)
	}
	// The stand-in: only the adapter's and maestro-cli's outputs are under test,
	// and any agent that reports Applied serves; it needs no kube-apiserver.
	agent, err := maestrotest.StartAgent(ctx, menv.GRPCBrokerEndpoint, consumer, maestrotest.AgentOptions{Logf: maestrotest.TestLogf(t, "agent: ")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(agent.Stop)

	// The secrets, each unique to this run.
	token := "tok" + randomHex(t, 16)
	brokerPassword := "brk" + randomHex(t, 16)
	specAuth := base64.StdEncoding.EncodeToString([]byte("spec-user:" + randomHex(t, 16)))
	fileAuth := base64.StdEncoding.EncodeToString([]byte("file-user:" + randomHex(t, 16)))
	badSpec := "notjson" + randomHex(t, 16)
	secrets := map[string]string{"API token": token, "broker password": brokerPassword,
		"spec pull secret": specAuth, "file pull secret": fileAuth, "malformed spec pull secret": badSpec}

	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tokenFile := write("token", token+"\n")
	pullSecretFile := write("pull-secret.json", `{"auths":{"quay.io":{"auth":"`+fileAuth+`"}}}`)

	// Three clusters: the spec's pull secret, the file's, and a spec whose
	// pull secret is malformed (the event fails; its error must not quote it).
	clusters := map[string]map[string]any{
		"019466a0-8f8e-7abc-9def-00000000000a": {"pullSecret": map[string]any{"auths": map[string]any{"quay.io": map[string]any{"auth": specAuth}}}},
		"019466a0-8f8e-7abc-9def-00000000000b": {"region": "us-east1"},
		"019466a0-8f8e-7abc-9def-00000000000c": {"pullSecret": badSpec},
	}
	var (
		mu         sync.Mutex
		authorized int
	)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		mu.Lock()
		authorized++
		mu.Unlock()
		id := strings.TrimPrefix(r.URL.Path, hyperfleet.APIPrefix+"clusters/")
		spec, ok := clusters[id]
		if !ok || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"kind": "Cluster", "id": id, "href": r.URL.Path,
			"name": "sec-" + id[len(id)-1:] + "-" + suffix, "generation": 1, "spec": spec})
	}))
	t.Cleanup(api.Close)

	var recording bytes.Buffer
	for id := range clusters {
		ev := map[string]any{"specversion": "1.0", "id": "evt-" + id, "source": "hyperfleet-sentinel",
			"type": "com.redhat.hyperfleet.cluster.reconcile", "datacontenttype": "application/json",
			"data": map[string]any{"generation": 1, "href": hyperfleet.APIPrefix + "clusters/" + id, "id": id, "kind": "Cluster"}}
		line, _ := json.Marshal(ev)
		recording.Write(append(line, '\n'))
	}
	events := write("events.jsonl", recording.String())
	statusOut := filepath.Join(dir, "status.jsonl")

	for k, v := range map[string]string{
		"ADAPTER_TYPE": "pullsecret", "PULL_SECRET_FILE": pullSecretFile,
		"DELIVERY": "maestro", "MAESTRO_INSECURE": "true", "MAESTRO_SOURCE_ID": source,
		"MAESTRO_GRPC_ENDPOINT": menv.GRPCEndpoint, "MAESTRO_HTTP_ENDPOINT": menv.HTTPEndpoint,
		"CONSUMER_RULE": "fixed:" + consumer, "STATUS_TIMEOUT": "20s", "STATUS_OUT": statusOut,
		"HYPERFLEET_API_URL": api.URL, "HYPERFLEET_API_TOKEN_FILE": tokenFile, "HYPERFLEET_API_INSECURE": "true",
		"BROKER_CONFIG_FILE": "", "BROKER_TYPE": "rabbitmq", "BROKER_RABBITMQ_URL": "amqp://hyperfleet:" + brokerPassword + "@127.0.0.1:5672/",
		"HYPERFLEET_BROKER_TOPIC": "hyperfleet-system-clusters", "HYPERFLEET_BROKER_SUBSCRIPTION_ID": "secrets-" + suffix,
		"LOG_FORMAT": "json", "LOG_LEVEL": "debug",
	} {
		t.Setenv(k, v)
	}

	outputs := map[string]string{}
	var stdout, stderr bytes.Buffer
	code := runMain([]string{"replay", events}, &stdout, &stderr)
	outputs["replay logs"] = stdout.String() + stderr.String() // reports go to STATUS_OUT
	if code != exitFailed || strings.Count(stderr.String(), "FAILED ") != 1 {
		t.Fatalf("replay exit %d, want 1 with one failed event (the malformed pull secret):\n%s", code, stderr.String())
	}
	reports, err := os.ReadFile(statusOut)
	if err != nil {
		t.Fatal(err)
	}
	outputs["status reports"] = string(reports)
	if n := strings.Count(string(reports), "\n"); n != 3 {
		t.Errorf("%d status reports, want 3", n)
	}
	mu.Lock()
	if authorized == 0 {
		t.Error("the API never saw the token: the replay did not use it")
	}
	mu.Unlock()

	stdout.Reset()
	stderr.Reset()
	if code := runMain([]string{"config"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("adapter config: exit %d: %s", code, stderr.String())
	}
	outputs["adapter config"] = stdout.String() + stderr.String()
	if !strings.Contains(stdout.String(), "broker.url=amqp://hyperfleet:xxxxx@127.0.0.1:5672/") {
		t.Errorf("adapter config lacks the masked broker URL:\n%s", stdout.String())
	}

	// maestro-cli, as the adapter's source, on the works the replay made.
	cli := maestroCLI(t)
	runCLI := func(args ...string) string {
		cmd := exec.CommandContext(ctx, cli, args...)
		cmd.Env = append(os.Environ(), "MAESTRO_SOURCE_ID="+source)
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	workA := "hyperfleet-sec-a-" + suffix + "-pullsecret"
	workB := "hyperfleet-sec-b-" + suffix + "-pullsecret"
	// What a leaked Secret would show: the stored manifests' data values
	// (read with get, which prints works as they are and is not grepped).
	for _, w := range []string{workA, workB} {
		var stored struct {
			Spec struct {
				Workload struct {
					Manifests []struct {
						Kind string            `json:"kind"`
						Data map[string]string `json:"data"`
					} `json:"manifests"`
				} `json:"workload"`
			} `json:"spec"`
		}
		out := runCLI("get", "--name", w, "--consumer", consumer, "-o", "json")
		if err := json.Unmarshal([]byte(out), &stored); err != nil {
			t.Fatalf("maestro-cli get %s: %v\n%s", w, err, out)
		}
		found := false
		for _, m := range stored.Spec.Workload.Manifests {
			if v := m.Data[".dockerconfigjson"]; m.Kind == "Secret" && v != "" {
				secrets["Secret data of "+w] = v
				found = true
			}
		}
		if !found {
			t.Fatalf("work %s carries no pull Secret: the test would prove nothing\n%s", w, out)
		}
	}
	changed := write("changed.yaml", `apiVersion: v1
kind: Secret
metadata:
  name: pull-secret
  namespace: 019466a0-8f8e-7abc-9def-00000000000a
type: kubernetes.io/dockerconfigjson
stringData:
  .dockerconfigjson: '{"auths":{"quay.io":{"auth":"b3RoZXI6b3RoZXI="}}}'
`)
	for name, args := range map[string][]string{
		"maestro-cli describe":         {"describe", "--name", workA, "--consumer", consumer},
		"maestro-cli describe -o yaml": {"describe", "--name", workB, "--consumer", consumer, "-o", "yaml"},
		"maestro-cli describe -o json": {"describe", "--name", workA, "--consumer", consumer, "-o", "json"},
		"maestro-cli diff":             {"diff", "--name", workA, "--consumer", consumer, "-f", changed},
		"maestro-cli diff -o json":     {"diff", "--name", workA, "--consumer", consumer, "-f", changed, "-o", "json"},
		"maestro-cli list":             {"list", "--consumer", consumer},
		"maestro-cli status":           {"status", "--name", workB, "--consumer", consumer},
	} {
		outputs[name] = runCLI(args...)
	}
	if !strings.Contains(outputs["maestro-cli describe -o yaml"], "<secret: ") || !strings.Contains(outputs["maestro-cli diff"], "<secret: ") {
		t.Errorf("maestro-cli did not show the masked Secret:\n%s\n%s", outputs["maestro-cli describe -o yaml"], outputs["maestro-cli diff"])
	}

	// The control: asked to, maestro-cli shows the Secret, and the grep
	// below finds it there.
	if shown := runCLI("describe", "--name", workA, "--consumer", consumer, "-o", "yaml", "--show-secrets"); !strings.Contains(shown, secrets["Secret data of "+workA]) {
		t.Errorf("describe --show-secrets does not show the Secret data the grep looks for:\n%s", shown)
	}

	for what, out := range outputs {
		if strings.TrimSpace(out) == "" {
			t.Errorf("%s printed nothing: nothing was checked", what)
		}
		for name, secret := range secrets {
			if i := strings.Index(out, secret); i >= 0 {
				t.Errorf("%s shows the %s: ...%s...", what, name, out[max(0, i-80):min(len(out), i+len(secret)+20)])
			}
		}
	}
	t.Logf("checked %d outputs (%d bytes) for %d secret values", len(outputs), func() (n int) {
		for _, o := range outputs {
			n += len(o)
		}
		return
	}(), len(secrets))
}
