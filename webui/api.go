package webui

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/schoolgate/schoolgate/firmware/eventlog"
	"github.com/schoolgate/schoolgate/firmware/lists"
	"github.com/schoolgate/schoolgate/firmware/policy"
)

// Status is what GET /api/status returns.
type Status struct {
	Version       string          `json:"version"`
	Appliance     string          `json:"appliance"`
	Started       time.Time       `json:"started"`
	UptimeSeconds int64           `json:"uptime_seconds"`
	Config        ConfigStatus    `json:"config"`
	Components    []Component     `json:"components"`
	Lists         []ListStatus    `json:"lists"`
	Segments      []SegmentStatus `json:"segments"`
	Events        eventlog.Stats  `json:"events"`
	// PacketPath is present when schoolgate is the gateway (appliance.wan is set).
	PacketPath *PacketPath `json:"packet_path,omitempty"`
}

// PacketPath holds the packet path's counters since its programs were loaded: the eBPF
// fast path's per segment (and the WAN's), and the nfqueue slow path's.
type PacketPath struct {
	// QueueMode says how packets reach the slow path: "native" (nftables' queue
	// statement) or "xt-compat" (the xtables NFQUEUE target through nftables).
	QueueMode string           `json:"queue_mode"`
	Segments  []PacketCounters `json:"segments"`
	SlowPath  SlowPathCounters `json:"slow_path"`
}

// PacketCounters are one segment's fast-path counters. Drops are by reason: guest (a guest
// reaching inside), dot, vpn, address (a listed address), quic, flow (a blocked flow) and
// port.
type PacketCounters struct {
	Segment  string            `json:"segment"` // "wan" for the WAN
	Packets  uint64            `json:"packets"`
	Bytes    uint64            `json:"bytes"`
	HandOffs uint64            `json:"handoffs"`  // first packets sent to the slow path
	FlowHits uint64            `json:"flow_hits"` // packets of allowed flows passed in the kernel
	Drops    map[string]uint64 `json:"drops,omitempty"`
	// EventsLost counts drop events the kernel could not hand to the daemon (its ring
	// buffer was full); the drops themselves are counted in Drops.
	EventsLost uint64 `json:"events_lost,omitempty"`
}

// SlowPathCounters are the slow path's: packets read from the queues and flows judged.
type SlowPathCounters struct {
	Packets   uint64 `json:"packets"`
	Flows     uint64 `json:"flows"`
	Allowed   uint64 `json:"allowed"`
	Blocked   uint64 `json:"blocked"`
	Unnamed   uint64 `json:"unnamed"`  // judged without a name: no SNI, not TLS, timeout
	Timeouts  uint64 `json:"timeouts"` // handshakes not complete within the hold time
	Overloads uint64 `json:"overloads"`
	// BlockPages counts blocked plain-HTTP requests answered with the block page.
	BlockPages uint64 `json:"block_pages"`
	Errors     uint64 `json:"errors"`
	// KernelDropped counts packets the kernel dropped (failure mode closed) or passed
	// (open) because a queue was full or the daemon was not reading.
	KernelDropped uint64 `json:"kernel_dropped"`
	// DropEventsSuppressed counts the fast path's drop events held back because one
	// device caused more than ten a minute for the same reason (a scan, a VPN client
	// trying server after server); the drops are still counted per segment.
	DropEventsSuppressed uint64 `json:"drop_events_suppressed"`
}

// ConfigStatus says which configuration is in force.
type ConfigStatus struct {
	Source     string    `json:"source"` // file path, or "embedded demo"
	Loaded     time.Time `json:"loaded"`
	LastReload string    `json:"last_reload_error,omitempty"`
}

// Component is one part of the daemon and its state: "running", "degraded" or "stopped".
type Component struct {
	Name   string `json:"name"`
	State  string `json:"state"`
	Detail string `json:"detail,omitempty"`
}

// ListStatus describes one list source and how fresh it is.
type ListStatus struct {
	lists.SourceStatus
	AgeSeconds int64 `json:"age_seconds"`
}

// SegmentStatus holds the DNS counters of one segment since start.
type SegmentStatus struct {
	Segment   string `json:"segment"`
	Profile   string `json:"profile,omitempty"`
	Queries   uint64 `json:"queries"`
	Blocked   uint64 `json:"blocked"`
	Rewritten uint64 `json:"rewritten"`
	Malformed uint64 `json:"malformed"`
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.cfg.Status(r.Context()))
}

// explainResponse is what GET /api/explain returns.
type explainResponse struct {
	Client   string   `json:"client"`
	Name     string   `json:"name"`
	Action   string   `json:"action"`
	Tier     string   `json:"tier"`
	Segment  string   `json:"segment"`
	Profile  string   `json:"profile"`
	MAC      string   `json:"mac,omitempty"`
	Device   string   `json:"device,omitempty"`
	Category string   `json:"category,omitempty"`
	List     string   `json:"list,omitempty"`
	Rule     string   `json:"rule,omitempty"`
	Rewrite  string   `json:"rewrite,omitempty"`
	Reason   string   `json:"reason,omitempty"`
	Summary  string   `json:"summary"`
	Steps    []string `json:"steps"`
}

