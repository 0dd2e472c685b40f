// Package webui serves schoolgate's HTTP interface: today the JSON API the technician's tools
// and tests use (status, explain, events); the web UI pages grow on the same server.
package webui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/schoolgate/schoolgate/firmware/eventlog"
	"github.com/schoolgate/schoolgate/firmware/policy"
)

// Explainer judges a name for a client and says why. *policy.Engine is one.
type Explainer interface {
	Explain(policy.Request) policy.Explanation
}

// Events answers event queries. *eventlog.Log is one.
type Events interface {
	Query(context.Context, eventlog.Filter) (eventlog.Page, error)
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
}

// Server is the HTTP server.
type Server struct {
	cfg  Config
	srv  *http.Server
	ln   net.Listener
	done chan error
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
	s.srv = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Handler returns the routes, for tests with httptest.
func (s *Server) Handler() http.Handler { return s.srv.Handler }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/status", s.handleStatus)
	mux.HandleFunc("GET /api/explain", s.handleExplain)
	mux.HandleFunc("GET /api/events", s.handleEvents)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: try /api/status, /api/explain or /api/events")
	})
	return securityHeaders(mux)
}

// Start listens and serves in the background until Close.
func (s *Server) Start(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", s.cfg.Listen, err)
	}
	s.ln = ln
	s.done = make(chan error, 1)
	go func() { s.done <- s.srv.Serve(ln) }()
	s.cfg.Logger.Info("http api listening", "addr", ln.Addr().String())
	return nil
}

// Addr returns the listening address.
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Close stops accepting and waits up to five seconds for requests under way.
func (s *Server) Close() error {
	if s.ln == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if serveErr := <-s.done; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	return err
}

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-store")
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
