#!/usr/bin/python3
"""A small deployment over loopback for the locality end-to-end test.

One libtorrent session per client, each bound to its own loopback address:
rack r is 127.0.r.0/24. The seeder is 127.0.1.1; downloaders are
127.0.r.2, 127.0.r.3, ... in every rack. DHT, PEX, local discovery, UPnP
and NAT-PMP are off, so the tracker is the only way clients meet. Every
session's uploads are rate-limited (loopback peers are moved into the
limited global peer class), so that the swarm, not one fast seeder, moves
the data.

Order of events, chosen so that every answer the test judges is drawn
from the whole swarm (clients started at one moment see partial swarms, and
libtorrent keeps every peer it was ever told of):
  1. the seeder starts and announces (into an empty swarm);
  2. every downloader's first announce is made for it, over HTTP from its
     own address and with its session's listen port, so that the swarm is
     complete before any client asks for peers (libtorrent replaces the
     peer ID when it announces itself);
  3. every downloader's libtorrent session starts and announces, and gets
     its peers from the whole swarm; nobody announces again until the end.
Then the test waits for every download to finish, polling each
downloader's peers for the payload bytes received from each, by address.

Prints one JSON object: per downloader its rack, address, bytes received
from inside and from outside its rack, and its total payload received.
"""

import argparse
import http.client
import json
import os
import sys
import time
import urllib.parse

import libtorrent as lt

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, "testdata"))
import ltsettings  # noqa: E402


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def make_torrent(workdir, size, tracker):
    src = os.path.join(workdir, "source")
    os.makedirs(src, exist_ok=True)
    path = os.path.join(src, "payload.bin")
    with open(path, "wb") as f:
        f.write(os.urandom(size))
    fs = lt.file_storage()
    lt.add_files(fs, path)
    # v1 only: a hybrid torrent would be announced under two info hashes.
    ct = lt.create_torrent(fs, 64 * 1024, flags=lt.create_torrent.v1_only)
    ct.add_tracker(tracker)
    lt.set_piece_hashes(ct, src)
    tfile = os.path.join(workdir, "payload.torrent")
    with open(tfile, "wb") as f:
        f.write(lt.bencode(ct.generate()))
    return tfile, src


def new_session(ip, rate):
    cat = lt.alert.category_t
    settings = ltsettings.tracker_only()
    settings.update({
        "listen_interfaces": "%s:0" % ip,
        # Outgoing connections come from the client's own address, so that
        # the receiving side sees which rack a peer is in.
        "outgoing_interfaces": ip,
        "upload_rate_limit": rate,
        "alert_mask": cat.error_notification | cat.status_notification | cat.tracker_notification,
        "user_agent": "chihaya-e2e-locality/libtorrent-" + lt.__version__,
    })
    ses = lt.session(settings)
    # libtorrent exempts local peers from rate limits; put every address
    # in the global (limited) class instead.
    f = lt.ip_filter()
    f.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
    ses.set_peer_class_filter(f)
    return ses


