package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	workv1 "open-cluster-management.io/api/work/v1"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
	"github.com/openshift-hyperfleet/maestro-adapter/handlers"
	"github.com/openshift-hyperfleet/maestro-adapter/hyperfleet"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
	"github.com/openshift-hyperfleet/maestro-adapter/internal/workmeta"
	"github.com/openshift-hyperfleet/maestro-adapter/maestro"
)

// state is what reconcile learned before it stopped, so that a failure
// report can say as much as is known.
type state struct {
	target   handlers.Target
	works    []*workv1.ManifestWork
	observed []handlers.Observed
	// fromSnapshot: the resource came from the event's recorded snapshot,
	// not from the API (which a replay may not have).
	fromSnapshot bool
}

// reconcile acts on the resource as the API returns it now, not on the
// event's story: the event only says which resource to look at. Running it
// twice for the same state changes nothing (Apply is idempotent).
func (p *Pipeline) reconcile(ctx context.Context, ev events.Event, msg *events.Message) (Outcome, *state, error) {
	log := loggerFrom(ctx, p.log)
	st := &state{}
	if err := p.awaitHold(ctx, ev.Key()); err != nil {
		return "", st, err
	}

	phase := p.phaseTimer(ctx)
	res, err := p.resource(ctx, ev.Href, msg.Snapshot)
	if errors.Is(err, hyperfleet.ErrNotFound) {
		log.InfoContext(ctx, "resource no longer exists; nothing to reconcile")
		return Gone, st, nil
	}
	if err != nil {
		return "", st, fmt.Errorf("read resource: %w", err)
	}
	if res.ID != ev.ResourceID || !kindEqual(res.Kind, ev.Kind) {
		return "", st, failure.Permanentf("resource at %s is %s %s, but the event names %s %s", ev.Href, res.Kind, res.ID, ev.Kind, ev.ResourceID)
	}
	st.target.Resource, st.fromSnapshot = res, len(msg.Snapshot) > 0
	if !p.handler.Handles(res.Kind) {
		log.DebugContext(ctx, "adapter type does not handle this kind; acknowledging", "adapter_type", p.handler.Type())
		return Skipped, st, nil
	}
	if res.Generation < ev.Generation {
		// Sentinel read a newer generation than we just did: a lagging API
		// replica. Acting on what we read is still right; the next event
		// brings the newer state.
		log.WarnContext(ctx, "API returned an older generation than the event names", "api_generation", res.Generation)
	}

	cluster, err := p.cluster(ctx, ev, res, msg)
	if err != nil {
		return "", st, err
	}
	st.target.Cluster = cluster
	if outcome, done, err := p.gate(ctx, ev, msg, st); done {
		if outcome == PreconditionsNotMet {
			phase(PhaseReport)
		}
		return outcome, st, err
	}
	phase(PhaseReadResource)

	works, err := p.handler.Build(st.target)
	if err != nil {
		return "", st, fmt.Errorf("build manifests: %w", err)
	}
	st.works = works
	deleting := res.Deleting()
	phase(PhaseBuild)

	if deleting {
		err = p.deleteAll(ctx, st)
	} else {
		err = p.applyAll(ctx, st)
	}
	if errors.Is(err, workmeta.ErrStaleGeneration) {
		log.InfoContext(ctx, "a newer generation is already delivered; nothing to do")
		return Superseded, st, nil
	}
	if err != nil {
		return "", st, err
	}
	phase("") // deliver and await_status were observed by applyAll/deleteAll

	// Another replica may have applied a newer generation while this one
	// waited (a redelivered older event racing the newer one): its report
	// is the newer one, and this one must not land after it.
	newer, g, err := p.newerWork(ctx, st, res.Generation)
	if err != nil {
		return "", st, err
	}
	if newer != nil {
		log.InfoContext(ctx, "a newer generation reached the work while this event ran; not reporting this one",
			"work", workName(newer), "work_generation", g)
		return Superseded, st, nil
	}
	report := handlers.Report(p.cfg.AdapterName, st.target, deleting, st.observed, p.now())
	if err := p.publish(ctx, ev, res, report); err != nil {
		if errors.Is(err, hyperfleet.ErrNotFound) {
			// The status PUT answered 404: the resource was deleted while
			// this event ran. Nothing is left to report on.
			log.InfoContext(ctx, "resource no longer exists (the status report answered 404); nothing to report")
			return Gone, st, nil
		}
		return "", st, err
	}
	// What this process reported, and nothing newer: the watcher compares
	// each change with it to tell news from echoes.
	p.reported.remember(st.observed)
	if !deleting {
		// After the Unknown report, so that the final one lands after it.
		if err := p.markStatusPending(ctx, st, res.Generation); err != nil {
			return "", st, err
		}
	}
	phase(PhaseReport)
	return Reconciled, st, nil
}

