package memory

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/chihaya/chihaya/storage/locality"
)

// TestSnapshotLeftoversRemoved: the temporary file of a write that a
// crash interrupted is removed at the next start, wherever the state
// directory is, even when its name holds characters that are special in
// a glob pattern; another file that merely looks alike stays.
func TestSnapshotLeftoversRemoved(t *testing.T) {
	for _, sub := range []string{"state", "state[1]", "st*ate?"} {
		t.Run(sub, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), sub)
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "swarms.snap")
			leftover := path + ".tmp-123456"
			other := filepath.Join(dir, "other.snap.tmp-123456")
			for _, f := range []string{leftover, other} {
				if err := os.WriteFile(f, make([]byte, 100), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			newSnapStore(t, path, locality.Config{}, defaultFlatMax)
			if _, err := os.Stat(leftover); !os.IsNotExist(err) {
				t.Fatalf("leftover %s still there after start (stat: %v)", leftover, err)
			}
			if _, err := os.Stat(other); err != nil {
				t.Fatalf("another snapshot's file was removed: %v", err)
			}
		})
	}
}
