package remote

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	workv1client "open-cluster-management.io/api/client/work/clientset/versioned/typed/work/v1"
	workv1 "open-cluster-management.io/api/work/v1"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/common"
	cloudeventserrors "open-cluster-management.io/sdk-go/pkg/cloudevents/clients/errors"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/store"
	clientutils "open-cluster-management.io/sdk-go/pkg/cloudevents/clients/utils"
	workpayload "open-cluster-management.io/sdk-go/pkg/cloudevents/clients/work/payload"
	sourceclient "open-cluster-management.io/sdk-go/pkg/cloudevents/clients/work/source/client"
	sourcecodec "open-cluster-management.io/sdk-go/pkg/cloudevents/clients/work/source/codec"
	ceclients "open-cluster-management.io/sdk-go/pkg/cloudevents/generic/clients"
	grpcoptions "open-cluster-management.io/sdk-go/pkg/cloudevents/generic/options/grpc"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/generic/types"
	"open-cluster-management.io/sdk-go/pkg/logging"

	"github.com/openshift-online/maestro/pkg/api/openapi"
	"github.com/openshift-online/maestro/pkg/client/cloudevents/grpcsource"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
)

// The write path. grpcsource's client reads the work over REST inside
// every Create (sdk-go clients/work/source/client ManifestWorkSourceClient.Create:
// its existence check, watcherStore.Get) and every Patch (the same Get,
// for the work to apply the patch to), and its store
// (grpcsource.RESTFulAPIWatcherStore.Get) always asks the REST API. Apply
// has just decided on what it knows of the work (its watch-fed cache, or
// its own read), so that second read is pure cost: a round trip and a
// decode per delivery. The store cannot be replaced in grpcsource's client
// (it is built inside NewMaestroGRPCSourceWorkClient), so writes go through
// the same OCM source client type built here on a store of our own, which
// answers with what Apply knows (maestro.KnownStored) and asks the REST API
// only when Apply did not say. It publishes over a second gRPC connection
// with the same codec and never subscribes: statuses keep arriving through
// grpcsource's client, whose watch this package keeps using.

// newWriter starts the publishing client: the OCM source client on
// knownStore, over its own connection, and the CloudEvents client under it
// (UpdateVersioned publishes through it directly).
func newWriter(ctx context.Context, api *openapi.APIClient, grpcOpts *grpcoptions.GRPCOptions, sourceID string) (*sourceclient.ManifestWorkSourceClient, publisher, error) {
	ce, err := ceclients.NewCloudEventSourceClient(ctx,
		grpcoptions.NewSourceOptions(grpcOpts, sourceID, workpayload.ManifestBundleEventDataType),
		nil, nil, // resync is disabled: no lister, no status hash
		sourcecodec.NewManifestBundleCodec())
	if err != nil {
		return nil, nil, err
	}
	return sourceclient.NewManifestWorkSourceClient(sourceID, &knownStore{api: api, sourceID: sourceID}, ce), ce, nil
}

// publisher is the CloudEvents source client's publishing side.
type publisher interface {
	Publish(ctx context.Context, eventType types.CloudEventsType, work *workv1.ManifestWork) error
}

// specUpdate is the event type the OCM source client's Patch and Update
// publish.
var specUpdate = types.CloudEventsType{
	CloudEventsDataType: workpayload.ManifestBundleEventDataType,
	SubResource:         types.SubResourceSpec,
	Action:              types.UpdateRequestAction,
}

// updateVersioned publishes work as a spec update at the version it
// carries: what the OCM source client's Patch (sdk-go clients/work/source/
// client ManifestWorkSourceClient.Patch) does once it has applied the patch
// to the stored work, without that JSON round trip (see
// maestro.VersionedUpdater). Its steps and errors are the client's: the
// version from the resource version annotation, else the work's own; the
// log tracing annotation; ValidateWork; the publish, whose refusals become
// the same StatusErrors (a stale version is a Conflict). It takes work
// over (sets its version and tracing annotation and returns it): Apply
// hands it a work built for this call, so a copy would be the second one.
func updateVersioned(ctx context.Context, pub publisher, newWork *workv1.ManifestWork) (*workv1.ManifestWork, error) {
	rv, generation, err := maestro.OCMWorkVersion(newWork)
	if err != nil {
		return nil, err
	}
	newWork.Generation, newWork.ResourceVersion = generation, rv
	logging.SetLogTracingFromContext(ctx, newWork)
	if errs := clientutils.ValidateWork(newWork); len(errs) != 0 {
		return nil, apierrors.NewInvalid(common.ManifestWorkGK, newWork.Name, errs)
	}
	if err := pub.Publish(ctx, specUpdate, newWork); err != nil {
		return nil, cloudeventserrors.ToStatusError(common.ManifestWorkGR, newWork.Name, err)
	}
	return newWork, nil
}

