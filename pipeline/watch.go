package pipeline

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/handlers"
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
)

// WatchStatus turns every status change Maestro reports on this adapter's
// works (Applied, Available, Degraded, feedback, Deleted) into a status
// event at once, instead of waiting for Sentinel's next event. It runs
// until ctx ends.
//
// A change on a resource that has an event queued or running is left to
// that event, which reports when it is done; reporting it twice would only
// race the two reports.
func (p *Pipeline) WatchStatus(ctx context.Context) error {
	changes := p.tracker.Subscribe(ctx)
	for ch := range changes {
		w := ch.Work
		if w == nil || w.Labels[maestro.LabelAdapter] != p.cfg.AdapterName {
			continue
		}
		href := w.Annotations[maestro.AnnotationResourceHref]
		key := w.Labels[maestro.LabelResourceKind] + "/" + w.Labels[maestro.LabelResourceID]
		if href == "" {
			continue
		}
		p.mu.Lock()
		_, busy := p.keys[key]
		p.mu.Unlock()
		if busy {
			continue
		}
		log := p.log.With("resource", href, "work", w.Namespace+"/"+w.Name, "change", ch.Type)
		if err := p.reportCurrent(withLogger(ctx, log), href); err != nil && ctx.Err() == nil {
			log.Warn("could not report a status change", "err", err)
		}
	}
	return ctx.Err()
}

// reportCurrent reports on a resource from the works as Maestro has them
// now, without applying anything.
func (p *Pipeline) reportCurrent(ctx context.Context, href string) error {
	res, err := p.resources.GetResource(ctx, href)
	if errors.Is(err, hyperfleet.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read resource: %w", err)
	}
	ev := events.Event{Kind: res.Kind, ResourceID: res.ID, Href: res.Href, Generation: res.Generation}
	cluster, err := p.cluster(ctx, ev, res, &events.Message{})
	if err != nil {
		return err
	}
	t := handlers.Target{Resource: res, Cluster: cluster}
	works, err := p.handler.Build(t)
	if err != nil {
		return fmt.Errorf("build manifests: %w", err)
	}
	observed := make([]handlers.Observed, len(works))
	for i, w := range works {
		observed[i] = handlers.Observed{Name: w.Name, Consumer: w.Namespace}
		got, err := p.delivery.Get(ctx, w.Namespace, w.Name)
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return fmt.Errorf("get ManifestWork %s/%s: %w", w.Namespace, w.Name, err)
		default:
			observed[i].Work = got
		}
	}
	report := handlers.Report(p.cfg.AdapterName, t, res.Deleting(), observed, p.now())
	return p.publish(ctx, ev, res, report)
}
