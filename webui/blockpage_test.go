package webui

import (
	"strings"
	"testing"
	"time"

	"github.com/schoolgate/schoolgate/firmware/policy"
)

func TestBlockPage(t *testing.T) {
	at := time.Date(2026, 11, 23, 10, 4, 5, 0, time.UTC)
	pupils := &policy.Profile{Name: "pupils"}
	for _, tc := range []struct {
		name string
		d    policy.Decision
		want []string
	}{
		{"category", policy.Decision{Tier: policy.TierProfile, Category: "adult", Profile: pupils},
			[]string{"<b>games.test</b>", "Namespace School", "in the category", "2026-11-23 10:04:05 UTC, pupils"}},
		{"protected", policy.Decision{Tier: policy.TierProtected, Profile: pupils}, []string{"always blocked"}},
		{"custom list", policy.Decision{Tier: policy.TierProfile, Rule: "games.test", Profile: pupils}, []string{"block list"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			page := string(BlockPage("Namespace School", "games.test", "", tc.d, at))
			for _, w := range tc.want {
				if !strings.Contains(page, w) {
					t.Errorf("page lacks %q:\n%s", w, page)
				}
			}
			if len(page) > BlockPageMax {
				t.Errorf("page is %d bytes, over %d", len(page), BlockPageMax)
			}
		})
	}
	// Hostile input is escaped, the page names no person, and it stays small.
	d := policy.Decision{Tier: policy.TierProfile, Category: "adult", Profile: pupils,
		MAC: "02:00:00:00:00:07", Device: "Alice's laptop", Segment: "pupil"}
	page := string(BlockPage(`St <b>Mary</b>'s`, `x"><img src=y onerror=alert(1)>.test`, "javascript:alert(1)", d, at))
	for _, bad := range []string{"<img", "<b>Mary", "02:00:00:00:00:07", "Alice", "javascript:"} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q:\n%s", bad, page)
		}
	}
	for _, want := range []string{"&lt;img src=y", "St &lt;b&gt;Mary&lt;/b&gt;"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks the escaped %q:\n%s", want, page)
		}
	}
	// The review link leads to the block page server's form for this site.
	page = string(BlockPage("Test School", "games.test", "http://10.20.0.1/?site=games.test", d, at))
	if !strings.Contains(page, `<a href="http://10.20.0.1/?site=games.test">ask for a review</a>`) || len(page) > BlockPageMax {
		t.Errorf("review link (%d bytes):\n%s", len(page), page)
	}
	// Input too long for one segment falls back to the short page, still escaped.
	page = string(BlockPage(strings.Repeat("<script>", 200), "<script>alert(1)</script>"+strings.Repeat("a", 500), "", d, at))
	if strings.Contains(page, "<script>") || len(page) > BlockPageMax || !strings.Contains(page, "Reference") {
		t.Errorf("oversized page (%d bytes):\n%s", len(page), page)
	}
}
