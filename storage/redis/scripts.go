package redis

import (
	"context"
	"crypto/sha1"
	_ "embed"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// The scripts, in lua/. Each runs atomically in Redis, so an update
// script changes a swarm and its shard's totals together, whichever
// tracker sends the update (collection's gc.lua returns its changes to
// the totals instead: totals.go). They are sent with EVALSHA, and again
// with EVAL when Redis does not know them (after a restart, a failover, or
// on a node that never saw them). The shebang lines need Redis 7.0: they
// make Redis refuse a writing script up front when it is out of memory,
// instead of failing it half done, and let the read-only one run even then.
var (
	//go:embed lua/put.lua
	putSrc string
	//go:embed lua/delete.lua
	deleteSrc string
	//go:embed lua/gc.lua
	gcSrc string
	//go:embed lua/put_local.lua
	putLocalSrc string
	//go:embed lua/delete_local.lua
	deleteLocalSrc string
	//go:embed lua/select.lua
	selectSrc string
	//go:embed lua/stats.lua
	statsSrc string
	//go:embed lua/tiny.lua
	tinySrc string
	//go:embed lua/bucket_gc.lua
	bucketGCSrc string

	putScript         = newScript(putSrc, 5)
	deleteScript      = newScript(deleteSrc, 4)
	gcScript          = newScript(gcSrc, 5)
	gcLocalScript     = newScript(gcSrc, 9) // gc.lua with the locality orders
	putLocalScript    = newScript(putLocalSrc, 7)
	deleteLocalScript = newScript(deleteLocalSrc, 6)
	selectScript      = newScript(selectSrc, 5)
	tinyScript        = newScript(tinySrc, 4)
	tinyApplyScript   = newScript(tinySrc, 5) // tiny.lua changing the totals itself
	bucketGCScript    = newScript(bucketGCSrc, 1)
	// statsScript takes as many keys as it is given: its args are built
	// by hand.
	statsScript = newScript(statsSrc, 0)
)

// script is a Lua script with its digest and its number of keys, kept as
// strings so that a command's arguments point to them (a *string is
// passed to go-redis without an allocation).
type script struct {
	src, sha, numKeys string
}

func newScript(src string, numKeys int) *script {
	sum := sha1.Sum([]byte(src))
	return &script{src: src, sha: hex.EncodeToString(sum[:]), numKeys: strconv.Itoa(numKeys)}
}

// args appends the arguments of an EVALSHA of sc (EVAL with eval) to
// dst: the caller appends the keys and arguments.
func (sc *script) args(dst []interface{}, eval bool) []interface{} {
	if eval {
		return append(dst, "eval", &sc.src, &sc.numKeys)
	}
	return append(dst, "evalsha", &sc.sha, &sc.numKeys)
}

// isNoScript reports Redis' answer to an EVALSHA of a script it does not
// hold.
func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// run runs sc with the keys and arguments that follow in args (built with
// sc.args), falling back to EVAL.
func (sc *script) run(ctx context.Context, c doer, args []interface{}) *redis.Cmd {
	cmd := c.Do(ctx, args...)
	if isNoScript(cmd.Err()) {
		args[0], args[1] = "eval", &sc.src
		cmd = c.Do(ctx, args...)
	}
	return cmd
}

// doer is a client or a pipeline.
type doer interface {
	Do(ctx context.Context, args ...interface{}) *redis.Cmd
}
