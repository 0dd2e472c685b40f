package dnssvc_test

// BenchmarkDNSPerf measures DESIGN.md §7's DNS target: queries per second through the
// filtering server (1M+ listed domains, three profiles, three segments) against the same
// embedded CoreDNS build without schoolfilter, both measured with dnsperf in one process and
// one run. See docs/benchmarks.md for the method and the figures.
//
// Run it with
//
//	go test -run '^$' -bench '^BenchmarkDNSPerf$' -benchtime 1x ./firmware/dnssvc/
//
// Environment (all optional):
//
//	SCHOOLGATE_DNSPERF_SECONDS   length of one dnsperf run (default 3)
//	SCHOOLGATE_DNSPERF_ROUNDS    alternating rounds per comparison (default 3)
//	SCHOOLGATE_DNSPERF_DOMAINS   synthetic listed domains (default 1000000)
//	SCHOOLGATE_DNSPERF_ARGS      dnsperf load options (default "-T 1 -c 8 -q 100")

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/schoolgate/schoolgate/firmware/category"
	"github.com/schoolgate/schoolgate/firmware/config"
	"github.com/schoolgate/schoolgate/firmware/dnsfilter"
	"github.com/schoolgate/schoolgate/firmware/dnssvc"
	"github.com/schoolgate/schoolgate/firmware/eventlog"
	"github.com/schoolgate/schoolgate/firmware/lists"
	"github.com/schoolgate/schoolgate/firmware/policy"
)

// perfCategories are the categories the synthetic listed domains are spread over, in turn.
// The staff profile blocks the first four, the pupil profile all but streaming.
var perfCategories = []category.ID{"adult", "gambling", "malware", "phishing", "social", "games", "streaming", "gen-ai"}

const perfProtected = 10000 // synthetic protected-tier entries

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// listedName is the i-th synthetic listed domain; its category is perfCategories[i%len].
func listedName(i int) string {
	tlds := [...]string{"com", "net", "org", "co.uk", "info", "xyz"}
	return fmt.Sprintf("l%d-%s.%s", i, perfCategories[i%len(perfCategories)], tlds[i%len(tlds)])
}

// perfCatalog builds a catalog of n listed domains and perfProtected protected ones, the way
// lists.Manager's compiler does: one tag per (category, list).
func perfCatalog(n int) *lists.Catalog {
	cat := &lists.Catalog{Built: time.Now()}
	for _, c := range perfCategories {
		set, err := category.SetOf(c)
		if err != nil {
			panic(err)
		}
		cat.Tags = append(cat.Tags, lists.Tag{Categories: set, Lists: []string{"synthetic-" + string(c)}})
	}
	adult, _ := category.SetOf("adult")
	protTag := uint32(len(cat.Tags))
	cat.Tags = append(cat.Tags, lists.Tag{Categories: adult, Lists: []string{"protected-synthetic"}})

	b := lists.NewSetBuilder(n)
	for i := range n {
		b.Add(listedName(i), uint32(i%len(perfCategories)))
	}
	cat.Domains = b.Build(nil)
	pb := lists.NewSetBuilder(perfProtected)
	for i := range perfProtected {
		pb.Add(fmt.Sprintf("p%d-protected.example", i), protTag)
	}
	cat.Protected = pb.Build(nil)
	return cat
}

