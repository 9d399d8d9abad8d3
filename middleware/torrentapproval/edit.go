package torrentapproval

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/chihaya/chihaya/bittorrent"
)

// The hook's list can be changed while it runs (the operator API does):
// the hook offers ListName, ListFile, Listed and SetListed, the methods of
// operator.ApprovalList (pkg/operator), which takes an info hash as its
// 20 bytes.

// ListName returns "whitelist" or "blacklist".
func (h *Hook) ListName() string {
	if h.whitelist {
		return "whitelist"
	}
	return "blacklist"
}

// ListFile returns the list's file, or "" for an inline list.
func (h *Hook) ListFile() string { return h.path }

// Listed reports whether ih is on the list.
func (h *Hook) Listed(ih [20]byte) bool {
	_, ok := (*h.set.Load())[ih]
	return ok
}

// SetListed adds ih to the list (listed) or removes it. With a list file,
// the file is changed first and atomically (a temporary file beside it,
// fsynced, renamed over it, the directory fsynced), so that the change
// survives a reload and a restart; the running list is then the file's.
// Other lines of the file, comments included, are kept. An inline list
// is changed in memory only, until the next restart. changed is false
// when ih already was (or was not) on the list.
func (h *Hook) SetListed(ih [20]byte, listed bool) (changed bool, err error) {
	h.edit.Lock()
	defer h.edit.Unlock()
	cur := *h.set.Load()
	if _, ok := cur[ih]; ok == listed {
		return false, nil
	}
	if h.path == "" {
		next := make(hashSet, len(cur)+1)
		for k := range cur {
			next[k] = struct{}{}
		}
		if listed {
			next[ih] = struct{}{}
		} else {
			delete(next, ih)
		}
		h.set.Store(&next)
		return true, nil
	}
	data, err := os.ReadFile(h.path)
	if err != nil {
		return false, fmt.Errorf("torrent approval: %s: %w", h.key, err)
	}
	data = editList(data, ih, listed)
	set, err := parseList(data)
	if err != nil {
		// The file on disk does not parse (an edit in progress): leave
		// it to its author.
		return false, fmt.Errorf("torrent approval: %s: %s:%w", h.key, h.path, err)
	}
	if err := writeAtomic(h.path, data); err != nil {
		return false, fmt.Errorf("torrent approval: %s: %w", h.key, err)
	}
	h.set.Store(&set)
	return true, nil
}

// editList returns the list file data with ih appended as a line of its
// own, or with every line that lists it removed.
func editList(data []byte, ih bittorrent.InfoHash, listed bool) []byte {
	if listed {
		if len(data) > 0 && data[len(data)-1] != '\n' {
			data = append(data, '\n')
		}
		return append(append(data, hex.EncodeToString(ih[:])...), '\n')
	}
	var out []byte
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i+1], data[i+1:]
		} else {
			data = nil
		}
		entry := line
		if i := bytes.IndexByte(entry, '#'); i >= 0 {
			entry = entry[:i]
		}
		if got, ok := parseHash(bytes.TrimSpace(entry)); ok && got == ih {
			continue
		}
		out = append(out, line...)
	}
	return out
}

// writeAtomic replaces the file at path with data: written to a temporary
// file in the same directory, synced, renamed over path, and the
// directory synced, so that a crash leaves the old file or the new one.
// The file keeps its permissions. A path that is a symlink stays one: the
// file it points to is replaced, in its own directory.
func writeAtomic(path string, data []byte) error {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(path); err == nil {
		mode = fi.Mode().Perm()
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly once renamed
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
