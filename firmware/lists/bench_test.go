package lists

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// syntheticNames returns n distinct names shaped like real list entries: 2–4 labels, a
// mix of TLDs, about 20 bytes long.
func syntheticNames(n int) []string {
	tlds := [...]string{"com", "net", "org", "co.uk", "de", "ru", "info", "xyz"}
	out := make([]string, n)
	buf := make([]byte, 0, 64)
	x := uint64(0x9e3779b97f4a7c15)
	for i := range n {
		x = finalize(x + uint64(i))
		buf = buf[:0]
		if i%3 == 0 {
			buf = append(buf, "www."...)
		}
		buf = strconv.AppendUint(buf, x%1_000_000_007, 36)
		buf = append(buf, '-')
		buf = strconv.AppendUint(buf, uint64(i), 36)
		buf = append(buf, '.')
		buf = append(buf, tlds[x%uint64(len(tlds))]...)
		out[i] = string(buf)
	}
	return out
}

func buildNames(names []string) *Set {
	b := NewSetBuilder(len(names))
	for i, n := range names {
		b.Add(n, uint32(i&0xffff))
	}
	return b.Build(func(a, b uint32) uint32 { return a | b })
}

var setSizes = []struct {
	name  string
	n     int
	large bool
}{{"100k", 100_000, false}, {"1M", 1_000_000, false}, {"5M", 5_000_000, true}}

func BenchmarkSetBuild(b *testing.B) {
	for _, sz := range setSizes {
		b.Run(sz.name, func(b *testing.B) {
			if sz.large && testing.Short() {
				b.Skip("5M names skipped in -short mode")
			}
			names := syntheticNames(sz.n)
			b.ResetTimer()
			for b.Loop() {
				buildNames(names)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(sz.n), "ns/domain")
		})
	}
}

func benchSetSize() int {
	if testing.Short() {
		return 1_000_000
	}
	return 5_000_000
}

// memoryLatency measures this machine's latency of one random memory read, now: a chase
// of dependent loads through a random cycle over 128 MiB of cache lines (larger than any
// cache, and than a 5M-entry Set), so each load waits for DRAM and, like a Set probe, for
// the TLB. It is the baseline a lookup is judged against in the same run: a lookup at
// 5M entries is a few such reads, overlapped, plus hashing.
func memoryLatency() time.Duration {
	const lines = 128 << 20 / 64
	next := make([]uint32, lines*16) // one uint32 used per 64-byte line
	perm := make([]uint32, lines)
	for i := range perm {
		perm[i] = uint32(i)
	}
	// Sattolo's algorithm: a random permutation that is a single cycle.
	x := uint64(0x2545f4914f6cdd1d)
	for i := lines - 1; i > 0; i-- {
		j := int(xorshift(&x) % uint64(i))
		perm[i], perm[j] = perm[j], perm[i]
	}
	for i := range perm {
		next[perm[i]*16] = perm[(i+1)%lines] * 16
	}
	perm = nil
	const steps = 4 << 20
	best := time.Duration(1 << 62)
	for range 3 {
		p := uint32(0)
		start := time.Now()
		for range steps {
			p = next[p]
		}
		best = min(best, time.Since(start)/steps)
		if p == 1 { // never: keeps the chase from being optimised away
			best++
		}
	}
	return best
}

func BenchmarkSetLookup(b *testing.B) {
	lat := memoryLatency()
	names := syntheticNames(benchSetSize())
	s := buildNames(names)
	const q = 1 << 16
	hits := make([]string, q)
	misses := make([]string, q)
	for i := range q {
		n := names[(i*7919)%len(names)]
		// Three extra labels: the walk probes the name and every parent.
		hits[i] = "cdn.img" + strconv.Itoa(i) + ".a." + n + "."
		misses[i] = "cdn.img" + strconv.Itoa(i) + ".a.miss-" + n + "."
	}
	for _, c := range []struct {
		name    string
		queries []string
		want    bool
	}{{"hit", hits, true}, {"miss", misses, false}} {
		b.Run(c.name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				_, _, ok := s.Lookup(c.queries[i&(q-1)])
				if ok != c.want {
					b.Fatalf("Lookup(%s) = %v", c.queries[i&(q-1)], ok)
				}
				i++
			}
			reportLatency(b, lat)
		})
		b.Run(c.name+"-match", func(b *testing.B) {
			i, n := 0, 0
			fn := func(string, uint32) bool { n++; return true }
			for b.Loop() {
				s.Match(c.queries[i&(q-1)], fn)
				i++
			}
			reportLatency(b, lat)
		})
	}
}

