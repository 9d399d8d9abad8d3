package redis

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// onceCmd is a command that go-redis must not send again once it may
// have run. A Cluster client sends an ordinary command, or a whole
// pipeline, again after a read timeout or a cut connection (up to
// MaxRedirects times), whatever MaxRetries says; a write such as an
// HINCRBY would then be applied twice. A pipeline that holds an onceCmd
// is never sent again that way: the error is returned instead. MOVED and
// ASK replies, which say that nothing ran, are still followed.
type onceCmd struct{ redis.Cmder }

// NoRetry tells go-redis not to send the command again.
func (onceCmd) NoRetry() bool { return true }

// queueOnce queues cmd into pipe, to be sent once.
func queueOnce(ctx context.Context, pipe redis.Pipeliner, cmd redis.Cmder) {
	_ = pipe.Process(ctx, onceCmd{cmd})
}
