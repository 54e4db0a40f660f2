package remote_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/maestrotest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/remote"
)

// workReads counts the REST reads of single works (GET
// /api/maestro/v1/resource-bundles/{id}) going through a proxy in front of
// the local Maestro's REST API.
type workReads struct{ n atomic.Int64 }

func (r *workReads) proxy(t *testing.T, target string) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodGet && strings.HasPrefix(req.URL.Path, "/api/maestro/v1/resource-bundles/") {
			r.n.Add(1)
		}
		rp.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// Direct delivery reads a work over REST only where its watch-fed cache
// cannot know it: the first apply after start (a miss) and after Maestro
// refused a patch built on a stale copy. Creating, patching and answering
// "unchanged" read nothing, "unchanged" comes with the status the watch
// delivered, and the generation guard holds on cached copies.
//
// The stand-in agent serves here: what is counted is the adapter's reads,
// and the test must stop the agent so that another writer's change does
// not come back on the watch.
func TestApplyReadsOnlyWhatTheWatchCannotKnow(t *testing.T) {
	env := maestrotest.Require(t)
	suffix := randomSuffix(t)
	source, consumer, name := "cache-"+suffix, "cache-"+suffix, "w"
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := maestrotest.RegisterConsumer(ctx, env.HTTPEndpoint, consumer); err != nil {
		t.Fatal(err)
	}
	agent, err := maestrotest.StartAgent(context.Background(), env.GRPCBrokerEndpoint, consumer,
		maestrotest.AgentOptions{Logf: maestrotest.TestLogf(t, "agent: ")})
	if err != nil {
		t.Fatal(err)
	}
	stopAgent := sync1(agent.Stop)
	t.Cleanup(stopAgent)

	var reads workReads
	b := newBackend(t, env, source, func(o *remote.Options) { o.HTTPEndpoint = reads.proxy(t, env.HTTPEndpoint) })
	events, err := b.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range events { // the cache is fed before the subscribers
		}
	}()

	apply := func(gen int64) (*workv1.ManifestWork, int64, error) {
		t.Helper()
		before := reads.n.Load()
		got, err := b.Apply(ctx, work(t, consumer, name, gen))
		return got, reads.n.Load() - before, err
	}

	created, n, err := apply(1)
	if err != nil || n != 1 {
		t.Fatalf("create: %d REST reads (want 1: the miss), err %v", n, err)
	}
	// Wait for the agent's status to reach the cache through the watch.
	waitFor(t, 30*time.Second, "the agent's status on the watch", func() (bool, string) {
		w, ok := b.Cached(consumer, name)
		if !ok {
			return false, "not cached"
		}
		return maestro.StatusSettled(w), fmt.Sprintf("generation %d, conditions %+v", w.Generation, w.Status.Conditions)
	})
	same, n, err := apply(1)
	if err != nil || n != 0 {
		t.Fatalf("unchanged: %d REST reads (want 0), err %v", n, err)
	}
	if same.Generation != created.Generation || !maestro.StatusSettled(same) {
		t.Fatalf("unchanged answered without the status the watch delivered: %+v", same.Status.Conditions)
	}
	patched, n, err := apply(2)
	if err != nil || n != 0 || patched.Generation != created.Generation+1 {
		t.Fatalf("patch: %d REST reads (want 0), Maestro generation %d (want %d), err %v",
			n, patched.Generation, created.Generation+1, err)
	}

	// Another writer of the same source moves the work on while no status
	// comes back: this backend's copy is now stale.
	stopAgent()
	other := newBackend(t, env, source, nil)
	if _, err := other.Apply(ctx, work(t, consumer, name, 3)); err != nil {
		t.Fatal(err)
	}
	got, n, err := apply(4)
	if err != nil || n != 1 || got.Generation != patched.Generation+2 || got.Annotations[workmeta.AnnotationGeneration] != "4" {
		t.Fatalf("patch on a stale copy: %d REST reads (want 1: after the refusal), Maestro generation %d (want %d), err %v",
			n, got.Generation, patched.Generation+2, err)
	}
	_, n, err = apply(3)
	if !errors.Is(err, workmeta.ErrStaleGeneration) || n != 0 {
		t.Fatalf("older generation: %d REST reads (want 0), err %v (want ErrStaleGeneration)", n, err)
	}
}

// sync1 makes f safe to call twice.
func sync1(f func()) func() {
	var done atomic.Bool
	return func() {
		if done.CompareAndSwap(false, true) {
			f()
		}
	}
}
