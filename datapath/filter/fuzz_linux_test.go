package filter

import (
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// FuzzPrograms feeds arbitrary frames to the segment programs, with the test school's
// rules loaded. The verifier already proves memory safety; this checks that no input
// makes a program return something other than pass or drop, or set a mark outside the
// two the nftables table knows.
func FuzzPrograms(f *testing.F) {
	flt := newTestFilter(f)
	rules(f, flt)
	f.Add(frame{src: "10.1.0.5:41000", dst: "93.184.216.34:443", proto: tcp, payload: hello}.bytes(f), uint8(0))
	f.Add(frame{src: "[fd00:20::5]:5000", dst: "[2606:4700::1111]:853", proto: udp, payload: hello,
		ext: repeatExt(3, udp), extFirst: 60}.bytes(f), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		egress := which&1 == 1
		ifindex := []uint32{staffIf, pupilIf, guestIf, 99}[which>>1&3]
		if egress {
			ifindex = egressIf
		}
		action, mark, err := tryRun(progFor(flt, egress), data, ifindex, egress)
		if errors.Is(err, unix.EINVAL) {
			return // frames the kernel's test run will not build an skb from (too short, cut IP header)
		}
		if err != nil {
			t.Fatalf("running program: %v", err)
		}
		if action != actOK && action != actShot {
			t.Fatalf("action %d, want pass or drop", action)
		}
		if mark &^= testMark; mark != 0 && mark != MarkQueue && mark != MarkBlock {
			t.Fatalf("mark %#x", mark)
		}
		if egress && mark != 0 {
			t.Fatalf("egress set mark %#x", mark)
		}
	})
}
