//go:build race

package clients

// raceEnabled builds the daemon with -race too, so that a data race the
// clients provoke in it fails the test that provoked it.
const raceEnabled = true
