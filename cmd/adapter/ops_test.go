package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// /healthz is up while the process lives; /readyz answers 503 until every
// part started, names a failing check and answers 503 from the moment
// shutdown starts; /metrics has its own port.
func TestOpsEndpoints(t *testing.T) {
	health, metrics := freeAddr(t), freeAddr(t)
	ready := newReadiness()
	brokerDown := false
	ready.add("broker", func(context.Context) error {
		if brokerDown {
			return errors.New("connection lost")
		}
		return nil
	})
	ops, err := listenOps(health, metrics, "", newRegistry(), ready, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- ops.Run(ctx) }()
	defer func() { cancel(); <-served; _ = ops.Close() }()
	if code, _ := get(t, "http://"+health+"/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	if code, body := get(t, "http://"+health+"/readyz"); code != 503 || !strings.Contains(body, "starting") {
		t.Fatalf("readyz before every part started: %d %q", code, body)
	}
	ready.started.Store(true)
	if code, _ := get(t, "http://"+health+"/readyz"); code != 200 {
		t.Fatalf("readyz %d", code)
	}
	brokerDown = true
	if code, body := get(t, "http://"+health+"/readyz"); code != 503 || !strings.Contains(body, "broker: connection lost") {
		t.Fatalf("readyz with the broker down: %d %q", code, body)
	}
	brokerDown = false
	ready.shutdown.Store(true)
	if code, _ := get(t, "http://"+health+"/readyz"); code != 503 {
		t.Fatalf("readyz during shutdown: %d", code)
	}
	if code, body := get(t, "http://"+metrics+"/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("metrics: %d", code)
	}
	if code, _ := get(t, "http://"+health+"/metrics"); code != 404 {
		t.Fatalf("metrics served on the health port: %d", code)
	}
}

// A busy address fails listenOps, naming the variable, and releases the
// listeners it had bound.
func TestListenOpsNamesABusyAddress(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	health := freeAddr(t)
	_, err = listenOps(health, busy.Addr().String(), "", newRegistry(), newReadiness(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err == nil || !strings.HasPrefix(err.Error(), "METRICS_ADDR: ") {
		t.Fatalf("err %v, want one naming METRICS_ADDR", err)
	}
	ln, err := net.Listen("tcp", health)
	if err != nil {
		t.Fatalf("HEALTH_ADDR %s still bound after the failure: %v", health, err)
	}
	ln.Close()
}
