package handlers

// The upstream APIs whose Go types the handlers build OpenShift and
// HyperShift objects from, at the versions pinned in go.mod (a test holds
// these constants to the versions compiled in). The CRDs the server-side
// dry run installs come from the same module versions.
const (
	// OpenShiftAPIModule holds OAuth (config/v1) and IngressController
	// (operator/v1).
	OpenShiftAPIModule  = "github.com/openshift/api"
	OpenShiftAPIVersion = "v0.0.0-20251125174858-5cf710f68a92"
	// HyperShiftAPIModule holds NodePool (hypershift/v1beta1).
	HyperShiftAPIModule  = "github.com/openshift/hypershift/api"
	HyperShiftAPIVersion = "v0.0.0-20251120083117-dea6d2f24af6"
)
