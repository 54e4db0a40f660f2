package events

import (
	"errors"
	"fmt"
)

// Failure classes. Every error the pipeline sees is one of these, and the
// class alone decides what happens to the message (see pipeline.settle):
//
//   - Permanent: retrying cannot help (malformed event, invalid manifest,
//     a configuration mistake). The message is dead-lettered with the reason.
//   - Transient: infrastructure trouble (network, 5xx, Maestro unavailable).
//     The message is retried with backoff, then dead-lettered when attempts
//     run out.
//
// An error that carries no class is treated as transient: losing an event to
// an unclassified bug is worse than retrying it a bounded number of times.
//
// The class travels as a method, Permanent() bool, anywhere in the %w chain,
// so packages below this one (hyperfleet, maestro) can class their errors
// without importing it, the way net.Error carries Timeout().

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

// FieldError names the field of an event that is wrong and how.
type FieldError struct {
	Field   string
	Problem string
}

func (e *FieldError) Error() string { return fmt.Sprintf("field %s: %s", e.Field, e.Problem) }

func fieldErr(field, format string, args ...any) error {
	return Permanent(&FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
}
