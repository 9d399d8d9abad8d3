package torrentapproval

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/internal/configtest"
	"github.com/chihaya/chihaya/internal/eventually"
	"github.com/chihaya/chihaya/middleware"
)

const (
	hashA = "0123456789abcdef0123456789abcdef01234567"
	hashB = "89ABCDEF0123456789ABCDEF0123456789ABCDEF"
	hashC = "fedcba9876543210fedcba9876543210fedcba98"
)

func ih(s string) (h bittorrent.InfoHash) {
	if _, err := hex.Decode(h[:], []byte(s)); err != nil {
		panic(err)
	}
	return h
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestLoadAccepts: options that load, and what they load to; the
// rejected ones are files in testdata (TestBadOptions).
func TestLoadAccepts(t *testing.T) {
	configtest.Accepts(t, plugin.Load, []configtest.Accept[Config]{
		{Name: "whitelist", YAML: "whitelist: [" + hashA + ", " + hashB + "]\n", Want: Config{Whitelist: []string{hashA, hashB}}},
		{Name: "blacklist file gets a check interval", YAML: "blacklist_file: /etc/bad\n", Want: Config{BlacklistFile: "/etc/bad", FileCheckInterval: 5 * time.Second}},
		{Name: "explicit check interval", YAML: "whitelist_file: /etc/ok\nfile_check_interval: 1m\n", Want: Config{WhitelistFile: "/etc/ok", FileCheckInterval: time.Minute}},
	})
}

func check(t *testing.T, h *Hook, hash string, wantRefused bool) {
	t.Helper()
	req := &bittorrent.AnnounceRequest{InfoHash: ih(hash), Params: bittorrent.ParamsNone}
	err := h.HandleAnnounce(context.Background(), req, &bittorrent.AnnounceResponse{})
	if !wantRefused {
		if err != nil {
			t.Fatalf("%s refused: %v", hash, err)
		}
		return
	}
	var r middleware.Refusal
	if !errors.As(err, &r) || r.Reason != "unapproved_torrent" || err.Error() != "unapproved torrent: this tracker does not track this info hash" {
		t.Fatalf("%s: error %#v, want the unapproved_torrent refusal", hash, err)
	}
}

func TestHandleAnnounce(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "list")
	writeFile(t, list, "# approved torrents\n"+hashA+"\n\n  "+strings.ToUpper(hashC)+"  # upper case, padded\r\n")
	for _, tc := range []struct {
		name    string
		cfg     Config
		refused map[string]bool
	}{
		{"inline whitelist", Config{Whitelist: []string{hashA, hashC}}, map[string]bool{hashA: false, hashB: true, hashC: false}},
		{"inline blacklist", Config{Blacklist: []string{hashB}}, map[string]bool{hashA: false, hashB: true, hashC: false}},
		{"upper-case inline hash", Config{Blacklist: []string{hashB}}, map[string]bool{strings.ToLower(hashB): true}},
		{"whitelist file", Config{WhitelistFile: list, FileCheckInterval: time.Hour}, map[string]bool{hashA: false, hashB: true, hashC: false}},
		{"blacklist file", Config{BlacklistFile: list, FileCheckInterval: time.Hour}, map[string]bool{hashA: true, hashB: false, hashC: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(h.Stop)
			for hash, refused := range tc.refused {
				check(t, h, hash, refused)
			}
			if err := h.HandleScrape(context.Background(), &bittorrent.ScrapeRequest{InfoHashes: []bittorrent.InfoHash{ih(hashB)}}, &bittorrent.ScrapeResponse{}); err != nil {
				t.Fatalf("scrape refused: %v", err)
			}
		})
	}
}

func TestBadFile(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, content, err string }{
		{"short line", hashA + "\n# fine\n" + hashB[:39] + "\n", `whitelist_file: PATH:3: "89ABCDEF0123456789ABCDEF0123456789ABCDE" is not an info hash: want 40 hex digits`},
		{"two on a line", hashA + " " + hashB + "\n", `whitelist_file: PATH:1: "0123456789abcdef0123456789abcdef01234567 89ABCDEF0123456789ABCDEF0123456789ABCDEF" is not an info hash: want 40 hex digits`},
		{"missing", "", "whitelist_file: stat PATH: no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			if tc.content != "" {
				writeFile(t, path, tc.content)
			}
			_, err := New(Config{WhitelistFile: path, FileCheckInterval: time.Hour})
			want := strings.ReplaceAll(tc.err, "PATH", path)
			if err == nil || err.Error() != want {
				t.Fatalf("error %v, want %q", err, want)
			}
		})
	}
}

func TestFileChangeReloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "whitelist")
	writeFile(t, path, hashA+"\n")
	// Edits in place are loaded once the file has been still for one
	// interval; 20ms is far longer than a small write takes.
	h, err := New(Config{WhitelistFile: path, FileCheckInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Stop)
	check(t, h, hashA, false)
	check(t, h, hashB, true)

	// An edit in place.
	writeFile(t, path, hashA+"\n"+hashB+"\n")
	eventually.True(t, "the edited list to load", func() bool { return h.Len() == 2 })
	check(t, h, hashB, false)

	// A bad version is rejected and counted; the list before it stays.
	errorsBefore := testutil.ToFloat64(fileLoads.WithLabelValues("error"))
	writeFile(t, path, hashC+"\nnot a hash\n")
	eventually.True(t, "the bad file to be counted", func() bool {
		return testutil.ToFloat64(fileLoads.WithLabelValues("error")) > errorsBefore
	})
	check(t, h, hashA, false)
	check(t, h, hashB, false)
	check(t, h, hashC, true)

	// Replaced by a rename, as an operator's tooling should write it.
	tmp := path + ".new"
	writeFile(t, tmp, hashC+"\n")
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, "the renamed list to load", func() bool { return h.Len() == 1 })
	check(t, h, hashA, true)
	check(t, h, hashC, false)
}

func TestStopIsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "list")
	writeFile(t, path, hashA+"\n")
	h, err := New(Config{BlacklistFile: path, FileCheckInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	h.Stop()
	h.Stop()
	inline, _ := New(Config{Blacklist: []string{hashA}})
	inline.Stop()
}

func millionHashes(tb testing.TB) string {
	tb.Helper()
	var buf bytes.Buffer
	buf.Grow(41 << 20)
	var h [20]byte
	var line [41]byte
	line[40] = '\n'
	for i := 0; i < 1_000_000; i++ {
		h[0], h[1], h[2], h[19] = byte(i), byte(i>>8), byte(i>>16), 0xAA
		hex.Encode(line[:40], h[:])
		buf.Write(line[:])
	}
	path := filepath.Join(tb.TempDir(), "million")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

func TestMillionEntries(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 41 MB file")
	}
	path := millionHashes(t)
	start := time.Now()
	h, err := New(Config{WhitelistFile: path, FileCheckInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Stop)
	t.Logf("loaded %d hashes in %s", h.Len(), time.Since(start))
	if h.Len() != 1_000_000 {
		t.Fatalf("loaded %d hashes, want 1000000", h.Len())
	}
	check(t, h, "3f420f"+strings.Repeat("0", 32)+"aa", false) // entry 0x0f423f = 999999
	check(t, h, "40420f"+strings.Repeat("0", 32)+"aa", true)  // 1000000: not listed
}

func BenchmarkLoadMillion(b *testing.B) {
	path := millionHashes(b)
	b.ReportAllocs()
	for b.Loop() {
		h, err := New(Config{WhitelistFile: path, FileCheckInterval: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		h.Stop()
	}
}

func BenchmarkHandleAnnounce(b *testing.B) {
	h, err := New(Config{Whitelist: []string{hashA, hashB}})
	if err != nil {
		b.Fatal(err)
	}
	req := &bittorrent.AnnounceRequest{InfoHash: ih(hashB), Params: bittorrent.ParamsNone}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var resp bittorrent.AnnounceResponse
		for pb.Next() {
			if err := h.HandleAnnounce(context.Background(), req, &resp); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestReloadOnRequest: the daemon's reload (SIGUSR1, SIGHUP) reads the
// file at once, whatever the watch's interval; a bad file is refused with
// the old list kept.
func TestReloadOnRequest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "whitelist")
	writeFile(t, path, hashA+"\n")
	h, err := New(Config{WhitelistFile: path, FileCheckInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Stop)
	writeFile(t, path, hashB+"\n")
	if err := h.Reload(); err != nil {
		t.Fatal(err)
	}
	check(t, h, hashA, true)
	check(t, h, hashB, false)

	writeFile(t, path, hashC+"\nnot a hash\n")
	err = h.Reload()
	if err == nil || !strings.Contains(err.Error(), path+":2:") {
		t.Fatalf("Reload of a bad file: %v, want an error naming %s:2", err, path)
	}
	check(t, h, hashB, false)
	check(t, h, hashC, true)

	h.Stop()
	if err := h.Reload(); err != nil {
		t.Fatalf("Reload after Stop: %v", err)
	}
}

// TestBadOptions: every rejected options file in testdata, with the exact
// error the registry gives (the daemon puts the entry's key and the line in
// front: prehooks[0].options...).
func TestBadOptions(t *testing.T) {
	configtest.BadHookOptions(t, Name, []configtest.Case{
		{File: "bad-both-lists.yaml", Want: `options (torrent approval): whitelist and blacklist are both set; use one`},
		{File: "bad-whitelist-and-blacklist-file.yaml", Want: `options (torrent approval): whitelist and blacklist_file are both set; use one`},
		{File: "bad-whitelist-file-and-blacklist.yaml", Want: `options (torrent approval): whitelist_file and blacklist are both set; use one`},
		{File: "bad-whitelist-inline-and-file.yaml", Want: `options (torrent approval): whitelist and whitelist_file are both set; use one`},
		{File: "bad-blacklist-inline-and-file.yaml", Want: `options (torrent approval): blacklist and blacklist_file are both set; use one`},
		{File: "bad-no-list.yaml", Want: `options (torrent approval): one of whitelist, whitelist_file, blacklist or blacklist_file must be set`},
		{File: "bad-short-hash.yaml", Want: `options.whitelist[1]: "abc" is not an info hash: want 40 hex digits`},
		{File: "bad-non-hex-hash.yaml", Want: `options.blacklist[0]: "gggggggggggggggggggggggggggggggggggggggg" is not an info hash: want 40 hex digits`},
		{File: "bad-base32-hash.yaml", Want: `options.blacklist[0]: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" is not an info hash: want 40 hex digits`},
		{File: "bad-negative-interval.yaml", Want: `options.file_check_interval: must be > 0, got -1s`},
		{File: "bad-interval-without-file.yaml", Want: `options.file_check_interval: set without whitelist_file or blacklist_file`},
		{File: "bad-unknown-key.yaml", Want: `line 1: unknown key "white_list" in options (torrent approval)`},
		{File: "bad-missing-file.yaml", Want: `options.whitelist_file: stat testdata/no-such-list.txt: no such file or directory`},
		{File: "bad-file-content.yaml", Want: `options.blacklist_file: testdata/bad-list.txt:3: "not-a-hash" is not an info hash: want 40 hex digits`},
	})
}
