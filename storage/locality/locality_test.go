package locality

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	good := Config{Enabled: true}.WithDefaults()
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"defaults", func(*Config) {}, ""},
		{"share zero", func(c *Config) { c.MinOutsideShare = 0 }, ""},
		{"share one", func(c *Config) { c.MinOutsideShare = 1 }, ""},
		{"ipv4 prefix zero", func(c *Config) { c.IPv4Prefix = 0 }, "ipv4_prefix: must be 1-32, got 0"},
		{"ipv4 prefix 33", func(c *Config) { c.IPv4Prefix = 33 }, "ipv4_prefix: must be 1-32, got 33"},
		{"ipv6 prefix 65", func(c *Config) { c.IPv6Prefix = 65 }, "ipv6_prefix: must be 1-64, got 65"},
		{"negative share", func(c *Config) { c.MinOutsideShare = -0.1 }, "min_outside_share: must be between 0 and 1, got -0.1"},
		{"share above one", func(c *Config) { c.MinOutsideShare = 10 }, "min_outside_share: must be between 0 and 1, got 10"},
		{"left out of a Config built in Go", func(c *Config) { *c = Config{} }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			err := c.Validate()
			if got := errText(err); got != tc.want {
				t.Fatalf("Validate: %q, want %q", got, tc.want)
			}
		})
	}
}

func TestWithDefaults(t *testing.T) {
	if got, want := (Config{}).WithDefaults(), (Config{IPv4Prefix: 24, IPv6Prefix: 64, MinOutsideShare: 0.1}); got != want {
		t.Errorf("unset section: %+v, want %+v", got, want)
	}
	// A section that was written keeps a share of 0 as written.
	if got := (Config{Enabled: true}).WithDefaults(); got.MinOutsideShare != 0 || got.IPv4Prefix != 24 {
		t.Errorf("written section: %+v, want share 0 and the default prefixes", got)
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestLoadTopologyRejects(t *testing.T) {
	const p = "topology_file: testdata/"
	tests := []struct {
		file string
		want string
	}{
		{"bad-no-tiers.yaml", p + "bad-no-tiers.yaml: tiers: at least one tier is needed"},
		{"bad-cidr.yaml", p + `bad-cidr.yaml: tiers[0].groups[0].cidrs[0]: not a CIDR: "10.1.1.0/33"`},
		{"bad-duplicate-cidr.yaml", p + `bad-duplicate-cidr.yaml: tiers[0].groups[1].cidrs[0]: 10.1.1.0/24 is already in group "a" of this tier`},
		{"bad-duplicate-group.yaml", p + `bad-duplicate-group.yaml: tiers[0].groups[1].name: "a" already names tiers[0].groups[0]`},
		{"bad-no-cidrs.yaml", p + "bad-no-cidrs.yaml: tiers[0].groups[0].cidrs: at least one CIDR is needed"},
		{"bad-unknown-key.yaml", p + `bad-unknown-key.yaml: line 5: unknown key "cidr" in tiers[0].groups[0]`},
		{"bad-empty-name.yaml", p + "bad-empty-name.yaml: tiers[0].groups[0].name: must not be empty"},
		{"bad-mapped.yaml", p + `bad-mapped.yaml: tiers[0].groups[0].cidrs[0]: ::ffff:10.0.0.0/104 is IPv4-mapped; write the IPv4 CIDR`},
		{"bad-too-many-tiers.yaml", p + "bad-too-many-tiers.yaml: tiers: at most 4 tiers, got 5"},
		{"missing.yaml", p + "missing.yaml: no such file or directory"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			c := Config{Enabled: true, TopologyFile: filepath.Join("testdata", tc.file)}.WithDefaults()
			_, err := Load(c)
			if got := errText(err); got != tc.want {
				t.Fatalf("Load: %q\nwant  %q", got, tc.want)
			}
		})
	}
}

func mustLoad(t testing.TB, c Config) *Classifier {
	t.Helper()
	cl, err := Load(c)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func key(cl *Classifier, a string) uint64 { return cl.Key(netip.MustParseAddr(a)) }

func TestPrefixGroups(t *testing.T) {
	cl := mustLoad(t, Config{Enabled: true}.WithDefaults())
	tests := []struct {
		name string
		a, b string
		same bool
	}{
		{"same /24", "10.1.2.3", "10.1.2.250", true},
		{"next /24", "10.1.2.3", "10.1.3.3", false},
		{"same /64", "2001:db8:1:2::1", "2001:db8:1:2:ffff::9", true},
		{"next /64", "2001:db8:1:2::1", "2001:db8:1:3::1", false},
		{"loopback racks", "127.0.1.2", "127.0.2.2", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := key(cl, tc.a) == key(cl, tc.b); got != tc.same {
				t.Fatalf("%s and %s in one group: %v, want %v", tc.a, tc.b, got, tc.same)
			}
		})
	}
	if cl.Tiers() != 1 || cl.Mask(0) != ^uint64(0) || cl.Mask(1) != 0 || !cl.Placed(key(cl, "10.0.0.1"), 0) {
		t.Fatalf("prefix mode: tiers %d, masks %x %x", cl.Tiers(), cl.Mask(0), cl.Mask(1))
	}
	if got := cl.Cell(key(cl, "10.1.2.3")); got != "a0102\x00" {
		t.Fatalf("cell name %q, want the prefix in hex, NUL-ended", got)
	}
}

func TestTopologyGroups(t *testing.T) {
	cl := mustLoad(t, Config{Enabled: true, TopologyFile: "testdata/good-topology.yaml"}.WithDefaults())
	tests := []struct {
		addr       string
		rack, zone string // "" for in none
	}{
		{"10.1.1.9", "a1", "a"},
		{"10.1.2.9", "a2", "a"},
		{"10.1.2.200", "a2", "a"}, // longest prefix: a2's /25, same group
		{"10.1.7.1", "", "a"},
		{"10.2.1.1", "b1", "b"},
		{"10.3.0.1", "", ""},
		{"2001:db8:a1::5", "a1", "a"},
		{"2001:db8:ff::5", "", "a"},
		{"2001:db9::1", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			k := key(cl, tc.addr)
			if got := cl.Placed(k, 0); got != (tc.rack != "") {
				t.Errorf("placed at tier 0: %v, want %v", got, tc.rack != "")
			}
			if got := cl.Placed(k, 1); got != (tc.zone != "") {
				t.Errorf("placed at tier 1: %v, want %v", got, tc.zone != "")
			}
			if got, want := cl.Cell(k), tc.zone+"\x00"+tc.rack+"\x00"; got != want {
				t.Errorf("cell %q, want %q", got, want)
			}
			if got, want := cl.TierPrefix(k, 1), tc.zone+"\x00"; got != want {
				t.Errorf("tier 1 prefix %q, want %q", got, want)
			}
		})
	}
	// Racks of one zone agree under the zone's mask, and only they.
	a1, a2, b1 := key(cl, "10.1.1.1"), key(cl, "10.1.2.1"), key(cl, "10.2.1.1")
	if m := cl.Mask(1); a1&m != a2&m || a1&m == b1&m {
		t.Fatalf("zone mask %x: a1 %x a2 %x b1 %x", m, a1, a2, b1)
	}
	if cl.Mask(2) != 0 {
		t.Fatalf("beyond the last tier the mask is %x, want 0", cl.Mask(2))
	}
}

