package remote

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// The errors below are shaped like the ones the OCM source client and the
// REST client return (see their construction in sdk-go clients/errors and
// the grpcsource watcher store): the cause survives only as text.
func TestUnreachableClassification(t *testing.T) {
	gr := schema.GroupResource{Group: "work.open-cluster-management.io", Resource: "manifestworks"}
	publish := func(cause string) error {
		return apierrors.NewInternalError(errors.New(cause))
	}
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"REST transport error", &url.Error{Op: "Get", URL: "http://m/x", Err: dial}, true},
		{"REST timeout", &url.Error{Op: "Get", URL: "http://m/x", Err: context.DeadlineExceeded}, true},
		{"dial error", dial, true},
		{"REST error flattened by the SDK", publish(`Get "http://m/x": dial tcp 127.0.0.1:1: connect: connection refused`), true},
		{"publish while disconnected", fmt.Errorf("creating work a/b: %w", apierrors.NewInternalError(errors.New("the cloudevents client is not ready"))), true},
		{"gRPC Unavailable", status.Error(codes.Unavailable, "connection refused"), true},
		{"gRPC Unavailable flattened", publish("rpc error: code = Unavailable desc = error reading from server: EOF"), true},
		{"REST 503", publish("503 Service Unavailable"), true},
		{"wrapped transient", failure.Transient(fmt.Errorf("x: %w", dial)), true},

		{"nil", nil, false},
		{"version conflict", publish("failed to update resource: the resource version is not the latest"), false},
		{"manifest set refused", publish("the new manifest bundle in the resource is invalid"), false},
		{"not found", apierrors.NewNotFound(gr, "w"), false},
		{"already exists", apierrors.NewAlreadyExists(gr, "w"), false},
		{"permanent mentioning EOF", failure.Permanentf("manifest 0: not a Kubernetes object: unexpected EOF"), false},
		{"cancelled", fmt.Errorf("x: %w", context.Canceled), false},
		{"inner deadline", failure.Transient(fmt.Errorf("work a/b is still being deleted after 1m0s: %w", context.DeadlineExceeded)), false},
		{"gRPC refusal", status.Error(codes.PermissionDenied, "no"), false},
	} {
		if got := unreachable(tc.err); got != tc.want {
			t.Errorf("%s: unreachable(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}

// Credentials are re-read when their file changes (rotation), and not on
// every call.
func TestFileCacheRereadsChangedFiles(t *testing.T) {
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte("one\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tok := &token{file: newFileCache(p)}
	if v, err := tok.value(); err != nil || v != "one" {
		t.Fatalf("token %q, %v", v, err)
	}
	if err := os.WriteFile(p, []byte("two-rotated\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Within a second of the last check the cached value stands.
	if v, _ := tok.value(); v != "one" {
		t.Fatalf("token re-read at once: %q", v)
	}
	tok.file.mu.Lock()
	tok.file.checked = time.Now().Add(-2 * time.Second)
	tok.file.mu.Unlock()
	if v, err := tok.value(); err != nil || v != "two-rotated" {
		t.Fatalf("after rotation: token %q, %v", v, err)
	}
	md, err := tok.GetRequestMetadata(context.Background())
	if err != nil || md["authorization"] != "Bearer two-rotated" {
		t.Fatalf("metadata %v, %v", md, err)
	}
	if err := os.WriteFile(p, []byte("  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tok.file.mu.Lock()
	tok.file.checked = time.Time{}
	tok.file.mu.Unlock()
	if _, err := tok.value(); err == nil || !strings.Contains(err.Error(), EnvTokenFile) {
		t.Fatalf("empty token file: %v, want an error naming %s", err, EnvTokenFile)
	}
}
