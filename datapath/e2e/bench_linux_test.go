package e2e

// The packet path benchmarks of DESIGN.md §7: established-flow throughput and new TLS
// connections through the appliance with schoolgated as the gateway, each against the same
// nettest topology with plain forwarding and NAT and no schoolgate (Topology.PlainNAT),
// both measured in one run. docs/benchmarks.md has the method and the figures.
//
//	go test -run '^$' -bench '^Benchmark(Throughput|TLSHandshakes)$' -benchtime 1x ./datapath/e2e/
//
// Both need root and skip without it; BenchmarkThroughput also needs iperf3. Environment
// (all optional):
//
//	SCHOOLGATE_IPERF_SECONDS   length of one measured iperf3 run (default 2, after 1 s omitted)
//	SCHOOLGATE_IPERF_ROUNDS    alternating rounds of (plain, schoolgate) (default 6)
//	SCHOOLGATE_TLS_SECONDS     length of one TLS load run (default 2)
//	SCHOOLGATE_TLS_ROUNDS      alternating rounds of (plain, schoolgate) (default 6)
//	SCHOOLGATE_TLS_WORKERS     parallel TLS clients (default 2 x GOMAXPROCS)

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/schoolgate/schoolgate/datapath/internal/nettest"
)

// The benchmarks' zone, by InetAddrs index: one allowed and one blocked name.
const (
	benchAddrAllowed = 1
	benchAddrBlocked = 2
	benchAllowed     = "allowed.test"
	benchBlocked     = "blocked.test"
)

// benchProfiles keep the pupils' defaults (DoT blocked, QUIC inspected) but allow TLS
// without a readable name (no_sni: allow), so BenchmarkThroughput's iperf3 flows on port 443,
// which carry no ClientHello, are judged allowed once and then pass as flow-map hits. They
// block one name, which the setup uses to prove that the slow path is really judging.
const benchProfiles = `  - {name: staff}
  - {name: pupils, block: [blocked.test], no_sni: allow}
  - {name: guest, block: [blocked.test]}
`

// benchSide is one of the two topologies a benchmark compares.
type benchSide struct {
	name string // "plain" or "schoolgate"
	topo *nettest.Topology
	inet *nettest.Inet
	d    *daemon // schoolgated, on the schoolgate side
}

// client is the namespace the load comes from.
func (s *benchSide) client() *nettest.NS { return s.topo.Clients["pupil"] }

// newBenchSides builds two identical topologies, side by side for the whole benchmark: one
// with plain forwarding and masquerade, one with schoolgated as its gateway (pupils profile
// on the pupil segment). Alternating runs between them puts the machine's other load on
// both alike.
func newBenchSides(b *testing.B) (plain, sg *benchSide) {
	b.Helper()
	needRoot(b)
	build := func(name string) *benchSide {
		topo := nettest.New(b, nettest.Spec{})
		s := &benchSide{name: name, topo: topo}
		s.inet = topo.StartInet(b, nettest.Zone{
			benchAllowed: topo.InetAddrs(benchAddrAllowed),
			benchBlocked: topo.InetAddrs(benchAddrBlocked),
		})
		// 64k client ports instead of 28k, so no 4-tuple comes back while the server, the
		// appliance's conntrack or the fast path's flow table still remembers it.
		err := s.client().Do(func() error {
			return os.WriteFile("/proc/sys/net/ipv4/ip_local_port_range", []byte("1024 65535"), 0o644)
		})
		if err != nil {
			b.Fatalf("%s: widening the client port range: %v", name, err)
		}
		return s
	}
	plain = build("plain")
	if err := plain.topo.PlainNAT(); err != nil {
		b.Fatal(err)
	}
	sg = build("schoolgate")
	sg.d = startDaemon(b, sg.topo, b.TempDir(), gatewayConfig(sg.topo, sg.inet, benchProfiles))

	// A broken setup fails the benchmark; a slow one never does. Both sides must reach the
	// allowed site, and schoolgate must be judging names (a benchmark of a gateway that lets
	// everything through would measure nothing).
	for _, s := range []*benchSide{plain, sg} {
		if _, err := s.fetch(benchAllowed, benchAddrAllowed, 5*time.Second); err != nil {
			b.Fatalf("%s: pupil to https://%s/: %v", s.name, benchAllowed, err)
		}
	}
	if _, err := plain.fetch(benchBlocked, benchAddrBlocked, 5*time.Second); err != nil {
		b.Fatalf("plain: pupil to https://%s/: %v (plain forwarding blocks nothing)", benchBlocked, err)
	}
	// The blocked connection's server end waits for a ClientHello that never comes; when
	// the topology goes, the inet HTTPS server logs "TLS handshake error ... use of closed
	// network connection" for it.
	if _, err := sg.fetch(benchBlocked, benchAddrBlocked, 3*time.Second); err == nil {
		b.Fatalf("schoolgate: pupil reached https://%s/, which the pupils profile blocks: the slow path is not judging", benchBlocked)
	}
	return plain, sg
}

