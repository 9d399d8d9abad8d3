package redis

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strconv"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// The wire path. On a single Redis or Sentinel, a plain announce's
// commands are written in RESP straight into a buffer of its exchange,
// and the batches of announces (batch.go) go out and come back on
// connections of the driver's own, without go-redis' commands: go-redis
// spends, per announce, about as much CPU encoding the arguments (one
// interface{} each), running a pipeline through its hooks and pool, and
// reading each reply through a command object as the reading of all the
// replies in place costs. The connections are dialled by go-redis' own
// dialer (with Sentinel, the one that asks the sentinels for the master;
// with rediss://, TLS), then authenticated and set to the database as
// go-redis does. With a Cluster each master has its own, dialled with its
// go-redis node client's options, and an announce goes to the master of
// its swarm's slot as go-redis' slot map says (announceRaw); a reshard's
// redirections are followed by go-redis (announceFollowing). Everything
// else (collection, scrapes, scripts, locality, WebSocket peers) stays
// with go-redis. The outage behaviour is
// the same: a failed dial or a timeout marks Redis down (breaker.go), a
// connection that failed is closed, never reused, and nothing is retried.

// wireConn is a connection of the wire path, held by one batch lane at a
// time.
type wireConn struct {
	c net.Conn
	// in holds a batch's replies as read; out its commands.
	in, out []byte
	// used is when the connection last carried a batch.
	used time.Time
	// switches is the store's count of master switches when c was
	// dialled (Sentinel: failover.go).
	switches int64
}

// wireMaxIdle is how long a connection may sit unused before it is
// closed, as go-redis' ConnMaxIdleTime.
const wireMaxIdle = 5 * time.Minute

// wireBufMax bounds the buffers a connection keeps between batches.
const wireBufMax = 1 << 20

// wireOptions returns the go-redis options the wire path dials with, or
// nil on a Cluster (each master's own client's options instead).
func wireOptions(c redis.UniversalClient) *redis.Options {
	if rc, ok := c.(*redis.Client); ok {
		return rc.Options()
	}
	return nil
}

// dialWire dials and prepares a connection of the wire path to the
// server of opt: AUTH and SELECT as the options say (RESP2, as go-redis
// is told to speak).
func (s *PeerStore) dialWire(ctx context.Context, opt *redis.Options) (net.Conn, error) {
	c, err := opt.Dialer(ctx, opt.Network, opt.Addr)
	if err != nil {
		return nil, err
	}
	var hello []byte
	n := 0
	if opt.Password != "" {
		if opt.Username != "" {
			hello = appendCmd(hello, "AUTH", opt.Username, opt.Password)
		} else {
			hello = appendCmd(hello, "AUTH", opt.Password)
		}
		n++
	}
	if opt.DB != 0 {
		hello = appendCmd(hello, "SELECT", strconv.Itoa(opt.DB))
		n++
	}
	if n == 0 {
		return c, nil
	}
	w := &wireConn{c: c}
	in, err := w.exchange(s, hello, n, nil)
	if err == nil {
		for range n {
			var line []byte
			if line, in, _ = readLine(in); len(line) > 0 && line[0] == '-' {
				err = replyError(line[1:])
				break
			}
		}
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// exchange writes out and reads the n replies to it, handing each one's
// bytes to each (if not nil) as it is read whole. It returns the
// replies' bytes (w.in, valid until the next exchange). On an error the
// connection is closed.
func (w *wireConn) exchange(s *PeerStore, out []byte, n int, each func(reply []byte)) ([]byte, error) {
	now := time.Now()
	w.used = now
	if err := w.c.SetWriteDeadline(now.Add(s.cfg.RedisWriteTimeout)); err != nil {
		return nil, w.fail(err)
	}
	if _, err := w.c.Write(out); err != nil {
		return nil, w.fail(err)
	}
	if err := w.c.SetReadDeadline(now.Add(s.cfg.RedisReadTimeout)); err != nil {
		return nil, w.fail(err)
	}
	in := w.in[:0]
	if cap(in) == 0 {
		in = make([]byte, 0, 16<<10)
	}
	pos := 0
	for i := 0; i < n; {
		l, err := replyLen(in[pos:])
		if err != nil {
			w.in = in
			return nil, w.fail(err)
		}
		if l > 0 {
			if each != nil {
				each(in[pos : pos+l])
			}
			pos += l
			i++
			continue
		}
		if len(in) == cap(in) {
			in = append(in, 0)[:len(in)]
		}
		m, err := w.c.Read(in[len(in):cap(in)])
		in = in[:len(in)+m]
		if err != nil && m == 0 {
			w.in = in
			return nil, w.fail(err)
		}
	}
	if pos != len(in) {
		// More than was asked for: the connection is out of step.
		w.in = in
		return nil, w.fail(errBadReply)
	}
	w.in = in
	return in, nil
}

// fail closes w's connection (an exchange that failed half way leaves it
// out of step) and returns err.
func (w *wireConn) fail(err error) error {
	w.c.Close()
	w.c = nil
	return err
}

// alive reports whether w's connection is still open before a batch:
// nothing to read and no end of file, peeked without blocking, as
// go-redis checks a pooled connection before each use. Redis may have
// closed it (a restart, CLIENT KILL, its timeout setting), and a batch
// must not fail for that.
func (w *wireConn) alive() bool {
	c := w.c
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	err = rc.Read(func(fd uintptr) bool {
		alive = peekAlive(fd)
		return true
	})
	return err == nil && alive
}

// sendWire sends the commands of the announces of x.batch (their wire)
// on the lane's connection, dialled first if it has none, and gives each
// announce its replies' bytes (raw.b) or its error.
func (s *PeerStore) sendWire(ctx context.Context, x *exchange) error {
	w := x.conn
	if w == nil {
		w = &wireConn{}
		x.conn = w
	}
	if w.c != nil && (time.Since(w.used) >= wireMaxIdle || w.switches != s.switches.Load() || !w.alive()) {
		w.c.Close()
		w.c = nil
	}
	if w.c == nil {
		// A Cluster's master: its own go-redis client's options (address,
		// password, the store's dialer).
		opt := s.wireOpt
		if x.node != nil {
			opt = x.node.Options()
		}
		switches := s.switches.Load() // before the dial asks for the master
		c, err := s.dialWire(ctx, opt)
		if err != nil {
			return err
		}
		w.c, w.switches = c, switches
	}
	out, n := w.out[:0], 0
	for _, o := range x.batch {
		out = append(out, o.wire...)
		n += o.replies
	}
	w.out = out
	// Each announce gets its replies, in order: x.batch[j] the next
	// left of them.
	j, left, stale := -1, 0, false
	_, err := w.exchange(s, out, n, func(reply []byte) {
		if reply[0] == '-' && (bytes.HasPrefix(reply[1:], readOnly) || bytes.HasPrefix(reply[1:], masterDown)) {
			stale = true
		}
		for left == 0 {
			j++
			left = x.batch[j].replies
			x.batch[j].raw.b = x.batch[j].raw.b[:0]
		}
		x.batch[j].raw.b = append(x.batch[j].raw.b, reply...)
		left--
	})
	if stale && w.c != nil {
		// A master demoted by a failover (Sentinel): the next batch
		// dials again, and so finds the new master.
		w.c.Close()
		w.c = nil
	}
	if cap(w.in) > wireBufMax {
		w.in = nil
	}
	if cap(w.out) > wireBufMax {
		w.out = nil
	}
	return err
}

var readOnly, masterDown = []byte("READONLY"), []byte("MASTERDOWN")

// appendArray appends the header of a RESP array of n elements.
func appendArray(b []byte, n int) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, '\r', '\n')
}

