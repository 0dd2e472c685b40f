package webui

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/schoolgate/schoolgate/firmware/auth"
)

const (
	// sessionCookie carries the auth.Session token.
	sessionCookie = "sg_session"
	// preCookie carries a random value that binds the pre-session forms (login, its code
	// step, setup) to this browser; see preCSRF.
	preCookie = "sg_pre"
	// csrfField and csrfHeader carry CSRF tokens: the form field for plain forms, the
	// header for htmx requests (the layout sets it with hx-headers).
	csrfField  = "csrf"
	csrfHeader = "X-CSRF-Token"
	// maxFormBytes bounds a form body; no form of the UI comes near it.
	maxFormBytes = 64 << 10
)

// bodyLimits are the routes whose forms may be larger than maxFormBytes: uploads.
var bodyLimits = map[string]int64{
	"POST /system/restore": 2 << 30,
}

type sessionKey struct{}

// sessionFrom returns the session require put in the request's context, or nil.
func sessionFrom(r *http.Request) *auth.Session {
	s, _ := r.Context().Value(sessionKey{}).(*auth.Session)
	return s
}

// clientAddr is the address of the browser: the UI is reached directly on the gateway's
// own addresses, never through a proxy, so RemoteAddr is the truth and X-Forwarded-For is
// not trusted.
func clientAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// setCookie sets a cookie with the attributes every cookie of the UI has: HttpOnly,
// SameSite=Strict, path /, and Secure when the request came over TLS (demo mode is plain
// HTTP on loopback, where a Secure cookie would never be sent back).
func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
}

func clearCookie(w http.ResponseWriter, r *http.Request, name string) { setCookie(w, r, name, "", -1) }

// route is one page route and the permission it needs. routes() mounts them all through
// require, and the tests try each with every role.
type route struct {
	pattern string
	perm    auth.Permission
	handler http.HandlerFunc
}

// require resolves the session and checks perm with auth.Can before h runs. No session:
// a page goes to /login, an API route gets 401 JSON. A session without perm gets 403.
// Every method other than GET and HEAD must carry the session's CSRF token.
func (s *Server) require(perm auth.Permission, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		api := strings.HasPrefix(r.URL.Path, "/api/")
		sess, err := s.lookup(r)
		if err != nil {
			clearCookie(w, r, sessionCookie)
			switch {
			case api:
				writeError(w, http.StatusUnauthorized, "log in first")
			case r.Header.Get("HX-Request") != "":
				// htmx would swap a login page into a fragment; send the whole page there.
				w.Header().Set("HX-Redirect", "/login")
				w.WriteHeader(http.StatusUnauthorized)
			default:
				to := "/login"
				if errors.Is(err, auth.ErrSessionExpired) {
					to += "?expired=1"
				}
				http.Redirect(w, r, to, http.StatusFound)
			}
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), sessionKey{}, &sess))
		if !auth.Can(sess.Role, perm) {
			s.cfg.Logger.Warn("forbidden", "account", sess.Account, "role", string(sess.Role),
				"path", r.URL.Path, "permission", perm.String())
			if api {
				writeError(w, http.StatusForbidden, "your role does not allow this")
			} else {
				s.renderMessage(w, r, http.StatusForbidden, "Not allowed", "Your role ("+string(sess.Role)+") does not allow this page.")
			}
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			limit := int64(maxFormBytes)
			if l, ok := bodyLimits[r.Pattern]; ok {
				limit = l
				// An upload of this size takes longer than the server's read timeout allows.
				http.NewResponseController(w).SetReadDeadline(time.Now().Add(30 * time.Minute))
			}
			r.Body = http.MaxBytesReader(w, r.Body, limit)
			tok := r.Header.Get(csrfHeader)
			if tok == "" {
				tok = r.PostFormValue(csrfField)
			}
			if !sess.CheckCSRF(tok) {
				s.cfg.Logger.Warn("csrf token missing or wrong", "account", sess.Account, "path", r.URL.Path)
				s.renderMessage(w, r, http.StatusForbidden, "Form expired", "This form was not sent from this session. Go back, reload the page and try again.")
				return
			}
		}
		h(w, r)
	}
}

func (s *Server) lookup(r *http.Request) (auth.Session, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return auth.Session{}, auth.ErrNoSession
	}
	return s.cfg.Auth.Lookup(r.Context(), c.Value)
}

// Pre-session CSRF (login, the code step, setup). There is no session to bind a token to,
// so the forms use a signed double-submit cookie: GET sets sg_pre, a random value, in a
// SameSite=Strict HttpOnly cookie, and the form carries HMAC(key, purpose, value) under a
// key the server made at start. A POST is accepted only when the field matches the cookie it
// came with. A cross-site page cannot read the cookie or the form, SameSite=Strict keeps the
// browser from sending the cookie with a cross-site POST at all, and because the field is
// signed, planting a cookie (from a sibling host on the same site, say) does not let an
// attacker make a matching field. This is what stops login CSRF: logging a victim's browser
// into the attacker's account, including by replaying the attacker's own pending code step.
// http.CrossOriginProtection (Sec-Fetch-Site / Origin) is layered on top for every POST.

// preToken returns the pre-session CSRF field for this browser, setting sg_pre if needed.
func (s *Server) preToken(w http.ResponseWriter, r *http.Request) string {
	v := ""
	if c, err := r.Cookie(preCookie); err == nil && validPreValue(c.Value) {
		v = c.Value
	} else {
		b := make([]byte, 32)
		rand.Read(b)
		v = base64.RawURLEncoding.EncodeToString(b)
		// A session cookie (no Max-Age): it lives as long as the browser window.
		setCookie(w, r, preCookie, v, 0)
	}
	return s.preSign(v)
}

func (s *Server) preSign(v string) string {
	m := hmac.New(sha256.New, s.preKey)
	m.Write([]byte("schoolgate pre-session csrf\x00"))
	m.Write([]byte(v))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkPre checks a pre-session form's CSRF field against its cookie.
func (s *Server) checkPre(r *http.Request) bool {
	c, err := r.Cookie(preCookie)
	if err != nil || !validPreValue(c.Value) {
		return false
	}
	want := s.preSign(c.Value)
	got := r.PostFormValue(csrfField)
	return subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1
}

func validPreValue(v string) bool {
	b, err := base64.RawURLEncoding.DecodeString(v)
	return err == nil && len(b) == 32
}
