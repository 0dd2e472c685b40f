package policy

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/schoolgate/schoolgate/firmware/category"
	"github.com/schoolgate/schoolgate/firmware/config"
	"github.com/schoolgate/schoolgate/firmware/lists"
)

const testConfig = `
appliance: {name: Test School}
dns:
  listen: 127.0.0.1:5353
  upstreams: [{address: "127.0.0.1:53"}]
  block_page_ipv4: 10.0.0.1
segments:
  - {name: staff,  subnets: [10.10.0.0/16, "2001:db8:10::/64"], profile: staff}
  - {name: pupils, subnets: [10.20.0.0/16], profile: pupils}
  - {name: library, subnets: [10.40.0.0/16], profile: staff}
  - {name: guest,  subnets: [10.30.0.0/16], profile: guest, guest: true}
devices:
  - {mac: "AA:BB:CC:00:00:01", name: "Head's laptop", profile: staff}
profiles:
  - name: staff
    block_categories: [adult, gambling]
    safe_search: "on"
    youtube: moderate
  - name: pupils
    block_categories: [adult, gambling, social, games]
    allow: [classroom.roblox.com]
    block: [example-blocked.org]
    safe_search: strict
    youtube: strict
  - name: guest
    block_categories: [adult]
    safe_search: "off"
    youtube: "off"
    bypass: {canaries: false}
    no_sni: allow
lists:
  - {name: adult, file: adult.txt, format: domains, category: adult}
  - {name: social, file: social.txt, format: domains, category: social}
  - {name: iwf, file: iwf.txt, format: domains, protected: true}
exceptions:
  - {id: ex-pupil-fb, scope: profile, target: pupils, domain: facebook.com, action: allow,
     reason: "Year 10 media studies", requested_by: teacher, approved_by: dsl,
     created: 2026-11-01T09:00:00Z, expires: 2026-11-01T10:00:00Z}
  - {id: ex-library-tiktok, scope: segment, target: library, domain: tiktok.com, action: block,
     reason: "library is a quiet study area", requested_by: librarian, approved_by: dsl,
     created: 2026-11-01T00:00:00Z, expires: 2027-11-01T00:00:00Z}
  - {id: ex-protected, scope: profile, target: staff, domain: abuse.test, action: allow,
     reason: "attempt to lift the protected tier", requested_by: x, approved_by: y,
     created: 2026-11-01T00:00:00Z, expires: 2027-11-01T00:00:00Z}
  - {id: ex-device, scope: device, target: "aa:bb:cc:00:00:02", domain: facebook.com, action: allow,
     reason: "comms office device", requested_by: comms, approved_by: dsl,
     created: 2026-11-01T00:00:00Z, expires: 2027-11-01T00:00:00Z}
`

// testCatalog builds a catalog by hand: adult pornhub.com, social facebook.com and
// tiktok.com, roblox.com in games and social, and a protected name.
func testCatalog(t *testing.T) *lists.Catalog {
	t.Helper()
	adult, _ := category.SetOf("adult")
	social, _ := category.SetOf("social")
	games, _ := category.SetOf("games", "social")
	cat := &lists.Catalog{Tags: []lists.Tag{
		{Categories: adult, Lists: []string{"adult"}},
		{Categories: social, Lists: []string{"social"}},
		{Categories: games, Lists: []string{"games", "social"}},
		{Lists: []string{"iwf"}},
	}}
	b := lists.NewSetBuilder(4)
	b.Add("pornhub.com", 0)
	b.Add("facebook.com", 1)
	b.Add("tiktok.com", 1)
	b.Add("roblox.com", 2)
	cat.Domains = b.Build(func(a, _ uint32) uint32 { return a })
	p := lists.NewSetBuilder(1)
	p.Add("abuse.test", 3)
	cat.Protected = p.Build(func(a, _ uint32) uint32 { return a })
	return cat
}

type macs map[netip.Addr]string

