package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro/jobs/kubetest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/kubeapply"
)

// The README's command: the namespace recording replayed with
// DELIVERY=kubernetes against the local kube-apiserver creates the landing
// zones for real, reports them Applied and Available with the namespace's
// phase fed back, and deletes them (the namespace controller runs) before
// reporting Finalized.
func TestReplayWithKubernetesDelivery(t *testing.T) {
	cs := kubernetes.NewForConfigOrDie(kubetest.Require(t))
	records := kubetest.Namespace(t, cs)
	t.Setenv("KUBE_WORK_NAMESPACE", records)
	var stdout, stderr bytes.Buffer
	code := runMain([]string{"replay", "--delivery", "kubernetes", "--adapter", "namespace",
		filepath.Join("..", "..", "testdata", "recordings", "namespace.jsonl")}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d status events, want 6: %s", len(lines), stdout.String())
	}
	type report struct {
		ObservedGeneration int64 `json:"observed_generation"`
		Conditions         []struct{ Type, Status string }
		Data               struct {
			Manifestworks []struct {
				Manifests []struct {
					Kind     string
					Name     string
					Feedback map[string]any
				}
			}
		}
	}
	var finalized int
	namespaces := map[string]bool{}
	for _, l := range lines {
		var ev struct {
			Data struct{ Report report }
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("not a status event: %s", l)
		}
		r := ev.Data.Report
		conds := map[string]string{}
		for _, c := range r.Conditions {
			conds[c.Type] = c.Status
		}
		if conds["Finalized"] == "True" {
			finalized++
			continue
		}
		if conds["Applied"] != "True" || conds["Available"] != "True" || conds["Health"] != "True" {
			t.Errorf("generation %d: conditions %v, want Applied, Available and Health True", r.ObservedGeneration, conds)
		}
		for _, w := range r.Data.Manifestworks {
			for _, m := range w.Manifests {
				if m.Kind != "Namespace" {
					continue
				}
				namespaces[m.Name] = true
				status, _ := m.Feedback["status"].(map[string]any)
				if status["phase"] != "Active" {
					t.Errorf("namespace %s feedback %v, want status.phase Active", m.Name, m.Feedback)
				}
			}
		}
	}
	if finalized != 2 || len(namespaces) != 2 {
		t.Fatalf("%d Finalized reports over %d namespaces, want 2 and 2: %s", finalized, len(namespaces), stdout.String())
	}
	for ns := range namespaces {
		if _, err := cs.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("namespace %s reported deleted but still there (%v)", ns, err)
		}
	}
	left, err := cs.CoreV1().Secrets(records).List(context.Background(), metav1.ListOptions{LabelSelector: kubeapply.LabelDeliveredBy})
	if err != nil || len(left.Items) != 0 {
		t.Fatalf("work records left: %v (%v)", left, err)
	}
}

// A bad KUBE_* setting exits 2 naming it, before any connection.
func TestKubernetesDeliverySettingsAreChecked(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	// Nothing listens there: a connection attempt would fail differently.
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", kubeconfig)
	t.Setenv("KUBE_DELETE_PROPAGATION", "Sideways")
	var stdout, stderr bytes.Buffer
	code := runMain([]string{"replay", "--delivery", "kubernetes", "--adapter", "namespace",
		filepath.Join("..", "..", "testdata", "recordings", "namespace.jsonl")}, &stdout, &stderr)
	if code != exitUsage {
		t.Fatalf("exit %d, want %d: %s", code, exitUsage, stderr.String())
	}
	if !strings.Contains(stderr.String(), "DELIVERY=kubernetes: KUBE_DELETE_PROPAGATION: \"Sideways\"") {
		t.Fatalf("stderr does not name the setting: %s", stderr.String())
	}
}
