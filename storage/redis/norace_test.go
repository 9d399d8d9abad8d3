//go:build !race

package redis

// raceDetector reports a build with -race (see race_test.go).
const raceDetector = false
