// Package webui serves schoolgate's HTTP interface: the JSON API the technician's tools and
// tests use (status, explain, events) and, when an accounts store is configured, the web UI's
// server-rendered pages (html/template, htmx and a style sheet embedded with go:embed).
//
// Every page route is declared with the auth.Permission it needs (pageRoutes) and mounted
// through require, which resolves the session cookie and asks auth.Can; state-changing
// requests carry the session's CSRF token. The JSON API's routes are in the same table: a
// session with the permission, or the API token the daemon keeps in its data directory for
// the admin CLI (Config.APIToken), opens them. /api/health alone needs neither.
package webui

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/schoolgate/schoolgate/firmware/audit"
	"github.com/schoolgate/schoolgate/firmware/auth"
	"github.com/schoolgate/schoolgate/firmware/config"
	"github.com/schoolgate/schoolgate/firmware/eventlog"
	"github.com/schoolgate/schoolgate/firmware/exceptions"
	"github.com/schoolgate/schoolgate/firmware/policy"
	"github.com/schoolgate/schoolgate/firmware/tlscert"
)

// Explainer judges a name for a client and says why. *policy.Engine is one.
type Explainer interface {
	Explain(policy.Request) policy.Explanation
}

// Events answers event queries. *eventlog.Log is one.
type Events interface {
	Query(context.Context, eventlog.Filter) (eventlog.Page, error)
}

// Auditor records changes in the audit trail, lists, verifies and exports it. *audit.Log is
// one.
type Auditor interface {
	Append(context.Context, audit.Entry) (audit.Entry, error)
	List(context.Context, audit.Filter) ([]audit.Entry, error)
	Verify(context.Context, ...audit.Anchor) (audit.Result, error)
	Export(context.Context, io.Writer) error
}

// Change says who changes the configuration and why; the daemon records it in the audit
// trail with a diff.
type Change struct {
	Actor, Role, Address string
	Summary              string // what, in a sentence: "profile pupils: safe search changed"
	Reason               string // why, as the person wrote it
}

// Configurator reads and changes the configuration. The daemon is one: it saves a new
// version of the configuration file and swaps it in.
type Configurator interface {
	// EditableConfig returns a private copy of the configuration as saved.
	EditableConfig() (*config.Config, error)
	// SaveConfig validates, saves and applies cfg; an invalid one is refused with its
	// *config.ValidationError.
	SaveConfig(ctx context.Context, cfg *config.Config, ch Change) (config.Version, error)
}

// ListUpdater fetches a list source again now and applies the result.
type ListUpdater interface {
	UpdateList(ctx context.Context, name string) error
}

// Config configures the server.
type Config struct {
	Listen    string
	Explainer Explainer
	Events    Events
	// Status assembles the appliance status on request; the daemon owns the components, so
	// it knows their state.
	Status func(context.Context) Status
	Logger *slog.Logger
	// Auth turns the web UI pages on. Without it only the JSON API is served, as the tests
	// and demo tooling of the packet path expect.
	Auth *auth.Store
	// Audit records the account changes made through the pages; required with Auth.
	Audit Auditor
	// Config reads and saves the configuration; required with Auth.
	Config Configurator
	// Exceptions is the exceptions store; required with Auth.
	Exceptions *exceptions.Store
	// Lists updates one list source now (the lists page's "update now"); the daemon is one.
	Lists ListUpdater
	// Versions lists the kept configuration versions for the system page; nil hides them.
	Versions Versions
	// Certificate is the web UI's certificate, shown and replaced on the system page; nil
	// when the UI is plain HTTP.
	Certificate *tlscert.Manager
	// Devices is the device inventory; nil shows only the configured devices (the demo).
	Devices DeviceInventory
	// Backup makes and restores backups on the system page; nil hides them.
	Backup Backuper
	// Restart restarts the daemon (the system page's "restart"); nil hides it. It is called
	// after the answer has been sent.
	Restart func()
	// APIToken, when not empty, opens the JSON API to requests that carry it as
	// "Authorization: Bearer <token>", with a technician's rights: the admin CLI on the box
	// and monitoring use it. Everyone else needs a session.
	APIToken string
	// Health says what the appliance is doing: "ok" once every part is filtering, or
	// "starting" or "stopping", which /api/health answers with 503. nil means "ok".
	Health func() string
	// TLS, when set, serves HTTPS (the appliance's certificate); nil serves plain HTTP, as
	// the demo does on loopback.
	TLS *tls.Config
}

// Server is the HTTP server.
type Server struct {
	cfg    Config
	assets *assets
	pages  map[string]*template.Template
	preKey []byte // signs pre-session CSRF tokens; new at every start
	main   *listener
}

