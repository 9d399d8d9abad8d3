"""libtorrent settings shared by the end-to-end tests' clients
(e2e/clients/testdata/ltclient.py, e2e/locality/testdata/swarm.py).

tracker_only() is what every session of the tests starts from: a client
that can meet peers only through the tracker under test, over TCP, with
every peer on loopback.
"""


def tracker_only():
    return {
        # The tracker must be the only way the clients can meet.
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        # uTP over loopback can stall a transfer; TCP is what we test.
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        # Every peer of the test lives on loopback, several on one address.
        "allow_multiple_connections_per_ip": True,
        # Otherwise a tracker on localhost must be reached at exactly /announce.
        "ssrf_mitigation": False,
        # Never reuse a stale UDP connection ID across announces.
        "udp_tracker_token_expiry": 0,
        # Otherwise a download can stall for a minute at its end.
        "close_redundant_connections": False,
    }
