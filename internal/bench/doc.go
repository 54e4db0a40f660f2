// Package bench measures the adapter end to end on the real local stack
// (RabbitMQ, a Maestro server, a simulated agent) and writes the results as
// BENCHMARKS.md and benchmarks.json at the repository root.
//
// The harness is TestEndToEndBenchmark, which runs only with BENCH_E2E=1 so
// that `go test ./...` skips it at once; `make bench` starts the services,
// runs the hot-path Go benchmarks, then the harness. Every figure is
// measured against baselines taken in the same run (raw Maestro apply rate,
// raw RabbitMQ consume rate), because the machine is shared and absolute
// numbers drift from one run to the next; the ratios are what to compare.
//
// This file's package holds what the harness computes and renders
// (percentiles, Prometheus and `go test -bench` parsing, the report), kept
// out of the test so that it is unit-tested like any other code.
package bench
