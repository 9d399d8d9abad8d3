// Package clients proves the tracker with real BitTorrent clients: each test
// starts the daemon on loopback (internal/daemontest), makes a torrent with
// mktorrent, and has one client seed while another downloads. DHT, PEX,
// local peer discovery and port mapping are off in every client, so the
// tracker is the only way the two can meet; the test then compares
// checksums and checks through the tracker's scrape that the swarm shows
// both seeders and the completed download.
//
// The package holds tests only. The clients are Debian packages: aria2,
// transmission-cli, qbittorrent-nox, python3-libtorrent (driven by
// testdata/ltclient.py under /usr/bin/python3) and mktorrent. A missing one
// skips its tests, unless CI=true, where it fails them.
//
// E2E_TRACKER=opentracker runs the same tests against Debian's opentracker
// instead of chihaya (IPv4 only): a failure there is in a client or in the
// harness, not in our tracker.
package clients