// fetch makes one HTTPS request from the pupil client to name at the index's IPv4 inet
// address, the way the TLS benchmark's workers do, and returns connect+handshake time.
func (s *benchSide) fetch(name string, index int, timeout time.Duration) (time.Duration, error) {
	var d time.Duration
	err := s.client().Do(func() (err error) {
		d, err = benchHTTPSGet(s.tlsConfig(name), netip.AddrPortFrom(s.topo.InetAddr4(index), 443), timeout)
		return err
	})
	return d, err
}

// tlsConfig trusts the side's test CA and sends name as SNI. No session cache: every
// connection is a full handshake.
func (s *benchSide) tlsConfig(name string) *tls.Config {
	c := s.inet.TLSConfig()
	c.ServerName = name
	return c
}

// benchHTTPSGet connects to addr from the calling thread's namespace, does a full TLS
// handshake and one HTTP/1.1 GET with Connection: close, and reads to the end. It returns
// the time from the start of the connect to the end of the handshake.
func benchHTTPSGet(conf *tls.Config, addr netip.AddrPort, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	d := net.Dialer{Timeout: timeout}
	raw, err := d.Dial("tcp", addr.String())
	if err != nil {
		return 0, err
	}
	defer raw.Close()
	raw.SetDeadline(start.Add(timeout))
	c := tls.Client(raw, conf)
	if err := c.Handshake(); err != nil {
		return 0, fmt.Errorf("handshake: %w", err)
	}
	hs := time.Since(start)
	if _, err := fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", conf.ServerName); err != nil {
		return 0, err
	}
	// Reading to the end lets the server close first, so TIME_WAIT stays on its side.
	body, err := io.ReadAll(c)
	if err != nil {
		return 0, err
	}
	if !strings.HasPrefix(string(body), "HTTP/1.1 200 ") || !strings.Contains(string(body), "hello from "+conf.ServerName) {
		return 0, fmt.Errorf("unexpected answer %.80q", body)
	}
	return hs, nil
}

