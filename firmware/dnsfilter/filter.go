package dnsfilter

import (
	"errors"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/schoolgate/schoolgate/firmware/eventlog"
	"github.com/schoolgate/schoolgate/firmware/policy"
)

// Events receives every decision. Record must not block.
type Events interface {
	Record(eventlog.Event)
}

// Config configures a Filter.
type Config struct {
	Engine *policy.Engine
	Events Events // optional
	Logger *slog.Logger
}

// Filter is the state shared by every schoolfilter handler of one daemon: the policy engine,
// the event sink and the counters. It outlives CoreDNS restarts.
type Filter struct {
	engine *policy.Engine
	events Events
	logger *slog.Logger

	segments sync.Map // segment name → *counters; read on every query, so no mutex
}

type counters struct {
	queries, blocked, rewritten, formerr atomic.Uint64
}

// ErrNoEngine is returned by New without a policy engine.
var ErrNoEngine = errors.New("dnsfilter: no policy engine")

// New returns a Filter.
func New(cfg Config) (*Filter, error) {
	if cfg.Engine == nil {
		return nil, ErrNoEngine
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Filter{engine: cfg.Engine, events: cfg.Events, logger: cfg.Logger}, nil
}

// SegmentStats are DNS counters of one segment since start.
type SegmentStats struct {
	Segment   string `json:"segment"`
	Queries   uint64 `json:"queries"`
	Blocked   uint64 `json:"blocked"`
	Rewritten uint64 `json:"rewritten"`
	Malformed uint64 `json:"malformed"`
}

// Stats returns the counters of every segment seen, sorted by segment name. Clients in no
// segment are counted under "unknown".
func (f *Filter) Stats() []SegmentStats {
	var out []SegmentStats
	f.segments.Range(func(k, v any) bool {
		c := v.(*counters)
		out = append(out, SegmentStats{Segment: k.(string), Queries: c.queries.Load(),
			Blocked: c.blocked.Load(), Rewritten: c.rewritten.Load(), Malformed: c.formerr.Load()})
		return true
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Segment < out[j].Segment })
	return out
}

func (f *Filter) counters(segment string) *counters {
	if segment == "" {
		segment = "unknown"
	}
	if c, ok := f.segments.Load(segment); ok {
		return c.(*counters)
	}
	c, _ := f.segments.LoadOrStore(segment, new(counters))
	return c.(*counters)
}
