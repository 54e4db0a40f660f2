package main

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro/maestrotest"
)

const manifestWorkFile = `apiVersion: work.open-cluster-management.io/v1
kind: ManifestWork
metadata:
  name: hyperfleet-cluster-1-nodepool
  labels:
    hyperfleet.io/adapter: nodepool
spec:
  workload:
    manifests:
    - apiVersion: apps/v1
      kind: Deployment
      metadata:
        name: pool-controller
        namespace: pools
      spec:
        replicas: 2
    - apiVersion: v1
      kind: ConfigMap
      metadata:
        name: pool-settings
        namespace: pools
      data:
        size: "3"
  manifestConfigs:
  - resourceIdentifier:
      group: apps
      resource: deployments
      name: pool-controller
      namespace: pools
    feedbackRules:
    - type: WellKnownStatus
`

// A ManifestWork file keeps its name, labels and manifest configs; --watch
// returns once the agent reports Applied for it.
func TestApplyManifestWorkFileWatch(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	consumer := w.consumer(maestrotest.AgentOptions{})
	file := w.file("work.yaml", manifestWorkFile)
	results := filepath.Join(w.dir, "results.json")

	r := w.cli("apply", "--manifest-file", file, "--consumer", consumer, "--watch", "--timeout", "30s", "--results-path", results).want(t, exitOK)
	t.Logf("apply --watch took %s", r.took)
	containsAll(t, "stdout", r.stdout, "hyperfleet-cluster-1-nodepool", "Available")
	containsAll(t, "stderr (progress)", r.stderr, "generation 1", "condition met: Applied")

	got := readStatusResult(t, results)
	if got.Status != "Applied" || got.ManifestWorkName != "hyperfleet-cluster-1-nodepool" || got.Consumer != consumer {
		t.Errorf("results = %+v, want Applied for %s/hyperfleet-cluster-1-nodepool", got, consumer)
	}
	if len(got.Resources) != 2 || got.Resources[0].Kind != "Deployment" || got.Resources[0].Status != "Available" {
		t.Errorf("results resources = %+v, want the Deployment and the ConfigMap, Available", got.Resources)
	}
	if got.Resources[0].Feedback["ReadyReplicas"] != float64(2) {
		t.Errorf("Deployment feedback = %v, want ReadyReplicas 2 (WellKnownStatus)", got.Resources[0].Feedback)
	}

	stored := workJSON(t, w.cli("get", "--name", "hyperfleet-cluster-1-nodepool", "--consumer", consumer, "-o", "json").want(t, exitOK).stdout)
	if stored.Labels["hyperfleet.io/adapter"] != "nodepool" || len(stored.Spec.ManifestConfigs) != 1 || len(stored.Spec.Workload.Manifests) != 2 {
		t.Errorf("stored work lost the file's labels, configs or manifests: %+v", stored)
	}
	if stored.Spec.DeleteOption == nil || stored.Spec.DeleteOption.PropagationPolicy != workv1.DeletePropagationPolicyTypeForeground {
		t.Errorf("deleteOption = %+v, want Foreground by default", stored.Spec.DeleteOption)
	}

	// --name overrides the file's name.
	w.cli("apply", "--manifest-file", file, "--consumer", consumer, "--name", "renamed").want(t, exitOK)
	w.cli("get", "--name", "renamed", "--consumer", consumer).want(t, exitOK)
}

// Plain multi-document manifests are wrapped; changing them makes
// generation 2; applying the same file again changes nothing.
func TestApplyPlainManifestsUpdate(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	consumer := w.consumer(maestrotest.AgentOptions{})
	file := w.file("cms.yaml", twoConfigMaps)

	w.cli("apply", "-f", file, "--consumer", consumer, "--name", "plain", "--watch", "--condition", "Available").want(t, exitOK)
	first := workJSON(t, w.cli("get", "--name", "plain", "--consumer", consumer, "-o", "json").want(t, exitOK).stdout)
	if first.Generation != 1 || len(first.Spec.Workload.Manifests) != 2 {
		t.Fatalf("after the first apply: generation %d with %d manifests, want 1 with 2", first.Generation, len(first.Spec.Workload.Manifests))
	}

	w.file("cms.yaml", strings.Replace(twoConfigMaps, "key: two", "key: three", 1))
	r := w.cli("apply", "-f", file, "--consumer", consumer, "--name", "plain", "--watch", "--condition", "Available", "-o", "json").want(t, exitOK)
	second := workJSON(t, r.stdout)
	if second.Generation != 2 {
		t.Errorf("after the update: generation %d, want 2", second.Generation)
	}
	if c := meta.FindStatusCondition(second.Status.Conditions, workv1.WorkAvailable); c == nil || c.ObservedGeneration != 2 {
		t.Errorf("Available condition %+v, want one observed at generation 2", c)
	}
	if !strings.Contains(string(second.Spec.Workload.Manifests[1].Raw), `"three"`) {
		t.Errorf("second manifest %s, want the new data", second.Spec.Workload.Manifests[1].Raw)
	}

	w.cli("apply", "-f", file, "--consumer", consumer, "--name", "plain", "--watch").want(t, exitOK)
	again := workJSON(t, w.cli("get", "--name", "plain", "--consumer", consumer, "-o", "json").want(t, exitOK).stdout)
	if again.Generation != 2 {
		t.Errorf("re-applying the same file moved the work to generation %d, want it left at 2", again.Generation)
	}
}

