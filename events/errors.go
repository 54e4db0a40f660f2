package events

import (
	"fmt"

	"github.com/openshift-hyperfleet/maestro-adapter/internal/failure"
)

// FieldError names the field of an event that is wrong and how.
type FieldError struct {
	Field   string
	Problem string
}

func (e *FieldError) Error() string { return fmt.Sprintf("field %s: %s", e.Field, e.Problem) }

func fieldErr(field, format string, args ...any) error {
	return failure.Permanent(&FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
}