func (m macs) MAC(a netip.Addr) (string, bool) { s, ok := m[a]; return s, ok }

func newTestEngine(t *testing.T, now time.Time) *Engine {
	t.Helper()
	cfg, err := config.Load([]byte(testConfig))
	if err != nil {
		t.Fatalf("loading test config: %v", err)
	}
	snap, err := Compile(cfg, testCatalog(t))
	if err != nil {
		t.Fatalf("compiling: %v", err)
	}
	e, err := New(Config{Snapshot: snap, Now: func() time.Time { return now },
		MACs: macs{netip.MustParseAddr("10.20.0.99"): "AA:BB:CC:00:00:01",
			netip.MustParseAddr("10.20.0.98"): "aa:bb:cc:00:00:02"}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestDecide(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	e := newTestEngine(t, now)
	tests := []struct {
		client, name string
		action       Action
		tier         Tier
		segment      string
		profile      string
		category     category.ID
		rule         string
		rewrite      string
	}{
		// Segments by source prefix, IPv4 and IPv6.
		{"10.10.1.1", "example.com", Allow, TierDefault, "staff", "staff", "", "", ""},
		{"2001:db8:10::5", "example.com", Allow, TierDefault, "staff", "staff", "", "", ""},
		{"10.40.5.5", "facebook.com", Allow, TierDefault, "library", "staff", "social", "facebook.com", ""},
		{"10.20.1.1", "facebook.com", Block, TierProfile, "pupils", "pupils", "social", "facebook.com", ""},
		// Subdomains, case and the trailing dot.
		{"10.20.1.1", "WWW.Facebook.COM.", Block, TierProfile, "pupils", "pupils", "social", "facebook.com", ""},
		{"10.20.1.1", "notfacebook.com", Allow, TierDefault, "pupils", "pupils", "", "", ""},
		// A domain in two categories is blocked by either.
		{"10.20.1.1", "www.roblox.com", Block, TierProfile, "pupils", "pupils", "social", "roblox.com", ""},
		// The profile's allow list beats its categories; its block list adds names.
		{"10.20.1.1", "classroom.roblox.com", Allow, TierProfile, "pupils", "pupils", "", "classroom.roblox.com", ""},
		{"10.20.1.1", "a.example-blocked.org", Block, TierProfile, "pupils", "pupils", "", "example-blocked.org", ""},
		{"10.10.1.1", "example-blocked.org", Allow, TierDefault, "staff", "staff", "", "", ""},
		// Protected: blocked for everyone, including clients in no segment, and an allow
		// exception for the staff profile does not lift it.
		{"10.10.1.1", "www.abuse.test", Block, TierProtected, "staff", "staff", "", "abuse.test", ""},
		{"192.0.2.7", "abuse.test", Block, TierProtected, "", "", "", "abuse.test", ""},
		{"192.0.2.7", "pornhub.com", Block, TierNoSegment, "", "", "adult", "client in no segment", ""},
		{"fe80::1", "example.org", Block, TierNoSegment, "", "", "", "client in no segment", ""},
		// Exceptions: an expired one no longer applies; an active segment block applies.
		{"10.20.1.1", "m.facebook.com", Block, TierProfile, "pupils", "pupils", "social", "facebook.com", ""},
		{"10.40.5.9", "www.tiktok.com", Block, TierException, "library", "staff", "", "ex-library-tiktok", ""},
		// Devices: profile override by MAC, and a device-scoped exception.
		{"10.20.0.99", "facebook.com", Allow, TierDefault, "pupils", "staff", "social", "facebook.com", ""},
		{"10.20.0.98", "facebook.com", Allow, TierException, "pupils", "pupils", "", "ex-device", ""},
		// Safe search per profile.
		{"10.20.1.1", "www.google.co.uk", Rewrite, TierSafeSearch, "pupils", "pupils", "", "www.google.co.uk", "forcesafesearch.google.com"},
		{"10.20.1.1", "www.youtube.com", Rewrite, TierSafeSearch, "pupils", "pupils", "", "www.youtube.com", "restrict.youtube.com"},
		{"10.10.1.1", "m.youtube.com", Rewrite, TierSafeSearch, "staff", "staff", "", "m.youtube.com", "restrictmoderate.youtube.com"},
		{"10.10.1.1", "www.bing.com", Rewrite, TierSafeSearch, "staff", "staff", "", "www.bing.com", "strict.bing.com"},
		{"10.30.1.1", "www.google.com", Allow, TierDefault, "guest", "guest", "", "", ""},
		{"10.20.1.1", "images.search.yahoo.com", Block, TierSafeSearch, "pupils", "pupils", "", "search.yahoo.com", ""},
		{"10.10.1.1", "search.yahoo.com", Allow, TierDefault, "staff", "staff", "", "", ""},
		// Canaries, unless the profile turns them off.
		{"10.20.1.1", "use-application-dns.net", Block, TierCanary, "pupils", "pupils", "", "use-application-dns.net", ""},
		{"10.10.1.1", "mask.icloud.com", Block, TierCanary, "staff", "staff", "", "mask.icloud.com", ""},
		{"10.30.1.1", "mask.icloud.com", Allow, TierDefault, "guest", "guest", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.client+"/"+tt.name, func(t *testing.T) {
			d := e.Decide(Request{Client: netip.MustParseAddr(tt.client), Name: tt.name})
			got := []string{d.Action.String(), string(d.Tier), d.Segment, d.ProfileName(), string(d.Category), d.Rule, d.Rewrite}
			want := []string{tt.action.String(), string(tt.tier), tt.segment, tt.profile, string(tt.category), tt.rule, tt.rewrite}
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("got  %q\nwant %q", got, want)
			}
		})
	}
}

func TestExceptionExpiry(t *testing.T) {
	pupil := Request{Client: netip.MustParseAddr("10.20.1.1"), Name: "facebook.com"}
	for _, tt := range []struct {
		now  time.Time
		want Action
		tier Tier
	}{
		{time.Date(2026, 11, 1, 8, 59, 59, 0, time.UTC), Block, TierProfile},   // not yet started
		{time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC), Allow, TierException},   // active
		{time.Date(2026, 11, 1, 9, 59, 59, 0, time.UTC), Allow, TierException}, // still active
		{time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC), Block, TierProfile},    // expired by itself
	} {
		d := newTestEngine(t, tt.now).Decide(pupil)
		if d.Action != tt.want || d.Tier != tt.tier {
			t.Errorf("at %s: got %s/%s, want %s/%s", tt.now.Format(time.TimeOnly), d.Action, d.Tier, tt.want, tt.tier)
		}
		if d.Tier == TierException && d.Reason != "Year 10 media studies" {
			t.Errorf("exception reason: got %q", d.Reason)
		}
	}
}

