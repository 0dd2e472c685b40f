package filter

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// ReadDrops calls fn with every drop event the programs report, in order, until ctx is
// done or the filter is closed; then it returns nil. Events that waited in the pinned ring
// buffer while no one was reading (a daemon restart) come first. fn runs on ReadDrops'
// goroutine and holds up reading while it runs, so it should hand the event on and return;
// it must not call Close or Remove. Only one ReadDrops runs at a time: a second call
// returns ErrBusy.
func (f *Filter) ReadDrops(ctx context.Context, fn func(DropEvent)) error {
	f.mu.Lock()
	select {
	case <-f.closing:
		f.mu.Unlock()
		return nil
	default:
	}
	if f.readingDrops {
		f.mu.Unlock()
		return fmt.Errorf("reading drop events: %w", ErrBusy)
	}
	r, err := ringbuf.NewReader(f.objs.DropEvents)
	if err != nil {
		f.mu.Unlock()
		return fmt.Errorf("reading drop events: %w", err)
	}
	f.readingDrops = true
	f.readers.Add(1)
	f.mu.Unlock()

	closeReader := sync.OnceValue(r.Close)
	stop := make(chan struct{})
	defer func() {
		close(stop)
		if err := closeReader(); err != nil {
			f.log.Warn("closing drop event reader", "err", err)
		}
		f.mu.Lock()
		f.readingDrops = false
		f.mu.Unlock()
		f.readers.Done()
	}()
	go func() {
		select {
		case <-ctx.Done():
		case <-f.closing:
		case <-stop:
			return
		}
		closeReader() // interrupts ReadInto
	}()

	var rec ringbuf.Record
	for {
		if err := r.ReadInto(&rec); err != nil {
			if errors.Is(err, ringbuf.ErrClosed) {
				return nil
			}
			return fmt.Errorf("reading drop events: %w", err)
		}
		ev, err := decodeDrop(rec.RawSample)
		if err != nil {
			f.log.Warn("skipping drop event", "err", err)
			continue
		}
		fn(ev)
	}
}

var dropEventSize = binary.Size(schoolgateDropEvent{})

func decodeDrop(b []byte) (DropEvent, error) {
	var raw schoolgateDropEvent
	if len(b) < dropEventSize {
		return DropEvent{}, fmt.Errorf("%d bytes, want %d", len(b), dropEventSize)
	}
	if _, err := binary.Decode(b, binary.NativeEndian, &raw); err != nil {
		return DropEvent{}, err
	}
	mac := raw.Mac
	return DropEvent{
		Time:    monotonicToTime(raw.Time),
		Reason:  Reason(raw.Reason),
		Segment: raw.Segment,
		Profile: raw.Profile,
		Proto:   raw.Proto,
		Client:  netip.AddrPortFrom(netip.AddrFrom16(raw.Client).Unmap(), raw.ClientPort),
		Server:  netip.AddrPortFrom(netip.AddrFrom16(raw.Server).Unmap(), raw.ServerPort),
		MAC:     net.HardwareAddr(mac[:]),
	}, nil
}

// monotonicToTime turns a bpf_ktime_get_ns reading (CLOCK_MONOTONIC) into wall-clock time.
// The offset is taken afresh each time: a board without a real-time clock steps its wall
// clock when NTP first answers.
func monotonicToTime(ns uint64) time.Time {
	now := time.Now()
	mono, err := monotonicNow()
	if err != nil {
		return now
	}
	age := mono - int64(ns)
	if age < 0 {
		age = 0
	}
	return now.Add(-time.Duration(age))
}

// clockBase is one reading of CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns, and the Go
// time at the same moment: of a few tries, the one whose reading Go's two times bracket
// most tightly, paired with the middle of the bracket (a thread preempted between two
// readings would otherwise offset every later one).
var clockBase = sync.OnceValues(func() (base struct {
	ns int64
	at time.Time
}, err error) {
	best := time.Duration(-1)
	for range 5 {
		var ts unix.Timespec
		before := time.Now()
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
			return base, err
		}
		width := time.Since(before)
		if best < 0 || width < best {
			best, base.ns, base.at = width, ts.Nano(), before.Add(width/2)
		}
	}
	return base, nil
})

// monotonicNow reads CLOCK_MONOTONIC in nanoseconds, as bpf_ktime_get_ns does, without a
// system call: Go's own monotonic clock is CLOCK_MONOTONIC too (read through the vDSO), so
// the time elapsed on it since clockBase adds up exactly. unix.ClockGettime is a real
// system call each time, and the slow path would make one per verdict.
func monotonicNow() (int64, error) {
	b, err := clockBase()
	if err != nil {
		return 0, err
	}
	return b.ns + int64(time.Since(b.at)), nil
}
