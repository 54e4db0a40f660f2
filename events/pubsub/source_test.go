package pubsub_test

import (
	"testing"

	"github.com/openshift-hyperfleet/maestro-adapter/events/sourcetest"
)

func TestConformance(t *testing.T) {
	sourcetest.Run(t, sourcetest.Features{RequeueCountsAttempts: true}, newTransport)
}
