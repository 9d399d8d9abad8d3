package operator

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

// Status page sessions: a signed-in person holds a random session ID in
// an HttpOnly, SameSite=Strict cookie; the server keeps the session with
// its role and the CSRF token its forms carry.
const (
	sessionCookie = "chihaya_session"
	sessionTTL    = 12 * time.Hour
	// maxSessions bounds the sessions kept; signing in beyond it ends the
	// oldest.
	maxSessions = 1 << 12
)

type session struct {
	id, csrf string
	role     Role
	// token is the digest of the token signed in with, never the token.
	token   [sha256.Size]byte
	expires time.Time
}

type sessions struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[string]*session
}

func newSessions(now func() time.Time) *sessions {
	return &sessions{now: now, m: map[string]*session{}}
}

func randomString() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("operator: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (ss *sessions) create(role Role, token string) *session {
	s := &session{id: randomString(), csrf: randomString(), role: role, token: sha256.Sum256([]byte(token)), expires: ss.now().Add(sessionTTL)}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	now := ss.now()
	for id, o := range ss.m {
		if now.After(o.expires) {
			delete(ss.m, id)
		}
	}
	if len(ss.m) >= maxSessions {
		evictOldest(ss.m, func(s *session) time.Time { return s.expires })
	}
	ss.m[s.id] = s
	return s
}

// get returns the session of the request's cookie, or nil: nil too when
// the tokens in use no longer hold its token (the session ends), and with
// the role they give it now. The session returned is a copy.
func (ss *sessions) get(r *http.Request, tokens *Tokens) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil || len(c.Value) != 43 {
		return nil
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.m[c.Value]
	if s == nil {
		return nil
	}
	if ss.now().After(s.expires) {
		delete(ss.m, s.id)
		return nil
	}
	role := tokens.roleOf(s.token)
	if role == NoRole {
		delete(ss.m, s.id)
		return nil
	}
	cp := *s
	cp.role = role
	return &cp
}

func (ss *sessions) end(s *session) {
	ss.mu.Lock()
	delete(ss.m, s.id)
	ss.mu.Unlock()
}

// CSRF is the token the session's forms carry.
func (s *session) CSRF() string { return s.csrf }

// checkCSRF reports whether the form's csrf field is the session's.
func (s *session) checkCSRF(r *http.Request) bool {
	return subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(s.csrf)) == 1
}

func setSessionCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name:     sessionCookie,
		Value:    value,
		Path:     "/status",
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   r.TLS != nil,
		SameSite: http.SameSiteStrictMode,
	})
}

// evictOldest removes from a full table the entry whose time is the
// earliest: the least recently used walk, the session nearest its end.
func evictOldest[K comparable, V any](m map[K]V, at func(V) time.Time) {
	var oldest K
	var first time.Time
	found := false
	for k, v := range m {
		if t := at(v); !found || t.Before(first) {
			oldest, first, found = k, t, true
		}
	}
	if found {
		delete(m, oldest)
	}
}
