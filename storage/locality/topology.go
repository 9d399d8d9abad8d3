package locality

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/chihaya/chihaya/pkg/yamlconf"
)

// topologyFile is the YAML of a topology file: tiers nearest first, each
// a list of named groups of CIDRs.
type topologyFile struct {
	Tiers []struct {
		Name   string `yaml:"name"`
		Groups []struct {
			Name  string   `yaml:"name"`
			CIDRs []string `yaml:"cidrs"`
		} `yaml:"groups"`
	} `yaml:"tiers"`
}

type topology struct {
	tiers []tier
	// fam holds the lookup tables per family (0 IPv4, 1 IPv6) and tier.
	fam [2][]tierIndex
}

type tier struct {
	name string
	// groups are the group names by number; groups[0] is "" (in none).
	groups []string
}

// tierIndex finds the group of an address in one tier and family by
// longest prefix: one map lookup per distinct prefix length, longest first.
type tierIndex struct {
	lens []int
	m    map[prefixKey]uint16
}

type prefixKey struct {
	hi, lo uint64
	bits   uint8
}

func (x *tierIndex) lookup(hi, lo uint64) uint16 {
	for _, bits := range x.lens {
		h, l := maskBits(hi, lo, bits)
		if g, ok := x.m[prefixKey{h, l, uint8(bits)}]; ok {
			return g
		}
	}
	return 0
}

// readTopology reads and checks a topology file. Errors name the file and
// the entry, e.g. "/etc/chihaya/topology.yaml: tiers[0].groups[2].cidrs[1]:
// not a CIDR: ...".
func readTopology(path string) (*topology, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			// "open <path>: ..." would name the path twice.
			return nil, fmt.Errorf("%s: %w", path, pe.Err)
		}
		return nil, err
	}
	t, err := parseTopology(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

func parseTopology(b []byte) (*topology, error) {
	// Strictly, with errors naming the key and its line in the file.
	f, err := yamlconf.Decode(b, topologyFile{})
	if err != nil {
		return nil, err
	}
	switch {
	case len(f.Tiers) == 0:
		return nil, errors.New("tiers: at least one tier is needed")
	case len(f.Tiers) > MaxTiers:
		return nil, fmt.Errorf("tiers: at most %d tiers, got %d", MaxTiers, len(f.Tiers))
	}
	t := &topology{}
	tierNames := map[string]int{}
	for ti, ft := range f.Tiers {
		at := fmt.Sprintf("tiers[%d]", ti)
		if err := checkName(ft.Name); err != nil {
			return nil, fmt.Errorf("%s.name: %w", at, err)
		}
		if prev, dup := tierNames[ft.Name]; dup {
			return nil, fmt.Errorf("%s.name: %q already names tiers[%d]", at, ft.Name, prev)
		}
		tierNames[ft.Name] = ti
		switch {
		case len(ft.Groups) == 0:
			return nil, fmt.Errorf("%s.groups: at least one group is needed", at)
		case len(ft.Groups) > MaxGroups:
			return nil, fmt.Errorf("%s.groups: at most %d groups, got %d", at, MaxGroups, len(ft.Groups))
		}
		tr := tier{name: ft.Name, groups: []string{""}}
		idx := [2]tierIndex{{m: map[prefixKey]uint16{}}, {m: map[prefixKey]uint16{}}}
		owner := map[prefixKey]string{}
		groupNames := map[string]int{}
		for gi, g := range ft.Groups {
			at := fmt.Sprintf("%s.groups[%d]", at, gi)
			if err := checkName(g.Name); err != nil {
				return nil, fmt.Errorf("%s.name: %w", at, err)
			}
			if prev, dup := groupNames[g.Name]; dup {
				return nil, fmt.Errorf("%s.name: %q already names %s.groups[%d]", at, g.Name, fmt.Sprintf("tiers[%d]", ti), prev)
			}
			groupNames[g.Name] = gi
			if len(g.CIDRs) == 0 {
				return nil, fmt.Errorf("%s.cidrs: at least one CIDR is needed", at)
			}
			for ci, s := range g.CIDRs {
				p, err := netip.ParsePrefix(strings.TrimSpace(s))
				if err != nil {
					return nil, fmt.Errorf("%s.cidrs[%d]: not a CIDR: %q", at, ci, s)
				}
				if p.Addr().Is4In6() {
					// Peers are stored unmapped, so it would never match.
					return nil, fmt.Errorf("%s.cidrs[%d]: %s is IPv4-mapped; write the IPv4 CIDR", at, ci, s)
				}
				p = p.Masked()
				hi, lo, fam := split(p.Addr())
				bits := p.Bits()
				k := prefixKey{hi, lo, uint8(bits)}
				if prev, dup := owner[k]; dup {
					return nil, fmt.Errorf("%s.cidrs[%d]: %s is already in group %q of this tier", at, ci, p, prev)
				}
				owner[k] = g.Name
				idx[fam].m[k] = uint16(gi + 1)
				if !containsInt(idx[fam].lens, bits) {
					idx[fam].lens = append(idx[fam].lens, bits)
				}
			}
			tr.groups = append(tr.groups, g.Name)
		}
		for fam := range idx {
			sort.Sort(sort.Reverse(sort.IntSlice(idx[fam].lens)))
			t.fam[fam] = append(t.fam[fam], idx[fam])
		}
		t.tiers = append(t.tiers, tr)
	}
	return t, nil
}

// checkName accepts printable names: the Redis driver joins names with NUL
// bytes and bounds ranges with 0xFF, which therefore may not occur.
func checkName(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("must be UTF-8, got %q", s)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("must be printable, got %q", s)
		}
	}
	return nil
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
