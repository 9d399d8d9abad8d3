package redis

import (
	"errors"

	"github.com/chihaya/chihaya/storage"
)

// A native announce applies its update with plain commands in its
// pipeline, not a script (on a single Redis, Sentinel or a Cluster): a script costs Redis
// about as much to start as all of the announce's plain commands together
// (and INFO commandstats counts the commands it runs twice). The
// commands, in this order, in one MULTI/EXEC:
//
//	put:     HSET new role's hash A value, HDEL other role's hash A,
//	         and INCR downloads to count one
//	delete:  HDEL seeders A, HDEL leechers A
//
// after the HLENs of the answer (so the family's size before the update)
// and before its HRANDFIELDs. Their replies say all the script returned:
// the HSET's 1 a peer new to its role, the HDEL's 1 where it was before;
// so the announcer's role and the changes to the totals (totals.go).
//
// MULTI/EXEC makes the update all or nothing, as the script was: Redis
// runs the queued commands only at EXEC, with no other client's command
// in between, and none of them if one was refused while queued (out of
// memory with noeviction refuses HSET and INCR, and then, in a
// transaction, the HDEL too) or if the connection is cut before EXEC (a
// timeout, a tracker killed half way through writing its pipeline).
// Without it, such an announce would leave its peer in both roles (HSET
// applied, HDEL not) or in none (HDEL applied, HSET refused), and two
// trackers updating one peer in opposite roles at once could leave it in
// none. A peer is never in both roles; a download is counted once
// (INCR); collection finds the swarm by its hashes (scan.go), with no
// index to keep. The HLENs before the transaction and the update see the
// same swarm unless another connection's command slips in between, which
// only the totals' swarm count could notice.
//
// On a Cluster the pipeline goes to the master of the swarm's slot, on
// the wire path's connections to that master (store.go, announceRaw): all
// the swarm's keys share its hash tag, so the transaction is on one slot.
// The cluster client's own pipeline does not fit: it would send MULTI and
// EXEC (no key) to any master, and follow a redirected command alone, out
// of its transaction, applying it without the others. While a reshard
// moves the slot, Redis refuses the transaction whole (a key already
// gone: ASK, then EXECABORT; keys on both masters: TRYAGAIN; the slot
// gone: MOVED), and the announce is sent again whole through go-redis'
// TxPipeline, which sends the transaction again (with ASKING before it
// for an ASK) and never once Redis may have run it (announceFollowing).
// An update Redis ran is never sent again: when it ran but a count read
// beside it was redirected, the counts are read again (countsBefore).

// The MULTI and EXEC around a plain update (raw commands: their args).
var multiArgs, execArgs = []interface{}{"multi"}, []interface{}{"exec"}

// readExec reads the replies of MULTI, of the n commands it queued and of
// EXEC, up to EXEC's array of the commands' replies, and returns the
// bytes of those replies. When Redis refused a command while queueing it,
// or the transaction, it applied none: the error is returned.
func readExec(b []byte, n int) ([]byte, error) {
	var first error
	for i := range n + 2 {
		line, rest, ok := readLine(b)
		if !ok || len(line) == 0 {
			return b, errBadReply
		}
		b = rest
		exec := i == n+1 // else +OK or +QUEUED
		switch {
		case line[0] == '-':
			if first == nil {
				first = replyError(line[1:])
			}
			if exec {
				return b, first
			}
		case !exec && line[0] != '+':
			return b, errBadReply
		case exec:
			if l, ok := parseLen(line[1:]); line[0] != '*' || !ok || l != n {
				return b, errBadReply
			}
		}
	}
	return b, nil
}

// plainUpdate fills x.wr with the plain commands of up, and x.sent with
// which of them to send, in order.
func (x *exchange) plainUpdate(up *update) {
	k, f := up.k, up.fam
	addr := &x.strs[2]
	if up.u == storage.UpdateDelete {
		x.wr[1] = [4]interface{}{"hdel", &k.roles[f][0], addr}
		x.wr[2] = [4]interface{}{"hdel", &k.roles[f][1], addr}
		x.sent, x.nw = [3]int{1, 2}, 2
		return
	}
	own, other := 0, 1
	if !up.seeding {
		own, other = 1, 0
	}
	x.wr[0] = [4]interface{}{"hset", &k.roles[f][own], addr, &x.strs[3]}
	x.wr[1] = [4]interface{}{"hdel", &k.roles[f][other], addr}
	x.sent, x.nw = [3]int{0, 1}, 2
	if up.u == storage.UpdateGraduate {
		x.wr[3] = [4]interface{}{"incr", &k.downloads}
		x.sent[2], x.nw = 3, 3
	}
}

// wrLen are the numbers of arguments of the commands of x.wr.
var wrLen = [4]int{4, 3, 3, 2}

// plainChange is what a plain update did, read from its replies: applied
// is false when Redis ran none of it (a refused transaction); then added
// (1: the HSET stored a field new to the role) and rs, rl (the fields the
// HDELs removed from the seeders and the leechers) say what changed, and
// role is the announcer's role before.
type plainChange struct {
	applied       bool
	added, rs, rl int64
	role          storage.Role
}

// deltas are the changes of c to the totals, given the family's native
// peers before the update (was).
func (c plainChange) deltas(was int64, u storage.Update) (ds, dl, dw int64) {
	return plainDeltas(was, u, c.added, c.rs, c.rl)
}

// readPlainUpdate reads the replies of x's plain update from b. A refused
// transaction fails the announce and changes nothing; an error reply of
// one of its commands as it ran fails the announce, but what the others
// applied still reaches the totals (the caller adds c's deltas).
func readPlainUpdate(b []byte, x *exchange, up *update) (plainChange, []byte, error) {
	b, err := readExec(b, x.nw)
	if err != nil {
		return plainChange{}, b, err
	}
	var r [4]int64
	var failed [4]bool
	var first error
	for i := range x.nw {
		var err error
		if r[i], b, err = readInt(b); err != nil {
			var re replyError
			if !errors.As(err, &re) {
				return plainChange{}, b, err
			}
			r[i], failed[i] = 0, true
			if first == nil {
				first = err
			}
		}
	}
	return plainResult(up, r, failed), b, first
}

// plainResult turns the replies r of a plain update's commands (in the
// order sent: HSET and HDEL, or HDEL and HDEL), failed those that were
// error replies, into what it did.
func plainResult(up *update, r [4]int64, failed [4]bool) plainChange {
	c := plainChange{applied: true}
	if up.u == storage.UpdateDelete {
		c.rs, c.rl = r[0], r[1]
		switch {
		case r[0] == 1:
			c.role = storage.Seeder
		case r[1] == 1:
			c.role = storage.Leecher
		}
		return c
	}
	// The HDEL removed from the other role: the leechers for a seeder.
	own, other := storage.Seeder, storage.Leecher
	c.added, c.rl = r[0], r[1]
	if !up.seeding {
		own, other = storage.Leecher, storage.Seeder
		c.rs, c.rl = r[1], 0
	}
	switch {
	case !failed[0] && r[0] == 0:
		c.role = own
	case r[1] == 1:
		c.role = other
	}
	return c
}
