package memory

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"testing"

	"github.com/chihaya/chihaya/pkg/clock"
)

// fixChecksums rewrites the header's and every block's checksum to match
// their bytes, so that the fuzzer gets past them to the payload decoder.
func fixChecksums(b []byte) []byte {
	b = bytes.Clone(b)
	if len(b) < headerLen || string(b[:8]) != snapshotMagic {
		return b
	}
	binary.LittleEndian.PutUint32(b[60:], crc32.Checksum(b[:60], castagnoli))
	for off := headerLen; off+blockHeaderLen <= len(b); {
		n := int(binary.LittleEndian.Uint32(b[off:]))
		if n > len(b)-off-blockHeaderLen {
			break
		}
		crc := crc32.Update(crc32.Checksum(b[off:off+8], castagnoli), castagnoli, b[off+blockHeaderLen:off+blockHeaderLen+n])
		binary.LittleEndian.PutUint32(b[off+8:], crc)
		off += blockHeaderLen + n
	}
	return b
}

// FuzzReadSnapshot feeds the snapshot reader arbitrary files, with their
// checksums left as they are or made to match (fix). It must never panic;
// a file it rejects leaves the store empty; a file it accepts gives a
// store that serves what it holds and writes the same swarms back.
func FuzzReadSnapshot(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte, fix bool) {
		if fix {
			b = fixChecksums(b)
		}
		cfg := Config{}.WithDefaults()
		cfg.ShardCount = 4
		s, err := newPeerStore(cfg, defaultFlatMax)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = s.Stop(context.Background()) }()
		now := uint32(clock.Unix())
		if _, _, err := s.readSnapshot(bytes.NewReader(b), int64(len(b)), 0, now); err != nil {
			if restoreResult(err) == restoreUnreadable {
				t.Fatalf("unclassified error: %v", err)
			}
			s.empty()
			if st, _ := s.Stats(); st.Swarms != [2]uint64{} || st.Seeders != [2]uint64{} || st.Leechers != [2]uint64{} {
				t.Fatalf("rejected (%v), but the store holds %+v", err, st)
			}
			return
		}
		got := dump(s)
		checkServes(t, s, got)
		var again bytes.Buffer
		h, _, err := s.writeSnapshot(&again, int64(now), func() error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		out := again.Bytes()
		copy(out, h.encode())
		r, err := newPeerStore(cfg, defaultFlatMax)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = r.Stop(context.Background()) }()
		if _, _, err := r.readSnapshot(bytes.NewReader(out), int64(len(out)), 0, now); err != nil {
			t.Fatalf("the store's own snapshot of an accepted file: %v", err)
		}
		sameDump(t, dump(r), got)
	})
}
