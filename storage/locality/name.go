package locality

import (
	"net/netip"
	"strconv"
	"strings"
)

// NoGroup names a tier in which an address is in no group.
const NoGroup = "(none)"

// GroupName returns a readable name of the cell key of an address of
// family v6 (false: IPv4) for people (the operator API, the status page):
// with a topology, the groups of every tier, farthest first, joined by
// "/" ("zone-a/rack-1"), NoGroup for a tier the address is in no group
// of; by subnet, the prefix ("10.1.2.0/24").
func (c *Classifier) GroupName(key uint64, v6 bool) string {
	if c.topo == nil {
		if !v6 {
			p := c.prefix[0]
			var b [4]byte
			a := uint32(key << (32 - p))
			b[0], b[1], b[2], b[3] = byte(a>>24), byte(a>>16), byte(a>>8), byte(a)
			return netip.PrefixFrom(netip.AddrFrom4(b), p).String()
		}
		p := c.prefix[1]
		hi := key << (64 - p)
		var b [16]byte
		for i := 0; i < 8; i++ {
			b[i] = byte(hi >> (56 - 8*i))
		}
		return netip.PrefixFrom(netip.AddrFrom16(b), p).String()
	}
	var sb strings.Builder
	for t := len(c.topo.tiers) - 1; t >= 0; t-- {
		g := c.topo.tiers[t].groups[(key>>(16*t))&0xffff]
		if g == "" {
			g = NoGroup
		}
		sb.WriteString(g)
		if t > 0 {
			sb.WriteByte('/')
		}
	}
	return sb.String()
}

// CellName returns GroupName of the cell named cell (Cell's result), of
// an address of family v6; the Redis driver keeps cells by name. A name
// that is not one of this classifier's is returned as it is.
func (c *Classifier) CellName(cell string, v6 bool) string {
	if c.topo == nil {
		key, err := strconv.ParseUint(strings.TrimSuffix(cell, "\x00"), 16, 64)
		if err != nil {
			return cell
		}
		return c.GroupName(key, v6)
	}
	parts := strings.Split(strings.TrimSuffix(cell, "\x00"), "\x00")
	for i, p := range parts {
		if p == "" {
			parts[i] = NoGroup
		}
	}
	return strings.Join(parts, "/")
}
