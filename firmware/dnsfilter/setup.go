// Package dnsfilter is schoolgate's CoreDNS plugin, "schoolfilter". It sits before cache in
// the plugin chain (cache keys ignore the client, so per-profile answers must be made before
// it) and answers blocked names, safe-search CNAMEs and canaries itself; allowed names go on
// to cache and forward, and HTTPS records on the way back lose their ECH parameter for
// filtered profiles. Every decision is handed to the event log without waiting.
//
// See README.md for the Corefile syntax.
package dnsfilter

import (
	"fmt"
	"sync"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/plugin"
)

// PluginName is the directive name in the Corefile and in dnsserver.Directives.
const PluginName = "schoolfilter"

// filters holds the Filter each running server refers to by ID. The Corefile is text, so the
// host cannot hand a Go value to the setup function directly; this registry is the bridge.
// It is package state only because CoreDNS plugin registration is itself process-wide.
var filters sync.Map // string → *Filter

// Register makes f available to Corefiles as "schoolfilter id".
func Register(id string, f *Filter) { filters.Store(id, f) }

// Unregister removes a Filter registered with Register.
func Unregister(id string) { filters.Delete(id) }

// setupOnce guards the CoreDNS plugin registration, which panics when repeated.
var setupOnce sync.Once

// RegisterPlugin registers the schoolfilter directive with CoreDNS. Hosts call it before
// starting a server; repeated calls are harmless.
func RegisterPlugin() {
	setupOnce.Do(func() { plugin.Register(PluginName, setup) })
}

func setup(c *caddy.Controller) error {
	f, err := parse(c)
	if err != nil {
		return plugin.Error(PluginName, err)
	}
	dnsserver.GetConfig(c).AddPlugin(func(next plugin.Handler) plugin.Handler {
		return &handler{next: next, f: f}
	})
	return nil
}

func parse(c *caddy.Controller) (*Filter, error) {
	var f *Filter
	for c.Next() {
		if f != nil {
			return nil, c.Err("schoolfilter may appear only once per server block")
		}
		args := c.RemainingArgs()
		if len(args) != 1 {
			return nil, c.ArgErr()
		}
		v, ok := filters.Load(args[0])
		if !ok {
			return nil, fmt.Errorf("no filter registered as %q", args[0])
		}
		f = v.(*Filter)
		if c.NextBlock() {
			return nil, c.Errf("unknown property %q", c.Val())
		}
	}
	return f, nil
}
