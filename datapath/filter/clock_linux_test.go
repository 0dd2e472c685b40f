package filter

import (
	"testing"

	"golang.org/x/sys/unix"
)

// monotonicNow must read the clock the eBPF program reads (bpf_ktime_get_ns, which is
// CLOCK_MONOTONIC): flow verdicts carry it as their last-seen time and the kernel ages
// them against its own. A reading falls between two of the kernel's, give or take the
// few microseconds between clockBase's two readings.
func TestMonotonicNow(t *testing.T) {
	const slack = 1_000_000 // 1 ms
	for range 1000 {
		var before, after unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &before); err != nil {
			t.Fatal(err)
		}
		got, err := monotonicNow()
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &after); err != nil {
			t.Fatal(err)
		}
		if got < before.Nano()-slack || got > after.Nano()+slack {
			t.Fatalf("monotonicNow %d, kernel %d..%d", got, before.Nano(), after.Nano())
		}
	}
}
