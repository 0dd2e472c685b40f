package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func mustPrefixes(t *testing.T, ss ...string) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

const minimal = `dns:
  upstreams:
    - address: 192.0.2.53:53
segments:
  - name: s
    subnets: [192.0.2.0/24]
    profile: p
profiles:
  - name: p
  - name: strict
    safe_search: strict
    bypass:
      canaries: false
lists:
  - name: l
    url: https://example.com/l.txt
    format: domains
    category: adult
`

func TestDefaults(t *testing.T) {
	c, err := Load([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	tru, fal := true, false
	tests := []struct {
		name      string
		got, want any
	}{
		{"appliance.timezone", c.Appliance.Timezone, "Europe/London"},
		{"appliance.failure_mode", c.Appliance.FailureMode, "closed"},
		{"dns.listen", c.DNS.Listen, "0.0.0.0:53"},
		{"dns.cache_size", c.DNS.CacheSize, 10000},
		{"dns.block_ttl", c.DNS.BlockTTL, Duration(60 * time.Second)},
		{"http.listen", c.HTTP.Listen, "127.0.0.1:8080"},
		{"profiles[0].block_response", c.Profiles[0].BlockResponse, "nxdomain"},
		{"profiles[0].safe_search", c.Profiles[0].SafeSearch, "off"},
		{"profiles[0].unsafe_engines", c.Profiles[0].UnsafeEngines, "allow"},
		{"profiles[1].unsafe_engines", c.Profiles[1].UnsafeEngines, "block"},
		{"profiles[0].youtube", c.Profiles[0].YouTube, "off"},
		{"profiles[0].quic", c.Profiles[0].QUIC, "inspect"},
		{"profiles[0].no_sni", c.Profiles[0].NoSNI, "block"},
		{"profiles[0].bypass.canaries", c.Profiles[0].Bypass.Canaries, &tru},
		{"profiles[0].bypass.strip_ech", c.Profiles[0].Bypass.StripECH, &tru},
		{"profiles[0].bypass.block_dot", c.Profiles[0].Bypass.BlockDoT, &tru},
		{"profiles[1].bypass.canaries", c.Profiles[1].Bypass.Canaries, &fal},
		{"lists[0].update_interval", c.Lists[0].UpdateInterval, Duration(24 * time.Hour)},
		{"lists[0].max_size", c.Lists[0].MaxSize, int64(512 << 20)},
		{"retention.events", c.Retention.Events, Duration(365 * 24 * time.Hour)},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, deref(tt.got), deref(tt.want))
		}
	}
}

func deref(v any) any {
	if b, ok := v.(*bool); ok && b != nil {
		return *b
	}
	return v
}

func TestCanonicalise(t *testing.T) {
	doc := minimal + `devices:
  - mac: 00-1A-2B-3C-4D-5E
    profile: p
exceptions:
  - id: e
    scope: device
    target: 001A.2B3C.4D5F
    domain: " Example.COM. "
    action: allow
    reason: test
    created: 2026-01-01T00:00:00Z
    expires: 2026-01-02T00:00:00Z
`
	doc = replaceOnce(doc, "  - name: p\n", "  - name: p\n    allow: [BBC.co.uk.]\n    block: [\" TikTok.com \"]\n")
	c, err := Load([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, got, want string }{
		{"device mac", c.Devices[0].MAC, "00:1a:2b:3c:4d:5e"},
		{"exception target", c.Exceptions[0].Target, "00:1a:2b:3c:4d:5f"},
		{"exception domain", c.Exceptions[0].Domain, "example.com"},
		{"allow", c.Profiles[0].Allow[0], "bbc.co.uk"},
		{"block", c.Profiles[0].Block[0], "tiktok.com"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

func replaceOnce(s, old, new string) string {
	i := indexOf(s, old)
	if i < 0 {
		panic("replaceOnce: not found: " + old)
	}
	return s[:i] + new + s[i+len(old):]
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// equal compares configurations, ignoring where they were read from.
func equal(a, b *Config) bool {
	x, y := *a, *b
	x.lines, y.lines = nil, nil
	return reflect.DeepEqual(x, y)
}

func TestMarshalRoundTrip(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("..", "..", "docs", "examples", "school.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"minimal", []byte(minimal)},
		{"demo", DemoYAML()},
		{"example", example},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first, err := Load(tt.data)
			if err != nil {
				t.Fatal(err)
			}
			out, err := Marshal(first)
			if err != nil {
				t.Fatal(err)
			}
			second, err := Load(out)
			if err != nil {
				t.Fatalf("Load(Marshal(cfg)): %v\n%s", err, out)
			}
			if !equal(first, second) {
				t.Errorf("round trip changed the config:\ngot  %+v\nwant %+v\nyaml:\n%s", *second, *first, out)
			}
			again, err := Marshal(second)
			if err != nil {
				t.Fatal(err)
			}
			if string(again) != string(out) {
				t.Errorf("Marshal is not stable:\nfirst:\n%s\nsecond:\n%s", out, again)
			}
		})
	}
}

func TestExampleConfig(t *testing.T) {
	c, err := LoadFile(filepath.Join("..", "..", "docs", "examples", "school.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(c.Segments), 3; got != want {
		t.Errorf("got %d segments, want %d", got, want)
	}
	for i, s := range c.Segments {
		if s.Trunk != "eth1" || s.VLAN != []int{10, 20, 30}[i] {
			t.Errorf("segments[%d]: got trunk %q vlan %d", i, s.Trunk, s.VLAN)
		}
	}
	if got := c.Devices[0].MAC; got != "00:1a:2b:3c:4d:5e" {
		t.Errorf("got device MAC %q, want canonical form", got)
	}
	// LoadFile resolves relative list files against the config's directory.
	ips := c.Lists[2]
	if want := filepath.Join("..", "..", "docs", "examples", "lists", "public-resolvers.txt"); ips.File != want {
		t.Errorf("got list file %q, want %q", ips.File, want)
	}
}

func TestLoadEmpty(t *testing.T) {
	for _, in := range []string{"", "\n", "# nothing\n", "---\n"} {
		_, err := Load([]byte(in))
		var ve *ValidationError
		if !asValidation(err, &ve) || ve.Errors[0].Field != "dns.upstreams" {
			t.Errorf("Load(%q) = %v, want only the missing upstream", in, err)
		}
	}
}

func TestLoadNotAMapping(t *testing.T) {
	for _, in := range []string{"42\n", "- a\n- b\n", "profiles: 3\n", "dns: [1]\n"} {
		if _, err := Load([]byte(in)); err == nil {
			t.Errorf("Load(%q) succeeded", in)
		}
	}
}

func TestLoadAliases(t *testing.T) {
	doc := `dns:
  upstreams:
    - address: 192.0.2.53:53
segments:
  - name: s
    subnets: [192.0.2.0/24]
    profile: p
profiles:
  - &base
    name: p
    block_categories: [adult]
  - <<: *base
    name: q
    colour: red
`
	_, err := Load([]byte(doc))
	var ve *ValidationError
	if !asValidation(err, &ve) || ve.Errors[0].Field != "profiles[1].colour" || ve.Errors[0].Line != 14 {
		t.Errorf("got %v, want unknown field profiles[1].colour at line 14", err)
	}
}

func asValidation(err error, ve **ValidationError) bool {
	v, ok := err.(*ValidationError)
	if ok {
		*ve = v
	}
	return ok && len(v.Errors) > 0
}
