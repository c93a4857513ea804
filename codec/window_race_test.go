//go:build race

package codec

// raceEnabled shortens the slowest window tests under the race detector,
// which slows the compressor's inner loops tenfold.
const raceEnabled = true
