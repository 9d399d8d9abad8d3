//go:build race

package redis

// raceDetector reports a build with -race, where sync.Pool drops a
// quarter of what is put back at random, so allocations per operation
// are not the daemon's.
const raceDetector = true
