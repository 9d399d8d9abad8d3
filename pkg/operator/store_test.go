package operator

import (
	"context"

	"github.com/chihaya/chihaya/bittorrent"
	"github.com/chihaya/chihaya/storage"
)

// storeOf shows a real store (the memory driver, in these tests) to the
// server, the way the daemon does (package chihaya's operatorStore, which
// its own tests and e2e cover): the tests drive the store as the
// tracker would, and read it back through the API and the status page.
// Only the tests import the tracker's packages.
func storeOf(s storage.PeerStore) Store { return testStore{s, s.(storage.Lister)} }

type testStore struct {
	ps storage.PeerStore
	l  storage.Lister
}

func (t testStore) Stats() (Stats, error) {
	st, err := t.ps.Stats()
	return Stats(st), err
}

func (t testStore) Swarm(ih [20]byte) (Swarm, error) {
	sw := Swarm{InfoHash: ih}
	for _, af := range []bittorrent.AddressFamily{bittorrent.IPv6, bittorrent.IPv4} {
		c, err := t.ps.ScrapeSwarm(ih, af)
		if err != nil {
			return Swarm{}, err
		}
		sw.Seeders[af], sw.Leechers[af], sw.Downloads = c.Seeders, c.Leechers, c.Downloads
	}
	return sw, nil
}

func (t testStore) Walk(ctx context.Context, fn func([]Swarm) error) error {
	return t.l.Walk(ctx, nil, func(batch []storage.Swarm) error {
		swarms := make([]Swarm, 0, len(batch))
		for _, sw := range batch {
			swarms = append(swarms, Swarm{sw.InfoHash, sw.Seeders, sw.Leechers, sw.Downloads})
		}
		return fn(swarms)
	})
}

func (t testStore) Groups(ih [20]byte) ([]Group, error) {
	var groups []Group
	gs, err := t.l.Groups(ih)
	for _, g := range gs {
		groups = append(groups, Group{g.Name, Family(g.Family), g.Seeders, g.Leechers})
	}
	return groups, err
}