// apiCheckTimeout bounds newerWork's read of the API: it only spares
// Maestro a read, so an API that is slow or failing (its client retries
// inside) must not hold the report up longer than Maestro's read would,
// nor eat a failure report's whole check (failureCheckTimeout).
const apiCheckTimeout = 2 * time.Second

// newerWork returns the first of st.works that Maestro holds now at a newer
// resource generation than gen (AnnotationGeneration), with that
// generation, or nil. A missing work has no generation and supersedes
// nothing: a deleted resource's works are gone, and its Finalized report
// must go out.
//
// It asks the HyperFleet API first, when the event's resource comes from
// it (not from a recording's snapshot): a work's generation is always one
// the API served for its resource (handlers annotate what the pipeline
// read from href), and the API's generations only grow (CONTRACTS §1), so
// while the API still serves gen no replica can have delivered a newer
// one, and Maestro need not be asked. That read is one request to a
// service that is not the bottleneck; Maestro's GET is queued behind every
// write and status Maestro is handling (13–87 ms per event under the
// benchmark's load, against 1–4 ms idle), on every event's critical path.
// Only when the API has moved on (or cannot answer) are the works read,
// for their generation only (maestro.WorkGeneration): a newer generation
// the API serves but no replica has delivered yet does not stop this
// report.
func (p *Pipeline) newerWork(ctx context.Context, st *state, gen int64) (*workv1.ManifestWork, int64, error) {
	if !st.fromSnapshot {
		apiCtx, cancel := context.WithTimeout(ctx, apiCheckTimeout)
		cur, err := p.resources.GetResource(apiCtx, st.target.Resource.Href)
		cancel()
		if err == nil && cur.Generation <= gen {
			return nil, 0, nil
		}
		if err != nil && !errors.Is(err, hyperfleet.ErrNotFound) {
			loggerFrom(ctx, p.log).DebugContext(ctx, "could not re-read the resource before reporting; asking Maestro for the works' generations instead", "err", err)
		}
	}
	for _, w := range st.works {
		g, ok, err := maestro.WorkGeneration(ctx, p.delivery, w.Namespace, w.Name)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("reading ManifestWork %s/%s to check its generation before reporting: %w", w.Namespace, w.Name, err)
		}
		if ok && g > gen {
			return w, g, nil
		}
	}
	return nil, 0, nil
}

// markStatusPending marks, in Maestro, each work whose status wait ran out
// before the agent answered (AnnotationStatusPending), so that whichever
// replica sees its status settle reports it, even when this one is gone by
// then. A work already at a newer generation is that generation's event's
// to report. A marking that fails fails the try: the event is tried again
// (or, if this replica dies first, redelivered), so the work is never left
// reported Unknown and unmarked.
func (p *Pipeline) markStatusPending(ctx context.Context, st *state, gen int64) error {
	for i, o := range st.observed {
		if o.StatusTimeout == 0 || o.Work == nil || maestro.StatusSettled(o.Work) {
			continue
		}
		// Apply creates a missing work: never for a mark. A work deleted
		// or being deleted meanwhile is a deletion's to report.
		cur, err := p.delivery.Get(ctx, o.Consumer, o.Name)
		if apierrors.IsNotFound(err) || (err == nil && cur.DeletionTimestamp != nil) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading ManifestWork %s/%s to mark it as awaiting the agent's status: %w", o.Consumer, o.Name, err)
		}
		w := st.works[i].DeepCopy()
		if w.Annotations == nil {
			w.Annotations = map[string]string{}
		}
		w.Annotations[workmeta.AnnotationStatusPending] = strconv.FormatInt(gen, 10)
		got, err := p.delivery.Apply(ctx, w)
		if errors.Is(err, workmeta.ErrStaleGeneration) {
			continue
		}
		if err != nil {
			return fmt.Errorf("marking ManifestWork %s/%s as awaiting the agent's status: %w", w.Namespace, w.Name, err)
		}
		// got is not remembered as reported: it may already carry the
		// agent's answer (another replica marked the work first and the
		// agent answered before this replica's Unknown went out, after the
		// other replicas' watchers reported it). This replica's watcher
		// must still take that answer for news and report it after the
		// Unknown.
		loggerFrom(ctx, p.log).InfoContext(ctx, "the agent did not report in time; the work is marked so that any replica reports its status when the agent answers",
			"work", workName(w), "status_timeout", p.cfg.StatusTimeout, "settled", maestro.StatusSettled(got))
	}
	return nil
}