class Client:
    def __init__(self, rack, ip, rate):
        self.rack, self.ip = rack, ip
        self.ses = new_session(ip, rate)
        self.h = None
        self.replies = 0
        self.errors = []
        self.by_conn = {}  # (ip, port) -> bytes received on that connection
        self.finished = False

    def add(self, torrent, save, seed):
        atp = lt.add_torrent_params()
        atp.ti = lt.torrent_info(torrent)
        atp.save_path = save
        atp.flags |= lt.torrent_flags.disable_dht | lt.torrent_flags.disable_lsd | lt.torrent_flags.disable_pex
        atp.flags &= ~lt.torrent_flags.auto_managed
        atp.flags &= ~lt.torrent_flags.paused
        if seed:
            atp.flags |= lt.torrent_flags.seed_mode
        self.h = self.ses.add_torrent(atp)

    def pump(self):
        for a in self.ses.pop_alerts():
            if isinstance(a, lt.tracker_reply_alert):
                self.replies += 1
            elif isinstance(a, lt.tracker_error_alert):
                self.errors.append(a.message())
            elif isinstance(a, lt.torrent_finished_alert):
                self.finished = True
        if self.h is None:
            return
        for p in self.h.get_peer_info():
            key = (p.ip[0], p.ip[1])
            self.by_conn[key] = max(self.by_conn.get(key, 0), p.total_download)

    def result(self):
        inside = outside = 0
        for (ip, _), n in self.by_conn.items():
            if ip.split(".")[2] == self.ip.split(".")[2]:
                inside += n
            else:
                outside += n
        by_ip = {}
        for (ip, _), n in self.by_conn.items():
            by_ip[ip] = by_ip.get(ip, 0) + n
        st = self.h.status()
        return {"rack": self.rack, "ip": self.ip, "inside": inside, "outside": outside,
                "payload": st.total_payload_download, "finished": st.is_seeding, "from": by_ip}


def pre_announce(tracker, info_hash, ip, port, left):
    """Announces for a client that has not started yet, from its address."""
    u = urllib.parse.urlsplit(tracker)
    peer_id = b"-XX0000-" + ip.encode().ljust(12, b"-")
    q = "info_hash=%s&peer_id=%s&port=%d&uploaded=0&downloaded=0&left=%d&event=started&numwant=0&compact=1" % (
        urllib.parse.quote(info_hash, safe=""), urllib.parse.quote(peer_id, safe=""), port, left)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=5, source_address=(ip, 0))
    c.request("GET", u.path + "?" + q)
    body = c.getresponse().read()
    c.close()
    if b"failure reason" in body:
        raise SystemExit("pre-announce for %s failed: %r" % (ip, body))


def wait(clients, cond, what, deadline):
    while time.monotonic() < deadline:
        for c in clients:
            c.pump()
        if all(cond(c) for c in clients):
            return
        time.sleep(0.1)
    state = [(c.ip, c.replies, c.errors[-1:] if c.errors else "") for c in clients]
    raise SystemExit("timed out waiting for %s: %s" % (what, state))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tracker", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--racks", type=int, default=3)
    ap.add_argument("--per-rack", type=int, default=6)
    ap.add_argument("--size", type=int, default=6 << 20)
    ap.add_argument("--rate", type=int, default=1 << 20, help="upload limit of each client, bytes/s")
    ap.add_argument("--timeout", type=float, default=50)
    args = ap.parse_args()
    deadline = time.monotonic() + args.timeout

    torrent, src = make_torrent(args.workdir, args.size, args.tracker)
    info_hash = lt.torrent_info(torrent).info_hash().to_bytes()
    seeder = Client(1, "127.0.1.1", args.rate)
    seeder.add(torrent, src, True)
    wait([seeder], lambda c: c.replies >= 1, "the seeder's announce", deadline)

    downloaders = [Client(r, "127.0.%d.%d" % (r, i + 2), args.rate)
                   for r in range(1, args.racks + 1) for i in range(args.per_rack)]
    for d in downloaders:
        pre_announce(args.tracker, info_hash, d.ip, d.ses.listen_port(), args.size)
    for d in downloaders:
        save = os.path.join(args.workdir, d.ip)
        os.makedirs(save)
        d.add(torrent, save, False)
    wait(downloaders, lambda c: c.replies >= 1, "the downloaders' announces", deadline)
    log("%.1fs: every client announced" % (args.timeout - (deadline - time.monotonic())))

    everyone = downloaders + [seeder]
    wait(everyone, lambda c: c is seeder or c.h.status().is_seeding, "every download to finish", deadline)
    for c in everyone:
        c.pump()
    log("%.1fs: every download finished" % (args.timeout - (deadline - time.monotonic())))
    print(json.dumps({"downloaders": [d.result() for d in downloaders], "size": args.size}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
