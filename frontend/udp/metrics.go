package udp

// The reasons, beside those of frontend.ReasonOf, under which the UDP
// frontend counts a dropped or refused datagram in
// chihaya_frontend_errors_total{frontend="udp"}.
const (
	// reasonShortPacket: fewer than the 16 bytes of a header, so not even
	// an error can be sent back.
	reasonShortPacket = "short_packet"
	// reasonOversized: larger than the read buffer, so the kernel cut it.
	reasonOversized = "oversized_packet"
	// reasonUnknownAction: an action other than connect, announce, scrape.
	reasonUnknownAction = "unknown_action"
	// reasonAmplification: a refusal dropped because its error packet
	// would have been larger than the unauthenticated request.
	reasonAmplification = "dropped_amplification"
	// reasonPanic: handling the datagram panicked; it was dropped.
	reasonPanic = "panic"
	// reasonReadError and reasonWriteError: the socket failed.
	reasonReadError  = "read_error"
	reasonWriteError = "write_error"
)