func TestReserve(t *testing.T) {
	tests := []struct {
		share   float64
		numWant int
		want    int
	}{
		{0.1, 50, 5},
		{0.1, 30, 3}, // 0.1*30 is 3.0000000000000004 in floating point
		{0.1, 51, 6},
		{0.1, 5, 1},
		{0.1, 0, 0},
		{0, 50, 0},
		{1, 7, 7},
		{0.25, 6, 2},
	}
	for _, tc := range tests {
		cl := &Classifier{share: tc.share}
		if got := cl.Reserve(tc.numWant); got != tc.want {
			t.Errorf("Reserve(%d) with share %g = %d, want %d", tc.numWant, tc.share, got, tc.want)
		}
	}
}

func TestKeyAllocates(t *testing.T) {
	for _, c := range []Config{
		Config{Enabled: true}.WithDefaults(),
		Config{Enabled: true, TopologyFile: "testdata/good-topology.yaml"}.WithDefaults(),
	} {
		cl := mustLoad(t, c)
		a, b := netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("2001:db8:a1::1")
		if n := testing.AllocsPerRun(100, func() { _ = cl.Key(a) + cl.Key(b) }); n != 0 {
			t.Errorf("Key allocates %.0f times (topology %q)", n, c.TopologyFile)
		}
	}
}

