package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openshift-online/maestro/pkg/api/openapi"
	"github.com/openshift-online/maestro/pkg/client/cloudevents/grpcsource"
	"github.com/openshift-online/ocm-sdk-go/logging"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubetypes "k8s.io/apimachinery/pkg/types"
	workv1client "open-cluster-management.io/api/client/work/clientset/versioned/typed/work/v1"
	workv1 "open-cluster-management.io/api/work/v1"
	grpcoptions "open-cluster-management.io/sdk-go/pkg/cloudevents/generic/options/grpc"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro/maestrotest"
)

// rawSDK is the raw Maestro baseline: Maestro's own gRPC source client
// (what any source uses), with none of the adapter's layers. It creates a
// work, and patches it with a JSON merge patch of its new labels,
// annotations and spec, the least a source can do; the status comes from
// the client's watch.
//
// Every call names the same consumer. The client keeps one namespace field
// that ManifestWorks sets and every call reads (the reason the adapter's
// maestro.SourceDelivery serialises its calls); with one consumer every
// goroutine writes the same value, so calls can overlap here, as a source
// serving one consumer would let them.
type rawSDK struct {
	client   workv1client.WorkV1Interface
	consumer string

	mu      sync.Mutex
	waiters map[string]*sdkWaiter // by work name
	// reread counts applies whose status came from a read after the watch
	// stayed silent (see apply).
	reread atomic.Int64
}

type sdkWaiter struct {
	generation string // workmeta.AnnotationGeneration wanted
	done       chan struct{}
	once       sync.Once
}

func newRawSDK(t testing.TB, env maestrotest.Env, sourceID, consumer string) *rawSDK {
	t.Helper()
	cfg := openapi.NewConfiguration()
	cfg.Servers = openapi.ServerConfigurations{{URL: strings.TrimRight(env.HTTPEndpoint, "/")}}
	cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	api := openapi.NewAPIClient(cfg)
	dialer := &grpcoptions.GRPCDialer{URL: env.GRPCEndpoint}
	ctx, cancel := context.WithCancel(context.Background())
	client, err := grpcsource.NewMaestroGRPCSourceWorkClient(ctx, quietLogger{}, api, &grpcoptions.GRPCOptions{Dialer: dialer}, sourceID)
	if err != nil {
		cancel()
		t.Fatalf("Maestro source client: %v", err)
	}
	r := &rawSDK{client: client, consumer: consumer, waiters: map[string]*sdkWaiter{}}
	w, err := client.ManifestWorks(consumer).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		cancel()
		t.Fatalf("watching works of %s: %v", consumer, err)
	}
	// The client's watcher closes its result channel only on a second
	// Stop (the first marks it stopped), and a second Stop while a send is
	// pending would panic that send: so the reader ends on its own signal.
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case ev, ok := <-w.ResultChan():
				if !ok {
					return
				}
				if work, ok := ev.Object.(*workv1.ManifestWork); ok {
					r.offer(work)
				}
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done; w.Stop(); cancel(); _ = dialer.Close() })
	return r
}

// offer wakes the waiter of w once w's status says Applied and Available
// at the work's current version, for the resource generation it waits for.
func (r *rawSDK) offer(w *workv1.ManifestWork) {
	r.mu.Lock()
	wt := r.waiters[w.Name]
	r.mu.Unlock()
	if wt != nil && w.Annotations[workmeta.AnnotationGeneration] == wt.generation && maestro.StatusSettled(w) {
		wt.once.Do(func() { close(wt.done) })
	}
}

// apply creates (generation 1) or patches (later generations) w and waits
// until the agent reports it Applied and Available.
func (r *rawSDK) apply(ctx context.Context, w *workv1.ManifestWork, create bool) (time.Duration, error) {
	return r.applyWithin(ctx, w, create, eventTimeout)
}

// errNoStatus: Maestro accepted the write, but the work never reached
// Applied and Available at its generation within the deadline, neither on
// the watch nor when read.
var errNoStatus = errors.New("no Applied and Available status")

