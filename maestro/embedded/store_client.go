// The Store's ManifestWorkInterface: what the source side can do to works
// (Create, Get, List, Patch, Delete, Watch), answering as Maestro through
// the OCM source client answers, refusals included.

package embedded

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/watch"
	workv1client "open-cluster-management.io/api/client/work/clientset/versioned/typed/work/v1"
	workv1 "open-cluster-management.io/api/work/v1"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/common"
	cloudeventserrors "open-cluster-management.io/sdk-go/pkg/cloudevents/clients/errors"
	"open-cluster-management.io/sdk-go/pkg/cloudevents/clients/utils"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
)

// manifestWorks is the client for one namespace.
type manifestWorks struct {
	s         *Store
	namespace string
}

var _ workv1client.ManifestWorkInterface = (*manifestWorks)(nil)

var gr = common.ManifestWorkGR

// publishError is what the OCM source client makes of a refusal by the
// Maestro server: the server returns a plain error over gRPC (code
// Unknown), which the client wraps as a 500 PublishError.
func publishError(name, action string, serverMsg string) error {
	return cloudeventserrors.ToStatusError(gr, name,
		grpcstatus.Error(codes.Unknown, fmt.Sprintf("failed to %s resource: %s", action, serverMsg)))
}

func (c *manifestWorks) Create(ctx context.Context, mw *workv1.ManifestWork, _ metav1.CreateOptions) (*workv1.ManifestWork, error) {
	if mw.Namespace != "" && mw.Namespace != c.namespace {
		return nil, apierrors.NewInvalid(common.ManifestWorkGK, mw.Name, field.ErrorList{
			field.Invalid(field.NewPath("metadata").Child("namespace"), mw.Namespace,
				fmt.Sprintf("does not match the namespace %s", c.namespace)),
		})
	}
	s := c.s
	key := workKey{c.namespace, mw.Name}
	s.mu.Lock()
	_, exists := s.works[key]
	s.mu.Unlock()
	if exists {
		return nil, apierrors.NewAlreadyExists(gr, mw.Name)
	}

	sent := mw.DeepCopy()
	sent.UID = types.UID(utils.UID(s.sourceID, gr.String(), c.namespace, sent.Name))
	sent.Namespace = c.namespace
	rv, gen, err := maestro.OCMWorkVersion(mw)
	if err != nil {
		return nil, err
	}
	sent.Generation, sent.ResourceVersion = gen, rv
	if err := utils.EncodeManifests(sent); err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	if errs := utils.ValidateWork(sent); len(errs) != 0 {
		return nil, apierrors.NewInvalid(common.ManifestWorkGK, mw.Name, errs)
	}
	if err := ctx.Err(); err != nil {
		return nil, cloudeventserrors.NewPublishError(gr, mw.Name, err)
	}

	// The server's side.
	stored := sent.DeepCopy()
	if stored.Generation == 0 {
		stored.Generation = 1
	}
	stored.ResourceVersion = strconv.FormatInt(stored.Generation, 10)
	stored.CreationTimestamp = metav1.Now()
	stored.DeletionTimestamp = nil
	stored.Status = workv1.ManifestWorkStatus{}
	s.mu.Lock()
	if _, exists := s.works[key]; exists {
		s.mu.Unlock()
		// Maestro's unique index on the resource id.
		return nil, publishError(mw.Name, "create", "maestro-6: An entity with the specified unique values already exists")
	}
	s.works[key] = stored
	s.mu.Unlock()
	s.notify(key)
	return sent.DeepCopy(), nil
}

func (c *manifestWorks) Update(context.Context, *workv1.ManifestWork, metav1.UpdateOptions) (*workv1.ManifestWork, error) {
	return nil, apierrors.NewMethodNotSupported(gr, "update")
}

func (c *manifestWorks) UpdateStatus(context.Context, *workv1.ManifestWork, metav1.UpdateOptions) (*workv1.ManifestWork, error) {
	return nil, apierrors.NewMethodNotSupported(gr, "updatestatus")
}

func (c *manifestWorks) DeleteCollection(context.Context, metav1.DeleteOptions, metav1.ListOptions) error {
	return apierrors.NewMethodNotSupported(gr, "deletecollection")
}

// Delete ignores opts like Maestro: spec.deleteOption decides what happens
// to the resources.
func (c *manifestWorks) Delete(ctx context.Context, name string, _ metav1.DeleteOptions) error {
	s := c.s
	key := workKey{c.namespace, name}
	if err := ctx.Err(); err != nil {
		return apierrors.NewInternalError(err)
	}
	s.mu.Lock()
	w, ok := s.works[key]
	if !ok {
		s.mu.Unlock()
		return nil
	}
	if w.DeletionTimestamp == nil {
		now := metav1.Now()
		w.DeletionTimestamp = &now
	}
	s.mu.Unlock()
	s.notify(key)
	return nil
}

func (c *manifestWorks) Get(ctx context.Context, name string, _ metav1.GetOptions) (*workv1.ManifestWork, error) {
	if err := ctx.Err(); err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	w, ok := c.s.snapshot(workKey{c.namespace, name})
	if !ok {
		return nil, apierrors.NewNotFound(gr, name)
	}
	return w, nil
}

