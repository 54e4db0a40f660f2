// Package layers checks that imports point down. Our packages stand in
// layers, declared once in the table of layers_test.go: the leaves at the
// bottom (failure classes, backoff, work label keys, redaction, the process
// lifecycle), HyperFleet's domain types above them, then the parts the
// pipeline composes (events, the HyperFleet API client, handlers, Maestro
// delivery), the pipeline, and the programs on top. A package may import
// its own entry of the table and the layers below it; an import upward, or
// sideways into another entry of its own layer, fails `go test ./...` and
// `make lint`, naming the import.
//
// Only non-test code is checked: a test may drive the layers above its
// package (maestro/jobs' integration tests run the pipeline), since tests
// are not part of what the layers compose.
package layers
