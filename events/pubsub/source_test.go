package pubsub_test

import (
	"testing"

	"github.com/openshift-hyperfleet/maestro-adapter/events/sourcetest"
)

func TestConformance(t *testing.T) {
	sourcetest.Run(t, sourcetest.Features{RequeueCountsAttempts: true, KnownIssues: map[string]string{
		// Found 2026-12-03: in about 1 run in 3 of make test (and 3 in 25
		// with the CPU loaded) a message left unsettled at Close did not
		// reach the next consumer within 60 s on pstest, so it is not only
		// late by an ack deadline. Not seen before grpc moved from v1.78 to
		// v1.80 (pulled in by the OpenTelemetry exporters), which is not
		// proven to be the cause; cause not found.
		// 2026-12-03, later: 1 in 8 unloaded. Likely mechanism (pstest's
		// deliver and the client's Receive read, not proven): under the
		// client's default graceful shutdown the closing consumer's
		// streaming pull stays open until its callbacks return, so the nack
		// of an abandoned message can be redelivered onto that stream, which
		// no longer hands anything out; the message then stays leased until
		// its ack deadline. A timed shutdown (ShutdownOptions with a
		// Timeout, which closes the streams first) made it fail 16 in 16:
		// its Receive then stops the iterators at once (read in its code),
		// so the nacks, and acks, sent during our grace period seem to be
		// dropped: not a fix.
		"UnsettledGoToAnotherConsumerAfterClose": "on pstest a message left unsettled at Close may not be redelivered (under investigation)",
	}}, newTransport)
}
