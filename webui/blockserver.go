package webui

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/schoolgate/schoolgate/firmware/audit"
	"github.com/schoolgate/schoolgate/firmware/category"
	"github.com/schoolgate/schoolgate/firmware/exceptions"
	"github.com/schoolgate/schoolgate/firmware/lists"
	"github.com/schoolgate/schoolgate/firmware/policy"
)

// The block page server. Profiles whose block_response is "blockpage" answer blocked names
// with the appliance's address, so the browser asks this server for the blocked site: it
// judges the name again for the client's address, and says what was blocked, the category,
// the profile and the time, with a form to ask for a review. A review becomes an exception
// request for the DSL (firmware/exceptions.RequestReview): no account is needed, it is
// limited per client, and it is refused from guest networks and for the protected tier.

// Judge decides names and knows the segments. *policy.Engine is one.
type Judge interface {
	Explain(policy.Request) policy.Explanation
	Snapshot() *policy.Snapshot
}

// BlockServerConfig configures the block page server.
type BlockServerConfig struct {
	Listen     string
	Judge      Judge
	Exceptions *exceptions.Store
	Audit      Auditor
	// Appliance returns the school's name and time zone for the page.
	Appliance func() (string, *time.Location)
	Logger    *slog.Logger
	Now       func() time.Time
	// UIPort and UITLS say where the web UI is: a request for the appliance's own address
	// (not a blocked name) is redirected there. UIPort 0: no redirect.
	UIPort int
	UITLS  bool
}

// BlockServer serves the block page and takes review requests.
type BlockServer struct {
	cfg     BlockServerConfig
	assets  *assets
	page    *template.Template
	limiter *reviewLimiter
	l       *listener
}

