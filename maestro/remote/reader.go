package remote

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-online/maestro/pkg/api/openapi"
	"github.com/openshift-online/maestro/pkg/client/cloudevents/grpcsource"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
)

// Reader reads works and consumers over Maestro's REST API alone, with the
// endpoint, credentials and timeouts of Options but no gRPC connection: for
// tools that only look (maestro-cli get, list, describe, validate). It sees
// the works of Options.SourceID only, as a Backend does.
//
// It does not retry: an unreachable Maestro fails the call at once with an
// error wrapping ErrUnreachable.
type Reader struct {
	opts      Options
	api       *openapi.APIClient
	http      *http.Client
	consumers *consumers
}

// Record is a work as Maestro's REST API holds it. Work.Generation is
// Maestro's version of it (what status conditions' ObservedGeneration is
// compared with; it starts at 1 again when a work is deleted and created
// anew). Work.CreationTimestamp is the work's own (second precision), or
// the bundle's creation time when it carries none; Work.DeletionTimestamp
// is set while the bundle waits for the agent to confirm a deletion.
type Record struct {
	Work *workv1.ManifestWork
	// ID is Maestro's resource bundle id (the work's name on the agent).
	ID        string
	CreatedAt time.Time
	UpdatedAt time.Time
	// DeletedAt is set while Maestro waits for the agent to confirm the
	// deletion.
	DeletedAt *time.Time
}

// NewReader validates opts (GRPCEndpoint may be empty) and returns a Reader.
func NewReader(opts Options) (*Reader, error) {
	if err := opts.validate(false); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	tlsCfg, tok, err := credentials(opts)
	if err != nil {
		return nil, fmt.Errorf("maestro reader: %w", err)
	}
	api, httpClient := restClient(opts, tlsCfg, tok)
	return &Reader{opts: opts, api: api, http: httpClient, consumers: newConsumers(api, opts.HTTPEndpoint, opts.ConsumerWait)}, nil
}

// Get returns the consumer's work of that name, or an error for which
// apierrors.IsNotFound is true.
func (r *Reader) Get(ctx context.Context, consumer, name string) (*Record, error) {
	id := workID(r.opts.SourceID, consumer, name)
	rb, resp, err := r.api.DefaultAPI.ApiMaestroV1ResourceBundlesIdGet(ctx, id).Execute()
	if resp != nil && resp.StatusCode == http.StatusNotFound {
		return nil, failure.Permanent(apierrors.NewNotFound(workv1.Resource("manifestworks"), consumer+"/"+name))
	}
	if err != nil {
		return nil, r.failed(fmt.Sprintf("getting work %s/%s", consumer, name), resp, err)
	}
	rec, err := toRecord(rb)
	if err != nil {
		return nil, failure.Permanent(fmt.Errorf("getting work %s/%s: decoding Maestro's resource bundle %s: %w", consumer, name, id, err))
	}
	return rec, nil
}

// List returns the works on consumer, or on every consumer when consumer is
// empty, ordered by consumer and name.
func (r *Reader) List(ctx context.Context, consumer string) ([]Record, error) {
	search := fmt.Sprintf("source='%s'", r.opts.SourceID)
	what := "listing works"
	if consumer != "" {
		if err := checkConsumerName(consumer); err != nil {
			return nil, err
		}
		search += fmt.Sprintf(" and consumer_name='%s'", consumer)
		what = fmt.Sprintf("listing works on %s", consumer)
	}
	list, _, err := grpcsource.PageList(ctx, newSDKLogger(r.opts.Logger), r.api, search, metav1.ListOptions{})
	if err != nil {
		return nil, r.failed(what, nil, err)
	}
	out := make([]Record, 0, len(list.Items))
	for i := range list.Items {
		rec, err := toRecord(&list.Items[i])
		if err != nil {
			return nil, failure.Permanent(fmt.Errorf("%s: decoding Maestro's resource bundle %s: %w", what, list.Items[i].GetId(), err))
		}
		out = append(out, *rec)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Work.Namespace != out[j].Work.Namespace {
			return out[i].Work.Namespace < out[j].Work.Namespace
		}
		return out[i].Work.Name < out[j].Work.Name
	})
	return out, nil
}

// CheckConsumer returns nil when Maestro knows the consumer, a Permanent
// error wrapping ErrConsumerNotRegistered when it does not, and an error
// wrapping ErrUnreachable when Maestro cannot be asked.
func (r *Reader) CheckConsumer(ctx context.Context, name string) error {
	err := r.consumers.check(ctx, name)
	if err != nil && unreachable(err) {
		return failure.Transient(fmt.Errorf("%w (REST %s): %w", ErrUnreachable, r.opts.HTTPEndpoint, err))
	}
	return err
}

// Close releases idle connections.
func (r *Reader) Close() { r.http.CloseIdleConnections() }

// failed classifies a REST failure: unreachable, a credential problem
// (Transient, wrapping maestro.ErrAuthentication), or Maestro's refusal.
func (r *Reader) failed(what string, resp *http.Response, err error) error {
	if resp != nil && resp.Body != nil {
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	switch {
	case unreachable(err):
		return failure.Transient(fmt.Errorf("%s: %w (REST %s): %w", what, ErrUnreachable, r.opts.HTTPEndpoint, err))
	case resp != nil && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden):
		// Credentials rotate: a refusal now may pass on the next try.
		return failure.Transient(fmt.Errorf("%s at %s: %w: HTTP %d (check %s): %w", what, r.opts.HTTPEndpoint,
			maestro.ErrAuthentication, resp.StatusCode, EnvTokenFile, err))
	case resp != nil:
		return failure.Transient(fmt.Errorf("%s at %s: HTTP %d: %w", what, r.opts.HTTPEndpoint, resp.StatusCode, err))
	default:
		return failure.Transient(fmt.Errorf("%s at %s: %w", what, r.opts.HTTPEndpoint, err))
	}
}

func checkConsumerName(name string) error {
	// The name is quoted into a search expression: refuse what is not a
	// consumer name before it gets there.
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		return failure.Permanentf("Maestro consumer %q is not a valid consumer name: %s", name, errs[0])
	}
	return nil
}

func toRecord(rb *openapi.ResourceBundle) (*Record, error) {
	if rb.Version == nil {
		// grpcsource.ToManifestWork dereferences it.
		return nil, fmt.Errorf("resource bundle %s has no version", rb.GetId())
	}
	w, err := grpcsource.ToManifestWork(rb)
	if err != nil {
		return nil, err
	}
	rec := &Record{Work: w, ID: rb.GetId(), CreatedAt: rb.GetCreatedAt(), UpdatedAt: rb.GetUpdatedAt()}
	if w.Name == "" {
		w.Name = rb.GetName()
	}
	if w.Namespace == "" {
		w.Namespace = rb.GetConsumerName()
	}
	if !rec.CreatedAt.IsZero() && w.CreationTimestamp.IsZero() {
		w.CreationTimestamp = metav1.NewTime(rec.CreatedAt)
	}
	if rb.DeletedAt != nil && !rb.DeletedAt.IsZero() {
		d := *rb.DeletedAt
		rec.DeletedAt = &d
		if w.DeletionTimestamp == nil {
			w.DeletionTimestamp = &metav1.Time{Time: d}
		}
	}
	return rec, nil
}
