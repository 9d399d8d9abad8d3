package bittorrent

// Event is the event an announce reports.
type Event uint8

// The events of BEP 3. The numeric values are ours; the UDP frontend maps
// BEP 15's numbering onto them.
const (
	None Event = iota
	Started
	Stopped
	Completed
)

var eventNames = [...]string{None: "none", Started: "started", Stopped: "stopped", Completed: "completed"}

// String returns the event's name as it appears in an HTTP announce, or
// "none" for a regular announce.
func (e Event) String() string {
	if int(e) < len(eventNames) {
		return eventNames[e]
	}
	return "unknown"
}

// ParseEvent maps the HTTP `event` parameter to an Event. An empty value
// (or "empty", which some clients send) is a regular announce, and so is
// "paused": libtorrent (qBittorrent, Deluge) sends it with every announce
// of a partial seed (BEP 21), a peer that has the files it wants and
// whose `left` still counts the rest, so it stays a leecher.
func ParseEvent(s string) (Event, error) {
	switch s {
	case "", "empty", "paused":
		return None, nil
	case "started":
		return Started, nil
	case "stopped":
		return Stopped, nil
	case "completed":
		return Completed, nil
	}
	return None, ErrInvalidEvent
}
