package redis

import (
	"sync"

	"github.com/redis/go-redis/v9"
)

// exchange holds what one operation sends and reads, reused through a
// pool so that an announce allocates little: the command arguments, the
// stored value, and the raw replies of the peer reads.
type exchange struct {
	args  []interface{}
	addr  [18]byte
	value []byte
	raw   rawReply
	// strs are the string arguments that live as long as the exchange:
	// 0 the cell, 1 the count of an HRANDFIELD, 2 the address, 3 the value,
	// 4 and 5 the bounds of the announcer's group by prefix, 6 the peer ID
	// with locality (views of addr, value and bounds, passed as *string:
	// no allocation).
	strs   [7]string
	bounds [2][16 + boundTail]byte
	// The arguments of an announce's peer reads (queuePeerReads).
	hrf [2][4]interface{}
	// wr are the arguments of the plain commands of an update
	// (plainUpdate): 0 HSET, 1 and 2 HDEL, 3 INCR; sent are the ones
	// sent, in order (nw of them).
	wr   [4][4]interface{}
	sent [3]int
	nw   int
	// peerCmds are the HRANDFIELD reads of an announce (reads of them).
	peerCmds [2]*redis.RawCmd
	reads    int
	// addrsOnly reads the peers' addresses without their values
	// (AnnounceAddrs): HRANDFIELD without WITHVALUES.
	addrsOnly bool
	// noDownloads leaves out the GET of the download count
	// (AnnounceAddrs for UDP, whose reply has none).
	noDownloads bool
	// cmds are the commands of an announce's pipeline.
	cmds []redis.Cmder
	k    swarmKeys
	up   update
	// keyBuf holds the names of k (Announce), then those of web.
	keyBuf []byte
	// web are the names of the announcer's family's WebSocket seeders
	// and leechers, read with the announce once WebSocket peers exist
	// (webHlen: their HLENs' arguments).
	web     [2]string
	webHlen [2][2]interface{}

	// Group commit (batch.go): wake tells a queued announce that its
	// commands were carried (false) or that it is to send the next batch
	// (true); batch is the announces of the pipeline this one sends, all
	// their commands; err is this announce's result; probe marks the
	// breaker's probe, which is sent alone.
	wake  chan bool
	batch []*exchange
	all   []redis.Cmder
	err   error
	probe bool
	// pipe is the pipeline of the lane this announce holds while it
	// sends a batch (batch.go).
	pipe redis.Pipeliner

	// The wire path (resp.go): wired announces are sent as wire, the
	// RESP of their commands, which get replies replies, all read into
	// raw; conn is the connection of the lane this announce holds while
	// it sends a batch.
	wired   bool
	wire    []byte
	replies int
	conn    *wireConn
	// node is, with a Cluster, the go-redis client of the master of the
	// announce's slot: its commands go on that master's connections of
	// the wire path (announceRaw, resp.go).
	node *redis.Client
}

// exchanges start with room for an announce's commands (up to ten: the
// counts, the update, the peer reads), so that a new one (the pool may
// drop any) grows its slice once, not at every doubling.
var exchanges = sync.Pool{New: func() any {
	return &exchange{wake: make(chan bool, 1), cmds: make([]redis.Cmder, 0, 12)}
}}

func getExchange() *exchange {
	x := exchanges.Get().(*exchange)
	x.args, x.value, x.raw.b, x.wire = x.args[:0], x.value[:0], x.raw.b[:0], x.wire[:0]
	return x
}

func putExchange(x *exchange) {
	clear(x.args)
	x.strs = [7]string{}
	x.hrf = [2][4]interface{}{}
	x.wr, x.sent, x.nw = [4][4]interface{}{}, [3]int{}, 0
	x.peerCmds, x.addrsOnly, x.noDownloads = [2]*redis.RawCmd{}, false, false
	clear(x.cmds)
	x.cmds = x.cmds[:0]
	x.k, x.up = swarmKeys{}, update{}
	x.web, x.webHlen = [2]string{}, [2][2]interface{}{}
	clear(x.batch)
	x.batch, x.err, x.probe, x.pipe, x.node = x.batch[:0], nil, false, nil, nil
	x.wired, x.replies, x.conn, x.reads = false, 0, nil, 0
	exchanges.Put(x)
}