func benchEnv(b *testing.B, name string, def int) int {
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

// benchAlternate runs fn for each side in rounds, plain first in even rounds and schoolgate
// first in odd ones (ABBA), so drift and other load fall on both sides alike.
func benchAlternate(rounds int, plain, sg *benchSide, fn func(round int, s *benchSide)) {
	for r := range rounds {
		order := []*benchSide{plain, sg}
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, s := range order {
			fn(r, s)
		}
	}
}

// benchMedian is the median of v, 0 when empty.
func benchMedian(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// benchRatios returns a[i]/b[i] for each round.
func benchRatios(a, b []float64) []float64 {
	var r []float64
	for i := range min(len(a), len(b)) {
		if b[i] > 0 {
			r = append(r, a[i]/b[i])
		}
	}
	return r
}

// The iperf3 flows of BenchmarkThroughput go to TCP port 443 of the iperf address, a web
// port, so the fast path tracks them. The inet HTTPS server holds a wildcard listener on 443
// (every inet address, IPv4 and IPv6), so iperf3 cannot listen there itself: it listens on
// its own port, and a DNAT rule in the inet namespace (the same on both sides) sends the
// port-443 connections to it. To the appliance, and on the wire between client and
// server, the flows are port-443 flows.
const (
	benchIperfPort   = 443  // the port the client connects to
	benchIperfListen = 5201 // the port iperf3 -s listens on, behind the inet DNAT rule
)

// BenchmarkThroughput measures one established TCP flow (iperf3 to port 443) from the pupil
// client through the appliance to the inet namespace: with schoolgated's tc programs and
// nftables table against plain forwarding. On the schoolgate side each iperf3 connection
// (control and data) is a new port-443 flow: its first data packet, iperf3's cookie and not
// TLS, goes through the nfqueue slow path, which finds no name and applies the pupils
// profile's no_sni: allow; every later packet is a hit in the tc program's flow map. The
// benchmark checks that from /api/status: if fewer than 90% of the packets the pupil sent
// in a schoolgate run were flow hits, it fails (it would be measuring some other path).
// It reports the median Mbit/s of each side and the median over rounds of the per-round
// ratio schoolgate/plain (DESIGN.md §7: ≥ 0.9), and the flow hits and flows judged.
func BenchmarkThroughput(b *testing.B) {
	if _, err := exec.LookPath("iperf3"); err != nil {
		b.Skip("needs iperf3 (apt-get install iperf3)")
	}
	seconds := benchEnv(b, "SCHOOLGATE_IPERF_SECONDS", 2)
	rounds := benchEnv(b, "SCHOOLGATE_IPERF_ROUNDS", 6)
	plain, sg := newBenchSides(b)
	server := plain.topo.IperfAddrs()[0] // the same address in both topologies
	for _, s := range []*benchSide{plain, sg} {
		benchIperfServer(b, s, server)
	}

	b.ResetTimer()
	mbits := map[*benchSide][]float64{}
	var sent, hits, handoffs, flows, allowed uint64 // schoolgate rounds, summed
	benchAlternate(rounds, plain, sg, func(round int, s *benchSide) {
		var before benchCounters
		if s == sg {
			var err error
			if before, err = sg.counters(); err != nil {
				b.Fatalf("schoolgate, round %d: %v", round+1, err)
			}
		}
		v, err := benchIperf(s, server, seconds)
		if err != nil {
			b.Fatalf("%s, round %d: %v", s.name, round+1, err)
		}
		mbits[s] = append(mbits[s], v)
		if s != sg {
			return
		}
		after, err := sg.counters()
		if err != nil {
			b.Fatalf("schoolgate, round %d: %v", round+1, err)
		}
		d := after.sub(before)
		// The misses are each connection's SYN and handshake ACK, its first data packet
		// and the client's retransmissions of it, which the slow path waits for before it
		// calls the flow "not TLS" (the hand-offs): about 5 per connection, of the tens
		// of thousands of packets (GSO segments of up to 64 KB) a run sends.
		if d.sent == 0 || float64(d.flowHits) < 0.9*float64(d.sent) {
			b.Fatalf("schoolgate, round %d: the pupil sent %d packets but only %d were flow-map hits "+
				"(%d hand-offs, %d flows judged, %d allowed): the run did not go through the flow map",
				round+1, d.sent, d.flowHits, d.handoffs, d.flows, d.allowed)
		}
		sent += d.sent
		hits += d.flowHits
		handoffs += d.handoffs
		flows += d.flows
		allowed += d.allowed
	})
	b.StopTimer()

	r := benchRatios(mbits[sg], mbits[plain])
	b.Logf("Mbit/s per round: plain %.0f, schoolgate %.0f, ratio %.3f", mbits[plain], mbits[sg], r)
	b.Logf("schoolgate rounds: the pupil sent %d packets, %d flow-map hits (%.2f%%), %d hand-offs; slow path judged %d flows, %d allowed",
		sent, hits, 100*float64(hits)/float64(sent), handoffs, flows, allowed)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(benchMedian(mbits[sg]), "Mbit/s-schoolgate")
	b.ReportMetric(benchMedian(mbits[plain]), "Mbit/s-plain")
	b.ReportMetric(benchMedian(r), "schoolgate/plain")
	b.ReportMetric(float64(hits), "flow-hits")
	b.ReportMetric(float64(hits)/float64(sent), "flow-hits/packet")
	b.ReportMetric(float64(flows), "slowpath-flows")
}

// benchCounters are the schoolgate side's counters that show which path a run took.
type benchCounters struct {
	sent     uint64 // packets the pupil client sent, received on its appliance interface
	flowHits uint64 // the pupil segment's flow_hits (/api/status)
	handoffs uint64 // the pupil segment's handoffs
	flows    uint64 // slow_path.flows, all segments
	allowed  uint64 // slow_path.allowed
}

func (c benchCounters) sub(o benchCounters) benchCounters {
	return benchCounters{
		sent: c.sent - o.sent, flowHits: c.flowHits - o.flowHits, handoffs: c.handoffs - o.handoffs,
		flows: c.flows - o.flows, allowed: c.allowed - o.allowed,
	}
}

// counters reads the pupil segment's and the slow path's counters from schoolgated's
// /api/status (asked from the staff client, so the pupil segment's counters see none of it)
// and the packets received on the pupil segment's appliance interface, which are the
// packets the segment's tc ingress program saw, counted the same way (a GSO packet is one).
// The status counts both directions in packets but only the client's in flow_hits, hence
// the interface's count.
func (s *benchSide) counters() (benchCounters, error) {
	var c benchCounters
	body, err := s.d.get("/api/status")
	if err != nil {
		return c, fmt.Errorf("reading /api/status: %w", err)
	}
	var st struct {
		PacketPath *struct {
			Segments []struct {
				Segment  string
				HandOffs uint64 `json:"handoffs"`
				FlowHits uint64 `json:"flow_hits"`
			}
			SlowPath struct{ Flows, Allowed uint64 } `json:"slow_path"`
		} `json:"packet_path"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		return c, fmt.Errorf("decoding /api/status: %w", err)
	}
	if st.PacketPath == nil {
		return c, errors.New("/api/status has no packet_path")
	}
	found := false
	for _, seg := range st.PacketPath.Segments {
		if seg.Segment == "pupil" {
			c.flowHits, c.handoffs, found = seg.FlowHits, seg.HandOffs, true
		}
	}
	if !found {
		return c, fmt.Errorf("/api/status has no packet_path counters for the pupil segment: %.300s", body)
	}
	c.flows, c.allowed = st.PacketPath.SlowPath.Flows, st.PacketPath.SlowPath.Allowed
	c.sent, err = benchRxPackets(s.topo.Appliance, s.topo.Segments["pupil"].Interface)
	return c, err
}

// benchRxPackets returns the packets received on the interface of ns, from the calling
// thread's /proc/thread-self/net/dev inside it.
func benchRxPackets(ns *nettest.NS, ifname string) (uint64, error) {
	var dev []byte
	err := ns.Do(func() (err error) {
		dev, err = os.ReadFile("/proc/thread-self/net/dev")
		return err
	})
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(dev), "\n") {
		name, stats, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(name) != ifname {
			continue
		}
		f := strings.Fields(stats) // receive: bytes packets errs drop ...
		if len(f) < 2 {
			break
		}
		return strconv.ParseUint(f[1], 10, 64)
	}
	return 0, fmt.Errorf("no %s in %s's /proc/net/dev", ifname, ns.Name)
}

// benchIperfServer runs `iperf3 -s` on addr and benchIperfListen in the side's inet
// namespace until the benchmark ends, with the DNAT rule that sends connections to addr
// and benchIperfPort to it, and waits until it listens.
func benchIperfServer(b *testing.B, s *benchSide, addr netip.Addr) {
	b.Helper()
	// The rule's table is removed with the namespace. Connection tracking runs in the inet
	// namespace for it, the same on both sides.
	rules := fmt.Sprintf(`table ip schoolgate_bench {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr %s tcp dport %d dnat to %s:%d
	}
}
`, addr, benchIperfPort, addr, benchIperfListen)
	nft := s.topo.Inet.Command(context.Background(), "nft", "-f", "-")
	nft.Stdin = strings.NewReader(rules)
	if out, err := nft.CombinedOutput(); err != nil {
		b.Fatalf("%s: inet DNAT of %s port %d to iperf3: %v: %s", s.name, addr, benchIperfPort, err, out)
	}

	cmd := s.topo.Inet.Command(context.Background(), "iperf3", "-s", "-B", addr.String(), "-p", strconv.Itoa(benchIperfListen))
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		b.Fatalf("%s: starting iperf3 -s: %v", s.name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	b.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		ss, _ := s.topo.Inet.Command(context.Background(), "ss", "-Hltn", fmt.Sprintf("sport = :%d", benchIperfListen)).Output()
		if strings.Contains(string(ss), addr.String()) {
			return
		}
		select {
		case <-done:
			b.Fatalf("%s: iperf3 -s exited: %s", s.name, out.String())
		default:
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s: iperf3 -s does not listen after 10 s: %s", s.name, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// benchIperfResult is the part of iperf3's -J output the benchmark reads.
type benchIperfResult struct {
	End struct {
		SumReceived struct {
			Bytes         float64 `json:"bytes"`
			Seconds       float64 `json:"seconds"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
	} `json:"end"`
	Error string `json:"error"`
}

// benchIperf runs one iperf3 client from the pupil namespace to server port benchIperfPort
// for 1 + seconds seconds (the first second, slow start, is omitted) and returns what the
// server received, in Mbit/s.
func benchIperf(s *benchSide, server netip.Addr, seconds int) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(seconds+30)*time.Second)
	defer cancel()
	out, err := s.client().Command(ctx, "iperf3", "-c", server.String(), "-p", strconv.Itoa(benchIperfPort),
		"-t", strconv.Itoa(seconds), "-O", "1", "-J").Output()
	var res benchIperfResult
	if jerr := json.Unmarshal(out, &res); jerr != nil {
		return 0, fmt.Errorf("iperf3 -c: %v, output %.200q: %w", err, out, jerr)
	}
	if res.Error != "" || err != nil {
		return 0, fmt.Errorf("iperf3 -c: %v: %s", err, res.Error)
	}
	bps := res.End.SumReceived.BitsPerSecond
	if bps <= 0 {
		return 0, errors.New("iperf3 -c: no bits_per_second in end.sum_received")
	}
	return bps / 1e6, nil
}

