package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/openshift-hyperfleet/maestro-adapter/pipeline"
)

// otlpReceiver is an in-process OTLP trace receiver, over gRPC (the
// collector's TraceService) and over HTTP (POST /v1/traces,
// protobuf). No OpenTelemetry Collector runs here; this speaks the same
// protocol from the same generated definitions and keeps what it gets.
type otlpReceiver struct {
	coltracepb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.ResourceSpans
}

func (r *otlpReceiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	r.spans = append(r.spans, req.GetResourceSpans()...)
	r.mu.Unlock()
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func (r *otlpReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	var msg coltracepb.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(body, &msg)
	}
	if req.URL.Path != "/v1/traces" || err != nil {
		http.Error(w, "want a protobuf ExportTraceServiceRequest at /v1/traces", http.StatusBadRequest)
		return
	}
	_, _ = r.Export(req.Context(), &msg)
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// received returns the spans by name and the resource attributes, once
// at least n spans arrived (or the deadline passed).
func (r *otlpReceiver) received(t *testing.T, n int) (map[string][]*tracepb.Span, map[string]string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		byName, res, count := map[string][]*tracepb.Span{}, map[string]string{}, 0
		for _, rs := range r.spans {
			for _, a := range rs.GetResource().GetAttributes() {
				res[a.GetKey()] = a.GetValue().GetStringValue()
			}
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					byName[s.GetName()] = append(byName[s.GetName()], s)
					count++
				}
			}
		}
		r.mu.Unlock()
		if count >= n || time.Now().After(deadline) {
			return byName, res
		}
		time.Sleep(20 * time.Millisecond) // polling the receiver's state under a deadline
	}
}

// With an OTLP endpoint set, replaying one traced event exports one trace:
// the event's span, a child of the event's traceparent, with the five phase
// spans under it, from a resource naming the service and adapter type; the
// status event carries the event span's context. Over both protocols.
func TestReplayExportsOneTracePerEvent(t *testing.T) {
	for _, protocol := range []string{"grpc", "http/protobuf"} {
		t.Run(protocol, func(t *testing.T) {
			rcv := &otlpReceiver{}
			var endpoint string
			if protocol == "grpc" {
				lis, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				srv := grpc.NewServer()
				coltracepb.RegisterTraceServiceServer(srv, rcv)
				go func() { _ = srv.Serve(lis) }()
				t.Cleanup(srv.Stop)
				endpoint = "http://" + lis.Addr().String()
			} else {
				srv := httptest.NewServer(rcv)
				t.Cleanup(srv.Close)
				endpoint = srv.URL
			}
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
			t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)

			dir := t.TempDir()
			sample, err := os.ReadFile(filepath.Join("..", "..", "testdata", "contracts", "sentinel-event-cluster-traced.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "event.json"), sample, 0o644); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "status.jsonl")
			var stdout, stderr bytes.Buffer
			code := runMain([]string{"replay", "--adapter", "namespace", "--api-dir", filepath.Join("..", "..", "testdata", "api"),
				"--status-out", out, filepath.Join(dir, "event.json")}, &stdout, &stderr)
			if code != exitOK {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}

			byName, res := rcv.received(t, 6)
			const traceID, parentID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
			evs := byName[pipeline.SpanEvent]
			if len(evs) != 1 {
				t.Fatalf("%d event spans, want 1 (spans: %v)", len(evs), byName)
			}
			ev := evs[0]
			if hex.EncodeToString(ev.GetTraceId()) != traceID || hex.EncodeToString(ev.GetParentSpanId()) != parentID {
				t.Errorf("event span in trace %x with parent %x, want %s and %s", ev.GetTraceId(), ev.GetParentSpanId(), traceID, parentID)
			}
			for _, name := range []string{pipeline.PhaseReadResource, pipeline.PhaseBuild, pipeline.PhaseDeliver, pipeline.PhaseAwaitStatus, pipeline.PhaseReport} {
				if len(byName[name]) != 1 {
					t.Errorf("%d %s spans, want 1", len(byName[name]), name)
					continue
				}
				s := byName[name][0]
				if !bytes.Equal(s.GetTraceId(), ev.GetTraceId()) || !bytes.Equal(s.GetParentSpanId(), ev.GetSpanId()) {
					t.Errorf("%s: trace %x parent %x, want trace %x parent %x", name, s.GetTraceId(), s.GetParentSpanId(), ev.GetTraceId(), ev.GetSpanId())
				}
			}
			if len(byName) != 6 {
				t.Errorf("span names %v, want the event and its five phases", keys(byName))
			}
			if res["service.name"] != "hyperfleet-maestro-adapter" || res["hyperfleet.adapter.type"] != "namespace" {
				t.Errorf("resource attributes %v", res)
			}

			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			var status struct {
				TraceParent string `json:"traceparent"`
			}
			if err := json.Unmarshal(bytes.TrimSpace(data), &status); err != nil {
				t.Fatalf("status out %q: %v", data, err)
			}
			if want := "00-" + traceID + "-" + hex.EncodeToString(ev.GetSpanId()) + "-01"; status.TraceParent != want {
				t.Errorf("status event traceparent %q, want the event span's %s", status.TraceParent, want)
			}
		})
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// An exporter the adapter does not have is a configuration error, exit 2
// naming the variable.
func TestUnknownTraceExporterExitsTwo(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "zipkin")
	var stdout, stderr bytes.Buffer
	code := runMain([]string{"replay", "--adapter", "namespace", filepath.Join("..", "..", "testdata", "recordings", "namespace.jsonl")}, &stdout, &stderr)
	if code != exitUsage || !strings.Contains(stderr.String(), "OTEL_TRACES_EXPORTER") {
		t.Fatalf("exit %d, want 2 naming OTEL_TRACES_EXPORTER: %s", code, stderr.String())
	}
}
