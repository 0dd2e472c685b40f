package webui

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// listener is one HTTP server of the web UI (the pages and API, the HTTP→HTTPS redirect, the
// block page) with the limits they all share.
type listener struct {
	srv  *http.Server
	ln   net.Listener
	done chan error
}

func newListener(h http.Handler, logger *slog.Logger) *listener {
	return &listener{srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}}
}

// start listens on addr (with TLS when tc is not nil) and serves in the background.
func (l *listener) start(ctx context.Context, addr string, tc *tls.Config) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", addr, err)
	}
	l.ln = ln
	if tc != nil {
		ln = tls.NewListener(ln, tc)
	}
	l.done = make(chan error, 1)
	go func() { l.done <- l.srv.Serve(ln) }()
	return nil
}

// addr is the address listened on, or nil before start.
func (l *listener) addr() net.Addr {
	if l == nil || l.ln == nil {
		return nil
	}
	return l.ln.Addr()
}

// close stops accepting and waits up to five seconds for requests under way.
func (l *listener) close() error {
	if l == nil || l.ln == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := l.srv.Shutdown(ctx)
	if serveErr := <-l.done; !errors.Is(serveErr, http.ErrServerClosed) {
		err = errors.Join(err, serveErr)
	}
	return err
}

// longResponse lifts the server's write deadline for a download that may take minutes (a
// backup, an export, a CSV of the logs) on a slow link or a busy box.
func longResponse(w http.ResponseWriter) {
	// Not every ResponseWriter supports deadlines (httptest's recorder); then there is none.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(30 * time.Minute))
}
