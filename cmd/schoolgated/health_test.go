package main

import (
	"runtime"
	"strings"
	"testing"
)

func TestDiskState(t *testing.T) {
	for _, tc := range []struct {
		total, free uint64
		state, text string
	}{
		{32 << 30, 20 << 30, "running", "20.0 GiB free of 32.0 GiB (62%)"},
		{32 << 30, 2 << 30, "degraded", "(6%)"},
		{8 << 30, 900 << 20, "degraded", "900 MiB free"},
		{32 << 30, 50 << 20, "stopped", "nearly full"},
	} {
		c := diskState(tc.total, tc.free)
		if c.State != tc.state || !strings.Contains(c.Detail, tc.text) {
			t.Errorf("%d of %d free: %s %q, want %s with %q", tc.free, tc.total, c.State, c.Detail, tc.state, tc.text)
		}
	}
}

// The memory limit is a share of the board's RAM within bounds: the full UT1 set fits on
// the smallest board, and a big one does not give the collector nothing to do.
func TestMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		ram  uint64
		want int64
	}{
		{0, memoryLimitMax},         // unknown
		{512 << 20, memoryLimitMin}, // 15% would be 77 MiB
		{1 << 30, 161061273},        // a 1 GB board: 153.6 MiB
		{4 << 30, 644245094},        // 4 GB: 614 MiB
		{16 << 30, memoryLimitMax},
	} {
		if got := memoryLimit(tc.ram); got != tc.want {
			t.Errorf("memoryLimit(%d MiB) = %d, want %d", tc.ram>>20, got, tc.want)
		}
	}
}

// The memory component turns degraded when what is live takes most of the limit.
func TestMemoryComponent(t *testing.T) {
	if c := memoryState(1 << 40); c.State != "running" || !strings.Contains(c.Detail, "live after the last collection") {
		t.Errorf("with room: %s %q", c.State, c.Detail)
	}
	runtime.GC() // something is live, and more than one byte
	if c := memoryState(1); c.State != "degraded" || !strings.Contains(c.Detail, "most of the memory limit") {
		t.Errorf("over the limit: %s %q", c.State, c.Detail)
	}
}

// The dashboard says whether the upstream resolvers answer: a working one, then none.
func TestUpstreamHealth(t *testing.T) {
	d := startDaemon(t, startUpstream(t), "-demo")
	component := func(name string) (string, string) {
		var st struct {
			Components []struct{ Name, State, Detail string } `json:"components"`
		}
		d.getJSON(t, "/api/status", &st)
		for _, c := range st.Components {
			if c.Name == name {
				return c.State, c.Detail
			}
		}
		return "", ""
	}
	waitFor(t, "the upstream probe", func() bool { s, _ := component("upstream"); return s == "running" })
	if s, detail := component("upstream"); !strings.Contains(detail, "1 of 1 answer") {
		t.Errorf("upstream: %s %q", s, detail)
	}
	if s, detail := component("disk"); s == "" || !strings.Contains(detail, "free of") {
		t.Errorf("disk: %s %q", s, detail)
	}
	// The demo's lists are small: memory is well within the limit the daemon set itself.
	if s, detail := component("memory"); s != "running" || !strings.Contains(detail, "resident") || !strings.Contains(detail, "limit") {
		t.Errorf("memory: %s %q", s, detail)
	}
	d.stop(t)

	dead := startDaemon(t, "127.0.0.1:9", "-demo") // nothing answers there
	waitFor(t, "the failed probe", func() bool {
		var st struct {
			Components []struct{ Name, State, Detail string } `json:"components"`
		}
		dead.getJSON(t, "/api/status", &st)
		for _, c := range st.Components {
			if c.Name == "upstream" {
				return c.State == "stopped" && strings.Contains(c.Detail, "no upstream resolver answers")
			}
		}
		return false
	})
	dead.stop(t)
}