// --watch with an agent slower than --timeout: exit 4, one line saying
// which work and what was last seen, and a Failed result.
func TestApplyWatchTimeout(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	consumer := w.consumer(maestrotest.AgentOptions{Delay: 10 * time.Minute})
	file := w.file("cms.yaml", twoConfigMaps)
	results := filepath.Join(w.dir, "results.json")

	r := w.cli("apply", "-f", file, "--consumer", consumer, "--name", "slow", "--watch", "--timeout", "2s",
		"--results-path", results, "--results-format", "status-reporter").want(t, exitTimeout)
	line := r.errorLine(t, "apply")
	containsAll(t, "error line", line, "timed out after 2s", consumer+"/slow", "Applied", "no status from the agent yet")
	if r.took > 10*time.Second {
		t.Errorf("took %s for a 2s timeout", r.took)
	}
	got := readAdapterResult(t, results)
	if got.Status != "failure" || got.Reason != reasonTimeout || !strings.Contains(got.Message, "timed out") {
		t.Errorf("results = %+v, want failure/Timeout", got)
	}
	if got.Details["manifestWorkName"] != "slow" || got.Details["exitCode"] != float64(exitTimeout) {
		t.Errorf("results details = %v", got.Details)
	}
	// The work was written all the same: only the wait ran out.
	w.cli("get", "--name", "slow", "--consumer", consumer).want(t, exitOK)
}

// The agent reporting failure ends the wait with exit 5: Applied=False for
// Applied, Degraded=True for Available.
func TestApplyWatchConditionFailed(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	consumer := "cli-" + suffix(t)
	w.consumerNamed(consumer, maestrotest.AgentOptions{Fail: func(mw *workv1.ManifestWork) error {
		switch mw.Name {
		case maestrotest.WorkID(w.sourceID, consumer, "broken"):
			return errors.New("admission webhook denied the ConfigMap")
		case maestrotest.WorkID(w.sourceID, consumer, "sickly"):
			return maestrotest.Degraded("pods crash-looping")
		}
		return nil
	}})
	file := w.file("cms.yaml", twoConfigMaps)
	results := filepath.Join(w.dir, "results.json")

	r := w.cli("apply", "-f", file, "--consumer", consumer, "--name", "broken", "--watch", "--results-path", results).want(t, exitCondition)
	containsAll(t, "error line", r.errorLine(t, "apply"), consumer+"/broken", "Applied=False", "admission webhook denied the ConfigMap")
	got := readStatusResult(t, results)
	if got.Status != "Failed" || got.Reason != reasonApplyFailed || len(got.Resources) != 2 || got.Resources[0].Status != "Failed" {
		t.Errorf("results = %+v, want Failed/ApplyFailed with failed resources", got)
	}

	// Degraded is applied (Applied is met) but not healthy (Available is not).
	w.cli("apply", "-f", file, "--consumer", consumer, "--name", "sickly", "--watch", "--condition", "Applied").want(t, exitOK)
	r = w.cli("apply", "-f", file, "--consumer", consumer, "--name", "sickly", "--watch", "--condition", "Available").want(t, exitCondition)
	containsAll(t, "error line", r.errorLine(t, "apply"), "Degraded=True", "pods crash-looping")
}

// Works belong to their source: the adapter's work is invisible to the
// CLI's default source, and updatable with the adapter's --source-id.
func TestApplySourceOwnership(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	consumer := w.consumer(maestrotest.AgentOptions{})
	file := w.file("cms.yaml", twoConfigMaps)
	w.cli("apply", "-f", file, "--consumer", consumer, "--name", "owned").want(t, exitOK)

	other := runCLI(t, w.env("MAESTRO_SOURCE_ID", w.sourceID+"-other"), "get", "--name", "owned", "--consumer", consumer).want(t, exitNotFound)
	containsAll(t, "error line", other.errorLine(t, "get"), "not found", "--source-id")
	// The flag wins over the variable.
	runCLI(t, w.env("MAESTRO_SOURCE_ID", "somebody-else"), "get", "--name", "owned", "--consumer", consumer, "--source-id", w.sourceID).want(t, exitOK)
}
