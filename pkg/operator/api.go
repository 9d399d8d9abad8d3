package operator

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// API limits.
const (
	defaultLimit = 100
	maxLimit     = 1000
	// maxBody is the most body a request without one may carry before it
	// is refused as too large rather than as unexpected.
	maxBody = 1 << 10
	// totalsMaxAge is how old the totals (distinct swarms, snatches,
	// which take a walk of the store) may be when /stats is asked.
	totalsMaxAge = 5 * time.Second
)

const apiPrefix = "/api/v1/"

func apiRoute(r *http.Request) string {
	p := strings.TrimPrefix(r.URL.Path, apiPrefix)
	switch {
	case p == "stats":
		return "api_stats"
	case p == "torrents":
		return "api_torrents"
	case strings.HasPrefix(p, "torrents/") && !strings.Contains(p[len("torrents/"):], "/"):
		return "api_torrent"
	case strings.HasPrefix(p, "approval/torrents/") && !strings.Contains(p[len("approval/torrents/"):], "/"):
		return "api_approval"
	}
	return "api_other"
}

// writeJSON writes v as the JSON reply with status code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

type errorReply struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorReply{Error: msg})
}

// authorize checks the bearer token and answers 401 or 429 itself when
// it is missing or wrong. The answer is the same for a token that does
// not exist and for one that is malformed.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) (Role, bool) {
	addr := clientAddr(r)
	if wait := s.limiter.wait(addr); wait > 0 {
		secs := int((wait + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("too many failed attempts from this address; try again in %ds", secs))
		return NoRole, false
	}
	token, ok := bearer(r)
	role := NoRole
	if ok {
		role = s.tokens.Role(token)
	}
	if role == NoRole {
		if ok {
			s.limiter.failed(addr)
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="chihaya"`)
		writeError(w, http.StatusUnauthorized, "missing or invalid bearer token")
		return NoRole, false
	}
	s.limiter.succeeded(addr)
	return role, true
}

// bodyTimeout is how long a request's body may take to arrive: the
// operator server has no read timeout of its own (pprof profiles stream
// for long), and a client that announces a body and never sends it must
// not hold its request open.
var bodyTimeout = 10 * time.Second

// bodyDeadline sets the time by which the request's body must be read.
func bodyDeadline(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(bodyTimeout))
}

// noBody refuses a request that carries a body where none is expected.
func noBody(w http.ResponseWriter, r *http.Request) bool {
	bodyDeadline(w)
	n, err := io.Copy(io.Discard, io.LimitReader(r.Body, maxBody+1))
	switch {
	case err != nil && n <= maxBody:
		writeError(w, http.StatusBadRequest, "request body could not be read: this endpoint takes none")
		return false
	case n > maxBody:
		writeError(w, http.StatusRequestEntityTooLarge, "request body too large: this endpoint takes none")
		return false
	case n > 0:
		writeError(w, http.StatusBadRequest, "unexpected request body: this endpoint takes none")
		return false
	}
	return true
}

func methodNotAllowed(w http.ResponseWriter, allow ...string) {
	w.Header().Set("Allow", strings.Join(allow, ", "))
	writeError(w, http.StatusMethodNotAllowed, "method not allowed: use "+strings.Join(allow, " or "))
}

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	role, ok := s.authorize(w, r)
	if !ok {
		return
	}
	p := strings.TrimPrefix(r.URL.Path, apiPrefix)
	switch route := apiRoute(r); route {
	case "api_stats", "api_torrents", "api_torrent":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			methodNotAllowed(w, http.MethodGet)
			return
		}
		if !noBody(w, r) {
			return
		}
		switch route {
		case "api_stats":
			s.serveStats(w, r)
		case "api_torrents":
			s.serveTorrents(w, r)
		default:
			s.serveTorrent(w, r, strings.TrimPrefix(p, "torrents/"))
		}
	case "api_approval":
		if r.Method != http.MethodPut && r.Method != http.MethodDelete {
			methodNotAllowed(w, http.MethodPut, http.MethodDelete)
			return
		}
		if role < Admin {
			writeError(w, http.StatusForbidden, "this token may only read: changing the approval list needs an admin token")
			return
		}
		if !noBody(w, r) {
			return
		}
		s.serveApproval(w, r, strings.TrimPrefix(p, "approval/torrents/"))
	default:
		writeError(w, http.StatusNotFound, "no such endpoint; see docs/operator.md")
	}
}

type familyStats struct {
	Swarms   uint64 `json:"swarms"`
	Seeders  uint64 `json:"seeders"`
	Leechers uint64 `json:"leechers"`
}

type statsReply struct {
	Swarms             uint64      `json:"swarms"`
	Seeders            uint64      `json:"seeders"`
	Leechers           uint64      `json:"leechers"`
	Snatches           uint64      `json:"snatches"`
	IPv4               familyStats `json:"ipv4"`
	IPv6               familyStats `json:"ipv6"`
	AnnouncesPerSecond float64     `json:"announces_per_second"`
	ScrapesPerSecond   float64     `json:"scrapes_per_second"`
	UptimeSeconds      int64       `json:"uptime_seconds"`
	Version            string      `json:"version"`
}

// stats gathers the reply of /stats: the families' counts from the
// store's totals (the shared ones, with Redis), the distinct swarms and
// the snatches from a walk at most totalsMaxAge old.
func (s *Server) stats(r *http.Request) (statsReply, error) {
	st, err := s.store.Stats()
	if err != nil {
		return statsReply{}, err
	}
	t := s.hist.current(r.Context(), totalsMaxAge)
	rep := statsReply{
		Swarms:             t.swarms,
		Snatches:           t.snatches,
		IPv4:               familyStats{Swarms: st.Swarms[IPv4], Seeders: st.Seeders[IPv4], Leechers: st.Leechers[IPv4]},
		IPv6:               familyStats{Swarms: st.Swarms[IPv6], Seeders: st.Seeders[IPv6], Leechers: st.Leechers[IPv6]},
		AnnouncesPerSecond: t.announces,
		ScrapesPerSecond:   t.scrapes,
		UptimeSeconds:      int64(s.now().Sub(s.started) / time.Second),
		Version:            s.version,
	}
	rep.Seeders = rep.IPv4.Seeders + rep.IPv6.Seeders
	rep.Leechers = rep.IPv4.Leechers + rep.IPv6.Leechers
	return rep, nil
}

func (s *Server) serveStats(w http.ResponseWriter, r *http.Request) {
	rep, err := s.stats(r)
	if err != nil {
		s.internal(w, "stats", err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// internal logs an internal error and answers a generic 500: store errors
// may name addresses the API's clients need not see.
func (s *Server) internal(w http.ResponseWriter, what string, err error) {
	s.logInternal(what, err)
	writeError(w, http.StatusInternalServerError, "internal error; see the tracker's log")
}

func (s *Server) logInternal(what string, err error) {
	logrus.WithError(err).WithField("endpoint", what).Error("api: internal error")
}

func logApproval(rep approvalReply) {
	logrus.WithFields(logrus.Fields{"info_hash": rep.InfoHash, "list": rep.List, "listed": rep.Listed, "changed": rep.Changed}).Info("api: approval list changed")
}

type torrentReply struct {
	InfoHash string `json:"info_hash"`
	Seeders  uint32 `json:"seeders"`
	Leechers uint32 `json:"leechers"`
	Snatches uint32 `json:"snatches"`
}

type torrentsReply struct {
	Torrents   []torrentReply `json:"torrents"`
	NextCursor string         `json:"next_cursor,omitempty"`
}

func (s *Server) serveTorrents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		if k != "sort" && k != "limit" && k != "cursor" {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown parameter %q: use sort, limit and cursor", k))
			return
		}
	}
	limit := defaultLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("limit: must be an integer from 1 to %d, got %q", maxLimit, truncate(v)))
			return
		}
		limit = n
	}
	k, sortGiven := sortPeers, false
	if v := q.Get("sort"); v != "" {
		var ok bool
		if k, ok = parseSort(v); !ok {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("sort: must be peers, seeders, leechers or snatches, got %q", truncate(v)))
			return
		}
		sortGiven = true
	}
	var (
		page []entry
		next string
		err  error
	)
	if v := q.Get("cursor"); v != "" {
		c, perr := parseCursor(v)
		if perr != nil {
			writeError(w, http.StatusBadRequest, "cursor: malformed; pass next_cursor as it was returned")
			return
		}
		if sortGiven && c.sort != k {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("cursor: belongs to a walk with sort=%s", sortNames[c.sort]))
			return
		}
		page, next, err = s.lists.next(c, limit)
		if errors.Is(err, errExpired) {
			writeError(w, http.StatusBadRequest, "cursor: "+err.Error())
			return
		}
	} else {
		page, next, err = s.lists.first(r.Context(), s.store, k, limit)
	}
	if err != nil {
		s.internal(w, "torrents", err)
		return
	}
	rep := torrentsReply{Torrents: make([]torrentReply, len(page)), NextCursor: next}
	for i, e := range page {
		rep.Torrents[i] = torrentReply{InfoHash: hex.EncodeToString(e.ih[:]), Seeders: e.seeders, Leechers: e.leechers, Snatches: e.snatches}
	}
	writeJSON(w, http.StatusOK, rep)
}

// truncate shortens a client's value for an error message.
func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

// parseInfoHash reads 40 hex digits, either case.
func parseInfoHash(s string) ([20]byte, bool) {
	var ih [20]byte
	if len(s) != 40 {
		return ih, false
	}
	_, err := hex.Decode(ih[:], []byte(s))
	return ih, err == nil
}

const errMalformedHash = "malformed info hash: want 40 hex digits"

type familyCounts struct {
	Seeders  uint32 `json:"seeders"`
	Leechers uint32 `json:"leechers"`
}

type groupReply struct {
	Name     string `json:"name"`
	Family   string `json:"family"`
	Seeders  uint32 `json:"seeders"`
	Leechers uint32 `json:"leechers"`
}

type torrentDetail struct {
	InfoHash string       `json:"info_hash"`
	Seeders  uint32       `json:"seeders"`
	Leechers uint32       `json:"leechers"`
	Snatches uint32       `json:"snatches"`
	IPv4     familyCounts `json:"ipv4"`
	IPv6     familyCounts `json:"ipv6"`
	Groups   []groupReply `json:"groups,omitempty"`
}

// detail reads one swarm: its counts per family, and its locality groups.
// ok is false for a swarm the store does not have.
func (s *Server) detail(ih [20]byte) (d torrentDetail, ok bool, err error) {
	sw, err := s.store.Swarm(ih)
	if err != nil {
		return d, false, err
	}
	d = torrentDetail{
		InfoHash: hex.EncodeToString(ih[:]),
		Seeders:  sw.Seeders[IPv4] + sw.Seeders[IPv6],
		Leechers: sw.Leechers[IPv4] + sw.Leechers[IPv6],
		Snatches: sw.Downloads,
		IPv4:     familyCounts{Seeders: sw.Seeders[IPv4], Leechers: sw.Leechers[IPv4]},
		IPv6:     familyCounts{Seeders: sw.Seeders[IPv6], Leechers: sw.Leechers[IPv6]},
	}
	if d.Seeders == 0 && d.Leechers == 0 && d.Snatches == 0 {
		return d, false, nil
	}
	groups, err := s.store.Groups(ih)
	if err != nil {
		return d, false, err
	}
	for _, g := range groups {
		d.Groups = append(d.Groups, groupReply{Name: g.Name, Family: g.Family.String(), Seeders: g.Seeders, Leechers: g.Leechers})
	}
	return d, true, nil
}

func (s *Server) serveTorrent(w http.ResponseWriter, r *http.Request, hexHash string) {
	ih, ok := parseInfoHash(hexHash)
	if !ok {
		writeError(w, http.StatusBadRequest, errMalformedHash)
		return
	}
	d, found, err := s.detail(ih)
	switch {
	case err != nil:
		s.internal(w, "torrent", err)
	case !found:
		writeError(w, http.StatusNotFound, "no such torrent: the tracker has no peers or snatches for it")
	default:
		writeJSON(w, http.StatusOK, d)
	}
}

type approvalReply struct {
	InfoHash string `json:"info_hash"`
	List     string `json:"list"`
	Listed   bool   `json:"listed"`
	Changed  bool   `json:"changed"`
	File     string `json:"file,omitempty"`
}

// setListed changes the running approval list; code is the HTTP status to
// answer with when err is not nil.
func (s *Server) setListed(ih [20]byte, listed bool) (approvalReply, int, error) {
	list := s.approval()
	if list == nil {
		return approvalReply{}, http.StatusConflict, errors.New("no torrent approval hook is running: add one to prehooks to have a list to change")
	}
	changed, err := list.SetListed(ih, listed)
	if err != nil {
		return approvalReply{}, http.StatusInternalServerError, err
	}
	if listed {
		s.hist.follow(ih)
	}
	return approvalReply{InfoHash: hex.EncodeToString(ih[:]), List: list.ListName(), Listed: listed, Changed: changed, File: list.ListFile()}, http.StatusOK, nil
}

func (s *Server) serveApproval(w http.ResponseWriter, r *http.Request, hexHash string) {
	ih, ok := parseInfoHash(hexHash)
	if !ok {
		writeError(w, http.StatusBadRequest, errMalformedHash)
		return
	}
	rep, code, err := s.setListed(ih, r.Method == http.MethodPut)
	switch {
	case code == http.StatusInternalServerError:
		s.internal(w, "approval", err)
	case err != nil:
		writeError(w, code, err.Error())
	default:
		logApproval(rep)
		writeJSON(w, http.StatusOK, rep)
	}
}