func (s *Server) handleExplain(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	client, err := netip.ParseAddr(q.Get("client"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "client: want an IP address, e.g. client=10.20.0.15")
		return
	}
	name := strings.TrimSpace(q.Get("name"))
	if _, err := lists.Normalize(name); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("name: %v", err))
		return
	}
	mac := q.Get("mac")
	ex := s.cfg.Explainer.Explain(policy.Request{Client: client.Unmap(), Name: name, MAC: mac})
	d := ex.Decision
	writeJSON(w, http.StatusOK, explainResponse{
		Client: client.String(), Name: d.Name, Action: d.Action.String(), Tier: string(d.Tier),
		Segment: d.Segment, Profile: d.ProfileName(), MAC: d.MAC, Device: d.Device,
		Category: string(d.Category), List: d.List, Rule: d.Rule, Rewrite: d.Rewrite,
		Reason: d.Reason, Summary: ex.Summary, Steps: ex.Steps,
	})
}

// eventsResponse is what GET /api/events returns.
type eventsResponse struct {
	Events []eventJSON `json:"events"`
	Next   string      `json:"next,omitempty"`
}

type eventJSON struct {
	ID       int64     `json:"id"`
	Time     time.Time `json:"time"`
	Client   string    `json:"client"`
	MAC      string    `json:"mac,omitempty"`
	Device   string    `json:"device,omitempty"`
	Segment  string    `json:"segment"`
	Profile  string    `json:"profile"`
	Source   string    `json:"source"`
	Name     string    `json:"name"`
	QType    string    `json:"qtype,omitempty"`
	Action   string    `json:"action"`
	Tier     string    `json:"tier"`
	Category string    `json:"category,omitempty"`
	List     string    `json:"list,omitempty"`
	Rule     string    `json:"rule,omitempty"`
	Schedule string    `json:"schedule,omitempty"` // the schedule a block was made under
	Count    int       `json:"count"`
}

func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	f, err := parseEventFilter(r.URL.Query(), time.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	page, err := s.cfg.Events.Query(r.Context(), f)
	if errors.Is(err, eventlog.ErrBadCursor) {
		writeError(w, http.StatusBadRequest, "cursor: not a cursor from a previous page")
		return
	}
	if err != nil {
		s.cfg.Logger.Error("querying events", "err", err)
		writeError(w, http.StatusInternalServerError, "querying events failed")
		return
	}
	out := eventsResponse{Events: make([]eventJSON, 0, len(page.Events)), Next: page.Next}
	for _, e := range page.Events {
		client := ""
		if e.Client.IsValid() {
			client = e.Client.String()
		}
		out.Events = append(out.Events, eventJSON{
			ID: e.ID, Time: e.Time, Client: client, MAC: e.MAC, Device: e.Device,
			Segment: e.Segment, Profile: e.Profile, Source: e.Source, Name: e.Name, QType: e.QType,
			Action: e.Action, Tier: e.Tier, Category: e.Category, List: e.List, Rule: e.Rule,
			Schedule: e.Schedule, Count: e.Count,
		})
	}
	writeJSON(w, http.StatusOK, out)
}

// parseEventFilter reads the query string of /api/events. Times are RFC 3339; "since" is a
// duration back from now ("15m", "24h") for quick looks.
func parseEventFilter(q url.Values, now time.Time) (eventlog.Filter, error) {
	var f eventlog.Filter
	for key := range q {
		switch key {
		case "from", "to", "since", "segment", "profile", "client", "mac", "name", "action",
			"category", "source", "limit", "cursor":
		default:
			return f, fmt.Errorf("unknown parameter %q", key)
		}
	}
	var err error
	if f.From, err = parseTime(q, "from"); err != nil {
		return f, err
	}
	if f.To, err = parseTime(q, "to"); err != nil {
		return f, err
	}
	if v := q.Get("since"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return f, fmt.Errorf("since: want a positive duration such as 15m or 24h, got %q", v)
		}
		f.From = now.Add(-d)
	}
	if !f.From.IsZero() && !f.To.IsZero() && f.To.Before(f.From) {
		return f, errors.New("to: must not be before from")
	}
	f.Segment, f.Profile, f.Category = q.Get("segment"), q.Get("profile"), q.Get("category")
	f.MAC, f.Name, f.Cursor = strings.ToLower(q.Get("mac")), q.Get("name"), q.Get("cursor")
	if v := q.Get("client"); v != "" {
		a, err := netip.ParseAddr(v)
		if err != nil {
			return f, fmt.Errorf("client: want an IP address, got %q", v)
		}
		f.Client = a.Unmap()
	}
	if v := q.Get("action"); v != "" {
		if v != "allow" && v != "block" && v != "rewrite" {
			return f, fmt.Errorf("action: want allow, block or rewrite, got %q", v)
		}
		f.Action = v
	}
	if v := q.Get("source"); v != "" {
		if v != "dns" && v != "sni" && v != "quic" && v != "http" && v != "ip" {
			return f, fmt.Errorf("source: want dns, sni, quic, http or ip, got %q", v)
		}
		f.Source = v
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return f, fmt.Errorf("limit: want a number from 1 to 1000, got %q", v)
		}
		f.Limit = n
	}
	return f, nil
}

func parseTime(q url.Values, key string) (time.Time, error) {
	v := q.Get(key)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: want an RFC 3339 time such as 2026-11-23T09:00:00Z, got %q", key, v)
	}
	return t, nil
}