// knownStore is the writer's store: Get answers with what Apply knows of
// the work, or reads it over REST as grpcsource's store does. The client
// calls Add, Update and Delete after its writes; Apply keeps its own cache,
// so they do nothing. It does not watch.
type knownStore struct {
	api      *openapi.APIClient
	sourceID string
}

var _ store.ClientWatcherStore[*workv1.ManifestWork] = (*knownStore)(nil)

var errNoWatch = errors.New("the Maestro writer does not watch or list; grpcsource's client does")

func (s *knownStore) Get(ctx context.Context, namespace, name string) (*workv1.ManifestWork, bool, error) {
	if w, known := maestro.KnownStored(ctx, namespace, name); known {
		return w, w != nil, nil
	}
	id := workID(s.sourceID, namespace, name)
	rb, resp, err := s.api.DefaultAPI.ApiMaestroV1ResourceBundlesIdGet(ctx, id).Execute()
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusNotFound {
			return nil, false, nil
		}
		return nil, false, err
	}
	w, err := grpcsource.ToManifestWork(rb)
	if err != nil {
		return nil, false, fmt.Errorf("decoding work %s/%s: %w", namespace, name, err)
	}
	return w, true, nil
}

func (s *knownStore) GetWatcher(context.Context, string, metav1.ListOptions) (watch.Interface, error) {
	return nil, errNoWatch
}

func (s *knownStore) HandleReceivedResource(context.Context, *workv1.ManifestWork) error { return nil }
func (s *knownStore) Add(runtime.Object) error                                           { return nil }
func (s *knownStore) Update(runtime.Object) error                                        { return nil }
func (s *knownStore) Delete(runtime.Object) error                                        { return nil }
func (s *knownStore) HasInitiated() bool                                                 { return true }

func (s *knownStore) List(context.Context, string, metav1.ListOptions) (*store.ResourceList[*workv1.ManifestWork], error) {
	return nil, errNoWatch
}

func (s *knownStore) ListAll(context.Context) ([]*workv1.ManifestWork, error) { return nil, errNoWatch }

// splitClient is the WorkV1Interface SourceDelivery uses: writes, deletes
// and reads through the writer, the watch through grpcsource's client.
// ManifestWorks hands each call a copy of the writer with its own
// namespace (the OCM client keeps the namespace in a field: see
// perCallNamespace).
type splitClient struct {
	perCallNamespace
	writer *sourceclient.ManifestWorkSourceClient
	pub    publisher
}

func (c splitClient) ManifestWorks(namespace string) workv1client.ManifestWorkInterface {
	cp := *c.writer
	cp.SetNamespace(namespace)
	return splitWorks{ManifestWorkSourceClient: &cp, pub: c.pub, watcher: c.perCallNamespace.ManifestWorks(namespace)}
}

type splitWorks struct {
	*sourceclient.ManifestWorkSourceClient
	pub     publisher
	watcher workv1client.ManifestWorkInterface
}

var _ maestro.VersionedUpdater = splitWorks{}

// UpdateVersioned implements maestro.VersionedUpdater.
func (w splitWorks) UpdateVersioned(ctx context.Context, work *workv1.ManifestWork) (*workv1.ManifestWork, error) {
	return updateVersioned(ctx, w.pub, work)
}

func (w splitWorks) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	return w.watcher.Watch(ctx, opts)
}

func (w splitWorks) List(ctx context.Context, opts metav1.ListOptions) (*workv1.ManifestWorkList, error) {
	return w.watcher.List(ctx, opts)
}
