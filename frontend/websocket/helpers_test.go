package websocket

import (
	"net/netip"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chihaya/chihaya/frontend"
)

func netipMust(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func itoa(n int) string { return strconv.Itoa(n) }

func newTestMetrics() *frontend.Metrics { return frontend.NewMetrics("websocket", false) }

// errorCount reads chihaya_frontend_errors_total{frontend="websocket"} for
// reason from the default registry.
func errorCount(reason string) float64 {
	mfs, _ := prometheus.DefaultGatherer.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "chihaya_frontend_errors_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["frontend"] == "websocket" && labels["reason"] == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