// phaseTimer returns a function that reports the time since the previous
// call (or since phaseTimer) as the named phase; an empty name only
// restarts the clock.
func (p *Pipeline) phaseTimer(ctx context.Context) func(name string) {
	last := time.Now()
	return func(name string) {
		now := time.Now()
		if name != "" {
			p.phaseDone(ctx, name, last, now)
		}
		last = now
	}
}

func (p *Pipeline) resource(ctx context.Context, href string, snapshot []byte) (*hyperfleet.Resource, error) {
	if len(snapshot) > 0 {
		return hyperfleet.ParseResource(snapshot, "recorded snapshot of "+href)
	}
	return p.resources.GetResource(ctx, href)
}

// cluster returns the cluster the works go to: the resource itself, or the
// owner of a node pool.
func (p *Pipeline) cluster(ctx context.Context, ev events.Event, res *hyperfleet.Resource, msg *events.Message) (*hyperfleet.Resource, error) {
	if kindEqual(res.Kind, hyperfleet.KindCluster) {
		return res, nil
	}
	owner := res.OwnerReferences
	if owner == nil || owner.Href == "" {
		owner = ev.Owner
	}
	if owner == nil || owner.Href == "" {
		return nil, failure.Permanentf("%s %s names no owning cluster href", res.Kind, res.ID)
	}
	cluster, err := p.resource(ctx, owner.Href, msg.OwnerSnapshot)
	if errors.Is(err, hyperfleet.ErrNotFound) {
		// The works are named after the cluster and live on it; with the
		// cluster gone there is nothing to address them by. Retrying cannot
		// help.
		return nil, failure.Permanentf("owning cluster %s of %s %s not found", owner.Href, res.Kind, res.ID)
	}
	if err != nil {
		return nil, fmt.Errorf("read owning cluster: %w", err)
	}
	return cluster, nil
}

// applyAll applies every desired work, then waits (bounded by
// StatusTimeout) until the agent has reported on each at its generation.
// The wait is registered before the write, so the state Apply returns is
// the starting point and no status change in between is missed.
func (p *Pipeline) applyAll(ctx context.Context, st *state) error {
	start := time.Now()
	st.observed = make([]handlers.Observed, len(st.works))
	stored := make([]*workv1.ManifestWork, len(st.works))
	expects := make([]*maestro.Expectation, len(st.works))
	defer func() {
		for _, e := range expects {
			if e != nil {
				e.Cancel()
			}
		}
	}()
	for i, w := range st.works {
		st.observed[i] = handlers.Observed{Name: w.Name, Consumer: w.Namespace}
		expects[i] = p.tracker.Expect(w.Namespace, w.Name)
		got, err := p.delivery.Apply(ctx, w)
		if err != nil {
			if !errors.Is(err, workmeta.ErrStaleGeneration) {
				st.observed[i].Err = err
			}
			return fmt.Errorf("apply ManifestWork %s/%s: %w", w.Namespace, w.Name, err)
		}
		stored[i] = got
		st.observed[i].Work = got
	}
	p.phaseDone(ctx, PhaseDeliver, start, time.Now())
	p.awaitAll(ctx, st, func(ctx context.Context, i int) (*workv1.ManifestWork, error) {
		return expects[i].Await(ctx, stored[i], func(w *workv1.ManifestWork) bool {
			return w != nil && w.Generation >= stored[i].Generation && maestro.StatusSettled(w)
		})
	})
	for _, o := range st.observed {
		if o.Work != nil && maestro.Superseded(o.Work) {
			// A delivery that writes later (a maestro-cli Job) found a
			// newer generation in place: as if Apply had said so.
			return fmt.Errorf("ManifestWork %s/%s: %w", o.Consumer, o.Name, workmeta.ErrStaleGeneration)
		}
	}
	return nil
}

