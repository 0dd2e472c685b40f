package main

import (
	"bytes"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/schoolgate/schoolgate/webui"
)

// clockComponent says whether the kernel's clock is synchronised to a time source (NTP sets
// the kernel's synchronised state through adjtimex). A Raspberry Pi has no battery-backed
// clock: unsynchronised, it may be days off after a power cut, and schedules, the logs and
// the certificate's validity go wrong with it.
func clockComponent() webui.Component {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	switch {
	case err != nil:
		return webui.Component{Name: "time", State: "degraded", Detail: "the clock's state cannot be read: " + err.Error()}
	case state == unix.TIME_ERROR || tx.Status&unix.STA_UNSYNC != 0:
		return webui.Component{Name: "time", State: "degraded", Detail: "not synchronised to a time source (NTP)"}
	}
	return webui.Component{Name: "time", State: "running", Detail: "synchronised to a time source"}
}

// diskComponent says how full the data partition is: the event log, the audit trail and the
// list cache live there, and a full disk stops the logging the DSL relies on.
func diskComponent(dataDir string) webui.Component {
	var st unix.Statfs_t
	if err := unix.Statfs(dataDir, &st); err != nil {
		return webui.Component{Name: "disk", State: "degraded", Detail: "the data partition cannot be read: " + err.Error()}
	}
	total, free := st.Blocks*uint64(st.Bsize), st.Bavail*uint64(st.Bsize)
	return diskState(total, free)
}

// physicalMemory is the board's RAM in bytes, 0 when it cannot be read.
func physicalMemory() uint64 {
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) != nil {
		return 0
	}
	return uint64(si.Totalram) * uint64(si.Unit)
}

// residentMemory is what the kernel counts resident for this process (its RSS), 0 when it
// cannot be read.
func residentMemory() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseUint(string(f[1]), 10, 64)
	if err != nil {
		return 0
	}
	return pages * uint64(os.Getpagesize())
}
