package lists

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

func parseAll(t *testing.T, in string, f Format) ([]string, ParseStats) {
	t.Helper()
	var got []string
	st, err := Parse(strings.NewReader(in), f, func(n string) { got = append(got, n) })
	if err != nil {
		t.Fatalf("Parse(%s): %v", f, err)
	}
	return got, st
}

func TestParse(t *testing.T) {
	tests := []struct {
		name        string
		format      Format
		in          string
		want        []string
		wantSkipped int
		wantLines   int
	}{
		{
			name:   "domains",
			format: FormatDomains,
			in: "\ufeff# comment\n! also comment\n\nExample.COM\r\nbücher.de.\n*.wild.example\n.squid.example\n" +
				"bad..name\n1.2.3.4\nfoo.example # note\ntwo names.example\n0.0.0.0 hosts.example\n",
			want:        []string{"example.com", "xn--bcher-kva.de", "wild.example", "squid.example", "foo.example", "hosts.example"},
			wantSkipped: 3,
			wantLines:   12,
		},
		{
			name:   "hosts",
			format: FormatHosts,
			in: "127.0.0.1 localhost\n::1 ip6-localhost ip6-loopback\n255.255.255.255 broadcasthost\n" +
				"0.0.0.0 a.example b.example c.example # trailing\n0.0.0.0\tad.example\n" +
				"0.0.0.0 ok.example bad_.. x\nnot-an-ip.example\n0.0.0.0\n" +
				"0.0.0.0\u00a0nbsp.example\n1password.example\n",
			want:        []string{"a.example", "b.example", "c.example", "ad.example", "ok.example", "not-an-ip.example", "nbsp.example", "1password.example"},
			wantSkipped: 3, // bad_.., x, lone address
			wantLines:   10,
		},
		{
			name:   "adblock",
			format: FormatAdblock,
			in: "[Adblock Plus 2.0]\n! Title: test\n||ads.example^\n||imp.example^$important\n||all.example^$all,important\n" +
				"@@||allowed.example^\nexample.com##.banner\n##.generic\n||tp.example^$third-party\n" +
				"||path.example/ads^\n/regex/\n||wild*.example^\nplain.example\n0.0.0.0 hosts.example\n" +
				"||noanchor.example\n|https://x.example\n",
			want:        []string{"ads.example", "imp.example", "all.example", "plain.example", "hosts.example", "noanchor.example"},
			wantSkipped: 8,
			wantLines:   16,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, st := parseAll(t, tt.in, tt.format)
			if !slices.Equal(got, tt.want) {
				t.Errorf("names = %q, want %q", got, tt.want)
			}
			if st.Skipped != tt.wantSkipped || st.Entries != len(tt.want) || st.Lines != tt.wantLines {
				t.Errorf("stats = %+v, want lines %d entries %d skipped %d", st, tt.wantLines, len(tt.want), tt.wantSkipped)
			}
			if len(st.Errors) != min(st.Skipped, maxErrors) {
				t.Errorf("got %d errors for %d skipped", len(st.Errors), st.Skipped)
			}
		})
	}
}

func TestParseLongLinesAndErrorCap(t *testing.T) {
	var sb strings.Builder
	sb.WriteString("first.example\n")
	sb.WriteString(strings.Repeat("x", 100_000) + ".example\n")
	for range 30 {
		sb.WriteString("bad..example\n")
	}
	sb.WriteString(strings.Repeat("y", 10_000)) // long last line without newline
	got, st := parseAll(t, sb.String(), FormatDomains)
	if !slices.Equal(got, []string{"first.example"}) {
		t.Errorf("names = %q", got)
	}
	if st.Skipped != 32 || st.Lines != 33 || len(st.Errors) != maxErrors {
		t.Errorf("stats: lines %d skipped %d errors %d; want 33, 32, %d", st.Lines, st.Skipped, len(st.Errors), maxErrors)
	}
	if e := st.Errors[0]; e.Line != 2 || len(e.Text) > maxErrorTextLen || !strings.Contains(e.Err, "4 KiB") {
		t.Errorf("first error = %+v", e)
	}
}

func TestParseErrors(t *testing.T) {
	if _, err := Parse(strings.NewReader("a.example\n"), "csv", func(string) {}); !errors.Is(err, ErrFormat) {
		t.Errorf("unknown format: err = %v, want ErrFormat", err)
	}
	r := iotest.TimeoutReader(strings.NewReader("a.example\nb.example\n"))
	_, err := Parse(iotest.OneByteReader(r), FormatDomains, func(string) {})
	if err == nil {
		t.Errorf("read error not returned")
	}
}

func TestParseIPs(t *testing.T) {
	in := "# tor exits\n1.2.3.4\n10.0.0.0/8 # private\n10.1.2.3/8\n2001:db8::1\n2001:db8::/32\n::ffff:5.6.7.8\n" +
		"1.2.3.4 # host\n1.2.3.5 somehost\nnot-an-ip\n1.2.3.0/33\nfe80::1%eth0\n; semicolon comment\n"
	var got []string
	st, err := ParseIPs(strings.NewReader(in), func(p netip.Prefix) { got = append(got, p.String()) })
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"1.2.3.4/32", "10.0.0.0/8", "10.0.0.0/8", "2001:db8::1/128", "2001:db8::/32", "5.6.7.8/32", "1.2.3.4/32"}
	if !slices.Equal(got, want) {
		t.Errorf("prefixes = %q, want %q", got, want)
	}
	if st.Skipped != 4 || st.Entries != len(want) {
		t.Errorf("stats = %+v, want skipped 4 entries %d", st, len(want))
	}
}
