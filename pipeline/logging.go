package pipeline

import (
	"context"
	"log/slog"

	"github.com/openshift-hyperfleet/maestro-adapter/events"
)

// ContextHandler adds the attributes of the event being handled to every
// record logged with a context derived from it (slog's *Context methods),
// whichever package logs it, so a delivery backend's lines carry the
// event's id and trace id too. Wrap the process's handler with it.
func ContextHandler(h slog.Handler) slog.Handler { return ctxHandler{Handler: h} }

// ctxHandler remembers whether a logger already carries the event's fields
// (the pipeline's own event loggers do), so they are not added twice.
type ctxHandler struct {
	slog.Handler
	hasEvent bool
}

type attrsKey struct{}

// withEventAttrs stores attrs for ContextHandler.
func withEventAttrs(ctx context.Context, attrs []slog.Attr) context.Context {
	return context.WithValue(ctx, attrsKey{}, attrs)
}

func (h ctxHandler) Handle(ctx context.Context, r slog.Record) error {
	if attrs, ok := ctx.Value(attrsKey{}).([]slog.Attr); ok && !h.hasEvent {
		r = r.Clone()
		r.AddAttrs(attrs...)
	}
	return h.Handler.Handle(ctx, r)
}

func (h ctxHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	has := h.hasEvent
	for _, a := range attrs {
		has = has || a.Key == "event_id"
	}
	return ctxHandler{Handler: h.Handler.WithAttrs(attrs), hasEvent: has}
}

func (h ctxHandler) WithGroup(name string) slog.Handler {
	return ctxHandler{Handler: h.Handler.WithGroup(name), hasEvent: h.hasEvent}
}

func (p *Pipeline) eventLogger(ev events.Event) *slog.Logger {
	var args []any
	for _, a := range eventAttrs(ev) {
		args = append(args, a)
	}
	return p.log.With(args...)
}

// eventAttrs are the fields every log line about ev carries.
func eventAttrs(ev events.Event) []slog.Attr {
	attrs := []slog.Attr{slog.String("event_id", ev.ID), slog.String("kind", ev.Kind),
		slog.String("resource_id", ev.ResourceID), slog.Int64("generation", ev.Generation)}
	if tid := traceID(ev.TraceParent); tid != "" {
		attrs = append(attrs, slog.String("trace_id", tid))
	}
	return attrs
}

// traceID extracts the trace id from a W3C traceparent
// (version-traceid-spanid-flags), or "".
func traceID(traceparent string) string {
	if len(traceparent) == 55 && traceparent[2] == '-' && traceparent[35] == '-' {
		return traceparent[3:35]
	}
	return ""
}

type loggerKey struct{}

func withLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, l)
}

func loggerFrom(ctx context.Context, fallback *slog.Logger) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return fallback
}
