package remote_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/maestrotest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/remote"
)

func work(t testing.TB, consumer, name string, gen int64) *workv1.ManifestWork {
	t.Helper()
	raw, err := json.Marshal(map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": name, "namespace": "default"},
		"data":     map[string]any{"generation": gen},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &workv1.ManifestWork{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: consumer,
			Labels:      map[string]string{workmeta.LabelAdapter: "remote-test"},
			Annotations: map[string]string{workmeta.AnnotationGeneration: itoa(gen)}},
		Spec: workv1.ManifestWorkSpec{Workload: workv1.ManifestsTemplate{
			Manifests: []workv1.Manifest{{RawExtension: runtime.RawExtension{Raw: raw}}}}},
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// closedAddr returns a local address nothing listens on.
func closedAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

func TestReadyAgainstTheLocalServer(t *testing.T) {
	env := maestrotest.Require(t)
	b := newBackend(t, env, "ready-"+randomSuffix(t), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
}

// A work for a consumer Maestro does not know is refused before anything
// is sent, permanently, naming the consumer; registering the consumer
// makes the next apply work (negative answers are not cached).
func TestUnregisteredConsumerIsPermanent(t *testing.T) {
	env := maestrotest.Require(t)
	suffix := randomSuffix(t)
	b := newBackend(t, env, "unregistered-"+suffix, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	consumer := "not-registered-" + suffix
	_, err := b.Apply(ctx, work(t, consumer, "w", 1))
	if err == nil {
		t.Fatal("apply to an unregistered consumer succeeded")
	}
	if !failure.IsPermanent(err) || !errors.Is(err, remote.ErrConsumerNotRegistered) {
		t.Fatalf("error %v: want Permanent and ErrConsumerNotRegistered", err)
	}
	want := `Maestro consumer "` + consumer + `" is not registered`
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
	if _, err := b.Get(ctx, consumer, "w"); !apierrors.IsNotFound(err) {
		t.Fatalf("Get after the refused apply: %v, want NotFound", err)
	}

	startAgents(t, env, maestrotest.AgentOptions{}, consumer)
	if _, err := b.Apply(ctx, work(t, consumer, "w", 1)); err != nil {
		t.Fatalf("apply after registering the consumer: %v", err)
	}
	t.Cleanup(func() { _ = b.Delete(context.Background(), consumer, "w") })
}

// With ConsumerWait, a consumer Maestro does not know is waited for: the
// apply fails transiently, saying how long it waits (CONSUMER_WAIT), until
// that time has passed since it was first found missing; then permanently.
func TestUnregisteredConsumerIsWaitedFor(t *testing.T) {
	env := maestrotest.Require(t)
	suffix := randomSuffix(t)
	const wait = time.Second
	b := newBackend(t, env, "waited-"+suffix, func(o *remote.Options) { o.ConsumerWait = wait })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	consumer := "not-yet-" + suffix
	start := time.Now()
	_, err := b.Apply(ctx, work(t, consumer, "w", 1))
	if failure.IsPermanent(err) || !errors.Is(err, remote.ErrConsumerNotRegistered) || !strings.Contains(err.Error(), remote.EnvConsumerWait) {
		t.Fatalf("first apply: %v, want a transient ErrConsumerNotRegistered naming %s", err, remote.EnvConsumerWait)
	}
	for {
		_, err = b.Apply(ctx, work(t, consumer, "w", 1))
		if failure.IsPermanent(err) {
			break
		}
		if !errors.Is(err, remote.ErrConsumerNotRegistered) || time.Since(start) > 10*wait {
			t.Fatalf("apply after %s: %v, want ErrConsumerNotRegistered, permanent after %s", time.Since(start), err, wait)
		}
		time.Sleep(100 * time.Millisecond) // polling a condition with a deadline
	}
	if waited := time.Since(start); waited < wait || !errors.Is(err, remote.ErrConsumerNotRegistered) {
		t.Fatalf("permanent after %s (want at least %s): %v", waited, wait, err)
	}
}

func TestInvalidConsumerNameIsPermanent(t *testing.T) {
	env := maestrotest.Require(t)
	b := newBackend(t, env, "invalid-"+randomSuffix(t), nil)
	_, err := b.Apply(context.Background(), work(t, "Bad'Name", "w", 1))
	if !failure.IsPermanent(err) || !strings.Contains(err.Error(), `"Bad'Name"`) {
		t.Fatalf("error %v: want Permanent naming the consumer", err)
	}
}

// With Maestro unreachable, New still succeeds (the adapter can start
// first), Ready says what is down, and every call retries for
// UnavailableTimeout, then fails transiently naming both endpoints.
func TestUnreachableMaestro(t *testing.T) {
	grpcAddr, httpAddr := closedAddr(t), closedAddr(t)
	const patience = 400 * time.Millisecond
	b := newBackend(t, maestrotest.Env{GRPCEndpoint: grpcAddr, HTTPEndpoint: "http://" + httpAddr}, "unreachable", func(o *remote.Options) {
		o.DialTimeout = 200 * time.Millisecond
		o.UnavailableTimeout = patience
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	err := b.Ready(ctx)
	if err == nil || !strings.Contains(err.Error(), grpcAddr) || !strings.Contains(err.Error(), httpAddr) {
		t.Fatalf("Ready: %v, want an error naming both endpoints", err)
	}

	check := func(op string, err error, took time.Duration) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s succeeded against a closed port", op)
		}
		if failure.IsPermanent(err) {
			t.Errorf("%s: %v is Permanent; an unreachable server is worth retrying", op, err)
		}
		for _, want := range []string{"Maestro is unreachable", grpcAddr, httpAddr, "connection refused"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q does not mention %q", op, err, want)
			}
		}
		if took < patience || took > patience+3*time.Second {
			t.Errorf("%s failed after %s; want it to retry for about %s", op, took, patience)
		}
	}
	start := time.Now()
	_, err = b.Apply(ctx, work(t, "cluster-a", "w", 1))
	check("Apply", err, time.Since(start))
	start = time.Now()
	_, err = b.Get(ctx, "cluster-a", "w")
	check("Get", err, time.Since(start))
	start = time.Now()
	err = b.Delete(ctx, "cluster-a", "w")
	check("Delete", err, time.Since(start))
}

// A cancelled caller is not kept waiting for an unreachable Maestro.
func TestUnreachableMaestroHonoursContext(t *testing.T) {
	b := newBackend(t, maestrotest.Env{GRPCEndpoint: closedAddr(t), HTTPEndpoint: "http://" + closedAddr(t)}, "unreachable", func(o *remote.Options) {
		o.DialTimeout = 100 * time.Millisecond
		o.UnavailableTimeout = time.Minute
	})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := b.Apply(ctx, work(t, "cluster-a", "w", 1))
	if err == nil || failure.IsPermanent(err) {
		t.Fatalf("Apply: %v, want a transient error", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Apply returned %s after its context ended", took)
	}
}

// spec.deleteOption comes from DeletePropagation: Foreground by default,
// Orphan when configured, and a work's own choice is kept.
func TestDeletePropagation(t *testing.T) {
	env := maestrotest.Require(t)
	suffix := randomSuffix(t)
	consumer := "remote-del-" + suffix
	startAgents(t, env, maestrotest.AgentOptions{}, consumer)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name  string
		opt   workv1.DeletePropagationPolicyType
		own   *workv1.DeleteOption
		wantP workv1.DeletePropagationPolicyType
	}{
		{"default", "", nil, workv1.DeletePropagationPolicyTypeForeground},
		{"orphan", workv1.DeletePropagationPolicyTypeOrphan, nil, workv1.DeletePropagationPolicyTypeOrphan},
		{"own", workv1.DeletePropagationPolicyTypeOrphan,
			&workv1.DeleteOption{PropagationPolicy: workv1.DeletePropagationPolicyTypeForeground}, workv1.DeletePropagationPolicyTypeForeground},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(t, env, "del-"+suffix+"-"+tc.name, func(o *remote.Options) { o.DeletePropagation = tc.opt })
			w := work(t, consumer, "w", 1)
			w.Spec.DeleteOption = tc.own
			if _, err := b.Apply(ctx, w); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = b.Delete(context.Background(), consumer, "w") })
			got, err := b.Get(ctx, consumer, "w")
			if err != nil {
				t.Fatal(err)
			}
			if got.Spec.DeleteOption == nil || got.Spec.DeleteOption.PropagationPolicy != tc.wantP {
				t.Fatalf("stored deleteOption %+v, want %s", got.Spec.DeleteOption, tc.wantP)
			}
		})
	}
}

