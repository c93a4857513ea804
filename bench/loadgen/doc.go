// Package loadgen is what the benchmark adds to megaws's event-loop client
// (github.com/megaws/megaws/client/loop), which holds the connections:
// verifiable payloads (every byte of an echo or a broadcast is checked
// against what was sent), the per-connection scratch the scenarios keep
// (State), and latency histograms in the harness's unit.
package loadgen
