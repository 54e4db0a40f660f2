package failure

import (
	"errors"
	"fmt"
	"io"
	"testing"
)

func TestClasses(t *testing.T) {
	cause := errors.New("cause")
	for _, tc := range []struct {
		name      string
		err       error
		permanent bool
	}{
		{"permanent", Permanent(cause), true},
		{"permanentf wrapping", Permanentf("reading: %w", cause), true},
		{"transient", Transient(cause), false},
		{"unmarked", cause, false},
		{"permanent under a wrap", fmt.Errorf("context: %w", Permanent(cause)), true},
		{"the surface mark wins", Transient(fmt.Errorf("context: %w", Permanent(cause))), false},
		{"the surface mark wins, reversed", Permanent(Transient(cause)), true},
	} {
		if got := IsPermanent(tc.err); got != tc.permanent {
			t.Errorf("%s: IsPermanent = %v, want %v", tc.name, got, tc.permanent)
		}
		if !errors.Is(tc.err, cause) {
			t.Errorf("%s: the cause is lost from the chain", tc.name)
		}
		if tc.err.Error() != cause.Error() && tc.err.Error() != "reading: cause" && tc.err.Error() != "context: cause" {
			t.Errorf("%s: the class changed the message to %q", tc.name, tc.err)
		}
	}
}

func TestNilStaysNil(t *testing.T) {
	if Permanent(nil) != nil || Transient(nil) != nil {
		t.Fatal("a class on nil made an error")
	}
	if IsPermanent(nil) {
		t.Fatal("nil is permanent")
	}
	if !errors.Is(Permanentf("x: %w", io.EOF), io.EOF) {
		t.Fatal("Permanentf lost %w")
	}
}
