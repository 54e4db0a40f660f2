package maestro_test

import (
	"log/slog"
	"testing"

	"github.com/openshift-hyperfleet/maestro-adapter/maestro/maestrotest"
)

// testLogger logs through t (see maestrotest.SlogLogger).
func testLogger(t testing.TB) *slog.Logger { return maestrotest.SlogLogger(t) }
