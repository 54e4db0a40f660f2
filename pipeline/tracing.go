package pipeline

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/openshift-hyperfleet/maestro-adapter/pipeline/tracing"
)

// TracerName is the instrumentation scope of the pipeline's spans.
const TracerName = "github.com/openshift-hyperfleet/maestro-adapter/pipeline"

// Span names and attributes. One span per event ("handle event", a child
// of the event's traceparent) covers all its tries; each try's phases are
// its children, named after the phases (PhaseReadResource ...).
const (
	SpanEvent = "handle event"

	AttrEventID    = attribute.Key("messaging.message.id")
	AttrKind       = attribute.Key("hyperfleet.resource.kind")
	AttrResourceID = attribute.Key("hyperfleet.resource.id")
	AttrGeneration = attribute.Key("hyperfleet.resource.generation")
	AttrOutcome    = attribute.Key("hyperfleet.outcome")
	AttrAttempts   = attribute.Key("hyperfleet.attempts")
)

// eventSpan returns ctx carrying j's span, started at its first try as a
// child of the event's traceparent. With tracing off (the no-op provider)
// the span is the traceparent itself, so the status event and the API PUT
// carry the input's trace context unchanged.
func (p *Pipeline) eventSpan(ctx context.Context, j *job) context.Context {
	if j.span != nil {
		return trace.ContextWithSpan(ctx, j.span)
	}
	ctx, j.span = p.tracer.Start(tracing.ContextWithTraceParent(ctx, j.ev.TraceParent), SpanEvent,
		trace.WithSpanKind(trace.SpanKindConsumer))
	if j.span.IsRecording() { // attributes cost allocations nobody reads when off
		j.span.SetAttributes(AttrEventID.String(j.ev.ID), AttrKind.String(j.ev.Kind),
			AttrResourceID.String(j.ev.ResourceID), AttrGeneration.Int64(j.ev.Generation))
	}
	return ctx
}

// endEventSpan closes j's span with its fate (settle calls it).
func endEventSpan(j *job, r result) {
	if j.span == nil {
		return
	}
	if !j.span.IsRecording() {
		j.span = nil
		return
	}
	j.span.SetAttributes(AttrOutcome.String(string(r.outcome)), AttrAttempts.Int(r.attempts))
	if r.outcome == Failed && r.err != nil {
		j.span.RecordError(r.err)
		j.span.SetStatus(codes.Error, r.err.Error())
	}
	j.span.End()
	j.span = nil
}

// phaseDone tells the observer how long a phase took and records it as a
// child span of the event's. The phases are timed where they end, so their
// spans are written afterwards with the measured start and end.
func (p *Pipeline) phaseDone(ctx context.Context, name string, start, end time.Time) {
	p.observer.Phase(name, end.Sub(start))
	if !trace.SpanFromContext(ctx).IsRecording() {
		return // traces off, or the event not sampled: no child spans either
	}
	_, span := p.tracer.Start(ctx, name, trace.WithTimestamp(start))
	span.End(trace.WithTimestamp(end))
}

// traceParentOf is what the status event and the API PUT carry: the
// event's span, or (no span in ctx) the input's traceparent as it came.
func traceParentOf(ctx context.Context, fallback string) string {
	if tp := tracing.TraceParent(ctx); tp != "" {
		return tp
	}
	return fallback
}
