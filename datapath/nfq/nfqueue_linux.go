package nfq

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// nfQueue is one bound nfqueue: a non-blocking netlink socket of our own. A waiter reads
// it, one read per message into a buffer the queue keeps; verdicts are plain writes to it
// from whichever goroutine decides the flow: the kernel handles a verdict within the
// write, and several verdict messages in one write in order.
type nfQueue struct {
	num uint16
	fd  int // valid while !closed

	mu     sync.RWMutex // writers hold it shared; close exclusively
	closed bool

	buf []byte // the read buffer, used only by the queue's waiter

	// early are packet messages that came in while the queue was being bound, before its
	// waiter started; the waiter handles them first.
	early [][]byte
}

var errQueueClosed = errors.New("nfq: queue closed")

// rcvBufLen is the socket receive buffer for a queue of maxLen packets: messages wait there
// until the queue's waiter reads them, and a full buffer loses packets (the kernel drops
// them, or passes them when failing open). The default (about 200 KB) holds well under a
// hundred; this holds a few thousand, which rides out a pause of tens of milliseconds at
// tens of thousands of flows a second. It is a limit, not an allocation.
func rcvBufLen(maxLen uint32) int { return int(min(max(maxLen, 256), 8192)) * 1024 }

// openQueue binds queue num in the calling thread's network namespace.
func openQueue(num uint16, maxLen uint32, flags uint32) (*nfQueue, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_NETFILTER)
	if err != nil {
		return nil, os.NewSyscallError("socket", err)
	}
	q := &nfQueue{num: num, fd: fd}
	if err := q.setup(maxLen, flags); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	q.buf = make([]byte, recvBufLen)
	return q, nil
}

// setup configures the blocking socket and binds the queue, waiting for the kernel's
// acknowledgement.
func (q *nfQueue) setup(maxLen uint32, flags uint32) error {
	if err := unix.Bind(q.fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return os.NewSyscallError("bind", err)
	}
	// Under load the kernel may find the socket full; we would rather carry on reading
	// than be told so by an error.
	if err := unix.SetsockoptInt(q.fd, unix.SOL_NETLINK, unix.NETLINK_NO_ENOBUFS, 1); err != nil {
		return os.NewSyscallError("setsockopt NETLINK_NO_ENOBUFS", err)
	}
	size := rcvBufLen(maxLen)
	if unix.SetsockoptInt(q.fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size) != nil {
		// Without CAP_NET_ADMIN: as much as net.core.rmem_max allows.
		_ = unix.SetsockoptInt(q.fd, unix.SOL_SOCKET, unix.SO_RCVBUF, size)
	}
	tv := unix.NsecToTimeval(int64(5 * time.Second))
	if err := unix.SetsockoptTimeval(q.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return os.NewSyscallError("setsockopt SO_RCVTIMEO", err)
	}
	seq := uint32(time.Now().UnixNano())
	if _, err := unix.Write(q.fd, configMsg(q.num, seq, maxLen, flags)); err != nil {
		return os.NewSyscallError("write", err)
	}
	buf := make([]byte, recvBufLen)
	for {
		n, err := unix.Read(q.fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("waiting for the kernel's acknowledgement: %w", os.NewSyscallError("read", err))
		}
		for b := buf[:n]; ; {
			m, rest, ok := nextMsg(b)
			if !ok {
				break
			}
			b = rest
			switch {
			case m.typ == nlmsgError && m.seq == seq:
				if err := ackError(m.body); err != nil {
					return fmt.Errorf("binding the queue: %w", err)
				}
				return nil
			case m.typ == nfnlSubsysQueue<<8|nfqnlMsgPacket:
				// Bound already: a packet came before the acknowledgement. It waits for
				// the queue's waiter.
				q.early = append(q.early, append([]byte(nil), m.raw...))
			}
		}
	}
}

// read returns the next datagram from the socket, or EAGAIN. It aliases the queue's
// buffer until the next call.
func (q *nfQueue) read() ([]byte, error) {
	for {
		n, err := rawIO(unix.SYS_READ, q.fd, q.buf)
		if err == unix.EINTR {
			continue
		}
		return q.buf[:n], err
	}
}

// write sends verdict messages.
func (q *nfQueue) write(b []byte) error {
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		return errQueueClosed
	}
	for {
		_, err := rawIO(unix.SYS_WRITE, q.fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("write", err)
		}
		return nil
	}
}

