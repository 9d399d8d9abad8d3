// Package locality groups peer addresses by where they sit in a network:
// by subnet (a prefix length per address family) or by a topology file of
// named groups of CIDRs in tiers (same rack, then same zone, then
// anywhere). The storage drivers use it to answer an announce from the
// announcer's own group first; this package only classifies, it keeps no
// peers.
//
// A Classifier maps an address to a cell key: a uint64 in which each
// tier's group takes 16 bits, the farthest tier in the highest bits. Peers
// that share every tier's group share a cell, and sorting cells by key
// puts the cells of one zone next to each other, so every "same group at
// tier t and beyond" is one contiguous run of sorted cells. Classifying is
// allocation-free: a few shifts in prefix mode, a map lookup per distinct
// prefix length per tier with a topology.
package locality

import (
	"encoding/binary"
	"math"
	"net/netip"
	"strconv"
	"strings"

	"github.com/chihaya/chihaya/pkg/yamlconf"
)

// MaxTiers bounds the tiers of a topology: four 16-bit group numbers fill
// the 64-bit cell key.
const MaxTiers = 4

// MaxGroups bounds the groups of one tier (group 0 means "in none").
const MaxGroups = 1<<16 - 1

// Classifier assigns addresses to cells. It is immutable, so a store can
// swap in a new one (on reload) while announces read the old one.
type Classifier struct {
	share float64
	// prefix holds the prefix lengths per family (4, 6) in prefix mode,
	// where topo is nil.
	prefix [2]int
	topo   *topology
}

// Reload builds the classifier again from c's topology file, as a store
// does when the daemon reloads (SIGUSR1, SIGHUP). With locality off, or
// grouping by prefix alone, there is nothing to read: it returns nil and
// no error, and the running classifier stays. Errors name the key below
// `locality`.
func Reload(c Config) (*Classifier, error) {
	if !c.Enabled || c.TopologyFile == "" {
		return nil, nil
	}
	classifier, err := Load(c)
	if err != nil {
		return nil, yamlconf.Under(err, "locality")
	}
	return classifier, nil
}

// Load builds the classifier a config describes, reading its topology
// file if it names one. Errors name the key, relative to the `locality`
// mapping.
func Load(c Config) (*Classifier, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	cl := &Classifier{share: c.MinOutsideShare, prefix: [2]int{c.IPv4Prefix, c.IPv6Prefix}}
	if c.TopologyFile != "" {
		t, err := readTopology(c.TopologyFile)
		if err != nil {
			return nil, yamlconf.Errorf("topology_file", "%w", err)
		}
		cl.topo = t
	}
	return cl, nil
}

// Tiers returns the number of tiers (1 in prefix mode). Tier 0 is the
// nearest; beyond the last tier lies the rest of the swarm.
func (c *Classifier) Tiers() int {
	if c.topo == nil {
		return 1
	}
	return len(c.topo.tiers)
}

// Key returns the cell key of a. a must be valid and not IPv4-mapped (the
// frontends unmap addresses).
func (c *Classifier) Key(a netip.Addr) uint64 {
	if c.topo == nil {
		if a.Is4() {
			b := a.As4()
			return uint64(binary.BigEndian.Uint32(b[:])) >> (32 - c.prefix[0])
		}
		b := a.As16()
		return binary.BigEndian.Uint64(b[:8]) >> (64 - c.prefix[1])
	}
	hi, lo, fam := split(a)
	var key uint64
	for t := range c.topo.tiers {
		key |= uint64(c.topo.fam[fam][t].lookup(hi, lo)) << (16 * t)
	}
	return key
}

// PrefixMasks returns, in prefix mode, the masks of the address bits
// that make a group: of an IPv4 address, and of the first 64 bits of an
// IPv6 address. Two addresses are in one group when they agree under the
// mask, which a store can test on raw bytes. ok is false with a topology.
func (c *Classifier) PrefixMasks() (v4 uint32, v6 uint64, ok bool) {
	if c.topo != nil {
		return 0, 0, false
	}
	return ^uint32(0) << (32 - c.prefix[0]), ^uint64(0) << (64 - c.prefix[1]), true
}

// Mask returns the bits of a cell key that tiers t and beyond use: two
// cells are in the same group at tier t (and every farther tier) when
// their keys agree under the mask. Mask(0) compares whole cells;
// Mask(Tiers()) is 0, the whole swarm.
func (c *Classifier) Mask(t int) uint64 {
	if t >= c.Tiers() {
		return 0
	}
	if c.topo == nil {
		return ^uint64(0)
	}
	return ^uint64(0) << (16 * t)
}

// Placed reports whether the cell key is in some group at tier t. An
// address outside every group of a tier has no "own group" there, so it
// is never treated as near another such address at that tier.
func (c *Classifier) Placed(key uint64, t int) bool {
	if c.topo == nil {
		return t == 0
	}
	return t < len(c.topo.tiers) && (key>>(16*t))&0xffff != 0
}

// Reserve returns how many of numWant peers are kept for peers outside
// the announcer's group: at least min_outside_share of them, rounded up.
func (c *Classifier) Reserve(numWant int) int {
	if c.share <= 0 || numWant <= 0 {
		return 0
	}
	// The epsilon keeps 0.1*30 (3.0000000000000004 in floating point)
	// at 3.
	return min(numWant, int(math.Ceil(c.share*float64(numWant)-1e-9)))
}

// TierPrefix returns the names of key's groups at tiers t and beyond,
// farthest first, each ended by a NUL byte: the cells of one group at tier
// t are exactly those whose Cell starts with it, and the names sort like
// the keys. The Redis driver names its per-group keys with it. In prefix
// mode a group's name is its prefix in hex.
func (c *Classifier) TierPrefix(key uint64, t int) string {
	if t >= c.Tiers() {
		return ""
	}
	if c.topo == nil {
		return strconv.FormatUint(key, 16) + "\x00"
	}
	var b strings.Builder
	for i := len(c.topo.tiers) - 1; i >= t; i-- {
		b.WriteString(c.topo.tiers[i].groups[(key>>(16*i))&0xffff])
		b.WriteByte(0)
	}
	return b.String()
}

// Cell returns the name of the cell of key: TierPrefix(key, 0).
func (c *Classifier) Cell(key uint64) string { return c.TierPrefix(key, 0) }

// split returns a's address bits as two words (an IPv4 address in the top
// 32 bits of hi) and its family, 0 for IPv4 and 1 for IPv6.
func split(a netip.Addr) (hi, lo uint64, fam int) {
	if a.Is4() {
		b := a.As4()
		return uint64(binary.BigEndian.Uint32(b[:])) << 32, 0, 0
	}
	b := a.As16()
	return binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:]), 1
}

// maskBits keeps the first bits of the 128-bit value hi:lo.
func maskBits(hi, lo uint64, bits int) (uint64, uint64) {
	switch {
	case bits <= 0:
		return 0, 0
	case bits <= 64:
		return hi & (^uint64(0) << (64 - bits)), 0
	default:
		return hi, lo & (^uint64(0) << (128 - bits))
	}
}
