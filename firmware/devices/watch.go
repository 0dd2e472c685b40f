package devices

import (
	"context"
	"errors"
	"time"
)

// DefaultInterval is how often Poll reads its source when given no interval. The
// kernel keeps an entry for minutes after its device was last heard, so a device that talks
// at all is not missed.
const DefaultInterval = 30 * time.Second

// pruneEvery is how often Poll forgets old devices.
const pruneEvery = 24 * time.Hour

// Poll calls read every interval (DefaultInterval when 0) until ctx ends, and records what
// it returns. It also forgets old devices (Prune) at its start and once a day. Errors are
// logged, not returned: a failed read is tried again at the next tick. On a gateway the
// daemon passes the kernel's neighbour table, which the packet path already follows
// (datapath/neigh): firmware never talks netlink itself.
func (inv *Inventory) Poll(ctx context.Context, interval time.Duration, read func(context.Context) ([]Sighting, error)) {
	if interval <= 0 {
		interval = DefaultInterval
	}
	if _, err := inv.Prune(ctx); err != nil && ctx.Err() == nil {
		inv.log.Warn("forgetting old devices", "err", err)
	}
	lastPrune := time.Now()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var lastErr string // log a failure when it starts or changes, not at every tick
	for {
		seen, err := read(ctx)
		if err == nil || len(seen) > 0 {
			if oerr := inv.Observe(ctx, seen); oerr != nil {
				if errors.Is(oerr, ErrInvalid) {
					inv.log.Debug("neighbour sightings skipped", "err", oerr)
				} else if err == nil {
					err = oerr
				}
			}
		}
		switch {
		case ctx.Err() != nil:
		case err != nil && err.Error() != lastErr:
			inv.log.Warn("recording the devices on the network", "err", err)
			lastErr = err.Error()
		case err == nil && lastErr != "":
			inv.log.Info("recording the devices on the network again")
			lastErr = ""
		}
		if time.Since(lastPrune) >= pruneEvery {
			if _, err := inv.Prune(ctx); err != nil && ctx.Err() == nil {
				inv.log.Warn("forgetting old devices", "err", err)
			}
			lastPrune = time.Now()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
