package netcfg

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netns"
)

// setSysctls turns on forwarding. /proc/sys/net shows the namespace of the
// thread that opens it, so the writes run on a throw-away thread moved into
// the Gateway's namespace.
func (g *Gateway) setSysctls() error {
	settings := []struct {
		key, value string
		optional   bool // IPv6 may be disabled on the box
	}{
		{"net/ipv4/ip_forward", "1", false},
		// With forwarding on, the kernel ignores router advertisements unless
		// accept_ra is 2; the WAN still needs them for its IPv6 upstream.
		{"net/ipv6/conf/" + g.cfg.WAN + "/accept_ra", "2", true},
		{"net/ipv6/conf/all/forwarding", "1", true},
	}
	return g.inNamespace(func() error {
		for _, s := range settings {
			path := filepath.Join("/proc/sys", s.key)
			err := os.WriteFile(path, []byte(s.value+"\n"), 0o644)
			if s.optional && errors.Is(err, fs.ErrNotExist) {
				g.log.Warn("sysctl not available, skipped", "key", s.key)
				continue
			}
			if err != nil {
				return fmt.Errorf("setting sysctl %s=%s: %w", s.key, s.value, err)
			}
		}
		return nil
	})
}

// inNamespace runs fn on a locked OS thread inside g.ns. The thread is never
// unlocked, so Go discards it afterwards instead of reusing a thread left in
// another namespace.
func (g *Gateway) inNamespace(fn func() error) error {
	if g.ns < 0 {
		return fn()
	}
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(g.ns); err != nil {
			done <- fmt.Errorf("entering network namespace: %w", err)
			return
		}
		done <- fn()
	}()
	return <-done
}