// reportLatency reports the machine's memory latency and the time per operation in units
// of it.
func reportLatency(b *testing.B, lat time.Duration) {
	b.ReportMetric(float64(lat.Nanoseconds()), "mem-latency-ns")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(lat.Nanoseconds()), "x-mem-latency")
}

func BenchmarkSetLoad(b *testing.B) {
	s := buildNames(syntheticNames(benchSetSize()))
	var buf bytes.Buffer
	s.WriteTo(&buf)
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := ReadSet(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(s.Len()), "domains")
}

// BenchmarkSetMemory reports the heap a built Set keeps per domain (B/domain), measured
// with runtime.MemStats so it counts what the process really holds after the builder's
// garbage is collected.
func BenchmarkSetMemory(b *testing.B) {
	names := syntheticNames(benchSetSize())
	var perDomain float64
	for b.Loop() {
		before := heapInUse()
		s := buildNames(names)
		after := heapInUse()
		perDomain = float64(after-before) / float64(s.Len())
		runtime.KeepAlive(s)
	}
	runtime.KeepAlive(names)
	b.ReportMetric(perDomain, "B/domain")
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// ut1Dataset is the real UT1 lists, present on developer machines next to the repository.
const ut1Dataset = "../../../shared/datasets/ut1-blacklists/domains"

// BenchmarkRealUT1 parses every category file of the real UT1 lists and builds one Set.
func BenchmarkRealUT1(b *testing.B) {
	files, _ := filepath.Glob(filepath.Join(ut1Dataset, "*.txt*"))
	if len(files) == 0 {
		b.Skip("no UT1 dataset at " + ut1Dataset)
	}
	var data [][]byte
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		if strings.HasSuffix(f, ".gz") {
			zr, err := gzip.NewReader(bytes.NewReader(raw))
			if err != nil {
				b.Fatal(err)
			}
			if raw, err = io.ReadAll(bufio.NewReader(zr)); err != nil {
				b.Fatal(err)
			}
		}
		data = append(data, raw)
	}
	var s *Set
	var st ParseStats
	for b.Loop() {
		bld := NewSetBuilder(1 << 20)
		st = ParseStats{}
		for i, d := range data {
			ps, _ := Parse(bytes.NewReader(d), FormatDomains, func(n string) { bld.Add(n, uint32(i)) })
			st.merge(ps)
		}
		s = bld.Build(func(a, _ uint32) uint32 { return a })
	}
	b.ReportMetric(float64(s.Len()), "domains")
	b.ReportMetric(float64(st.Skipped), "skipped")
	b.ReportMetric(float64(s.MemoryBytes())/float64(s.Len()), "B/domain")
}

// BenchmarkSuffixKeys measures the suffix hash alone, on the query shape of
// BenchmarkSetLookup.
func BenchmarkSuffixKeys(b *testing.B) {
	names := syntheticNames(1 << 12)
	queries := make([]string, len(names))
	for i, n := range names {
		queries[i] = "cdn.img" + strconv.Itoa(i) + ".a." + n
	}
	h := newHasher(42)
	var keys [fastSuffixes]uint64
	var starts [fastSuffixes]uint16
	i := 0
	for b.Loop() {
		h.suffixKeys(queries[i&(len(queries)-1)], ^uint64(0), keys[:], starts[:])
		i++
	}
}
