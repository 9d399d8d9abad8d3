#!/usr/bin/python3
"""A libtorrent client for the end-to-end tests: seeds or downloads one
torrent, with every way of finding peers other than the tracker turned off.

It reports on stdout, one JSON object a line, so that the Go test can wait
for the moments it cares about:
  {"event": "seeding"}     the seeder has checked its data and the tracker
                           answered its announce (it is in the swarm);
  {"event": "finished"}    the downloader has every piece;
  {"event": "done"}        the downloader's announce after finishing (the
                           one carrying event=completed) was answered;
  {"event": "tracker_error", ...}, {"event": "status", ...}  for diagnosis
                           (a status line whenever the status changes).
It runs until it is killed, so that the swarm keeps it while the test
scrapes the tracker; --timeout bounds it in case the test dies first.
"""

import argparse
import json
import os
import sys
import time

import libtorrent as lt

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir, "testdata"))
import ltsettings  # noqa: E402


def emit(event, **fields):
    fields["event"] = event
    print(json.dumps(fields), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("seed", "download"), required=True)
    ap.add_argument("--torrent", required=True)
    ap.add_argument("--save", required=True, help="directory holding (or receiving) the data")
    ap.add_argument("--listen", default="127.0.0.1", help="address to listen on: 127.0.0.1 or ::1")
    ap.add_argument("--timeout", type=float, default=120)
    args = ap.parse_args()

    iface = "[%s]:0" % args.listen if ":" in args.listen else "%s:0" % args.listen
    cat = lt.alert.category_t
    settings = ltsettings.tracker_only()
    settings.update({
        "listen_interfaces": iface,
        "outgoing_interfaces": "",
        "alert_mask": cat.error_notification | cat.status_notification
        | cat.tracker_notification | cat.storage_notification,
        "user_agent": "chihaya-e2e/libtorrent-" + lt.__version__,
    })
    ses = lt.session(settings)

    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(args.torrent)
    atp.save_path = args.save
    atp.flags |= lt.torrent_flags.disable_dht | lt.torrent_flags.disable_lsd | lt.torrent_flags.disable_pex
    atp.flags &= ~lt.torrent_flags.auto_managed
    atp.flags &= ~lt.torrent_flags.paused
    h = ses.add_torrent(atp)

    deadline = time.monotonic() + args.timeout
    last_status = None
    replies = 0            # tracker replies so far
    finished_at = None     # the value of replies when the download finished
    reported = set()
    while time.monotonic() < deadline:
        ses.wait_for_alert(200)
        for a in ses.pop_alerts():
            if isinstance(a, lt.tracker_error_alert):
                # message() is cut short when the URL is long (a token in
                # the query): report the tracker's failure reason apart.
                emit("tracker_error", url=a.tracker_url(), message=a.message(),
                     failure_reason=a.failure_reason(), error=a.error.message())
            elif isinstance(a, lt.tracker_warning_alert):
                emit("tracker_warning", url=a.tracker_url(), message=a.message())
            elif isinstance(a, lt.tracker_reply_alert):
                replies += 1
                emit("tracker_reply", url=a.tracker_url(), peers=a.num_peers)
            elif isinstance(a, lt.torrent_finished_alert):
                if finished_at is None:
                    finished_at = replies
            elif isinstance(a, (lt.torrent_error_alert, lt.file_error_alert)):
                emit("error", message=a.message())
        st = h.status()
        if args.mode == "seed":
            if st.is_seeding and replies > 0 and "seeding" not in reported:
                reported.add("seeding")
                emit("seeding")
        elif finished_at is not None:
            if "finished" not in reported:
                reported.add("finished")
                emit("finished")
            # libtorrent announces event=completed as soon as it finishes;
            # the first reply after that is the answer to it.
            if replies > finished_at and "done" not in reported:
                reported.add("done")
                emit("done")
        status = dict(state=str(st.state), progress=round(st.progress, 2),
                      peers=st.num_peers, seeds=st.num_seeds, tracker=st.current_tracker)
        if status != last_status:
            last_status = status
            emit("status", **status)
    emit("timeout")
    return 3


if __name__ == "__main__":
    sys.exit(main())