// New checks cfg and builds the routes; Start listens.
func New(cfg Config) (*Server, error) {
	if cfg.Explainer == nil || cfg.Events == nil || cfg.Status == nil {
		return nil, errors.New("webui: explainer, events and status are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg}
	if cfg.Auth != nil {
		if cfg.Audit == nil || cfg.Config == nil || cfg.Exceptions == nil {
			return nil, errors.New("webui: an audit log, a configurator and an exceptions store are required with an accounts store")
		}
		var err error
		if s.assets, err = newAssets(); err != nil {
			return nil, fmt.Errorf("webui: static assets: %w", err)
		}
		if s.pages, err = parsePages(s.assets); err != nil {
			return nil, fmt.Errorf("webui: %w", err)
		}
		s.preKey = make([]byte, 32)
		rand.Read(s.preKey)
	}
	s.main = newListener(s.routes(), cfg.Logger)
	return s, nil
}

// Handler returns the routes, for tests with httptest.
func (s *Server) Handler() http.Handler { return s.main.srv.Handler }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/health", s.handleHealth)
	if s.cfg.Auth == nil {
		for _, rt := range s.apiRoutes() {
			mux.HandleFunc(rt.pattern, rt.handler)
		}
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusNotFound, "no such endpoint: try /api/status, /api/explain or /api/events")
		})
		return securityHeaders(mux)
	}
	mux.Handle("GET /static/", s.assets)
	// The pre-session pages: they check their own CSRF field (see preToken).
	mux.HandleFunc("GET /login", s.handleLoginForm)
	mux.HandleFunc("POST /login", s.handleLogin)
	mux.HandleFunc("POST /login/totp", s.handleTOTP)
	mux.HandleFunc("GET /setup", s.handleSetupForm)
	mux.HandleFunc("POST /setup", s.handleSetup)
	for _, rt := range s.pageRoutes() {
		h := s.require(rt.perm, rt.handler)
		if strings.HasPrefix(rt.pattern, "GET /api/") {
			h = s.orToken(rt.handler, h)
		}
		mux.HandleFunc(rt.pattern, h)
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") {
			writeError(w, http.StatusNotFound, "no such endpoint: try /api/status, /api/explain or /api/events")
			return
		}
		s.renderMessage(w, r, http.StatusNotFound, "Not found", "There is no page at this address.")
	})
	// Browsers say where a POST comes from (Sec-Fetch-Site, Origin); a cross-origin one is
	// refused before any token is looked at.
	return securityHeaders(http.NewCrossOriginProtection().Handler(mux))
}

// pageRoutes are the routes that need a session, each with the one permission it needs.
func (s *Server) pageRoutes() []route {
	return slices.Concat(s.apiRoutes(), s.exceptionRoutes(), s.accountRoutes(), s.logRoutes(), s.networkRoutes(), s.systemRoutes(), s.deviceRoutes(), []route{
		{"GET /{$}", auth.OwnAccount, s.handleDashboard},
		{"GET /fragments/components", auth.DashboardRead, s.handleComponents},
		{"GET /audit", auth.AuditRead, s.handleAudit},
		{"GET /audit/export", auth.AuditRead, s.handleAuditExport},
		{"GET /profiles", auth.PolicyRead, s.handleProfiles},
		{"POST /profiles", auth.PolicyEdit, s.handleProfilesSave},
		{"GET /schedules", auth.PolicyRead, s.handleSchedules},
		{"POST /schedules/{name}", auth.PolicyEdit, s.handleScheduleSave},
		{"GET /profiles/{name}", auth.PolicyRead, s.handleProfile},
		{"POST /profiles/{name}", auth.PolicyEdit, s.handleProfileSave},
		{"POST /logout", auth.OwnAccount, s.handleLogout},
	})
}

// apiRoutes are the JSON API's routes. With accounts, each needs a session holding its
// permission, or the API token.
func (s *Server) apiRoutes() []route {
	return []route{
		{"GET /api/status", auth.DashboardRead, s.handleStatus},
		{"GET /api/explain", auth.PolicyRead, s.handleExplain},
		{"GET /api/events", auth.LogsRead, s.handleEvents},
	}
}

// orToken serves a request carrying the API token with h, and any other with otherwise.
func (s *Server) orToken(h, otherwise http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if ok && s.cfg.APIToken != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.APIToken)) == 1 {
			h(w, r)
			return
		}
		if ok {
			writeError(w, http.StatusUnauthorized, "wrong API token")
			return
		}
		otherwise(w, r)
	}
}

// handleHealth says whether the appliance is up and filtering, and nothing else: it needs no
// session, for service managers and monitoring. The UI listens before the packet path is
// in place, so while the daemon is still starting (or already stopping) the answer is 503.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Health != nil {
		if st := s.cfg.Health(); st != "ok" {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": st})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// Start listens and serves in the background until Close.
func (s *Server) Start(ctx context.Context) error {
	if err := s.main.start(ctx, s.cfg.Listen, s.cfg.TLS); err != nil {
		return err
	}
	s.cfg.Logger.Info("web UI listening", "addr", s.main.addr().String(), "https", s.cfg.TLS != nil)
	return nil
}

// Addr returns the listening address.
func (s *Server) Addr() net.Addr { return s.main.addr() }

// Close stops accepting and waits up to five seconds for requests under way.
func (s *Server) Close() error { return s.main.close() }

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		// same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on a
		// form's POST, which cross-origin protection must refuse on plain HTTP (the block page).
		// Nothing leaves for other sites either way.
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		// No inline script or style anywhere, and no eval (htmx is configured without it).
		h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
			"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		if r.TLS != nil {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
