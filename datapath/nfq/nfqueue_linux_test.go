package nfq

import (
	"errors"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// inNewNetns runs fn on a thread of its own in a new network namespace, which goes with
// the thread.
func inNewNetns(t *testing.T, fn func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces and nfqueue")
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			t.Errorf("unshare: %v", err)
			return
		}
		fn()
	}()
	<-done
}

// TestPrivilegedQueueSocket binds a queue on our own socket, as the kernel sees it: a
// second socket cannot take the queue, closing the socket unbinds it, and a verdict the
// kernel refuses comes back as an error message naming the packet.
func TestPrivilegedQueueSocket(t *testing.T) {
	inNewNetns(t, func() {
		q, err := openQueue(5, 64, nfqaCfgFailOpen)
		if err != nil {
			t.Errorf("binding queue 5: %v", err)
			return
		}
		if q2, err := openQueue(5, 64, 0); err == nil {
			q2.close()
			t.Error("a second socket bound queue 5")
		}

		// No packet 12345 waits in the queue.
		if err := q.write(appendVerdict(nil, 5, 12345, nfAccept, 0, false, nil)); err != nil {
			t.Errorf("writing a verdict: %v", err)
		}
		b, err := q.read()
		if err != nil {
			t.Errorf("reading the answer: %v", err)
		} else if m, _, ok := nextMsg(b); !ok || m.typ != nlmsgError || m.seq != 12345 || !errors.Is(ackError(m.body), unix.ENOENT) {
			t.Errorf("answer to a verdict for no packet: %+v, %v", m, ackError(m.body))
		}
		if _, err := q.read(); err != unix.EAGAIN {
			t.Errorf("reading an empty queue: %v, want EAGAIN", err)
		}

		if err := q.close(); err != nil {
			t.Error(err)
		}
		if err := q.write(appendVerdict(nil, 5, 1, nfAccept, 0, false, nil)); !errors.Is(err, errQueueClosed) {
			t.Errorf("verdict on a closed queue: %v", err)
		}
		q, err = openQueue(5, 64, 0)
		if err != nil {
			t.Errorf("binding queue 5 again after closing: %v", err)
			return
		}
		q.close()
	})
}

// TestPrivilegedWaiter: a waiter reports a readable queue by its mark, and its stop event,
// whether it waits in epoll_wait or parks in the runtime's poller.
func TestPrivilegedWaiter(t *testing.T) {
	inNewNetns(t, func() {
		q, err := openQueue(6, 64, 0)
		if err != nil {
			t.Errorf("binding queue 6: %v", err)
			return
		}
		defer q.close()
		w, err := newWaiter()
		if err != nil {
			t.Error(err)
			return
		}
		defer w.close()
		if err := w.add(q.fd, 3); err != nil {
			t.Error(err)
			return
		}
		// A refused verdict makes the queue readable.
		if err := q.write(appendVerdict(nil, 6, 1, nfAccept, 0, false, nil)); err != nil {
			t.Error(err)
		}
		events := make([]unix.EpollEvent, 2)
		ready, err := w.wait(events, -1)
		if err != nil || len(ready) != 1 || ready[0].Fd != 3 {
			t.Errorf("waiting for the queue: %+v, %v", ready, err)
		}
		q.read()
		// The same, parked in the runtime's poller: a readable queue is seen whether it
		// became readable before the call or while parked.
		if err := q.write(appendVerdict(nil, 6, 2, nfAccept, 0, false, nil)); err != nil {
			t.Error(err)
		}
		ready, err = w.park(events)
		if err != nil || len(ready) != 1 || ready[0].Fd != 3 {
			t.Errorf("parked for the queue: %+v, %v", ready, err)
		}
		q.read()
		parked := make(chan []unix.EpollEvent)
		go func() {
			ready, _ := w.park(make([]unix.EpollEvent, 2))
			parked <- ready
		}()
		time.Sleep(10 * time.Millisecond)
		if err := q.write(appendVerdict(nil, 6, 3, nfAccept, 0, false, nil)); err != nil {
			t.Error(err)
		}
		select {
		case ready := <-parked:
			if len(ready) != 1 || ready[0].Fd != 3 {
				t.Errorf("unparked with %+v", ready)
			}
		case <-time.After(5 * time.Second):
			t.Error("a readable queue did not end park")
		}
		q.read()
		stopped := make(chan []unix.EpollEvent)
		go func() {
			ready, _ := w.park(make([]unix.EpollEvent, 2))
			stopped <- ready
		}()
		time.Sleep(10 * time.Millisecond)
		w.wake()
		select {
		case ready := <-stopped:
			if len(ready) != 1 || ready[0].Fd != stopEvent {
				t.Errorf("woken with %+v", ready)
			}
		case <-time.After(5 * time.Second):
			t.Error("wake did not end park")
		}
	})
}

func TestWaiters(t *testing.T) {
	for _, tc := range []struct{ queues, procs, want int }{
		{1, 1, 1}, {1, 8, 1}, {2, 2, 1}, {4, 4, 2}, {4, 8, 4}, {8, 4, 2}, {2, 1, 1},
	} {
		if got := waiters(tc.queues, tc.procs); got != tc.want {
			t.Errorf("waiters(%d queues, %d procs) = %d, want %d", tc.queues, tc.procs, got, tc.want)
		}
	}
}

// TestForgetRecent: decided flows are forgotten recentFor after their last decision, in
// order, without the sweep reading the rest.
func TestForgetRecent(t *testing.T) {
	s, err := New(Config{Policy: nopPolicy{}, Flows: nopFlows{}})
	if err != nil {
		t.Fatal(err)
	}
	f1, f2 := testFlow, testFlow
	f2.Client = netip.AddrPortFrom(f2.Client.Addr(), 40001)
	t0 := time.Now()
	s.remember(f1, FlowAllow, t0)
	s.remember(f2, FlowBlock, t0.Add(time.Second))
	s.remember(f1, FlowBlock, t0.Add(5*time.Second)) // decided again
	check := func(at time.Duration, want ...Flow) {
		t.Helper()
		s.forget(t0.Add(at))
		if len(s.recent) != len(want) {
			t.Errorf("after %v: %d flows remembered, want %d", at, len(s.recent), len(want))
		}
		for _, f := range want {
			if _, ok := s.recent[f]; !ok {
				t.Errorf("after %v: %v forgotten", at, f)
			}
		}
	}
	check(recentFor, f1, f2)                  // kept for recentFor, not longer
	check(recentFor+time.Millisecond, f1, f2) // f1's first decision is old, not its last
	if v := s.recent[f1].v; v != FlowBlock {
		t.Errorf("f1 remembered as %v, want its last verdict", v)
	}
	check(recentFor+1500*time.Millisecond, f1)
	check(recentFor + 5*time.Second + time.Millisecond)
	if len(s.recentQ) != 0 {
		t.Errorf("%d entries left in the queue", len(s.recentQ))
	}
}