// appendBulk appends s as a RESP bulk string.
func appendBulk(b []byte, s string) []byte {
	b = append(b, '$')
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, '\r', '\n')
	b = append(b, s...)
	return append(b, '\r', '\n')
}

// appendArgs appends a command whose arguments are strings or pointers
// to strings (an exchange's go-redis arguments: see plainUpdate).
func appendArgs(b []byte, args []interface{}) []byte {
	b = appendArray(b, len(args))
	for _, a := range args {
		switch a := a.(type) {
		case string:
			b = appendBulk(b, a)
		case *string:
			b = appendBulk(b, *a)
		default:
			panic("storage/redis: appendArgs: not a string")
		}
	}
	return b
}

// appendCmd appends the command args in RESP (off the hot path: args is
// a slice).
func appendCmd(b []byte, args ...string) []byte {
	b = appendArray(b, len(args))
	for _, a := range args {
		b = appendBulk(b, a)
	}
	return b
}

// appendCmd2 appends a command of a name and one argument; appendCmd3 and
// appendCmd4 of two and three. No allocation.
func appendCmd2(b []byte, name, a string) []byte {
	return appendBulk(appendBulk(appendArray(b, 2), name), a)
}

func appendCmd3(b []byte, name, a, c string) []byte {
	return appendBulk(appendBulk(appendBulk(appendArray(b, 3), name), a), c)
}

func appendCmd4(b []byte, name, a, c, d string) []byte {
	return appendBulk(appendBulk(appendBulk(appendBulk(appendArray(b, 4), name), a), c), d)
}

// errWireReply is a reply the wire path cannot read: not RESP2, or a
// length out of bounds.
var errWireReply = errors.New("storage/redis: malformed reply")

// replyLen returns the length of the RESP2 reply at the start of b, with
// the replies nested in it (an array's elements); 0 if b does not hold
// all of it yet.
func replyLen(b []byte) (int, error) {
	pos, need := 0, 1
	for need > 0 {
		line, rest, ok := readLine(b[pos:])
		if !ok {
			if len(b)-pos > wireBufMax {
				// No line of a reply the driver reads is this long.
				return 0, errWireReply
			}
			return 0, nil
		}
		if len(line) == 0 {
			return 0, errWireReply
		}
		pos = len(b) - len(rest)
		need--
		switch line[0] {
		case '+', '-', ':':
		case '$':
			l, ok := parseLen(line[1:])
			if !ok {
				return 0, errWireReply
			}
			if l < 0 {
				continue
			}
			if len(b)-pos < l+2 {
				return 0, nil
			}
			if b[pos+l] != '\r' || b[pos+l+1] != '\n' {
				return 0, errWireReply
			}
			pos += l + 2
		case '*':
			l, ok := parseLen(line[1:])
			if !ok {
				return 0, errWireReply
			}
			if l > 0 {
				need += l
			}
		default:
			return 0, errWireReply
		}
	}
	return pos, nil
}
