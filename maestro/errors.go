package maestro

import "errors"

// ErrConsumerNotRegistered means Maestro has no consumer of that name, so
// no agent can receive the work. A delivery returns it Transient while it
// gives the consumer time to be registered (the first events of a new
// cluster commonly arrive before its consumer exists) and Permanent once
// that time is up; the pipeline retries it for as long as it is Transient,
// MAX_ATTEMPTS notwithstanding, because the delivery bounds it by time.
var ErrConsumerNotRegistered = errors.New("consumer is not registered in Maestro")

// ErrAuthentication means Maestro refused the adapter's credentials (HTTP
// 401 or 403, gRPC Unauthenticated or PermissionDenied). It is Transient:
// a rotated token or certificate is re-read on the next try, and the
// event's tries (MAX_ATTEMPTS) bound how long a lasting refusal is retried.
var ErrAuthentication = errors.New("Maestro refused the adapter's credentials (authentication)")
