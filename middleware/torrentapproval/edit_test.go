package torrentapproval

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chihaya/chihaya/bittorrent"
)

func admits(h *Hook, hash string) bool {
	req := &bittorrent.AnnounceRequest{InfoHash: ih(hash)}
	return h.HandleAnnounce(context.Background(), req, &bittorrent.AnnounceResponse{}) == nil
}

func TestSetListedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "whitelist")
	writeFile(t, path, "# builds\n"+hashA+" # 4711\n")
	h, err := New(Config{WhitelistFile: path, FileCheckInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	if h.ListName() != "whitelist" || h.ListFile() != path {
		t.Fatalf("ListName %q ListFile %q", h.ListName(), h.ListFile())
	}
	if admits(h, hashB) {
		t.Fatal("hashB admitted before it was listed")
	}
	for _, step := range []struct {
		hash        string
		listed      bool
		wantChanged bool
		wantFile    string
	}{
		{hashB, true, true, "# builds\n" + hashA + " # 4711\n" + "89abcdef0123456789abcdef0123456789abcdef\n"},
		{hashB, true, false, "# builds\n" + hashA + " # 4711\n" + "89abcdef0123456789abcdef0123456789abcdef\n"},
		{hashA, false, true, "# builds\n" + "89abcdef0123456789abcdef0123456789abcdef\n"},
		{hashA, false, false, "# builds\n" + "89abcdef0123456789abcdef0123456789abcdef\n"},
	} {
		changed, err := h.SetListed(ih(step.hash), step.listed)
		if err != nil || changed != step.wantChanged {
			t.Fatalf("SetListed(%s, %v) = %v, %v; want changed %v", step.hash[:8], step.listed, changed, err, step.wantChanged)
		}
		if h.Listed(ih(step.hash)) != step.listed || admits(h, step.hash) != step.listed {
			t.Fatalf("after SetListed(%s, %v): Listed %v, admitted %v", step.hash[:8], step.listed, h.Listed(ih(step.hash)), admits(h, step.hash))
		}
		b, _ := os.ReadFile(path)
		if string(b) != step.wantFile {
			t.Fatalf("file after SetListed(%s, %v):\n%s\nwant\n%s", step.hash[:8], step.listed, b, step.wantFile)
		}
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v after the edit, want the original 0600", fi.Mode().Perm())
	}
	// A reload reads the file the edits wrote.
	if err := h.Reload(); err != nil || !admits(h, hashB) || admits(h, hashA) {
		t.Fatalf("after reload: err %v, hashB admitted %v, hashA admitted %v", err, admits(h, hashB), admits(h, hashA))
	}
	// And a new hook (a restart) too.
	h2, err := New(Config{WhitelistFile: path, FileCheckInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Stop()
	if !admits(h2, hashB) || admits(h2, hashA) {
		t.Fatal("a restarted hook does not see the edits")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("temporary files left beside the list: %v", entries)
	}
}

// A list file that is a symlink (kept by configuration management, or in
// a directory of its own) stays one: the edit is written to the file it
// points to, and the link is left as it was.
func TestSetListedThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "lists"), 0o755); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "lists", "whitelist")
	writeFile(t, target, "# builds\n")
	link := filepath.Join(dir, "whitelist")
	if err := os.Symlink(filepath.Join("lists", "whitelist"), link); err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{WhitelistFile: link, FileCheckInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	if changed, err := h.SetListed(ih(hashB), true); err != nil || !changed {
		t.Fatalf("SetListed: %v, %v", changed, err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the list file's link was replaced by a file (mode %v, %v)", fi.Mode(), err)
	}
	if b, _ := os.ReadFile(target); string(b) != "# builds\n89abcdef0123456789abcdef0123456789abcdef\n" {
		t.Fatalf("the link's target after the edit: %q", b)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "lists")); len(entries) != 1 {
		t.Errorf("temporary files left beside the target: %v", entries)
	}
}

func TestSetListedBrokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "blacklist")
	writeFile(t, path, hashA+"\n")
	h, err := New(Config{BlacklistFile: path, FileCheckInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	writeFile(t, path, hashA+"\nnot a hash\n")
	if _, err := h.SetListed(ih(hashB), true); err == nil {
		t.Fatal("SetListed over a broken file succeeded")
	}
	if b, _ := os.ReadFile(path); string(b) != hashA+"\nnot a hash\n" {
		t.Fatalf("the broken file was changed: %q", b)
	}
	if h.ListName() != "blacklist" || !h.Listed(ih(hashA)) || h.Listed(ih(hashB)) {
		t.Fatal("the running list changed")
	}
}

func TestSetListedInline(t *testing.T) {
	h, err := New(Config{Blacklist: []string{hashA}})
	if err != nil {
		t.Fatal(err)
	}
	if h.ListFile() != "" {
		t.Fatalf("inline list has file %q", h.ListFile())
	}
	if changed, err := h.SetListed(ih(hashB), true); !changed || err != nil || admits(h, hashB) {
		t.Fatalf("blacklisting hashB: %v %v, still admitted %v", changed, err, admits(h, hashB))
	}
	if changed, err := h.SetListed(ih(hashA), false); !changed || err != nil || !admits(h, hashA) {
		t.Fatalf("unlisting hashA: %v %v, admitted %v", changed, err, admits(h, hashA))
	}
}

// TestSetListedRacesTheWatch edits while the watch reloads the file: no
// edit is lost.
func TestSetListedRacesTheWatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "whitelist")
	writeFile(t, path, "")
	h, err := New(Config{WhitelistFile: path, FileCheckInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	var wg sync.WaitGroup
	hashes := make([]bittorrent.InfoHash, 50)
	for i := range hashes {
		hashes[i][0], hashes[i][1] = byte(i), 0xaa
	}
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(hashes); i += 2 {
				if _, err := h.SetListed(hashes[i], true); err != nil {
					t.Error(err)
				}
				_ = h.Reload()
			}
		}()
	}
	wg.Wait()
	time.Sleep(20 * time.Millisecond)
	for i, x := range hashes {
		if !h.Listed(x) {
			t.Fatalf("hash %d lost", i)
		}
	}
}
