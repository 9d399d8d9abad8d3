//go:build !unix

package mmsg

// msgTrunc is unknown here: oversized datagrams arrive cut.
const msgTrunc = 0
