// Package bench compares Fred's telemetry client with the analytics SDKs a
// CLI could embed instead (posthog-go, Segment's analytics-go, the
// OpenTelemetry trace SDK). It is a separate module so that the product never
// depends on the benchmarked SDKs; everything here measures through the
// public API of package telemetry, and all traffic stays on 127.0.0.1.
//
// Run it with scripts/bench-clients:
//
//   - BenchmarkPipeline: the sustained cost per record through each client's
//     whole pipeline (recording, batching, encoding, HTTP) into a loopback
//     sink, in one run, with allocations of every goroutine counted.
//   - TestExitCost (BENCH_EXIT=1): the wall time a short CLI session spends in
//     Close against a healthy sink, a refused port and a blackhole.
package bench
