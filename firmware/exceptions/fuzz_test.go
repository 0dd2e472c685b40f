package exceptions

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/schoolgate/schoolgate/firmware/lists"
)

var update = flag.Bool("update", false, "rewrite the committed fuzz seeds")

type requestSeed struct {
	scope, target, domain, action, reason string
	duration                              time.Duration
}

// requestSeeds are the committed corpus of FuzzRequest. TestFuzzSeeds checks
// they are on disk; `go test -run TestFuzzSeeds ./firmware/exceptions -update`
// writes them.
var requestSeeds = []requestSeed{
	{"profile", "pupils", "www.example.com", "allow", "Year 9 history lesson", 90 * time.Minute},
	{"device", "AA-BB-CC-DD-EE-FF", "Bücher.de.", "Block", " revision quiz ", 30 * 24 * time.Hour},
	{"segment", " pupils-wifi ", "https://www.bbc.co.uk/news", "allow", "news\nlesson", time.Hour + 500*time.Millisecond},
	{"Device", "aabb.ccdd.eeff", "sub.iwf-test.example", "allow", "art", time.Minute},
	{"school", "", "co.uk", "permit", "ok", -time.Hour},
	{"profile", "pupils\u202e", "xn--bcher-kva.de", "allow", "lesson \u202eevil", 59 * time.Second},
	{"profile", "p", "192.0.2.1", "block", strings.Repeat("x", 501), 1<<63 - 1},
	{"", "\xff", "*.example.com", "", "\xff\xfe\xfd", -1 << 63},
}

func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzRequest")
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, s := range requestSeeds {
			var b strings.Builder
			b.WriteString("go test fuzz v1\n")
			for _, v := range []string{s.scope, s.target, s.domain, s.action, s.reason} {
				fmt.Fprintf(&b, "string(%s)\n", strconv.Quote(v))
			}
			fmt.Fprintf(&b, "int64(%d)\n", int64(s.duration))
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%d", i)), []byte(b.String()), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range requestSeeds {
		if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("seed%d", i))); err != nil {
			t.Errorf("missing seed corpus for FuzzRequest (run with -update): %v", err)
		}
	}
}

// A request comes from a form: anything may arrive. Whatever is accepted is
// clean, stored as returned, and a fixed point of validation.
func FuzzRequest(f *testing.F) {
	prot := &protectedSet{names: map[string]bool{"iwf-test.example": true}}
	s, err := New(Config{Path: filepath.Join(f.TempDir(), FileName), Protected: prot.Has})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()

	f.Fuzz(func(t *testing.T, scope, target, domain, action, reason string, duration int64) {
		in := Exception{Scope: scope, Target: target, Domain: domain, Action: action, Reason: reason,
			Duration: time.Duration(duration), RequestedBy: "fuzz"}
		got, err := s.Request(ctx, in)
		if err != nil {
			if fieldOf(err) == "" {
				t.Fatalf("refused without a FieldError: %v", err)
			}
			return
		}
		again, err := s.Get(ctx, got.ID)
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("Get = %+v, %v\nwant %+v", again, err, got)
		}

		switch got.Scope {
		case "profile", "segment":
			if got.Target == "" || got.Target != strings.TrimSpace(got.Target) || strings.IndexFunc(got.Target, badRune) >= 0 {
				t.Fatalf("target %q accepted", got.Target)
			}
		case "device":
			if mac, ok := parseMAC(got.Target); !ok || mac != got.Target {
				t.Fatalf("device target %q is not canonical", got.Target)
			}
		default:
			t.Fatalf("scope %q accepted", got.Scope)
		}
		if n, err := lists.Normalize(got.Domain); err != nil || n != got.Domain {
			t.Fatalf("domain %q is not normalised: %q, %v", got.Domain, n, err)
		}
		if _, bad := s.protected(got.Domain); bad {
			t.Fatalf("protected domain %q accepted", got.Domain)
		}
		if got.Action != "allow" && got.Action != "block" {
			t.Fatalf("action %q accepted", got.Action)
		}
		if n := utf8.RuneCountInString(got.Reason); n < minText || n > maxText || !utf8.ValidString(got.Reason) ||
			got.Reason != strings.TrimSpace(got.Reason) || strings.IndexFunc(got.Reason, badRune) >= 0 {
			t.Fatalf("reason %q accepted", got.Reason)
		}
		if got.Duration < MinDuration || got.Duration > DefaultMaxDuration || got.Duration%time.Second != 0 {
			t.Fatalf("duration %v accepted", got.Duration)
		}
		if got.Status != Pending || got.Source != SourceUI || got.RequestedBy != "fuzz" {
			t.Fatalf("stored as %+v", got)
		}

		// What was stored is accepted again unchanged.
		got2, err := s.Request(ctx, got)
		if err != nil {
			t.Fatalf("stored request refused when sent again: %v", err)
		}
		got2.ID, got2.Requested = got.ID, got.Requested
		if !reflect.DeepEqual(got2, got) {
			t.Fatalf("validation is not idempotent:\n%+v\n%+v", got, got2)
		}
	})
}
