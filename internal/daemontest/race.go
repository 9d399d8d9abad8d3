//go:build race

package daemontest

// raceEnabled builds the daemon with -race too, so that a data race a test
// provokes in it fails that test.
const raceEnabled = true