// perfConfig is the demo's shape: three profiles, three loopback segments by source address.
func perfConfig(upstream string) *config.Config {
	cfg := &config.Config{
		DNS: config.DNS{
			Listen:    "127.0.0.1:5353", // validated only; the services below bind port 0
			Upstreams: []config.Upstream{{Address: upstream}},
			CacheSize: 50000,
		},
		Segments: []config.Segment{
			{Name: "staff", Subnets: pfx("127.0.0.1/32"), Profile: "staff"},
			{Name: "pupils", Subnets: pfx("127.0.0.2/32"), Profile: "pupils"},
			{Name: "guest", Subnets: pfx("127.0.0.3/32"), Profile: "guest", Guest: true},
		},
		Profiles: []config.Profile{
			{Name: "staff", BlockCategories: []category.ID{"adult", "gambling", "malware", "phishing", "bypass"},
				SafeSearch: "on", YouTube: "moderate"},
			{Name: "pupils", BlockCategories: []category.ID{"adult", "gambling", "malware", "phishing", "social",
				"games", "gen-ai", "bypass", "drugs", "extremism", "hate", "self-harm", "violence"},
				Allow: []string{"bbc.co.uk"}, Block: []string{"example-blocked.test"},
				SafeSearch: "strict", YouTube: "strict"},
			{Name: "guest", BlockCategories: []category.ID{"adult", "gambling", "malware", "phishing", "bypass"},
				BlockResponse: "null", SafeSearch: "strict", YouTube: "moderate"},
		},
		Exceptions: []config.Exception{{
			ID: "perf-1", Scope: "profile", Target: "pupils", Domain: "scratch.mit.edu", Action: "allow",
			Reason: "benchmark", Created: time.Now().Add(-time.Hour), Expires: time.Now().Add(24 * time.Hour),
		}},
	}
	cfg.ApplyDefaults()
	return cfg
}

func pfx(s string) []netip.Prefix { return []netip.Prefix{netip.MustParsePrefix(s)} }

// startUpstream answers A and AAAA for any name with fixed addresses (TTL 3600) and
// NOERROR/NODATA for anything else, so forward's health checks succeed too.
func startUpstream(b *testing.B) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.RecursionAvailable = true
		if len(r.Question) == 1 {
			q := r.Question[0]
			hdr := dns.RR_Header{Name: q.Name, Class: dns.ClassINET, Rrtype: q.Qtype, Ttl: 3600}
			switch q.Qtype {
			case dns.TypeA:
				m.Answer = []dns.RR{&dns.A{Hdr: hdr, A: net.IPv4(192, 0, 2, 1)}}
			case dns.TypeAAAA:
				m.Answer = []dns.RR{&dns.AAAA{Hdr: hdr, AAAA: net.ParseIP("2001:db8::1")}}
			}
		}
		w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	b.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

type perfQuery struct {
	name  string
	qtype uint16
}

// perfQueries is the cache-hit workload: nAllowed names allowed for staff (80% unlisted,
// 20% listed in categories staff allows, some of those asked as subdomains) and nBlocked
// names listed in categories staff blocks (plus a few protected ones), each asked as A and
// AAAA, shuffled deterministically.
func perfQueries(nAllowed, nBlocked, listed int) (allowed, blocked []perfQuery) {
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(allowedForStaff bool) string {
		for {
			i := rng.IntN(listed)
			c := perfCategories[i%len(perfCategories)]
			if (c == "social" || c == "games" || c == "streaming" || c == "gen-ai") == allowedForStaff {
				return listedName(i)
			}
		}
	}
	for i := range nAllowed {
		var name string
		switch {
		case i%5 != 0:
			name = fmt.Sprintf("www.site%d.allowed-%d.org", i, i%7)
		case i%10 == 0:
			name = "cdn" + strconv.Itoa(i) + "." + pick(true) // parent-suffix walk
		default:
			name = pick(true)
		}
		allowed = append(allowed, perfQuery{name + ".", dns.TypeA}, perfQuery{name + ".", dns.TypeAAAA})
	}
	for i := range nBlocked {
		var name string
		switch {
		case i%20 == 0:
			name = fmt.Sprintf("p%d-protected.example", rng.IntN(perfProtected))
		case i%2 == 0:
			name = "www." + pick(false)
		default:
			name = pick(false)
		}
		blocked = append(blocked, perfQuery{name + ".", dns.TypeA}, perfQuery{name + ".", dns.TypeAAAA})
	}
	return allowed, blocked
}

