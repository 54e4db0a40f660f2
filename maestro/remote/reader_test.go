package remote_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/maestrotest"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/remote"
)

// The Reader sees what a Backend of the same source wrote, over REST only,
// with the bundle's times; other sources' works stay invisible.
func TestReader(t *testing.T) {
	env := maestrotest.Require(t)
	source := "reader-" + randomSuffix(t)
	consumer := "reader-" + randomSuffix(t)
	startAgents(t, env, maestrotest.AgentOptions{}, consumer)
	b := newBackend(t, env, source, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	before := time.Now().Add(-time.Minute)
	for _, name := range []string{"b-work", "a-work"} {
		if _, err := b.Apply(ctx, work(t, consumer, name, 1)); err != nil {
			t.Fatal(err)
		}
	}

	// No gRPC endpoint needed.
	r, err := remote.NewReader(remote.Options{HTTPEndpoint: env.HTTPEndpoint, SourceID: source, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	rec, err := r.Get(ctx, consumer, "a-work")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Work.Name != "a-work" || rec.Work.Namespace != consumer || rec.Work.Generation != 1 || rec.ID != maestrotest.WorkID(source, consumer, "a-work") {
		t.Errorf("record = %+v / %+v", rec.Work.ObjectMeta, rec)
	}
	if rec.CreatedAt.Before(before) || rec.UpdatedAt.Before(rec.CreatedAt) || !rec.Work.CreationTimestamp.Time.Equal(rec.CreatedAt.Truncate(time.Second)) || rec.DeletedAt != nil {
		t.Errorf("times: created %s updated %s creationTimestamp %s deleted %v", rec.CreatedAt, rec.UpdatedAt, rec.Work.CreationTimestamp, rec.DeletedAt)
	}

	list, err := r.List(ctx, consumer)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Work.Name != "a-work" || list[1].Work.Name != "b-work" {
		t.Errorf("list = %d records, want a-work and b-work in order", len(list))
	}

	if _, err := r.Get(ctx, consumer, "missing"); !apierrors.IsNotFound(err) {
		t.Errorf("Get of a missing work: %v, want NotFound", err)
	}
	other, err := remote.NewReader(remote.Options{HTTPEndpoint: env.HTTPEndpoint, SourceID: source + "-other"})
	if err != nil {
		t.Fatal(err)
	}
	if list, err := other.List(ctx, consumer); err != nil || len(list) != 0 {
		t.Errorf("another source lists %d works (%v), want none", len(list), err)
	}

	if err := r.CheckConsumer(ctx, consumer); err != nil {
		t.Errorf("CheckConsumer of a registered consumer: %v", err)
	}
	err = r.CheckConsumer(ctx, "nobody-"+randomSuffix(t))
	if !errors.Is(err, remote.ErrConsumerNotRegistered) || !failure.IsPermanent(err) {
		t.Errorf("CheckConsumer of an unknown consumer: %v, want a Permanent ErrConsumerNotRegistered", err)
	}
	if _, err := r.List(ctx, "Not_A_Consumer"); !failure.IsPermanent(err) {
		t.Errorf("List of an invalid consumer name: %v, want Permanent", err)
	}
}

func TestReaderUnreachable(t *testing.T) {
	addr := closedAddr(t)
	r, err := remote.NewReader(remote.Options{HTTPEndpoint: "http://" + addr, SourceID: "s"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for op, err := range map[string]error{
		"Get":           func() error { _, err := r.Get(ctx, "c", "w"); return err }(),
		"List":          func() error { _, err := r.List(ctx, ""); return err }(),
		"CheckConsumer": r.CheckConsumer(ctx, "c"),
	} {
		if !errors.Is(err, remote.ErrUnreachable) || failure.IsPermanent(err) || !strings.Contains(err.Error(), addr) {
			t.Errorf("%s: %v, want a transient ErrUnreachable naming %s", op, err, addr)
		}
	}

	if _, err := remote.NewReader(remote.Options{SourceID: "s"}); err == nil || !strings.Contains(err.Error(), remote.EnvHTTPEndpoint) {
		t.Errorf("NewReader without an endpoint: %v, want an error naming %s", err, remote.EnvHTTPEndpoint)
	}
}

// A Maestro that refuses the credentials (the local server authenticates
// nothing, so an httptest server answers 401 and 403 as Maestro's
// authenticating front does) fails the call transiently, naming
// authentication and the token setting: a rotated token is read on the next
// try.
func TestCredentialRefusalIsTransient(t *testing.T) {
	for _, code := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			_, _ = w.Write([]byte(`{"kind":"Error","reason":"token rejected"}`))
		}))
		t.Cleanup(srv.Close)
		r, err := remote.NewReader(remote.Options{HTTPEndpoint: srv.URL, SourceID: "s"})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		for op, err := range map[string]error{
			"Get":           func() error { _, err := r.Get(ctx, "c", "w"); return err }(),
			"CheckConsumer": r.CheckConsumer(ctx, "c"),
		} {
			if failure.IsPermanent(err) || !errors.Is(err, maestro.ErrAuthentication) ||
				!strings.Contains(err.Error(), "authentication") || !strings.Contains(err.Error(), remote.EnvTokenFile) {
				t.Errorf("HTTP %d, %s: %v, want a transient error naming authentication and %s", code, op, err, remote.EnvTokenFile)
			}
		}
	}
}
