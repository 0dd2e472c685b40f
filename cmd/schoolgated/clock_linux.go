package main

import (
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
