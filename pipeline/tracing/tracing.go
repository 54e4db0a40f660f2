// Package tracing sets up OpenTelemetry traces from the standard OTEL_*
// environment variables and carries W3C trace context between the
// adapter's inputs and outputs.
//
// Traces are off unless asked for: OTEL_TRACES_EXPORTER=otlp, or an OTLP
// endpoint set (OTEL_EXPORTER_OTLP_ENDPOINT or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) with OTEL_TRACES_EXPORTER unset.
// OTEL_TRACES_EXPORTER=none and OTEL_SDK_DISABLED=true turn them off
// whatever else is set. The exporter itself reads the rest of the OTLP
// settings (headers, certificates, timeout, compression), the SDK reads the
// sampler (OTEL_TRACES_SAMPLER, default parentbased_always_on) and the
// batch processor's limits (OTEL_BSP_*), as the OpenTelemetry
// specification says.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Protocols of OTEL_EXPORTER_OTLP_PROTOCOL that the adapter exports with.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http/protobuf"
)

// Settings say whether and how spans are exported.
type Settings struct {
	// Enabled: spans are exported over OTLP.
	Enabled bool
	// Protocol is ProtocolGRPC or ProtocolHTTP.
	Protocol string
}

// SettingsFromEnv reads the standard variables through getenv (os.Getenv)
// and names the first one it cannot use.
func SettingsFromEnv(getenv func(string) string) (Settings, error) {
	var s Settings
	if v := strings.TrimSpace(getenv("OTEL_SDK_DISABLED")); strings.EqualFold(v, "true") {
		return s, nil
	}
	switch exporter := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); exporter {
	case "none":
		return s, nil
	case "otlp":
		s.Enabled = true
	case "":
		// The specification's default exporter is otlp; the adapter's is
		// none unless an endpoint says where spans should go, so that a
		// deployment without a collector does not retry a localhost one.
		s.Enabled = getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
	default:
		return s, fmt.Errorf("OTEL_TRACES_EXPORTER: %q, want otlp or none", exporter)
	}
	if !s.Enabled {
		return s, nil
	}
	name, protocol := "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))
	if protocol == "" {
		name, protocol = "OTEL_EXPORTER_OTLP_PROTOCOL", strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_PROTOCOL"))
	}
	switch protocol {
	case "":
		s.Protocol = ProtocolHTTP // the specification's default
	case ProtocolGRPC, ProtocolHTTP:
		s.Protocol = protocol
	default:
		return s, fmt.Errorf("%s: %q, want %s or %s", name, protocol, ProtocolGRPC, ProtocolHTTP)
	}
	return s, nil
}

// Service describes the process in every span's resource.
type Service struct {
	// Name is service.name unless OTEL_SERVICE_NAME or
	// OTEL_RESOURCE_ATTRIBUTES says otherwise.
	Name        string
	Version     string
	AdapterType string
	AdapterName string
}

// Resource attribute keys for the adapter's identity.
const (
	AttrAdapterType = attribute.Key("hyperfleet.adapter.type")
	AttrAdapterName = attribute.Key("hyperfleet.adapter.name")
)

// Provider is the adapter's tracer provider and how to flush it.
type Provider struct {
	trace.TracerProvider
	// Shutdown exports what is buffered and stops; call it once, at exit.
	Shutdown func(context.Context) error
}

// New builds the tracer provider s asks for: a no-op one when traces are
// off, else an SDK provider batching spans to an OTLP exporter. The
// exporter connects lazily, so a collector that is down costs dropped
// spans, never a failed start or a blocked event.
func New(ctx context.Context, s Settings, svc Service) (*Provider, error) {
	if !s.Enabled {
		return &Provider{TracerProvider: noop.NewTracerProvider(), Shutdown: func(context.Context) error { return nil }}, nil
	}
	var (
		exp *otlptrace.Exporter
		err error
	)
	switch s.Protocol {
	case ProtocolGRPC:
		exp, err = otlptracegrpc.New(ctx)
	case ProtocolHTTP:
		exp, err = otlptracehttp.New(ctx)
	default:
		return nil, fmt.Errorf("tracing: protocol %q, want %s or %s", s.Protocol, ProtocolGRPC, ProtocolHTTP)
	}
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter (%s): %w", s.Protocol, err)
	}
	res, err := serviceResource(ctx, svc)
	if err != nil {
		return nil, err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return &Provider{TracerProvider: tp, Shutdown: tp.Shutdown}, nil
}

// serviceResource names the process; the environment
// (OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME) overrides the defaults.
func serviceResource(ctx context.Context, svc Service) (*resource.Resource, error) {
	attrs := []attribute.KeyValue{attribute.String("service.name", svc.Name)}
	if svc.Version != "" {
		attrs = append(attrs, attribute.String("service.version", svc.Version))
	}
	if svc.AdapterType != "" {
		attrs = append(attrs, AttrAdapterType.String(svc.AdapterType))
	}
	if svc.AdapterName != "" {
		attrs = append(attrs, AttrAdapterName.String(svc.AdapterName))
	}
	res, err := resource.New(ctx, resource.WithTelemetrySDK(), resource.WithAttributes(attrs...), resource.WithFromEnv())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %w", err)
	}
	return res, nil
}

// w3c is the one propagation format the adapter speaks: CloudEvents'
// distributed tracing extension and HyperFleet's API both use W3C
// traceparent.
var w3c = propagation.TraceContext{}

// ContextWithTraceParent returns ctx with the remote span context a W3C
// traceparent names as the parent of spans started from it; ctx unchanged
// when traceparent is empty or malformed.
func ContextWithTraceParent(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	return w3c.Extract(ctx, propagation.MapCarrier{"traceparent": traceparent})
}

// TraceParent renders the span context of ctx as a W3C traceparent, or ""
// when ctx carries none.
func TraceParent(ctx context.Context) string {
	c := propagation.MapCarrier{}
	w3c.Inject(ctx, c)
	return c.Get("traceparent")
}
