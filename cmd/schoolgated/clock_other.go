//go:build !linux

package main

import "github.com/schoolgate/schoolgate/webui"

// clockComponent: the synchronisation state is only read on Linux.
func clockComponent() webui.Component {
	return webui.Component{Name: "time", State: "running", Detail: "synchronisation state unknown on this system"}
}
