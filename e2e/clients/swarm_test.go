package clients

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/chihaya/chihaya/internal/prereq"
)

// payloadSize is big enough for many pieces and several round trips
// between the peers, small enough to move in well under a second.
const payloadSize = 4<<20 + 12345

// swarm is one torrent of random data announced to one tracker.
type swarm struct {
	tr        *tracker
	transport string // "http" or "udp": the torrent's announce URL
	dir       string // everything of this test: torrent, client dirs, logs
	logs      string
	torrent   string // the .torrent file
	name      string // the payload's file name inside the torrent
	size      int64
	sum       [sha256.Size]byte
	infoHash  [sha1.Size]byte
}

// newSwarm writes a random payload and makes a v1 torrent of it with
// mktorrent, announcing to tr over transport.
func newSwarm(t *testing.T, tr *tracker, transport string) *swarm {
	t.Helper()
	s := &swarm{tr: tr, transport: transport, dir: t.TempDir(), name: "payload.bin", size: payloadSize}
	s.logs = filepath.Join(s.dir, "logs")
	src := filepath.Join(s.dir, "source")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, s.size)
	if _, err := io.ReadFull(rand.Reader, data); err != nil {
		t.Fatal(err)
	}
	s.sum = sha256.Sum256(data)
	if err := os.WriteFile(filepath.Join(src, s.name), data, 0o644); err != nil {
		t.Fatal(err)
	}
	s.torrent = filepath.Join(s.dir, "payload.torrent")
	s.infoHash = s.makeTorrent(t, tr.announceURL(transport))
	if tr.allow != nil {
		tr.allow(t, s.infoHash)
	}
	return s
}

// makeTorrent writes s.torrent for the payload, announcing to url, and
// returns its info hash. Its pieces are 256 KiB; mktorrent makes v1
// torrents only, so every client announces the same 20-byte info hash.
func (s *swarm) makeTorrent(t *testing.T, url string) [sha1.Size]byte {
	t.Helper()
	mktorrent := prereq.Program(t, "mktorrent", "mktorrent")
	out, err := exec.Command(mktorrent, "-l", "18", "-a", url, "-o", s.torrent, filepath.Join(s.dir, "source", s.name)).CombinedOutput()
	if err != nil {
		t.Fatalf("mktorrent: %v\n%s", err, out)
	}
	meta, err := os.ReadFile(s.torrent)
	if err != nil {
		t.Fatal(err)
	}
	info, err := infoSpan(meta)
	if err != nil {
		t.Fatalf("%s: %v", s.torrent, err)
	}
	return sha1.Sum(info)
}

// seedDir returns a new directory for a seeding client, holding the
// payload.
func (s *swarm) seedDir(t *testing.T, client string) string {
	t.Helper()
	dir := filepath.Join(s.dir, client+"-seed")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(s.dir, "source", s.name))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, s.name), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// downloadDir returns a new, empty directory for a downloading client.
func (s *swarm) downloadDir(t *testing.T, client string) string {
	t.Helper()
	dir := filepath.Join(s.dir, client+"-download")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// intact reports whether dir holds the whole payload, byte for byte.
func (s *swarm) intact(dir string) (bool, string) {
	path := filepath.Join(dir, s.name)
	st, err := os.Stat(path)
	if err != nil {
		return false, err.Error()
	}
	if st.Size() != s.size {
		return false, fmt.Sprintf("size %d of %d", st.Size(), s.size)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return false, err.Error()
	}
	sum := sha256.Sum256(data)
	if !bytes.Equal(sum[:], s.sum[:]) {
		return false, "full size, checksum differs (pieces missing or being written)"
	}
	return true, "intact"
}