// deleteAll deletes every work the adapter owns for the resource, then
// waits (bounded) until the agent confirms they are gone.
func (p *Pipeline) deleteAll(ctx context.Context, st *state) error {
	start := time.Now()
	st.observed = make([]handlers.Observed, len(st.works))
	for i, w := range st.works {
		st.observed[i] = handlers.Observed{Name: w.Name, Consumer: w.Namespace, Work: w}
		if err := p.delivery.Delete(ctx, w.Namespace, w.Name); err != nil {
			st.observed[i].Err = err
			return fmt.Errorf("delete ManifestWork %s/%s: %w", w.Namespace, w.Name, err)
		}
	}
	p.phaseDone(ctx, PhaseDeliver, start, time.Now())
	// A missing work sends no Deleted event, so this wait starts from a
	// read of the current state.
	p.awaitAll(ctx, st, func(ctx context.Context, i int) (*workv1.ManifestWork, error) {
		o := st.observed[i]
		return p.tracker.Await(ctx, o.Consumer, o.Name, func(w *workv1.ManifestWork) bool { return w == nil })
	})
	return nil
}

// awaitAll waits for every work in parallel, sharing one deadline; a work
// that does not get there in time is reported as last seen.
func (p *Pipeline) awaitAll(ctx context.Context, st *state, wait func(ctx context.Context, i int) (*workv1.ManifestWork, error)) {
	start := time.Now()
	defer func() { p.phaseDone(ctx, PhaseAwaitStatus, start, time.Now()) }()
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, p.cfg.StatusTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for i := range st.observed {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := wait(ctx, i)
			if err != nil {
				loggerFrom(ctx, p.log).DebugContext(ctx, "status not settled in time; reporting what is known", "work", st.observed[i].Name, "err", err)
				if parent.Err() == nil {
					st.observed[i].StatusTimeout = p.cfg.StatusTimeout
				}
			}
			st.observed[i].Work = w
		}()
	}
	wg.Wait()
}

func (p *Pipeline) publish(ctx context.Context, ev events.Event, res *hyperfleet.Resource, report hyperfleet.StatusReport) error {
	ce, err := events.NewStatusEvent(p.cfg.AdapterName, res.Ref(), report, traceParentOf(ctx, ev.TraceParent))
	if err != nil {
		return failure.Permanent(err)
	}
	if err := p.sink.Publish(ctx, ce); err != nil {
		return fmt.Errorf("publish status: %w", err)
	}
	p.observer.StatusPublished()
	return nil
}

// failureCheckTimeout bounds the generation check before a failure report:
// the failure may be Maestro's, and the dead-letter should not wait out
// MAESTRO_UNAVAILABLE_TIMEOUT for it.
const failureCheckTimeout = 5 * time.Second

// reportFailure publishes a Health=False report naming the cause, as far as
// the resource is known, before the event is dead-lettered. It is best
// effort: the dead-letter entry carries the reason too.
func (p *Pipeline) reportFailure(ctx context.Context, ev events.Event, st *state, cause error) {
	if st == nil || st.target.Resource == nil {
		return
	}
	t := st.target
	if t.Cluster == nil {
		t.Cluster = t.Resource
	}
	// Not older than the work either; when Maestro cannot even be read
	// (often the very failure) the report goes out unchecked.
	checkCtx, cancel := context.WithTimeout(ctx, failureCheckTimeout)
	defer cancel()
	if newer, _, err := p.newerWork(checkCtx, st, t.Resource.Generation); newer != nil {
		loggerFrom(ctx, p.log).InfoContext(ctx, "a newer generation reached the work; not publishing this one's failure report", "work", workName(newer))
		return
	} else if err != nil {
		loggerFrom(ctx, p.log).WarnContext(ctx, "could not check the works' generation before the failure report; publishing it", "err", err)
	}
	report := handlers.FailureReport(p.cfg.AdapterName, t, st.observed, cause, p.now())
	if err := p.publish(ctx, ev, t.Resource, report); err != nil {
		loggerFrom(ctx, p.log).WarnContext(ctx, "could not publish failure report", "err", err)
	}
}

func kindEqual(a, b string) bool { return strings.EqualFold(a, b) }

// outlastsMaxAttempts reports a transient failure whose retries its source
// bounds by time rather than the pipeline by MAX_ATTEMPTS: a consumer that
// is not registered yet (the first events of a new cluster commonly come
// before it) is waited for CONSUMER_WAIT by the delivery, which then makes
// the error permanent.
func outlastsMaxAttempts(err error) bool {
	return errors.Is(err, maestro.ErrConsumerNotRegistered) && !failure.IsPermanent(err)
}
