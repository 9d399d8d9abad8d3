package websocket

import (
	"net/netip"
	"strconv"

	"github.com/chihaya/chihaya/frontend"
)

func netipMust(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func itoa(n int) string { return strconv.Itoa(n) }

func newTestMetrics() *frontend.Metrics { return frontend.NewMetrics("websocket", false) }