// benchTLSRound is one TLS load run on one side.
type benchTLSRound struct {
	conns   int
	failed  int
	elapsed time.Duration
	lat     []time.Duration // connect+handshake of each successful connection
	errs    []error         // the first few failures
}

// BenchmarkTLSHandshakes measures new TLS connections per second from parallel Go clients
// in the pupil namespace (each a full TLS 1.3 handshake plus one small HTTPS GET, no
// keep-alive, no resumption) to an allowed name at an inet address, through schoolgated,
// where every connection's ClientHello goes through the nfqueue slow path, against plain
// forwarding. It reports the median conns/s of each side, the median per-round ratio
// schoolgate/plain, and the added connect+handshake latency at p50 and p99 (the percentile
// with schoolgate minus the same percentile without, in the same round; the median over
// rounds), under that load and with a single client making one connection at a time.
// The clients, the servers and the appliance share the machine's CPUs: the conns/s are the
// rate this machine sustains for all three, not the appliance's capacity.
func BenchmarkTLSHandshakes(b *testing.B) {
	seconds := benchEnv(b, "SCHOOLGATE_TLS_SECONDS", 2)
	rounds := benchEnv(b, "SCHOOLGATE_TLS_ROUNDS", 6)
	workers := benchEnv(b, "SCHOOLGATE_TLS_WORKERS", 2*runtime.GOMAXPROCS(0))
	plain, sg := newBenchSides(b)
	// Warm both sides (the daemon's first decisions, the servers' goroutines) unmeasured.
	for _, s := range []*benchSide{plain, sg} {
		benchTLSLoad(s, workers, 500*time.Millisecond)
	}

	b.ResetTimer()
	load := benchTLSPhase(b, plain, sg, workers, rounds, time.Duration(seconds)*time.Second)
	// The same with one client making one connection at a time: the added latency of the
	// slow path itself, without the queueing for CPU that the loaded rounds have.
	serial := benchTLSPhase(b, plain, sg, 1, rounds, time.Second)
	b.StopTimer()

	r := benchRatios(load.rate[sg], load.rate[plain])
	b.Logf("conns/s per round: plain %.0f, schoolgate %.0f, ratio %.3f; %d workers", load.rate[plain], load.rate[sg], r, workers)
	for _, ph := range []struct {
		name string
		res  benchTLSResult
	}{{fmt.Sprintf("%d workers", workers), load}, {"1 worker", serial}} {
		b.Logf("connect+handshake p50/p99, %s: plain %v/%v, schoolgate %v/%v (%d and %d connections); added per round, ms: p50 %.2f, p99 %.2f",
			ph.name, ph.res.p50(plain), ph.res.p99(plain), ph.res.p50(sg), ph.res.p99(sg), len(ph.res.lat[plain]), len(ph.res.lat[sg]),
			ph.res.added[0], ph.res.added[1])
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(benchMedian(load.rate[sg]), "conns/s-schoolgate")
	b.ReportMetric(benchMedian(load.rate[plain]), "conns/s-plain")
	b.ReportMetric(benchMedian(r), "schoolgate/plain")
	b.ReportMetric(benchMedian(load.added[0]), "ms-p50-added")
	b.ReportMetric(benchMedian(load.added[1]), "ms-p99-added")
	b.ReportMetric(benchMedian(serial.added[0]), "ms-p50-added-1worker")
	b.ReportMetric(benchMedian(serial.added[1]), "ms-p99-added-1worker")
	b.ReportMetric(benchMS(load.p50(plain)), "ms-p50-plain")
	b.ReportMetric(benchMS(load.p99(plain)), "ms-p99-plain")
	b.ReportMetric(benchMS(load.p50(sg)), "ms-p50-schoolgate")
	b.ReportMetric(benchMS(load.p99(sg)), "ms-p99-schoolgate")
	b.ReportMetric(float64(load.daemonCPU.Microseconds())/float64(len(load.lat[sg])), "daemon-cpu-µs/conn")
	b.ReportMetric(float64(load.failed[sg]+serial.failed[sg]), "failed-schoolgate")
	b.ReportMetric(float64(load.failed[plain]+serial.failed[plain]), "failed-plain")
}

func benchMS(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// benchTLSResult is one phase of BenchmarkTLSHandshakes: alternating rounds on both sides.
type benchTLSResult struct {
	rate      map[*benchSide][]float64       // conns/s, per round
	lat       map[*benchSide][]time.Duration // connect+handshake, all rounds, sorted
	added     [2][]float64                   // ms schoolgate minus plain in the same round: p50, p99
	failed    map[*benchSide]int
	daemonCPU time.Duration // schoolgated's CPU time during the schoolgate rounds
}

func (r benchTLSResult) p50(s *benchSide) time.Duration { return benchPercentile(r.lat[s], 0.50) }
func (r benchTLSResult) p99(s *benchSide) time.Duration { return benchPercentile(r.lat[s], 0.99) }

// benchTLSPhase runs rounds of benchTLSLoad on both sides, alternating. The added latency is
// taken per round (a round is one run on each side, back to back), and its median over
// rounds reported, so a burst of other load in one round does not decide the figure.
func benchTLSPhase(b *testing.B, plain, sg *benchSide, workers, rounds int, d time.Duration) benchTLSResult {
	b.Helper()
	res := benchTLSResult{
		rate:   map[*benchSide][]float64{},
		lat:    map[*benchSide][]time.Duration{},
		failed: map[*benchSide]int{},
	}
	var last [2]map[*benchSide]time.Duration // this round's p50 and p99 by side
	benchAlternate(rounds, plain, sg, func(round int, s *benchSide) {
		cpu0, cpuErr := s.daemonCPU()
		run := benchTLSLoad(s, workers, d)
		if cpu1, err := s.daemonCPU(); err == nil && cpuErr == nil {
			res.daemonCPU += cpu1 - cpu0
		}
		if run.conns == 0 {
			b.Fatalf("%s, %d workers, round %d: no connection succeeded: %v", s.name, workers, round+1, run.errs)
		}
		if run.failed > 0 {
			b.Logf("%s, %d workers, round %d: %d of %d connections failed, e.g. %v",
				s.name, workers, round+1, run.failed, run.failed+run.conns, run.errs)
		}
		res.rate[s] = append(res.rate[s], float64(run.conns)/run.elapsed.Seconds())
		res.lat[s] = append(res.lat[s], run.lat...)
		res.failed[s] += run.failed
		slices.Sort(run.lat)
		for i, q := range []float64{0.50, 0.99} {
			if last[i] == nil {
				last[i] = map[*benchSide]time.Duration{}
			}
			last[i][s] = benchPercentile(run.lat, q)
			if len(last[i]) == 2 {
				res.added[i] = append(res.added[i], benchMS(last[i][sg]-last[i][plain]))
				last[i] = nil
			}
		}
	})
	for _, s := range []*benchSide{plain, sg} {
		slices.Sort(res.lat[s])
	}
	return res
}

// daemonCPU returns the user and system CPU time schoolgated has used so far, all its
// threads together, from /proc (clock ticks of 10 ms); zero on the plain side.
func (s *benchSide) daemonCPU() (time.Duration, error) {
	if s.d == nil {
		return 0, nil
	}
	// `ip netns exec` execs the daemon in place, so the pid is schoolgated's.
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.d.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
	_, rest, ok := strings.Cut(string(stat), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0, fmt.Errorf("unexpected /proc stat %.80q", stat)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	return time.Duration(ut+st) * tick, nil
}

// benchPercentile returns the nearest-rank q-quantile of sorted durations.
func benchPercentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// benchTLSLoad runs workers clients, each on its own OS thread inside the pupil namespace
// (so no connection pays for entering the namespace), making connections back to back
// until d has passed.
func benchTLSLoad(s *benchSide, workers int, d time.Duration) benchTLSRound {
	conf := s.tlsConfig(benchAllowed)
	addr := netip.AddrPortFrom(s.topo.InetAddr4(benchAddrAllowed), 443)
	var (
		mu  sync.Mutex
		res benchTLSRound
		wg  sync.WaitGroup
	)
	start := time.Now()
	stop := start.Add(d)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine benchTLSRound
			err := s.client().Do(func() error {
				for time.Now().Before(stop) {
					hs, err := benchHTTPSGet(conf, addr, 5*time.Second)
					if err != nil {
						mine.failed++
						if len(mine.errs) < 3 {
							mine.errs = append(mine.errs, err)
						}
						continue
					}
					mine.conns++
					mine.lat = append(mine.lat, hs)
				}
				return nil
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				res.failed++
				res.errs = append(res.errs, err)
			}
			res.conns += mine.conns
			res.failed += mine.failed
			res.lat = append(res.lat, mine.lat...)
			if len(res.errs) < 3 {
				res.errs = append(res.errs, mine.errs...)
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}
