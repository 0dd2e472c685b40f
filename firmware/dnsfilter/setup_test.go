package dnsfilter

import (
	"strings"
	"testing"

	"github.com/coredns/caddy"
)

func TestParse(t *testing.T) {
	f := &Filter{}
	Register("parse-test", f)
	defer Unregister("parse-test")
	for _, tt := range []struct {
		input, err string
	}{
		{"schoolfilter parse-test", ""},
		{"schoolfilter", "Wrong argument count"},
		{"schoolfilter parse-test extra", "Wrong argument count"},
		{"schoolfilter unknown-id", `no filter registered as "unknown-id"`},
		{"schoolfilter parse-test {\n\tblock_ttl 5\n}", `unknown property "block_ttl"`},
		{"schoolfilter parse-test\nschoolfilter parse-test", "only once"},
	} {
		got, err := parse(caddy.NewTestController("dns", tt.input))
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("%q: unexpected error %v", tt.input, err)
		case tt.err == "" && got != f:
			t.Errorf("%q: got filter %p, want the registered %p", tt.input, got, f)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%q: got error %v, want one containing %q", tt.input, err, tt.err)
		}
	}
}
