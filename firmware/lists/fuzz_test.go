package lists

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

var updateSeeds = flag.Bool("update", false, "rewrite the committed fuzz seed corpora under testdata/fuzz")

// fuzzSeeds are the committed corpora, by fuzz target. TestFuzzSeeds checks they are on
// disk; `go test -run TestFuzzSeeds -update` writes them.
func fuzzSeeds(t testing.TB) map[string][][]byte {
	var set bytes.Buffer
	b := newSetBuilderSeed(0, 42)
	b.Add("example.com", 1)
	b.Add("a.example.org", 2)
	b.Add("zip", 3)
	b.Build(nil).WriteTo(&set)
	var empty bytes.Buffer
	NewSetBuilder(0).Build(nil).WriteTo(&empty)
	ut1 := makeTar(t, true,
		tarFile{name: "blacklists/adult/domains", body: "porn.example\n1.2.3.4\n"},
		tarFile{name: "./blacklists/gambling/domains", body: "bet.example\n"},
		tarFile{name: "blacklists/porn", body: "adult", typ: tar.TypeSymlink})
	return map[string][][]byte{
		"FuzzNormalize": {[]byte("Example.COM."), []byte("bücher.de"), []byte("xn--bcher-kva.de"),
			[]byte("_dmarc.example.com"), []byte("1.2.3.4"), []byte("a..b"), []byte("例え.jp"), []byte("xn--zz.com")},
		"FuzzParseDomains": {[]byte("# c\nexample.com\n*.a.example\n.b.example\nbad..x\n1.2.3.4\n")},
		"FuzzParseHosts":   {[]byte("127.0.0.1 localhost\n0.0.0.0 a.example b.example # c\n::1 ip6-localhost\n0.0.0.0\n")},
		"FuzzParseAdblock": {[]byte("[Adblock Plus 2.0]\n! c\n||a.example^\n||b.example^$important\n@@||c.example^\nx.example##.ad\n||d.example^$third-party\n")},
		"FuzzParseUT1":     {ut1, []byte("\x1f\x8b\x08\x00"), []byte("blacklists/adult/domains")},
		"FuzzParseIPs":     {[]byte("1.2.3.4\n10.0.0.0/8 # c\n2001:db8::/32\n::ffff:1.2.3.4\nbad\n")},
		"FuzzReadSet":      {set.Bytes(), empty.Bytes(), set.Bytes()[:40]},
	}
}

func TestFuzzSeeds(t *testing.T) {
	for target, seeds := range fuzzSeeds(t) {
		dir := filepath.Join("testdata", "fuzz", target)
		if *updateSeeds {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for i, s := range seeds {
				data := "go test fuzz v1\n[]byte(" + strconv.Quote(string(s)) + ")\n"
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%d", i)), []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "seed0")); err != nil {
			t.Errorf("missing seed corpus for %s (run with -update): %v", target, err)
		}
	}
}

func FuzzNormalize(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := Normalize(string(in))
		if err != nil {
			return
		}
		if len(got) > maxNameLen || got != strings.ToLower(got) || strings.HasSuffix(got, ".") {
			t.Fatalf("Normalize(%q) = %q: not canonical", in, got)
		}
		again, err := Normalize(got)
		if err != nil || again != got {
			t.Fatalf("Normalize not idempotent: %q → %q → %q, %v", in, got, again, err)
		}
	})
}

func fuzzParse(f *testing.F, format Format) {
	f.Fuzz(func(t *testing.T, in []byte) {
		n := 0
		st, err := Parse(bytes.NewReader(in), format, func(name string) {
			n++
			if again, err := Normalize(name); err != nil || again != name {
				t.Fatalf("added non-canonical name %q", name)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		checkStats(t, st, n)
	})
}

func checkStats(t *testing.T, st ParseStats, added int) {
	t.Helper()
	if st.Entries != added || len(st.Errors) > maxErrors || len(st.Errors) > st.Skipped {
		t.Fatalf("inconsistent stats %+v for %d added", st, added)
	}
	for _, e := range st.Errors {
		if len(e.Text) > maxErrorTextLen || e.Line < 1 || e.Line > st.Lines {
			t.Fatalf("bad error %+v", e)
		}
	}
}

func FuzzParseDomains(f *testing.F) { fuzzParse(f, FormatDomains) }
func FuzzParseHosts(f *testing.F)   { fuzzParse(f, FormatHosts) }
func FuzzParseAdblock(f *testing.F) { fuzzParse(f, FormatAdblock) }

func FuzzParseUT1(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		n := 0
		st, _ := ParseUT1(bytes.NewReader(in), 1<<20, func(c, name string) {
			n++
			if c == "" || name == "" {
				t.Fatalf("empty category or name: %q %q", c, name)
			}
		})
		checkStats(t, st, n)
	})
}

func FuzzParseIPs(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		n := 0
		st, err := ParseIPs(bytes.NewReader(in), func(p netip.Prefix) {
			n++
			if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
				t.Fatalf("bad prefix %v", p)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		checkStats(t, st, n)
	})
}

func FuzzReadSet(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		s, err := ReadSet(r)
		// Knowing how many bytes there are changes how the table is allocated, never what
		// is read.
		sized, serr := readSet(bytes.NewReader(in), int64(len(in)))
		if (err == nil) != (serr == nil) || (err != nil && err.Error() != serr.Error()) {
			t.Fatalf("ReadSet: %v; with the size known: %v", err, serr)
		}
		if err != nil {
			return
		}
		if sized.Len() != s.Len() || sized.MemoryBytes() != s.MemoryBytes() {
			t.Fatalf("with the size known: %d names in %d bytes, want %d in %d", sized.Len(), sized.MemoryBytes(), s.Len(), s.MemoryBytes())
		}
		used := len(in) - r.Len()
		var out bytes.Buffer
		if _, err := s.WriteTo(&out); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.Bytes(), in[:used]) {
			t.Fatalf("round trip differs")
		}
		s.Match("a.b.example.com.", func(string, uint32) bool { return true })
	})
}