// REST answers but the gRPC server does not: reads work, the write (a
// publish over gRPC) retries, then fails transiently naming the endpoint.
func TestUnreachableGRPC(t *testing.T) {
	env := maestrotest.Require(t)
	suffix := randomSuffix(t)
	consumer := "remote-nogrpc-" + suffix
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := maestrotest.RegisterConsumer(ctx, env.HTTPEndpoint, consumer); err != nil {
		t.Fatal(err)
	}
	grpcAddr := closedAddr(t)
	const patience = 400 * time.Millisecond
	b := newBackend(t, maestrotest.Env{GRPCEndpoint: grpcAddr, HTTPEndpoint: env.HTTPEndpoint}, "nogrpc-"+suffix, func(o *remote.Options) {
		o.DialTimeout = 200 * time.Millisecond
		o.UnavailableTimeout = patience
	})
	err := b.Ready(ctx)
	if err == nil || !strings.Contains(err.Error(), "gRPC server at "+grpcAddr) || strings.Contains(err.Error(), "REST") {
		t.Fatalf("Ready: %v, want only the gRPC endpoint named", err)
	}
	if _, err := b.Get(ctx, consumer, "w"); !apierrors.IsNotFound(err) {
		t.Fatalf("Get over REST: %v, want NotFound", err)
	}
	start := time.Now()
	_, err = b.Apply(ctx, work(t, consumer, "w", 1))
	took := time.Since(start)
	if err == nil || failure.IsPermanent(err) {
		t.Fatalf("Apply: %v, want a transient error", err)
	}
	for _, want := range []string{"Maestro is unreachable", grpcAddr} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if took < patience {
		t.Errorf("Apply gave up after %s; want it to retry for about %s", took, patience)
	}
}