// applyWithin is apply with its own deadline. On a missed deadline the
// error wraps errNoStatus and says what a final read found.
func (r *rawSDK) applyWithin(ctx context.Context, w *workv1.ManifestWork, create bool, timeout time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	wt := &sdkWaiter{generation: w.Annotations[workmeta.AnnotationGeneration], done: make(chan struct{})}
	r.mu.Lock()
	r.waiters[w.Name] = wt
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		if r.waiters[w.Name] == wt {
			delete(r.waiters, w.Name)
		}
		r.mu.Unlock()
	}()
	var patch []byte
	if !create {
		var err error
		patch, err = json.Marshal(map[string]any{
			"metadata": map[string]any{"labels": w.Labels, "annotations": w.Annotations},
			"spec":     w.Spec,
		})
		if err != nil {
			return 0, err
		}
	}
	start := time.Now()
	var err error
	if create {
		_, err = r.client.ManifestWorks(r.consumer).Create(ctx, w, metav1.CreateOptions{})
	} else {
		// Past capacity Maestro may not have stored the create yet when the
		// patch reads the work (the client's Patch reads it over REST): a
		// raw user retries, and the wait counts in the latency.
		for {
			_, err = r.client.ManifestWorks(r.consumer).Patch(ctx, w.Name, kubetypes.MergePatchType, patch, metav1.PatchOptions{})
			if !apierrors.IsNotFound(err) || ctx.Err() != nil {
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	if err != nil {
		return 0, fmt.Errorf("raw Maestro: %s work %s: %w", map[bool]string{true: "create", false: "patch"}[create], w.Name, err)
	}
	// The watch is the only source of status here, as for any source
	// client. Under load the client can drop an update (a status that
	// lands before Create has put the work in its cache is overwritten by
	// it); a raw user would then read the work, so after a silence this
	// does too, and counts it.
	silence := time.NewTimer(rawSilence)
	defer silence.Stop()
	for {
		select {
		case <-wt.done:
			return time.Since(start), nil
		case <-ctx.Done():
			return 0, fmt.Errorf("raw Maestro: work %s at generation %s: %w within %s (%s)", w.Name, wt.generation, errNoStatus, timeout, r.describe(w.Name))
		case <-silence.C:
			got, err := r.client.ManifestWorks(r.consumer).Get(ctx, w.Name, metav1.GetOptions{})
			if err == nil && got.Annotations[workmeta.AnnotationGeneration] == wt.generation && maestro.StatusSettled(got) {
				r.reread.Add(1)
				return time.Since(start), nil
			}
			silence.Reset(time.Second)
		}
	}
}

// describe reads the work once more and says what Maestro has.
func (r *rawSDK) describe(name string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := r.client.ManifestWorks(r.consumer).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "read: " + err.Error()
	}
	var conds []string
	for _, c := range got.Status.Conditions {
		conds = append(conds, fmt.Sprintf("%s=%s@%d", c.Type, c.Status, c.ObservedGeneration))
	}
	return fmt.Sprintf("Maestro has it at version %d, generation annotation %s, conditions [%s]",
		got.Generation, got.Annotations[workmeta.AnnotationGeneration], strings.Join(conds, " "))
}

// rawSilence is how long the raw client waits on its watch before it
// reads the work: far above its p99 when the machine is not overloaded.
const rawSilence = 5 * time.Second

// quietLogger drops the source client's logs: they would only interleave
// with the harness's output.
type quietLogger struct{}

var _ logging.Logger = quietLogger{}

func (quietLogger) DebugEnabled() bool                    { return false }
func (quietLogger) InfoEnabled() bool                     { return false }
func (quietLogger) WarnEnabled() bool                     { return false }
func (quietLogger) ErrorEnabled() bool                    { return false }
func (quietLogger) Debug(context.Context, string, ...any) {}
func (quietLogger) Info(context.Context, string, ...any)  {}
func (quietLogger) Warn(context.Context, string, ...any)  {}
func (quietLogger) Error(context.Context, string, ...any) {}
func (quietLogger) Fatal(context.Context, string, ...any) {}