// NewBlockServer checks cfg and builds the handler; Start listens.
func NewBlockServer(cfg BlockServerConfig) (*BlockServer, error) {
	if cfg.Judge == nil || cfg.Exceptions == nil || cfg.Audit == nil || cfg.Appliance == nil {
		return nil, errors.New("webui: the block page needs a judge, the exceptions store, the audit trail and the appliance")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a, err := newAssets()
	if err != nil {
		return nil, err
	}
	page, err := template.New("").Funcs(template.FuncMap{"asset": a.url}).ParseFS(templateFiles, "templates/blocked.html")
	if err != nil {
		return nil, fmt.Errorf("webui: block page: %w", err)
	}
	b := &BlockServer{cfg: cfg, assets: a, page: page, limiter: newReviewLimiter(3, 10*time.Minute)}
	mux := http.NewServeMux()
	mux.Handle("GET /static/", a)
	mux.HandleFunc("POST /review", b.handleReview)
	mux.HandleFunc("/", b.handlePage)
	b.l = newListener(securityHeaders(http.NewCrossOriginProtection().Handler(mux)), cfg.Logger)
	return b, nil
}

// Handler returns the routes, for tests.
func (b *BlockServer) Handler() http.Handler { return b.l.srv.Handler }

// Start listens and serves in the background until Close.
func (b *BlockServer) Start(ctx context.Context) error {
	if err := b.l.start(ctx, b.cfg.Listen, nil); err != nil {
		return err
	}
	b.cfg.Logger.Info("block page listening", "addr", b.l.addr().String())
	return nil
}

// Addr returns the listening address.
func (b *BlockServer) Addr() net.Addr { return b.l.addr() }

// Close stops the server.
func (b *BlockServer) Close() error { return b.l.close() }

// blockedData is what blocked.html shows.
type blockedData struct {
	School, Host, Category, Profile, Time, Why string
	Blocked, Protected, CanReview, Guest       bool
	Sent                                       int64
	Reason, Error                              string
}

// look judges host for the request's client and fills the page's facts.
func (b *BlockServer) look(r *http.Request, host string) (blockedData, policy.Decision) {
	school, loc := b.cfg.Appliance()
	d := blockedData{School: school, Host: host, Time: b.cfg.Now().In(loc).Format("Monday 2 January 2006, 15:04")}
	if d.School == "" {
		d.School = "the school"
	}
	client := clientAddr(r)
	if seg, ok := b.cfg.Judge.Snapshot().SegmentFor(client); ok && seg.Guest {
		d.Guest = true
	}
	ex := b.cfg.Judge.Explain(policy.Request{Client: client, Name: host})
	dec := ex.Decision
	d.Blocked = dec.Action == policy.Block
	d.Protected = dec.Tier == policy.TierProtected
	d.Profile = dec.ProfileName()
	if info, ok := category.Lookup(dec.Category); ok && dec.Category != "" && d.Blocked {
		d.Category = info.Name
	}
	d.Why = whyBlocked(dec)
	d.CanReview = d.Blocked && !d.Protected && !d.Guest && dec.Segment != "" && dec.Tier != policy.TierCanary
	return d, dec
}

// whyBlocked says in plain words why a decision blocks.
func whyBlocked(d policy.Decision) string {
	switch d.Tier {
	case policy.TierProtected:
		return "it is on a list of illegal content that is always blocked"
	case policy.TierException:
		return "a member of staff has blocked it for now"
	case policy.TierCanary:
		return "it would get round the school's filtering"
	case policy.TierNoName:
		return "the connection does not say which site it is for"
	}
	if info, ok := category.Lookup(d.Category); ok && d.Category != "" {
		return "it is in the category " + info.Name
	}
	if d.List != "" || d.Rule != "" {
		return "it is on the school's block list"
	}
	return "the school's filtering policy blocks it"
}

// siteParam reads the site named in a link from the packet path's block page (a request to a
// blocked name by address never asked the DNS, so it lands on the appliance's own address).
func siteParam(v string) string {
	n, err := lists.Normalize(v)
	if err != nil {
		return ""
	}
	return n
}

// requestHost is the name the browser asked for, without a port; "" for an address.
func requestHost(r *http.Request) string {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil || host == "" {
		return ""
	}
	if n, err := lists.Normalize(host); err == nil {
		return n
	}
	return ""
}

func (b *BlockServer) handlePage(w http.ResponseWriter, r *http.Request) {
	// A blocked page's images, scripts and frames also land here: they get a short refusal,
	// not a page, so that blocked advertising costs nothing to answer.
	if dest := r.Header.Get("Sec-Fetch-Dest"); dest != "" && dest != "document" {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	host := requestHost(r)
	if host == "" {
		host = siteParam(r.URL.Query().Get("site"))
	}
	if host == "" {
		if to := b.uiURL(r); to != "" {
			http.Redirect(w, r, to, http.StatusFound)
			return
		}
		b.render(w, http.StatusOK, blockedData{School: "schoolgate", Why: ""})
		return
	}
	d, _ := b.look(r, host)
	status := http.StatusOK
	if d.Blocked {
		status = http.StatusForbidden
	}
	b.render(w, status, d)
}

func (b *BlockServer) render(w http.ResponseWriter, status int, d blockedData) {
	var buf strings.Builder
	if err := b.page.ExecuteTemplate(&buf, "blocked", d); err != nil {
		b.cfg.Logger.Error("rendering the block page", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprint(w, buf.String())
}

// handleReview turns the form into an exception request for the DSL.
func (b *BlockServer) handleReview(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	host := requestHost(r)
	if host == "" {
		host = siteParam(r.PostFormValue("site"))
	}
	if host == "" {
		http.Error(w, "ask from the block page", http.StatusBadRequest)
		return
	}
	d, dec := b.look(r, host)
	d.Reason = strings.TrimSpace(r.PostFormValue("reason"))
	client := clientAddr(r)
	switch {
	case !d.CanReview:
		d.Error = "A review cannot be asked for from here."
		if !d.Blocked {
			d.Error = "This site is not blocked for you now. Reload the page."
		}
		b.render(w, http.StatusForbidden, d)
		return
	case !b.limiter.allow(reviewKey(client, dec.MAC), b.cfg.Now()):
		d.Error = "You have asked for several reviews in the last few minutes. Please wait and ask a member of staff."
		b.render(w, http.StatusTooManyRequests, d)
		return
	}
	before := b.cfg.Now().Truncate(time.Millisecond)
	e, err := b.cfg.Exceptions.RequestReview(r.Context(), exceptions.Review{Domain: host, Profile: dec.ProfileName(),
		ClientAddr: client.String(), ClientMAC: dec.MAC, Reason: d.Reason})
	if err != nil {
		var fe *exceptions.FieldError
		switch {
		case errors.As(err, &fe):
			d.Error = fe.Message
		case errors.Is(err, exceptions.ErrTooManyRequests):
			d.Error = "Too many review requests are waiting. Please ask a member of staff."
		default:
			b.cfg.Logger.Error("taking a review request", "err", err)
			d.Error = "The request could not be sent. Please ask a member of staff."
		}
		b.render(w, http.StatusUnprocessableEntity, d)
		return
	}
	if !e.Requested.Before(before) { // not a repeat of a request already waiting
		if _, err := b.cfg.Audit.Append(r.Context(), audit.Entry{Actor: e.RequestedBy, Address: client.String(),
			Action: "exception.request", Object: fmt.Sprintf("exception %d", e.ID), Reason: e.Reason,
			Summary: fmt.Sprintf("exception %d requested from the block page: allow %s for %s", e.ID, e.Domain, appliesTo(e.Scope, e.Target))}); err != nil {
			b.cfg.Logger.Error("recording in the audit trail", "action", "exception.request", "err", err)
		}
	}
	d.Sent, d.Reason = e.ID, ""
	b.render(w, http.StatusOK, d)
}

// reviewKey is who a review request counts against: the device's MAC address when the
// gateway knows it, else its IPv6 /64 (a device can take any address in it) or IPv4 address.
func reviewKey(client netip.Addr, mac string) string {
	switch {
	case mac != "":
		return mac
	case client.Is6():
		p, _ := client.Prefix(64)
		return p.String()
	}
	return client.String()
}

// reviewLimiter allows n review requests per client in each window.
type reviewLimiter struct {
	mu     sync.Mutex
	n      int
	window time.Duration
	seen   map[string][]time.Time
	lastGC time.Time
}

func newReviewLimiter(n int, window time.Duration) *reviewLimiter {
	return &reviewLimiter{n: n, window: window, seen: map[string][]time.Time{}}
}

func (l *reviewLimiter) allow(client string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastGC) > l.window { // forget clients quiet for a window, at most once per window
		for a, ts := range l.seen {
			if now.Sub(ts[len(ts)-1]) > l.window {
				delete(l.seen, a)
			}
		}
		l.lastGC = now
	}
	recent := l.seen[client][:0]
	for _, t := range l.seen[client] {
		if now.Sub(t) < l.window {
			recent = append(recent, t)
		}
	}
	if len(recent) >= l.n {
		l.seen[client] = recent
		return false
	}
	l.seen[client] = append(recent, now)
	return true
}

// uiURL is the web UI's address on the address the request came to, or "" without one.
func (b *BlockServer) uiURL(r *http.Request) string {
	if b.cfg.UIPort == 0 {
		return ""
	}
	local, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return ""
	}
	ap, err := netip.ParseAddrPort(local.String())
	if err != nil {
		return ""
	}
	scheme := "http"
	if b.cfg.UITLS {
		scheme = "https"
	}
	return scheme + "://" + netip.AddrPortFrom(ap.Addr().Unmap(), uint16(b.cfg.UIPort)).String() + "/"
}