func BenchmarkKey(b *testing.B) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"prefix", Config{Enabled: true}.WithDefaults()},
		{"topology", Config{Enabled: true, TopologyFile: "testdata/good-topology.yaml"}.WithDefaults()},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cl := mustLoad(b, tc.cfg)
			a := netip.MustParseAddr("10.1.2.3")
			b.ReportAllocs()
			var sink uint64
			for i := 0; i < b.N; i++ {
				sink += cl.Key(a)
			}
			_ = sink
		})
	}
}

// FuzzParseTopology feeds arbitrary files to the topology parser: it must
// reject or accept without panicking, and what it accepts must classify
// any address.
func FuzzParseTopology(f *testing.F) {
	for _, name := range []string{"good-topology.yaml", "bad-cidr.yaml", "bad-duplicate-cidr.yaml"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, []byte{10, 1, 1, 1})
	}
	f.Fuzz(func(t *testing.T, file, addr []byte) {
		topo, err := parseTopology(file)
		if err != nil {
			return
		}
		cl := &Classifier{topo: topo}
		var a netip.Addr
		switch len(addr) {
		case 4:
			a = netip.AddrFrom4([4]byte(addr))
		case 16:
			a = netip.AddrFrom16([16]byte(addr)).Unmap()
		default:
			return
		}
		k := cl.Key(a)
		for tier := 0; tier < cl.Tiers(); tier++ {
			_ = cl.TierPrefix(k, tier)
			if cl.Placed(k, tier) != ((k>>(16*tier))&0xffff != 0) {
				t.Fatalf("Placed disagrees with the key at tier %d", tier)
			}
		}
	})
}

// TestPrefixMasks: two addresses agree under the masks exactly when Key
// puts them in one cell.
func TestPrefixMasks(t *testing.T) {
	c, err := Load(Config{Enabled: true, IPv4Prefix: 20, IPv6Prefix: 48, MinOutsideShare: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	m4, m6, ok := c.PrefixMasks()
	if !ok || m4 != 0xfffff000 || m6 != 0xffffffffffff0000 {
		t.Fatalf("PrefixMasks() = %#x, %#x, %v; want 0xfffff000, 0xffffffffffff0000, true", m4, m6, ok)
	}
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"10.1.16.1", "10.1.31.255", true},
		{"10.1.16.1", "10.1.32.1", false},
		{"2001:db8:1:ffff::1", "2001:db8:1::2", true},
		{"2001:db8:1::1", "2001:db8:2::1", false},
	} {
		a, b := netip.MustParseAddr(tc.a), netip.MustParseAddr(tc.b)
		if same := c.Key(a) == c.Key(b); same != tc.same {
			t.Errorf("Key(%s) == Key(%s): %v, want %v", a, b, same, tc.same)
		}
	}
	topo := filepath.Join(t.TempDir(), "topology.yaml")
	if err := os.WriteFile(topo, []byte("tiers:\n  - name: rack\n    groups:\n      - name: a\n        cidrs: [10.0.0.0/8]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = Load(Config{Enabled: true, IPv4Prefix: 24, IPv6Prefix: 64, TopologyFile: topo})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := c.PrefixMasks(); ok {
		t.Error("PrefixMasks() ok with a topology")
	}
}

// TestReload: a reload reads the topology file again; with nothing to
// read (locality off, or prefix grouping alone) it gives no classifier,
// so the running one stays; a bad file gives its error under `locality`.
func TestReload(t *testing.T) {
	for _, c := range []Config{{}, Config{Enabled: true}.WithDefaults()} {
		if cl, err := Reload(c); cl != nil || err != nil {
			t.Errorf("Reload(%+v) = %v, %v; want nothing to reload", c, cl, err)
		}
	}
	cl, err := Reload(Config{Enabled: true, TopologyFile: "testdata/good-topology.yaml"}.WithDefaults())
	if err != nil || cl == nil {
		t.Fatalf("Reload of a good topology: %v, %v", cl, err)
	}
	if k := key(cl, "10.1.1.9"); cl.Cell(k) == cl.Cell(key(cl, "10.2.1.1")) {
		t.Errorf("the reloaded topology puts 10.1.1.9 and 10.2.1.1 in one cell")
	}
	_, err = Reload(Config{Enabled: true, TopologyFile: "testdata/bad-no-tiers.yaml"}.WithDefaults())
	want := "locality.topology_file: testdata/bad-no-tiers.yaml: tiers: at least one tier is needed"
	if got := errText(err); got != want {
		t.Errorf("Reload of a bad topology: %q\nwant %q", got, want)
	}
}
