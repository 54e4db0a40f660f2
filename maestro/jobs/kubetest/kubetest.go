// Package kubetest connects tests to the local test control plane that
// deploy/local/kube/kube.sh runs: a real kube-apiserver with etcd, and a
// kube-controller-manager running only the namespace and garbage-collector
// controllers, so a deleted namespace really goes (after the namespace
// controller's fixed 5 s wait) and dependents of a deleted owner are
// collected. No other controller runs: a Job never gets pods, a Deployment
// never gets a ReplicaSet. No kubelet runs either, so tests stand in for the
// pod (and for the status-reporter writing the Job's status). Authorization
// is RBAC and the kubeconfig's user is in system:masters; impersonate another
// user to check what a service account may do.
//
// Typical use:
//
//	cfg := kubetest.Require(t) // skips, or fails under REQUIRE_INTEGRATION=1
//	cs := kubernetes.NewForConfigOrDie(cfg)
//	ns := kubetest.Namespace(t, cs)
//
// The environment comes from `eval "$(deploy/local/kube/kube.sh env)"`.
package kubetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Environment variables.
const (
	// EnvKubeconfig names the kubeconfig of the test control plane, as
	// printed by `kube.sh env`.
	EnvKubeconfig = "KUBECONFIG"
	// EnvRequireIntegration set to 1 turns a missing control plane into a
	// test failure instead of a skip (CI sets it so nothing silently skips).
	EnvRequireIntegration = "REQUIRE_INTEGRATION"
)

// readyTimeout bounds the reachability check in Require. The control plane
// is started (and waited for) before the tests, so this only has to cover a
// busy machine.
const readyTimeout = 10 * time.Second

// Require returns a client config for the local test control plane. When
// KUBECONFIG is unset the test is skipped, or fails if REQUIRE_INTEGRATION=1.
// A configured server that is not loopback fails the test: these tests create
// and leave namespaces, and must never do so in a real cluster that a
// developer's shell happens to point at. A configured server that does not
// answer /readyz fails too: configured but down is a broken setup, not a
// reason to skip.
func Require(t testing.TB) *rest.Config {
	t.Helper()
	path := os.Getenv(EnvKubeconfig)
	if path == "" {
		msg := fmt.Sprintf("no test control plane configured (%s unset); "+
			`run: deploy/local/kube/kube.sh start && eval "$(deploy/local/kube/kube.sh env)"`, EnvKubeconfig)
		if os.Getenv(EnvRequireIntegration) == "1" {
			t.Fatalf("%s=1 but %s", EnvRequireIntegration, msg)
		}
		t.Skip(msg)
	}
	cfg, err := Config(path)
	if err != nil {
		t.Fatalf("kubetest: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := Ready(ctx, cfg); err != nil {
		t.Fatalf("kubetest: test control plane from %s=%s is not ready (start it with deploy/local/kube/kube.sh start): %v",
			EnvKubeconfig, path, err)
	}
	return cfg
}

// Config loads the kubeconfig at path (its current context) and checks that
// it points at a loopback address. The client-side rate limit is raised from
// client-go's 5 requests/s: tests poll, and the server is theirs alone.
func Config(path string) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w", path, err)
	}
	u, err := url.Parse(cfg.Host)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: server %q: %w", path, cfg.Host, err)
	}
	if !loopback(u.Hostname()) {
		return nil, fmt.Errorf("kubeconfig %s points at %s, which is not a loopback address; "+
			"refusing to run tests against what may be a real cluster", path, cfg.Host)
	}
	cfg.QPS = 100
	cfg.Burst = 200
	return cfg, nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Ready asks the server's /readyz until it answers ok or ctx ends.
func Ready(ctx context.Context, cfg *rest.Config) error {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("client for %s: %w", cfg.Host, err)
	}
	var last error
	for {
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && strings.TrimSpace(string(body)) == "ok" {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("/readyz answered %q", body)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last error: %v)", cfg.Host, ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Namespace creates a namespace with a random name (prefix "kubetest-") and
// deletes it when the test ends, without waiting: the namespace controller
// empties and removes it some seconds later. The random name keeps tests
// and reruns apart meanwhile.
func Namespace(t testing.TB, cs kubernetes.Interface) string {
	t.Helper()
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("kubetest: random namespace name: %v", err)
	}
	name := "kubetest-" + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:   name,
		Labels: map[string]string{"app.kubernetes.io/managed-by": "kubetest"},
	}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("kubetest: create namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
		defer cancel()
		err := cs.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("kubetest: delete namespace %s: %v", name, err)
		}
	})
	return name
}
