package webui

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestParseEventFilter(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	f, err := parseEventFilter(url.Values{
		"since": {"15m"}, "segment": {"pupils"}, "client": {"::ffff:10.20.0.5"}, "mac": {"AA:BB:CC:DD:EE:FF"},
		"name": {"face"}, "action": {"block"}, "source": {"dns"}, "limit": {"50"}, "category": {"social"},
	}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !f.From.Equal(now.Add(-15*time.Minute)) || f.Segment != "pupils" || f.Client.String() != "10.20.0.5" ||
		f.MAC != "aa:bb:cc:dd:ee:ff" || f.Name != "face" || f.Action != "block" || f.Source != "dns" ||
		f.Limit != 50 || f.Category != "social" {
		t.Errorf("filter: %+v", f)
	}
	for _, tt := range []struct {
		q    url.Values
		want string
	}{
		{url.Values{"from": {"yesterday"}}, "from: want an RFC 3339 time"},
		{url.Values{"from": {"2026-11-23T10:00:00Z"}, "to": {"2026-11-23T09:00:00Z"}}, "to: must not be before from"},
		{url.Values{"since": {"-5m"}}, "since: want a positive duration"},
		{url.Values{"client": {"10.20.0.300"}}, "client: want an IP address"},
		{url.Values{"action": {"drop"}}, "action: want allow, block or rewrite"},
		{url.Values{"source": {"ftp"}}, "source: want dns, sni, quic, http or ip"},
		{url.Values{"limit": {"0"}}, "limit: want a number from 1 to 1000"},
		{url.Values{"limit": {"5000"}}, "limit: want a number from 1 to 1000"},
		{url.Values{"colour": {"red"}}, `unknown parameter "colour"`},
	} {
		if _, err := parseEventFilter(tt.q, now); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: got %v, want %q", tt.q, err, tt.want)
		}
	}
}

// FuzzParseEventFilter: any query string is either refused with an error or gives a filter
// whose fields are within the documented bounds.
func FuzzParseEventFilter(f *testing.F) {
	for _, seed := range []string{
		"since=15m&segment=pupils&action=block",
		"from=2026-11-23T09:00:00Z&to=2026-11-23T10:00:00Z&limit=1000",
		"client=::ffff:10.0.0.1&name=%25_%5C&cursor=abc",
		"limit=-1", "colour=red", "since=9999999h",
	} {
		f.Add(seed)
	}
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		flt, err := parseEventFilter(q, now)
		if err != nil {
			return
		}
		if flt.Limit < 0 || flt.Limit > 1000 {
			t.Errorf("limit %d out of bounds", flt.Limit)
		}
		if !flt.From.IsZero() && !flt.To.IsZero() && flt.To.Before(flt.From) {
			t.Errorf("to %v before from %v", flt.To, flt.From)
		}
		if flt.Client.Is4In6() {
			t.Errorf("client %v not unmapped", flt.Client)
		}
	})
}
