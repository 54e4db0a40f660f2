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
		"UnsettledGoToAnotherConsumerAfterClose": "on pstest a message left unsettled at Close may not be redelivered (under investigation)",
	}}, newTransport)
}
