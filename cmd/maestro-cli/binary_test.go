package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro/maestrotest"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
	// binDir is removed by TestMain.
	binDir string
)

// buildBinary builds the CLI as the Dockerfile does, version stamped, once
// per test binary.
func buildBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "maestro-cli-test-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "maestro-cli")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=v9.9.9-test", "-o", binPath, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func environ(env map[string]string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MAESTRO_") && !strings.HasPrefix(kv, "RESULTS_") {
			out = append(out, kv)
		}
	}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// The Job path: the built binary, configured by environment variables as
// the spike's Job template does, applies and waits, and leaves the result.
func TestBinary(t *testing.T) {
	w := newWorld(t)
	bin := buildBinary(t)

	out, err := exec.Command(bin, "version").Output()
	if err != nil || strings.TrimSpace(string(out)) != "v9.9.9-test" {
		t.Fatalf("version = %q (%v), want v9.9.9-test", out, err)
	}
	help, err := exec.Command(bin, "--help").Output()
	if err != nil {
		t.Fatal(err)
	}
	containsAll(t, "--help", string(help), "exit codes:", "130  interrupted", "RESULTS_PATH", "--results-format")

	consumer := w.consumer(maestrotest.AgentOptions{})
	file := w.file("manifest.yaml", twoConfigMaps)
	results := filepath.Join(w.dir, "results.json")
	cmd := exec.Command(bin, "apply", "--manifest-file="+file, "--consumer="+consumer, "--name=job-work", "--watch", "--timeout=1m")
	cmd.Env = environ(w.env("RESULTS_PATH", results))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	took := time.Since(start)
	t.Logf("binary apply --watch: %s\nstdout:\n%s\nstderr:\n%s", took, stdout.String(), stderr.String())
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	if got := readStatusResult(t, results); got.Status != "Applied" || got.ManifestWorkName != "job-work" || len(got.Resources) != 2 {
		t.Errorf("result = %+v", got)
	}
	if strings.Contains(stderr.String(), "ERR") {
		t.Errorf("a successful run logged errors:\n%s", stderr.String())
	}

	// A failure's exit code reaches the process.
	cmd = exec.Command(bin, "get", "--name=nope", "--consumer="+consumer)
	cmd.Env = environ(w.env())
	var exitErr *exec.ExitError
	if err := cmd.Run(); !errors.As(err, &exitErr) || exitErr.ExitCode() != exitNotFound {
		t.Errorf("get of a missing work: %v, want exit %d", err, exitNotFound)
	}
}

// SIGTERM (a Job's deadline, a deleted pod) ends a wait with exit 130 and
// an Interrupted result.
func TestBinaryInterrupted(t *testing.T) {
	w := newWorld(t)
	bin := buildBinary(t)
	consumer := w.consumer(maestrotest.AgentOptions{})
	results := filepath.Join(w.dir, "results.json")

	cmd := exec.Command(bin, "wait", "--name=never", "--consumer="+consumer, "--condition=Available", "--timeout=2m",
		"--results-path="+results, "--results-format=status-reporter")
	cmd.Env = environ(w.env())
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Signal once it is waiting: it says so on stderr.
	sc := bufio.NewScanner(stderr)
	var lines []string
	waiting := false
	for !waiting && sc.Scan() {
		lines = append(lines, sc.Text())
		waiting = strings.Contains(sc.Text(), "does not exist")
	}
	if !waiting {
		_ = cmd.Process.Kill()
		t.Fatalf("the wait never started:\n%s", strings.Join(lines, "\n"))
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	err = cmd.Wait()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != exitInterrupted {
		t.Fatalf("wait after SIGTERM: %v, want exit %d\n%s", err, exitInterrupted, strings.Join(lines, "\n"))
	}
	containsAll(t, "last stderr line", lines[len(lines)-1], "maestro-cli wait: interrupted", consumer+"/never")
	if got := readAdapterResult(t, results); got.Status != "failure" || got.Reason != reasonInterrupted {
		t.Errorf("result = %+v, want failure/Interrupted", got)
	}
}
