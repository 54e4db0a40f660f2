// Package failure holds the two failure classes every layer puts on its
// errors. The class alone decides what happens to an event's message, and
// the pipeline alone reads it (pipeline.settle):
//
//   - Permanent: retrying cannot help (malformed event, invalid manifest,
//     a configuration mistake). The message is dead-lettered at once, the
//     error's text as the reason it carries.
//   - Transient: infrastructure trouble (network, 5xx, Maestro
//     unavailable). The message is retried with backoff, then dead-lettered
//     with the last error's text when its attempts run out.
//
// An error that carries no class is treated as transient: losing an event to
// an unclassified bug is worse than retrying it a bounded number of times.
//
// The class travels as a method, Permanent() bool, anywhere in the %w chain,
// the way net.Error carries Timeout(); the mark closest to the surface wins,
// so a layer that knows better may re-class an error from below.
//
// It is a leaf (it imports nothing of ours), so the HyperFleet API client,
// the event sources, the handlers and the delivery backends class their
// errors without importing one another.
package failure

import (
	"errors"
	"fmt"
)

type permanentError struct{ err error }

func (e *permanentError) Error() string   { return e.err.Error() }
func (e *permanentError) Unwrap() error   { return e.err }
func (e *permanentError) Permanent() bool { return true }

type transientError struct{ err error }

func (e *transientError) Error() string   { return e.err.Error() }
func (e *transientError) Unwrap() error   { return e.err }
func (e *transientError) Permanent() bool { return false }

// Permanent marks err as not worth retrying. Nil stays nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// Permanentf is fmt.Errorf marked permanent.
func Permanentf(format string, args ...any) error {
	return Permanent(fmt.Errorf(format, args...))
}

// Transient marks err as worth retrying. Nil stays nil.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &transientError{err: err}
}

// IsPermanent reports whether the mark closest to the surface of err's
// chain says permanent. Unmarked errors are not permanent.
func IsPermanent(err error) bool {
	var c interface{ Permanent() bool }
	if errors.As(err, &c) {
		return c.Permanent()
	}
	return false
}