// TestProtectedBeatsEveryException adds allow exceptions of every scope for a protected
// name and checks that none of them lifts it.
func TestProtectedBeatsEveryException(t *testing.T) {
	cfg, err := config.Load([]byte(testConfig))
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	expires := created.AddDate(5, 0, 0)
	for i, sc := range []struct{ scope, target string }{
		{"profile", "pupils"}, {"segment", "pupils"}, {"device", "aa:bb:cc:00:00:01"},
	} {
		cfg.Exceptions = append(cfg.Exceptions, config.Exception{
			ID: "lift-" + sc.scope, Scope: sc.scope, Target: sc.target, Domain: "abuse.test",
			Action: "allow", Reason: "test", RequestedBy: "a", ApprovedBy: "b",
			Created: created.Add(time.Duration(i)), Expires: expires,
		})
	}
	snap, err := Compile(cfg, testCatalog(t))
	if err != nil {
		t.Fatal(err)
	}
	e, _ := New(Config{Snapshot: snap, Now: func() time.Time { return created.AddDate(1, 0, 0) }})
	for _, mac := range []string{"", "aa:bb:cc:00:00:01"} {
		d := e.Decide(Request{Client: netip.MustParseAddr("10.20.1.1"), MAC: mac, Name: "x.abuse.test"})
		if d.Action != Block || d.Tier != TierProtected {
			t.Errorf("mac %q: got %s/%s, want block/protected", mac, d.Action, d.Tier)
		}
	}
}