func (c *manifestWorks) List(ctx context.Context, opts metav1.ListOptions) (*workv1.ManifestWorkList, error) {
	if err := ctx.Err(); err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	sel, err := labels.Parse(opts.LabelSelector)
	if err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("invalid labels selector %q: %w", opts.LabelSelector, err))
	}
	return &workv1.ManifestWorkList{Items: c.s.list(c.namespace, sel)}, nil
}

func (s *Store) list(namespace string, sel labels.Selector) []workv1.ManifestWork {
	s.mu.Lock()
	items := []workv1.ManifestWork{}
	for k, w := range s.works {
		if (namespace == metav1.NamespaceAll || k.namespace == namespace) && sel.Matches(labels.Set(w.Labels)) {
			items = append(items, *w.DeepCopy())
		}
	}
	s.mu.Unlock()
	slices.SortFunc(items, func(a, b workv1.ManifestWork) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return items
}

// Watch ignores ctx for the watcher's lifetime, like grpcsource: only Stop
// ends it.
func (c *manifestWorks) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	if err := ctx.Err(); err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	sel, err := labels.Parse(opts.LabelSelector)
	if err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("invalid labels selector %q: %w", opts.LabelSelector, err))
	}
	s := c.s
	w := s.registerWatcher(c.namespace, sel)
	// grpcsource lists the works and queues each as Modified.
	s.mu.Lock()
	for k, work := range s.works {
		if (c.namespace == metav1.NamespaceAll || k.namespace == c.namespace) && sel.Matches(labels.Set(work.Labels)) {
			s.queue.push(watch.Event{Type: watch.Modified, Object: work.DeepCopy()})
		}
	}
	s.mu.Unlock()
	return w, nil
}

func (c *manifestWorks) Patch(ctx context.Context, name string, pt types.PatchType, data []byte, _ metav1.PatchOptions, subresources ...string) (*workv1.ManifestWork, error) {
	if len(subresources) != 0 {
		return nil, apierrors.NewGenericServerResponse(http.StatusMethodNotAllowed, "patch", gr, name,
			fmt.Sprintf("unsupported to update subresources %v", subresources), 0, false)
	}
	s := c.s
	key := workKey{c.namespace, name}
	last, ok := s.snapshot(key)
	if !ok {
		return nil, apierrors.NewNotFound(gr, name)
	}
	patched, err := utils.Patch(pt, last, data)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	sent := patched.DeepCopy()
	rv, gen, err := maestro.OCMWorkVersion(patched)
	if err != nil {
		return nil, err
	}
	sent.Generation, sent.ResourceVersion = gen, rv
	if errs := utils.ValidateWork(sent); len(errs) != 0 {
		return nil, apierrors.NewInvalid(common.ManifestWorkGK, name, errs)
	}
	if err := ctx.Err(); err != nil {
		return nil, cloudeventserrors.NewPublishError(gr, name, err)
	}

	// The server's side (maestro services/resource.go Update), under the
	// lock standing in for its advisory lock.
	s.mu.Lock()
	stored, ok := s.works[key]
	switch {
	case !ok:
		s.mu.Unlock()
		return nil, publishError(name, "get", "maestro-7: Resource with id='"+string(last.UID)+"' not found")
	case stored.DeletionTimestamp != nil:
		s.mu.Unlock()
		return nil, publishError(name, "update", "maestro-6: the resource is under deletion, id: "+string(stored.UID))
	}
	if gen == 0 {
		gen = stored.Generation
	}
	if gen != stored.Generation {
		s.mu.Unlock()
		return nil, publishError(name, "update",
			fmt.Sprintf("maestro-6: the resource version is not the latest, the latest version: %d", stored.Generation))
	}
	if !s.acceptManifestSetChange {
		if err := validateBundleUpdate(sent, stored); err != nil {
			s.mu.Unlock()
			return nil, publishError(name, "update",
				"maestro-8: the new manifest bundle in the resource is invalid, "+err.Error())
		}
	}
	next := sent.DeepCopy()
	stored.Generation++
	stored.ResourceVersion = strconv.FormatInt(stored.Generation, 10)
	stored.Labels = next.Labels
	stored.Annotations = next.Annotations
	stored.Spec = next.Spec
	s.mu.Unlock()
	s.notify(key)
	return sent, nil
}

// validateBundleUpdate is Maestro's ValidateManifestBundleUpdate: the same
// number of manifests, each keeping apiVersion, kind, name and namespace.
func validateBundleUpdate(next, prev *workv1.ManifestWork) error {
	nm, pm := next.Spec.Workload.Manifests, prev.Spec.Workload.Manifests
	if len(nm) != len(pm) {
		return fmt.Errorf("new and old manifest have different number of objects")
	}
	for i := range nm {
		var n, p unstructured.Unstructured
		if err := n.UnmarshalJSON(nm[i].Raw); err != nil {
			return err
		}
		if err := p.UnmarshalJSON(pm[i].Raw); err != nil {
			return err
		}
		for _, f := range []struct{ path, next, prev string }{
			{"apiVersion", n.GetAPIVersion(), p.GetAPIVersion()},
			{"kind", n.GetKind(), p.GetKind()},
			{"metadata.name", n.GetName(), p.GetName()},
			{"metadata.namespace", n.GetNamespace(), p.GetNamespace()},
		} {
			if f.next != f.prev {
				return fmt.Errorf("%s: Invalid value: %q: field is immutable", f.path, f.next)
			}
		}
	}
	return nil
}
