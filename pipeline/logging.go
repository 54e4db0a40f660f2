package pipeline

import (
	"context"
	"log/slog"
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
