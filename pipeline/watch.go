package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/handlers"
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
)

// Which status changes WatchStatus reports (Config.StatusWatch).
const (
	// WatchDelivered reports changes of the works this process wrote last:
	// replicas of one adapter share a Maestro source id and so all see
	// every work's changes, and each change is reported once, by the
	// replica that delivered the work. Works delivered before the process
	// started are reported again on Sentinel's next event for them.
	WatchDelivered = "delivered"
	// WatchAll reports changes of every work of this adapter: for a single
	// replica that should also report, after a restart, changes of works it
	// delivered before.
	WatchAll = "all"
	// WatchOff reports only per event.
	WatchOff = "off"
)

// WatchStatus turns status changes Maestro reports on this adapter's works
// (Applied, Available, Degraded, feedback, Deleted) into a status event at
// once, instead of waiting for Sentinel's next event. It runs until ctx
// ends. Config.StatusWatch says which works it reports on; a work marked
// AnnotationStatusPending (its event reported Unknown because the agent
// did not answer in time) is reported whatever it says, by every replica
// that sees it settle: the replica that wrote it may be gone.
//
// It reports only the agent's word: a change whose status is not settled at
// the work's current version (the agent has not answered yet) is not
// reported, and neither is a resource whose works, as Maestro holds them
// now, are at another generation than the resource (the event for the
// newer one reports; no report is ever older than a work).
//
// A change on a resource that has an event queued or running is put aside
// until that event is done, then considered again against what the event
// reported; reporting it meanwhile would only race the event's report.
// Otherwise the watcher holds the resource while it reads, builds and
// publishes, and an event for it arriving meanwhile waits (see awaitHold):
// the event's report, newer, lands last. A change that leaves the status
// as last reported (Maestro resends a work on resync and after each write)
// is not reported again.
func (p *Pipeline) WatchStatus(ctx context.Context) error {
	if p.cfg.StatusWatch == WatchOff {
		<-ctx.Done()
		return ctx.Err()
	}
	changes := p.tracker.Subscribe(ctx)
	for {
		select {
		case ch, ok := <-changes:
			if !ok {
				return ctx.Err()
			}
			p.considerChange(ctx, ch)
		case <-p.idle:
			for _, ch := range p.takeDeferred() {
				p.considerChange(ctx, ch)
			}
		}
	}
}

// considerChange reports one status change if it is news (see WatchStatus).
func (p *Pipeline) considerChange(ctx context.Context, ch maestro.WorkEvent) {
	w := ch.Work
	if w == nil || w.Labels[workmeta.LabelAdapter] != p.cfg.AdapterName {
		return
	}
	href := w.Annotations[workmeta.AnnotationResourceHref]
	key := w.Labels[workmeta.LabelResourceKind] + "/" + w.Labels[workmeta.LabelResourceID]
	if href == "" {
		return
	}
	if ch.Type != watch.Deleted && w.DeletionTimestamp == nil && !maestro.StatusSettled(w) {
		return // the agent has not answered about this version yet
	}
	seen := reportedWork{version: w.Generation, fingerprint: statusFingerprint(ch)}
	pending := ch.Type != watch.Deleted && w.Annotations[workmeta.AnnotationStatusPending] != ""
	if !p.reported.worthReporting(workName(w), seen, p.cfg.StatusWatch == WatchAll || pending) {
		return
	}
	release, idle := p.holdIdle(key, ch)
	if !idle {
		return
	}
	log := p.log.With("resource", href, "work", workName(w), "change", ch.Type)
	if pending {
		log = log.With("status_pending", true)
	}
	err := p.reportCurrent(withLogger(ctx, log), href)
	release()
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("could not report a status change", "err", err)
		}
		return
	}
	if ch.Type == watch.Deleted {
		p.reported.forget(workName(w))
	} else {
		p.reported.set(workName(w), seen)
	}
}

// reportCurrent reports on a resource from its works as Maestro has them
// now, without applying anything, unless that would not be the agent's
// final word on the resource's current generation: a work at another
// generation than the resource (a newer one: its event reports; an older
// one: the resource's newer generation is still to be delivered) or one
// whose status is not settled. For a resource being deleted only a newer
// generation stops it: its works are going away.
func (p *Pipeline) reportCurrent(ctx context.Context, href string) error {
	log := loggerFrom(ctx, p.log)
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
	deleting := res.Deleting()
	observed := make([]handlers.Observed, len(works))
	for i, w := range works {
		observed[i] = handlers.Observed{Name: w.Name, Consumer: w.Namespace}
		got, err := p.delivery.Get(ctx, w.Namespace, w.Name)
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return fmt.Errorf("get ManifestWork %s/%s: %w", w.Namespace, w.Name, err)
		}
		observed[i].Work = got
		g, _ := workmeta.ResourceGeneration(got)
		switch {
		case g > res.Generation:
			log.DebugContext(ctx, "not reporting: the work is at a newer generation than the resource read", "work_generation", g, "generation", res.Generation)
			return nil
		case deleting:
		case g < res.Generation:
			log.DebugContext(ctx, "not reporting: the resource's generation is not delivered yet", "work_generation", g, "generation", res.Generation)
			return nil
		case got.DeletionTimestamp == nil && !maestro.StatusSettled(got):
			log.DebugContext(ctx, "not reporting: the agent has not answered about the work's current version", "work", workName(got))
			return nil
		}
	}
	report := handlers.Report(p.cfg.AdapterName, t, deleting, observed, p.now())
	if err := p.publish(ctx, ev, res, report); err != nil && !errors.Is(err, hyperfleet.ErrNotFound) {
		// (A 404 from the status PUT: deleted meanwhile, nothing to report.)
		return err
	}
	return nil
}