func writeQueryFile(b *testing.B, path string, qs []perfQuery) {
	var buf bytes.Buffer
	for _, q := range qs {
		fmt.Fprintf(&buf, "%s %s\n", q.name, dns.TypeToString[q.qtype])
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
}

// warm asks every query once from 127.0.0.1 so the allowed answers are in the server's
// cache; it fails the benchmark if an allowed name is not answered with an address.
func warm(b *testing.B, addr string, qs []perfQuery, wantAnswer bool) {
	c := &dns.Client{Timeout: 2 * time.Second}
	for _, q := range qs {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		var (
			r   *dns.Msg
			err error
		)
		for try := 0; try < 3; try++ {
			if r, _, err = c.Exchange(m, addr); err == nil {
				break
			}
		}
		if err != nil {
			b.Fatalf("warming %s %s on %s: %v", q.name, dns.TypeToString[q.qtype], addr, err)
		}
		if wantAnswer && (r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0) {
			b.Fatalf("warming %s %s on %s: want an answer, got %s with %d records",
				q.name, dns.TypeToString[q.qtype], addr, dns.RcodeToString[r.Rcode], len(r.Answer))
		}
	}
}

type perfServer struct {
	label string
	svc   *dnssvc.Service
	port  string
}

func startService(b *testing.B, label string, cfg dnssvc.Config) *perfServer {
	svc, err := dnssvc.New(cfg)
	if err != nil {
		b.Fatalf("%s: %v", label, err)
	}
	if err := svc.Start(context.Background()); err != nil {
		b.Fatalf("%s: %v", label, err)
	}
	b.Cleanup(func() { svc.Close() })
	udp, _ := svc.Addrs()
	if udp == nil {
		b.Fatalf("%s: no UDP listener", label)
	}
	_, port, _ := net.SplitHostPort(udp.String())
	return &perfServer{label: label, svc: svc, port: port}
}

type dnsperfResult struct {
	qps                 float64
	completed, sent     int64
	lostPct, latencyAvg float64
}

var (
	reQPS       = regexp.MustCompile(`Queries per second:\s+([0-9.]+)`)
	reSent      = regexp.MustCompile(`Queries sent:\s+([0-9]+)`)
	reCompleted = regexp.MustCompile(`Queries completed:\s+([0-9]+)`)
	reLost      = regexp.MustCompile(`Queries lost:\s+[0-9]+ \(([0-9.]+)%\)`)
	reLatency   = regexp.MustCompile(`Average Latency \(s\):\s+([0-9.]+)`)
)

func runDNSPerf(b *testing.B, port, file, local string, seconds int, loadArgs []string) dnsperfResult {
	args := []string{"-s", "127.0.0.1", "-p", port, "-d", file, "-l", strconv.Itoa(seconds)}
	if local != "" {
		args = append(args, "-a", local)
	}
	args = append(args, loadArgs...)
	out, err := exec.Command("dnsperf", args...).CombinedOutput()
	if err != nil {
		b.Fatalf("dnsperf %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	m := reQPS.FindSubmatch(out)
	if m == nil {
		b.Fatalf("dnsperf %s: no \"Queries per second\" in output:\n%s", strings.Join(args, " "), out)
	}
	var r dnsperfResult
	r.qps, _ = strconv.ParseFloat(string(m[1]), 64)
	if m := reSent.FindSubmatch(out); m != nil {
		r.sent, _ = strconv.ParseInt(string(m[1]), 10, 64)
	}
	if m := reCompleted.FindSubmatch(out); m != nil {
		r.completed, _ = strconv.ParseInt(string(m[1]), 10, 64)
	}
	if m := reLost.FindSubmatch(out); m != nil {
		r.lostPct, _ = strconv.ParseFloat(string(m[1]), 64)
	}
	if m := reLatency.FindSubmatch(out); m != nil {
		r.latencyAvg, _ = strconv.ParseFloat(string(m[1]), 64)
	}
	return r
}

func join(v []float64, format string) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf(format, x)
	}
	return strings.Join(parts, " ")
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// cpuTime is the user and system CPU time this process has used: the servers, the event
// log writer and the (idle) upstream, all of which production pays too.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// nopEvents is an event sink that drops everything: the cost of the filter alone.
type nopEvents struct{}

func (nopEvents) Record(eventlog.Event) {}

func BenchmarkDNSPerf(b *testing.B) {
	if _, err := exec.LookPath("dnsperf"); err != nil {
		b.Skip("dnsperf not on PATH (Debian package dnsperf: apt-get install dnsperf)")
	}
	seconds := envInt(b, "SCHOOLGATE_DNSPERF_SECONDS", 3)
	rounds := envInt(b, "SCHOOLGATE_DNSPERF_ROUNDS", 3)
	nDomains := envInt(b, "SCHOOLGATE_DNSPERF_DOMAINS", 1_000_000)
	loadArgs := strings.Fields(os.Getenv("SCHOOLGATE_DNSPERF_ARGS"))
	if len(loadArgs) == 0 {
		loadArgs = []string{"-T", "1", "-c", "8", "-q", "100"}
	}
	ctx := context.Background()
	dir := b.TempDir()

	upstream := startUpstream(b)

	t0 := time.Now()
	cat := perfCatalog(nDomains)
	buildTime := time.Since(t0)
	cfg := perfConfig(upstream)
	if err := cfg.Validate(); err != nil {
		b.Fatalf("benchmark configuration: %v", err)
	}
	snap, err := policy.Compile(cfg, cat)
	if err != nil {
		b.Fatal(err)
	}
	engine, err := policy.New(policy.Config{Snapshot: snap})
	if err != nil {
		b.Fatal(err)
	}
	// Production pays for the real event log, so that is "filtered"; the no-op sink shows
	// how much of the cost is the log.
	evlog, err := eventlog.New(eventlog.Config{Path: filepath.Join(dir, "events.db")})
	if err != nil {
		b.Fatal(err)
	}
	if err := evlog.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { evlog.Close() })
	filterLog, err := dnsfilter.New(dnsfilter.Config{Engine: engine, Events: evlog})
	if err != nil {
		b.Fatal(err)
	}
	filterNop, err := dnsfilter.New(dnsfilter.Config{Engine: engine, Events: nopEvents{}})
	if err != nil {
		b.Fatal(err)
	}
	base := dnssvc.Config{Listen: "127.0.0.1:0", Upstreams: cfg.DNS.Upstreams, CacheSize: cfg.DNS.CacheSize}
	withFilter := func(f *dnsfilter.Filter) dnssvc.Config { c := base; c.Filter = f; return c }
	withoutFilter := base
	withoutFilter.NoFilter = true

	baseline := startService(b, "baseline", withoutFilter)
	filtered := startService(b, "filtered", withFilter(filterLog))
	nolog := startService(b, "filtered-nolog", withFilter(filterNop))

	// 90% allowed / 10% blocked by names; A and AAAA for each.
	allowed, blocked := perfQueries(2700, 300, nDomains)
	all := append(append([]perfQuery(nil), allowed...), blocked...)
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	qfile := filepath.Join(dir, "queries.txt")
	writeQueryFile(b, qfile, all)

	for _, s := range []*perfServer{baseline, filtered, nolog} {
		addr := "127.0.0.1:" + s.port
		warm(b, addr, allowed, true)
		warm(b, addr, blocked, s == baseline) // the baseline caches them too
	}
	// Blocked names must really be blocked for staff, or the workload is not what it says.
	for _, q := range blocked[:20] {
		if d := engine.Decide(policy.Request{Client: netip.MustParseAddr("127.0.0.1"), Name: q.name}); d.Action != policy.Block {
			b.Fatalf("%s: want blocked for staff, got %s", q.name, d.Action)
		}
	}
	runtime.GC()
	b.Logf("catalog: %d listed + %d protected domains, built in %v; %d queries (%d blocked for staff); "+
		"dnsperf %s, %ds per run, %d rounds; GOMAXPROCS=%d",
		cat.Domains.Len(), cat.Protected.Len(), buildTime.Round(time.Millisecond), len(all), len(blocked),
		strings.Join(loadArgs, " "), seconds, rounds, runtime.GOMAXPROCS(0))

	type series struct {
		label string
		srv   *perfServer
		local string
		qps   []float64
		cpu   []float64 // this process's CPU µs per completed query, event log flush included
		lost  []float64 // % of queries dnsperf gave up on
		lat   []float64 // dnsperf's average latency, ms
	}
	// compare runs the series alternately, reversing the order every other round (ABBA) so
	// that drift and other load on the machine fall on both sides alike.
	compare := func(ss ...*series) {
		for r := range rounds {
			order := slices.Clone(ss)
			if r%2 == 1 {
				slices.Reverse(order)
			}
			for _, s := range order {
				before := cpuTime()
				res := runDNSPerf(b, s.srv.port, qfile, s.local, seconds, loadArgs)
				// Work the event log's writer still owes for this run is part of its cost.
				fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				if err := evlog.Flush(fctx); err != nil {
					b.Logf("flushing event log: %v", err)
				}
				cancel()
				cpu := float64(cpuTime()-before) / float64(time.Microsecond) / float64(max(res.completed, 1))
				s.qps = append(s.qps, res.qps)
				s.cpu = append(s.cpu, cpu)
				s.lost = append(s.lost, res.lostPct)
				s.lat = append(s.lat, res.latencyAvg*1000)
			}
		}
		// One line per series: the testing package keeps only 10 lines of benchmark log.
		for _, s := range ss {
			b.Logf("%-24s qps %s | CPU µs/q %s | avg ms %s | lost %% %s",
				s.label, join(s.qps, "%.0f"), join(s.cpu, "%.1f"), join(s.lat, "%.2f"), join(s.lost, "%.2f"))
		}
	}
	// ratio is the median over rounds of a's figure over b's in the same round.
	ratio := func(a, b []float64) float64 {
		rs := make([]float64, len(a))
		for i := range a {
			rs[i] = a[i] / b[i]
		}
		return median(rs)
	}

	b.ResetTimer()
	// Staff (127.0.0.1): baseline, filtered with the event log, filtered with a no-op sink.
	sBase := &series{label: "baseline (staff src)", srv: baseline}
	sFilt := &series{label: "filtered+eventlog staff", srv: filtered}
	sNop := &series{label: "filtered+nop-sink staff", srv: nolog}
	compare(sBase, sFilt, sNop)
	// Pupils (127.0.0.2): more of the workload is blocked (social, games and gen-ai too).
	pBase := &series{label: "baseline (pupil src)", srv: baseline, local: "127.0.0.2"}
	pFilt := &series{label: "filtered+eventlog pupil", srv: filtered, local: "127.0.0.2"}
	compare(pBase, pFilt)
	b.StopTimer()

	st := evlog.Stats()
	var segs []string
	for _, s := range filterLog.Stats() {
		segs = append(segs, fmt.Sprintf("%s %d queries/%d blocked", s.Segment, s.Queries, s.Blocked))
	}
	b.Logf("event log: queued %d, written %d rows, folded %d, dropped %d; filter: %s",
		st.Queued, st.Written, st.Folded, st.Dropped, strings.Join(segs, ", "))

	b.ReportMetric(0, "ns/op")
	b.ReportMetric(median(sBase.qps), "baseline-qps")
	b.ReportMetric(median(sFilt.qps), "filtered-qps")
	b.ReportMetric(ratio(sFilt.qps, sBase.qps), "filtered/baseline")
	b.ReportMetric(median(sNop.qps), "nolog-qps")
	b.ReportMetric(ratio(sNop.qps, sBase.qps), "nolog/baseline")
	b.ReportMetric(median(pBase.qps), "pupil-baseline-qps")
	b.ReportMetric(median(pFilt.qps), "pupil-filtered-qps")
	b.ReportMetric(ratio(pFilt.qps, pBase.qps), "pupil-filtered/baseline")
	// CPU per query is the load-independent view: on a busy machine qps swings with
	// whatever else runs, the server's CPU per answer much less.
	b.ReportMetric(median(sBase.cpu), "baseline-cpu-µs/q")
	b.ReportMetric(median(sFilt.cpu), "filtered-cpu-µs/q")
	b.ReportMetric(ratio(sBase.cpu, sFilt.cpu), "cpu-baseline/filtered")
	b.ReportMetric(median(sNop.cpu), "nolog-cpu-µs/q")
	b.ReportMetric(median(pBase.cpu), "pupil-baseline-cpu-µs/q")
	b.ReportMetric(median(pFilt.cpu), "pupil-filtered-cpu-µs/q")
	b.ReportMetric(ratio(pBase.cpu, pFilt.cpu), "pupil-cpu-baseline/filtered")
	b.ReportMetric(float64(st.Dropped), "events-dropped")
}
