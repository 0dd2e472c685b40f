package lists

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func buildSet(t testing.TB, entries map[string]uint32) *Set {
	t.Helper()
	b := NewSetBuilder(len(entries))
	for n, v := range entries {
		b.Add(n, v)
	}
	return b.Build(nil)
}

type match struct {
	suffix string
	v      uint32
}

func matches(s *Set, name string) []match {
	var got []match
	s.Match(name, func(suffix string, v uint32) bool {
		got = append(got, match{suffix, v})
		return true
	})
	return got
}

func TestSetMatch(t *testing.T) {
	s := buildSet(t, map[string]uint32{
		"example.com":     1,
		"a.b.example.com": 2,
		"zip":             3,
		"co.uk":           4,
		"bbc.co.uk":       5,
	})
	if s.Len() != 5 {
		t.Errorf("Len = %d, want 5", s.Len())
	}
	tests := []struct {
		name string
		want []match
	}{
		{"example.com", []match{{"example.com", 1}}},
		{"example.com.", []match{{"example.com", 1}}},
		{"EXAMPLE.Com", []match{{"EXAMPLE.Com", 1}}},
		{"x.example.com", []match{{"example.com", 1}}},
		{"x.a.b.example.com", []match{{"a.b.example.com", 2}, {"example.com", 1}}},
		{"a.b.example.com", []match{{"a.b.example.com", 2}, {"example.com", 1}}},
		{"b.example.com", []match{{"example.com", 1}}},
		{"ample.com", nil},
		{"notexample.com", nil},
		{"com", nil},
		{"example.org", nil},
		{"download.zip", []match{{"zip", 3}}},
		{"zip", []match{{"zip", 3}}},
		{"news.bbc.co.uk.", []match{{"bbc.co.uk", 5}, {"co.uk", 4}}},
		{"", nil},
		{".", nil},
		{"..example.com", []match{{"example.com", 1}}},
	}
	for _, tt := range tests {
		if got := matches(s, tt.name); !slices.Equal(got, tt.want) {
			t.Errorf("Match(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}

	// fn returning false stops the walk.
	n := 0
	s.Match("x.a.b.example.com", func(string, uint32) bool { n++; return false })
	if n != 1 {
		t.Errorf("Match called fn %d times after false, want 1", n)
	}

	suffix, v, ok := s.Lookup("deep.a.b.example.com.")
	if suffix != "a.b.example.com" || v != 2 || !ok {
		t.Errorf("Lookup = %q, %d, %v", suffix, v, ok)
	}
	if _, _, ok := s.Lookup("example.net"); ok {
		t.Errorf("Lookup(example.net) found something")
	}
	if !s.Contains("example.com") || s.Contains("x.example.com") {
		t.Errorf("Contains is not exact")
	}
}

func TestSetEmptyAndNil(t *testing.T) {
	for _, s := range []*Set{nil, NewSetBuilder(0).Build(nil)} {
		if s.Len() != 0 || len(matches(s, "a.example")) != 0 {
			t.Errorf("empty set matched")
		}
		if _, _, ok := s.Lookup("a.example"); ok {
			t.Errorf("empty set Lookup found")
		}
		var buf bytes.Buffer
		if _, err := s.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		got, err := ReadSet(&buf)
		if err != nil || got.Len() != 0 {
			t.Errorf("round trip of empty set: %v, %v", got.Len(), err)
		}
	}
}

func TestSetMerge(t *testing.T) {
	b := NewSetBuilder(0)
	b.Add("a.example", 1)
	b.Add("b.example", 10)
	b.Add("a.example", 2)
	b.Add("a.example.", 4)
	var calls [][2]uint32
	s := b.Build(func(x, y uint32) uint32 { calls = append(calls, [2]uint32{x, y}); return x | y })
	if s.Len() != 2 {
		t.Errorf("Len = %d, want 2", s.Len())
	}
	if _, v, _ := s.Lookup("a.example"); v != 7 {
		t.Errorf("merged value = %d, want 7", v)
	}
	if want := [][2]uint32{{1, 2}, {3, 4}}; !slices.Equal(calls, want) {
		t.Errorf("merge calls = %v, want %v (insertion order)", calls, want)
	}
	if b.Len() != 0 {
		t.Errorf("builder not reset")
	}
}

func TestSetLarge(t *testing.T) {
	const n = 200_000
	b := NewSetBuilder(n)
	for i := range n {
		b.Add(fmt.Sprintf("host%d.example%d.com", i, i%100), uint32(i))
	}
	s := b.Build(nil)
	if s.Len() != n {
		t.Fatalf("Len = %d, want %d", s.Len(), n)
	}
	for i := 0; i < n; i += 997 {
		name := fmt.Sprintf("www.host%d.example%d.com", i, i%100)
		if suffix, v, ok := s.Lookup(name); !ok || v != uint32(i) || suffix != name[4:] {
			t.Fatalf("Lookup(%q) = %q, %d, %v", name, suffix, v, ok)
		}
		if _, _, ok := s.Lookup(fmt.Sprintf("host%d.example%d.com", i, (i+1)%100)); ok {
			t.Fatalf("false positive")
		}
	}
	if per := float64(s.MemoryBytes()) / n; per > 16 {
		t.Errorf("%.1f bytes per entry, want <= 16", per)
	}
}

func TestSetRoundTrip(t *testing.T) {
	entries := map[string]uint32{}
	for i := range 5000 {
		entries[fmt.Sprintf("n%d.example", i)] = uint32(i * 7)
	}
	s := buildSet(t, entries)
	var buf bytes.Buffer
	n, err := s.WriteTo(&buf)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("WriteTo = %d, %v; buffer %d", n, err, buf.Len())
	}
	data := bytes.Clone(buf.Bytes())
	buf.WriteString("trailing data belongs to the next record")
	got, err := ReadSet(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if buf.String() != "trailing data belongs to the next record" {
		t.Errorf("ReadSet read past its end")
	}
	if got.Len() != len(entries) {
		t.Errorf("Len = %d, want %d", got.Len(), len(entries))
	}
	for name, v := range entries {
		if _, gv, ok := got.Lookup("x." + name); !ok || gv != v {
			t.Fatalf("Lookup(%s) = %d, %v; want %d", name, gv, ok, v)
		}
	}

	// Every single-byte corruption and every truncation is refused.
	for i := 0; i < len(data); i += max(1, len(data)/500) {
		bad := bytes.Clone(data)
		bad[i] ^= 0x40
		if _, err := ReadSet(bytes.NewReader(bad)); err == nil {
			t.Fatalf("corruption at byte %d accepted", i)
		}
		if _, err := ReadSet(bytes.NewReader(data[:i])); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncation at %d: err = %v, want ErrCorrupt", i, err)
		}
	}
}

func TestReadSetHugeCount(t *testing.T) {
	var buf bytes.Buffer
	NewSetBuilder(0).Build(nil).WriteTo(&buf)
	data := buf.Bytes()
	data[24], data[25], data[26], data[27] = 0xff, 0xff, 0xff, 0x7f // 2^31-1 entries claimed
	if _, err := ReadSet(bytes.NewReader(data)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("err = %v, want ErrCorrupt", err)
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	s := buildSet(t, map[string]uint32{"example.com": 1, "b.example.com": 2})
	n := 0
	fn := func(string, uint32) bool { n++; return true }
	allocs := testing.AllocsPerRun(100, func() {
		s.Match("a.b.example.com.", fn)
		s.Lookup("x.y.z.example.org")
	})
	if allocs != 0 {
		t.Errorf("Match allocates %v times", allocs)
	}
}

// refSuffixKeys is the suffix hash written plainly, label by label, for checking the word
// tricks of suffixKeys and hashName.
func refSuffixKeys(h hasher, name string) (keys []uint64, starts []int) {
	le := func(b []byte) uint64 {
		var w [8]byte
		copy(w[:], b)
		return uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
			uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
	}
	st := h.k0
	end := len(name)
	for {
		start := strings.LastIndexByte(name[:end], '.') + 1
		if len(name)-start > maxNameLen {
			return
		}
		l := []byte(name[start:end])
		for i, c := range l {
			if 'A' <= c && c <= 'Z' {
				l[i] = c + 'a' - 'A'
			}
		}
		n := uint64(len(l))
		if len(l) <= 8 {
			st = mum(st^le(l)^h.k1, h.k2^n)
		} else {
			p := 0
			for ; len(l)-p > 16; p += 16 {
				st = mum(st^le(l[p:p+8])^h.k1, le(l[p+8:p+16])^h.k2^n)
			}
			st = mum(st^le(l[max(0, len(l)-16):])^h.k1, le(l[len(l)-8:])^h.k2^n)
		}
		if start < len(name) {
			keys = append(keys, keyOf(st))
			starts = append(starts, start)
		}
		if start == 0 {
			return
		}
		end = start - 1
	}
}

func TestSuffixKeys(t *testing.T) {
	h := newHasher(7)
	rng := uint64(1)
	alphabet := "abcXYZ09-_.\x00\xc3\x80."
	check := func(name string) {
		t.Helper()
		want, wantStarts := refSuffixKeys(h, name)
		var keys [maxSuffixes]uint64
		var starts [maxSuffixes]uint16
		n, ok := h.suffixKeys(name, ^uint64(0), keys[:], starts[:])
		if !ok {
			if len(want) <= maxSuffixes {
				t.Fatalf("suffixKeys(%q) ran out of room", name)
			}
			return
		}
		if n != len(want) {
			t.Fatalf("suffixKeys(%q): %d suffixes, want %d", name, n, len(want))
		}
		for j := range n {
			if keys[j] != want[j] || int(starts[j]) != wantStarts[j] {
				t.Fatalf("suffixKeys(%q)[%d] = %x at %d, want %x at %d", name, j, keys[j], starts[j], want[j], wantStarts[j])
			}
			if k := h.hashName(name[starts[j]:]); k != keys[j] {
				t.Fatalf("hashName(%q) = %x, suffixKeys gave %x", name[starts[j]:], k, keys[j])
			}
			if k := h.hashName(asciiLower(name[starts[j]:])); k != keys[j] {
				t.Fatalf("hashName is not case-blind for %q", name[starts[j]:])
			}
		}
	}
	for _, name := range []string{"", ".", "a", "a.", ".a", "..", "zip", "example.com", "EXAMPLE.Com",
		"a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r", strings.Repeat("x", 300), strings.Repeat("ab.", 100),
		strings.Repeat("y", 250) + ".com", "www." + strings.Repeat("LongLabel", 7) + ".example.org"} {
		check(name)
	}
	// Every label length from 0 to 18 bytes (around the 8- and 16-byte word boundaries),
	// as the first, a middle and the last label, and as a whole name.
	for n := range 19 {
		l := "AbcdefghIjklmnopQr"[:n]
		for _, name := range []string{l, l + ".com", "www." + l, "www." + l + ".com", "a." + l + ".b",
			"cdn.img10000.a." + l + ".co.uk"} {
			check(name)
		}
	}
	for range 20000 {
		rng = finalize(rng + 0x9e3779b97f4a7c15)
		n := int(rng % 80)
		if rng>>60 == 0 {
			n += 200
		}
		b := make([]byte, n)
		for i := range b {
			rng = finalize(rng + 1)
			if rng%4 == 0 {
				b[i] = alphabet[rng>>8%uint64(len(alphabet))]
			} else {
				b[i] = "abcdefghijklmnopqrstuvwxyz"[rng>>8%26]
			}
		}
		check(string(b))
	}
	// Labels are units: moving a dot changes the key.
	if h.hashName("ab.c") == h.hashName("a.bc") || h.hashName("a") == h.hashName("a\x00") {
		t.Errorf("label boundaries or lengths lost")
	}
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// TestSetLabelMask checks that skipping suffixes whose label count no entry has never
// hides a match: sets holding only some label counts, including a top-level domain alone,
// a name of 64+ labels, and names whose suffixes overflow the fast path's stack arrays.
func TestSetLabelMask(t *testing.T) {
	deep := strings.Repeat("a.", 69) + "example"
	tests := []struct {
		entries []string
		query   string
		want    string
	}{
		{[]string{"example.co.uk"}, "x.y.z.example.co.uk", "example.co.uk"},
		{[]string{"example.co.uk"}, "co.uk", ""},
		{[]string{"uk"}, "x.y.z.example.co.uk", "uk"},
		{[]string{"b.example.com"}, "a.b.example.com", "b.example.com"},
		{[]string{deep}, "x." + deep, deep},
		{[]string{deep}, deep[2:], ""},
		{[]string{"example"}, strings.Repeat("q.", 40) + "example", "example"},
		{[]string{"c.example", strings.Repeat("z.", 20) + "example"}, strings.Repeat("z.", 30) + "c.example", "c.example"},
	}
	for _, tt := range tests {
		b := NewSetBuilder(len(tt.entries))
		for i, e := range tt.entries {
			b.Add(e, uint32(i+1))
		}
		s := b.Build(nil)
		var buf bytes.Buffer
		if _, err := s.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		loaded, err := ReadSet(&buf)
		if err != nil {
			t.Fatal(err)
		}
		for _, set := range []*Set{s, loaded} {
			got, _, _ := set.Lookup(tt.query)
			if got != tt.want {
				t.Errorf("set %v: Lookup(%.40q) = %q, want %q", tt.entries[0][:min(20, len(tt.entries[0]))], tt.query, got, tt.want)
			}
		}
	}
}