func TestExplain(t *testing.T) {
	e := newTestEngine(t, time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	ex := e.Explain(Request{Client: netip.MustParseAddr("10.20.1.1"), Name: "www.facebook.com"})
	if ex.Decision.Action != Block {
		t.Fatalf("action: got %s", ex.Decision.Action)
	}
	for _, want := range []string{`segment "pupils"`, "not on any protected list", `category "social"`} {
		if !strings.Contains(strings.Join(ex.Steps, "\n"), want) {
			t.Errorf("steps lack %q:\n%s", want, strings.Join(ex.Steps, "\n"))
		}
	}
	if !strings.Contains(ex.Summary, "category social") {
		t.Errorf("summary: got %q", ex.Summary)
	}
	// Explain and Decide agree.
	if d := e.Decide(Request{Client: netip.MustParseAddr("10.20.1.1"), Name: "www.facebook.com"}); d != ex.Decision {
		t.Errorf("Decide %+v != Explain %+v", d, ex.Decision)
	}
}

func TestSwapKeepsDecidersRunning(t *testing.T) {
	e := newTestEngine(t, time.Now())
	cfg, _ := config.Load([]byte(testConfig))
	cfg.Profiles[1].BlockCategories = []category.ID{"adult"} // pupils lose the social block
	snap, err := Compile(cfg, testCatalog(t))
	if err != nil {
		t.Fatal(err)
	}
	req := Request{Client: netip.MustParseAddr("10.20.1.1"), Name: "facebook.com"}
	if d := e.Decide(req); d.Action != Block {
		t.Fatalf("before swap: got %s", d.Action)
	}
	e.Swap(snap)
	if d := e.Decide(req); d.Action != Allow {
		t.Fatalf("after swap: got %s", d.Action)
	}
}

func TestGoogleDomains(t *testing.T) {
	for name, want := range map[string]bool{
		"google.com": true, "www.google.com": true, "www.google.co.uk": true, "google.com.au": true,
		"www.google.cat": true, "google.de": true, "mail.google.com": false, "google.example.org": false,
		"googleapis.com": false, "www.google.co.u": false, "www.google.com.au.evil": false,
	} {
		if got := isGoogleSearch(name); got != want {
			t.Errorf("isGoogleSearch(%q) = %v, want %v", name, got, want)
		}
	}
}

func BenchmarkDecide(b *testing.B) {
	e := newTestEngine(&testing.T{}, time.Now())
	req := Request{Client: netip.MustParseAddr("10.20.1.1"), Name: "www.some.allowed-site.example.org."}
	b.ReportAllocs()
	for b.Loop() {
		e.Decide(req)
	}
}

func TestDecideUnnamed(t *testing.T) {
	e := newTestEngine(t, time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	tests := []struct {
		client string
		want   Action
	}{
		{"10.10.0.5", Block}, // staff: no_sni defaults to block
		{"10.30.0.5", Allow}, // guest: no_sni allow
		{"192.0.2.1", Block}, // no segment
	}
	for _, tt := range tests {
		d := e.DecideUnnamed(Request{Client: netip.MustParseAddr(tt.client)}, "no SNI")
		if d.Action != tt.want || d.Tier != TierNoName || d.Rule != "no SNI" {
			t.Errorf("DecideUnnamed(%s) = %v %v %q, want %v noname", tt.client, d.Action, d.Tier, d.Rule, tt.want)
		}
	}
}
