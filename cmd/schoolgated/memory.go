package main

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"runtime/metrics"

	"github.com/schoolgate/schoolgate/webui"
)

// The daemon's memory budget.
//
// What the daemon holds is mostly the compiled domain set, about 14 bytes a name: some 80 MB
// for the full UT1 category set. Left to its defaults, Go's collector lets the heap grow to
// twice what is live before it collects, and hands freed memory back to the kernel only
// slowly; compiling a list makes as much garbage again as the set it builds. On a 1 GB
// board that is the difference between 150 MB and 400 MB resident. So the daemon sets a
// soft memory limit from the board's RAM (unless GOMEMLIMIT is set), hands memory back at
// once after each list compile, and reports memory on the dashboard.

// Bounds of the memory limit: a share of RAM, never below what the full UT1 set needs to
// run without the collector running all the time, never more than the daemon can use.
const (
	memoryShare    = 0.15
	memoryLimitMin = 128 << 20
	memoryLimitMax = 1 << 30
)

// memoryLimit is the soft limit for a board with ram bytes of memory (0: unknown).
func memoryLimit(ram uint64) int64 {
	if ram == 0 {
		return memoryLimitMax
	}
	return int64(min(max(float64(ram)*memoryShare, memoryLimitMin), memoryLimitMax))
}

// setMemoryLimit applies the budget. A GOMEMLIMIT in the environment, which the Go runtime
// has applied already, wins.
func setMemoryLimit(logger *slog.Logger) {
	if os.Getenv("GOMEMLIMIT") != "" {
		logger.Info("memory limit from GOMEMLIMIT", "limit", bytesText(uint64(debug.SetMemoryLimit(-1))))
		return
	}
	ram := physicalMemory()
	limit := memoryLimit(ram)
	debug.SetMemoryLimit(limit)
	logger.Info("memory limit set", "limit", bytesText(uint64(limit)), "ram", bytesText(ram), "share", memoryShare)
}

// releaseMemory collects now and returns every free page to the kernel: called after a list
// compile, whose garbage is as big as the set it built, so that what the kernel sees
// resident is what the daemon holds.
func releaseMemory() { debug.FreeOSMemory() }

// memoryComponent reports what the daemon holds against the runtime's memory limit. It is
// degraded when what stays live after a collection takes most of the limit: the collector
// then runs nearly all the time, taking processor time from DNS and the packet path.
func memoryComponent() webui.Component {
	return memoryState(debug.SetMemoryLimit(-1))
}

// memoryState is memoryComponent for a given limit.
func memoryState(limit int64) webui.Component {
	samples := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(samples)
	value := func(i int) uint64 {
		if samples[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return samples[i].Value.Uint64()
	}
	live, held := value(0), value(1)-value(2)
	c := webui.Component{Name: "memory", State: "running"}
	c.Detail = fmt.Sprintf("%s held, %s of it live after the last collection; limit %s", bytesText(held), bytesText(live), bytesText(uint64(limit)))
	if rss := residentMemory(); rss > 0 {
		c.Detail = fmt.Sprintf("%s resident; ", bytesText(rss)) + c.Detail
	}
	if limit > 0 && limit < math.MaxInt64 && float64(live) > 0.8*float64(limit) {
		c.State = "degraded"
		c.Detail += ": the lists and state take most of the memory limit, so the collector runs often; fewer or smaller lists, or a board with more memory, help"
	}
	return c
}
