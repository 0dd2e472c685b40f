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
