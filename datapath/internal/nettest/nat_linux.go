package nettest

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// PlainNAT masquerades everything the appliance sends out of wan0, in a table of its own
// ("nettest"), for baselines and benchmarks without schoolgate. The table goes away with
// the appliance namespace.
func (t *Topology) PlainNAT() error {
	c, err := nftables.New(nftables.WithNetNSFd(t.Appliance.fd))
	if err != nil {
		return fmt.Errorf("opening nftables in %s: %w", t.Appliance.Name, err)
	}
	table := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "nettest"})
	chain := c.AddChain(&nftables.Chain{
		Name:     "postrouting",
		Table:    table,
		Type:     nftables.ChainTypeNAT,
		Hooknum:  nftables.ChainHookPostrouting,
		Priority: nftables.ChainPriorityNATSource,
	})
	c.AddRule(&nftables.Rule{
		Table: table,
		Chain: chain,
		Exprs: []expr.Any{
			// oifname "wan0" masquerade
			&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(t.WAN.Interface)},
			&expr.Masq{},
		},
	})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("adding masquerade table in %s: %w", t.Appliance.Name, err)
	}
	return nil
}

// ifname pads an interface name the way the kernel stores it, for an exact comparison.
func ifname(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}
