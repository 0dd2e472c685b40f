package main

import (
	"net/netip"
	"testing"
	"time"

	"github.com/schoolgate/schoolgate/datapath/filter"
	"github.com/schoolgate/schoolgate/firmware/config"
)

// The configuration refuses what the fast path cannot hold.
func TestGatewayLimitsMatchTheFastPath(t *testing.T) {
	if config.MaxGatewayProfiles != filter.MaxProfiles || config.MaxGatewaySegments != filter.MaxSegmentID {
		t.Errorf("config limits %d profiles, %d segments; the fast path holds %d and %d",
			config.MaxGatewayProfiles, config.MaxGatewaySegments, filter.MaxProfiles, filter.MaxSegmentID)
	}
}

func TestDropLimiter(t *testing.T) {
	var l dropLimiter
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	scanner := dropKey{netip.MustParseAddr("10.30.0.2"), filter.ReasonGuest}
	other := dropKey{netip.MustParseAddr("10.30.0.3"), filter.ReasonGuest}
	vpn := dropKey{netip.MustParseAddr("10.30.0.2"), filter.ReasonVPN}
	allowed := 0
	for i := range 100 {
		if l.allow(scanner, now.Add(time.Duration(i)*time.Millisecond)) {
			allowed++
		}
	}
	if allowed != dropEventsPerMinute || l.suppressed.Load() != 100-dropEventsPerMinute {
		t.Errorf("a scan of 100 targets: %d events, %d suppressed; want %d and %d", allowed, l.suppressed.Load(), dropEventsPerMinute, 100-dropEventsPerMinute)
	}
	if !l.allow(other, now) || !l.allow(vpn, now) {
		t.Errorf("another device, or the same device for another reason, was held back")
	}
	if !l.allow(scanner, now.Add(time.Minute)) {
		t.Errorf("the scanner is still held back a minute later")
	}
}

func TestReviewURL(t *testing.T) {
	cfg, err := config.Load([]byte(`
dns: {upstreams: [{address: "192.0.2.53:53"}]}
http: {block_page: ":80"}
segments:
  - {name: pupils, subnets: [10.20.0.0/24, "fd00:20::/64"], gateway: [10.20.0.1, "fd00:20::1"], profile: p}
  - {name: v6, subnets: ["fd00:30::/64"], gateway: ["fd00:30::1"], profile: p}
  - {name: guest, subnets: [10.30.0.0/24], gateway: [10.30.0.1], profile: g, guest: true}
profiles: [{name: p}, {name: g}]
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ segment, want string }{
		{"pupils", "http://10.20.0.1/?site=a.test%26x"},
		{"v6", "http://[fd00:30::1]/?site=a.test%26x"},
		{"guest", ""}, // guests never reach the block page server
		{"", ""},
	} {
		if got := reviewURL(cfg, tc.segment, "a.test&x"); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.segment, got, tc.want)
		}
	}
	cfg.HTTP.BlockPage = "10.20.0.1:8081"
	if got := reviewURL(cfg, "pupils", "a.test"); got != "http://10.20.0.1:8081/?site=a.test" {
		t.Errorf("port 8081: %q", got)
	}
	cfg.HTTP.BlockPage = ""
	if got := reviewURL(cfg, "pupils", "a.test"); got != "" {
		t.Errorf("no block page server: %q", got)
	}
}