// rawIO reads or writes b on fd as a raw syscall, without telling the scheduler: neither
// ever blocks here (the socket is non-blocking, and the kernel handles a verdict within
// the write), and a syscall the runtime is told of costs more than the bookkeeping: when
// the process was idle it wakes the runtime's monitor thread (sysmon), which then polls
// every 20 µs while the process is busy. On a virtual machine, where a thread switch is
// expensive, that polling cost more than reading and judging the packets.
func rawIO(trap uintptr, fd int, b []byte) (int, error) {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	n, _, e := unix.RawSyscall(trap, uintptr(fd), uintptr(p), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// close closes the socket, which unbinds the queue: the kernel drops the packets it still
// holds for us.
func (q *nfQueue) close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil
	}
	q.closed = true
	return os.NewSyscallError("close", unix.Close(q.fd))
}

// A waiter reads a set of queues on one goroutine, which sleeps in epoll_wait: a blocking
// syscall the runtime knows of, so the thread keeps its P while it waits, and a packet
// wakes that very thread, which reads it and decides the flow. The runtime's own poller
// would park the goroutine instead, and have a packet wake the poller's thread, which then
// schedules the goroutine, often on another thread; and each time the process went idle,
// sysmon would go to sleep, to be woken by the next syscall and poll every 20 µs until the
// process was idle again. On a virtual machine, where a thread switch is expensive, that
// machinery cost as much as the rest of the slow path.
//
// A P held in a syscall keeps sysmon from that sleep, and while sysmon finds nothing to do
// it backs off to a poll every 10 ms. What it does: it takes the P from a goroutine in a
// syscall when every other P is busy (so waiters leave Ps free, see waiters), or when the
// goroutine has not been scheduled for 10 ms (so a waiter yields regularly, see read), and
// each time it takes one it polls every 20 µs again.
//
// After a quiet spell a waiter parks in the runtime's poller instead (park), holding no P,
// so that an idle daemon is idle.
type waiter struct {
	epfd   int
	file   *os.File // epfd, in the runtime's poller
	rc     syscall.RawConn
	stop   int      // an eventfd: Close writes to it
	queues []uint64 // indices into Slowpath.queues
}

// waiters is how many waiters read n queues: half the Ps (GOMAXPROCS), so that the others
// run the rest of the daemon, and at least one.
func waiters(n, procs int) int { return max(1, min(n, procs/2)) }

// stopEvent marks the eventfd in epoll events (queues are marked by their index).
const stopEvent = -1

func newWaiter() (*waiter, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	stop, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, os.NewSyscallError("eventfd", err)
	}
	w := &waiter{epfd: epfd, stop: stop}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(stop)
		unix.Close(epfd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	// An epoll descriptor is readable while it has events to report; non-blocking, it
	// goes into the runtime's poller. (epoll_wait ignores the flag.)
	w.file = os.NewFile(uintptr(epfd), "nfqueue-epoll")
	if w.rc, err = w.file.SyscallConn(); err == nil {
		err = w.add(stop, stopEvent)
	}
	if err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

// add has the waiter watch fd for reading, reporting it as mark.
func (w *waiter) add(fd int, mark int32) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: mark}
	return os.NewSyscallError("epoll_ctl", unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &ev))
}

// wake makes the waiter return from wait, then and ever after.
func (w *waiter) wake() {
	var one [8]byte
	one[0] = 1 // the eventfd counter, in host byte order; any non-zero value will do
	_, _ = unix.Write(w.stop, one[:])
}

// wait blocks until some of the waiter's descriptors are readable, and returns their
// marks' events.
func (w *waiter) wait(events []unix.EpollEvent, timeout int) ([]unix.EpollEvent, error) {
	for {
		n, err := unix.EpollWait(w.epfd, events, timeout)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, os.NewSyscallError("epoll_wait", err)
		}
		return events[:n], nil
	}
}

// park is wait without a timeout, parked in the runtime's poller: the goroutine holds no
// P, and the thread that wakes it is the poller's.
func (w *waiter) park(events []unix.EpollEvent) ([]unix.EpollEvent, error) {
	var n int
	var err error
	perr := w.rc.Read(func(fd uintptr) bool {
		n, err = unix.EpollWait(int(fd), events, 0)
		return err != unix.EINTR && (err != nil || n > 0)
	})
	if perr != nil {
		return nil, perr
	}
	if err != nil {
		return nil, os.NewSyscallError("epoll_wait", err)
	}
	return events[:n], nil
}

func (w *waiter) close() {
	unix.Close(w.stop)
	if w.file != nil {
		w.file.Close()
	} else {
		unix.Close(w.epfd)
	}
}