// resourceHolds are the resources (by events.Event.Key) the status watcher
// holds while it reports on them, each with a channel closed on release.
// Pipeline.mu guards it, so that taking a hold and seeing no event for the
// resource are one step.
type resourceHolds struct {
	held map[string]chan struct{}
	// waiting, when set (by tests), is called when an event starts waiting
	// for a hold.
	waiting func(key string)
}

// holdIdle takes a hold on key for the watcher, unless an event for the
// resource is queued or running (ok false): then ch is put aside until the
// events for the resource are done (see takeDeferred). release ends the
// hold.
func (p *Pipeline) holdIdle(key string, ch maestro.WorkEvent) (release func(), ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, busy := p.keys[key]; busy {
		if p.deferred[key] == nil {
			p.deferred[key] = map[string]maestro.WorkEvent{}
		}
		p.deferred[key][workName(ch.Work)] = ch
		return nil, false
	}
	if p.holds.held == nil {
		p.holds.held = map[string]chan struct{}{}
	}
	done := make(chan struct{})
	p.holds.held[key] = done
	return func() {
		p.mu.Lock()
		delete(p.holds.held, key)
		p.mu.Unlock()
		close(done)
	}, true
}

// keyDone is called (with p.mu held) when the last event for key is done:
// changes put aside for it are due.
func (p *Pipeline) keyDone(key string) {
	if _, ok := p.deferred[key]; !ok {
		return
	}
	select {
	case p.idle <- struct{}{}:
	default:
	}
}

// takeDeferred returns the changes put aside for resources with no event
// queued or running any more, latest per work.
func (p *Pipeline) takeDeferred() []maestro.WorkEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []maestro.WorkEvent
	for key, byWork := range p.deferred {
		if _, busy := p.keys[key]; busy {
			continue
		}
		for _, ch := range byWork {
			out = append(out, ch)
		}
		delete(p.deferred, key)
	}
	return out
}

// awaitHold returns once the watcher holds no hold on key, or when ctx
// ends. An event calls it before it reads the resource: the watcher took
// its hold before the event was scheduled, so its report, built from an
// older view, is published first.
func (p *Pipeline) awaitHold(ctx context.Context, key string) error {
	p.mu.Lock()
	done := p.holds.held[key]
	waiting := p.holds.waiting
	p.mu.Unlock()
	if done == nil {
		return nil
	}
	if waiting != nil {
		waiting(key)
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for the status watcher to release %s: %w", key, ctx.Err())
	}
}

// reportedWorks remembers, per work (consumer/name), the state whose status
// this process reported last. Entries go when the work is reported gone,
// so it holds at most the works that exist.
type reportedWorks struct {
	mu    sync.Mutex
	works map[string]reportedWork
}

type reportedWork struct {
	// version is the work's Maestro version (spec writes bump it; status
	// updates do not).
	version     int64
	fingerprint uint64
}

func workName(w *workv1.ManifestWork) string { return w.Namespace + "/" + w.Name }

// remember records what an event reported: each work as observed, or its
// absence.
func (r *reportedWorks) remember(observed []handlers.Observed) {
	for _, o := range observed {
		name := o.Consumer + "/" + o.Name
		if o.Work == nil {
			r.forget(name)
			continue
		}
		r.set(name, reportedWork{version: o.Work.Generation,
			fingerprint: statusFingerprint(maestro.WorkEvent{Type: watch.Modified, Work: o.Work})})
	}
}

func (r *reportedWorks) set(name string, w reportedWork) {
	r.mu.Lock()
	r.works[name] = w
	r.mu.Unlock()
}

func (r *reportedWorks) forget(name string) {
	r.mu.Lock()
	delete(r.works, name)
	r.mu.Unlock()
}

// worthReporting decides whether a change seen by the watch is news. A work
// this process never reported on is news only when all works are watched.
// Unless all are watched, a work whose spec another writer (another
// replica) has changed since is that writer's to report from now on.
func (r *reportedWorks) worthReporting(name string, seen reportedWork, all bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	last, known := r.works[name]
	switch {
	case !known:
		return all
	case seen.version < last.version:
		return false // older than what was reported
	case !all && seen.version > last.version:
		delete(r.works, name)
		return false
	default:
		return seen.fingerprint != last.fingerprint
	}
}

// statusFingerprint hashes what a status report is derived from: the
// work's version, whether it is deleting or gone, and its conditions and
// per-manifest feedback without their transition times (which the agent
// rewrites on every resend).
func statusFingerprint(ch maestro.WorkEvent) uint64 {
	w := ch.Work
	status := w.Status.DeepCopy()
	clearTimes := func(conds []metav1.Condition) {
		for i := range conds {
			conds[i].LastTransitionTime = metav1.Time{}
		}
	}
	clearTimes(status.Conditions)
	for i := range status.ResourceStatus.Manifests {
		clearTimes(status.ResourceStatus.Manifests[i].Conditions)
	}
	b, _ := json.Marshal(struct {
		Gone     bool
		Deleting bool
		Version  int64
		Status   *workv1.ManifestWorkStatus
	}{ch.Type == watch.Deleted, w.DeletionTimestamp != nil, w.Generation, status})
	h := fnv.New64a()
	_, _ = h.Write(b)
	return h.Sum64()
}
