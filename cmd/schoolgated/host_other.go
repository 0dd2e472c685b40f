//go:build !linux

package main

import "github.com/schoolgate/schoolgate/webui"

// clockComponent: the synchronisation state is only read on Linux.
func clockComponent() webui.Component {
	return webui.Component{Name: "time", State: "running", Detail: "synchronisation state unknown on this system"}
}

// diskComponent: the free space is only read on Linux.
func diskComponent(string) webui.Component {
	return webui.Component{Name: "disk", State: "running", Detail: "free space unknown on this system"}
}

// physicalMemory: unknown on this system.
func physicalMemory() uint64 { return 0 }

// residentMemory: unknown on this system.
func residentMemory() uint64 { return 0 }
