package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/schoolgate/schoolgate/firmware/dnssvc"
	"github.com/schoolgate/schoolgate/webui"
)

// diskState judges free space: below 10% or 1 GiB the disk is degraded, below 2% or 100 MiB
// it is about to stop the logs.
func diskState(total, free uint64) webui.Component {
	c := webui.Component{Name: "disk", State: "running"}
	pct := 0.0
	if total > 0 {
		pct = 100 * float64(free) / float64(total)
	}
	c.Detail = fmt.Sprintf("%s free of %s (%.0f%%) on the data partition", bytesText(free), bytesText(total), pct)
	switch {
	case pct < 2 || free < 100<<20:
		c.State, c.Detail = "stopped", c.Detail+": nearly full, the logs stop when it is"
	case pct < 10 || free < 1<<30:
		c.State = "degraded"
	}
	return c
}

func bytesText(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

// upstreams probes the upstream resolvers every minute, so the dashboard can say whether
// allowed names resolve at all.
type upstreams struct {
	mu      sync.Mutex
	checked time.Time
	ok, all int
	detail  string
}

func (d *daemon) probeUpstreams(ctx context.Context) {
	for {
		d.mu.Lock()
		ups := d.cfg.DNS.Upstreams
		d.mu.Unlock()
		var okNames, bad []string
		for _, u := range ups {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			rtt, err := dnssvc.Probe(pctx, u)
			cancel()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				bad = append(bad, fmt.Sprintf("%s: %v", u.Address, err))
			} else {
				okNames = append(okNames, fmt.Sprintf("%s in %d ms", u.Address, rtt.Milliseconds()))
			}
		}
		d.ups.mu.Lock()
		d.ups.checked, d.ups.ok, d.ups.all = time.Now(), len(okNames), len(ups)
		d.ups.detail = strings.Join(append(okNames, bad...), "; ")
		d.ups.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Minute):
		}
	}
}

func (d *daemon) upstreamComponent() webui.Component {
	d.ups.mu.Lock()
	defer d.ups.mu.Unlock()
	c := webui.Component{Name: "upstream", State: "running", Detail: fmt.Sprintf("%d of %d answer: %s", d.ups.ok, d.ups.all, d.ups.detail)}
	switch {
	case d.ups.checked.IsZero():
		c.Detail = "not checked yet"
	case d.ups.ok == 0:
		c.State = "stopped"
		c.Detail = "no upstream resolver answers, so allowed names do not resolve: " + d.ups.detail
	case d.ups.ok < d.ups.all:
		c.State = "degraded"
	}
	return c
}
