//go:build !linux

package mmsg

const isLinux = false
