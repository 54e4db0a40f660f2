// This module is the HyperFleet Maestro adapter's own stand-in for
// github.com/openshift-online/ocm-common, which the Go module proxy refuses to
// serve. The Maestro server only uses its SQL search parser
// (pkg/utils/parser/sql_parser), so that is all this module provides. It is
// wired into deploy/local/maestro-server with a replace directive; it is never
// part of the product module.
module github.com/openshift-online/ocm-common

go 1.25.0
