package nfq

import (
	"bytes"
	"testing"
	"time"
)

// FuzzSlowPath feeds raw IP packets, as nfqueue hands them over, through the decoder and
// the tracker: whatever arrives, nothing panics, memory stays bounded, and every packet
// held is released by an outcome or the timeout.
func FuzzSlowPath(f *testing.F) {
	f.Add([]byte{0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 20, 0, 2, 203, 0, 113, 100,
		0x9c, 0x40, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0, 0x16, 3, 1, 0, 5})
	f.Add([]byte{0x60, 0, 0, 0, 0, 12, 17, 64, 0xfd, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
		0x20, 1, 0xd, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0x9c, 0x40, 0x01, 0xbb, 0, 12, 0, 0, 0xc0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		dec := newDecoder()
		tr := newTracker(time.Second, 4)
		now := time.Now()
		held := map[uint64]bool{}
		// The input is several packets, separated by 0xff 0x00.
		var id uint64
		for _, raw := range bytes.Split(data, []byte{0xff, 0}) {
			p, err := dec.decode(raw)
			if err != nil {
				continue
			}
			id++
			held[id] = true
			if o := tr.add(id, p, "", now); o != nil {
				for _, x := range o.ids {
					delete(held, x)
				}
			}
		}
		for _, o := range tr.expire(now.Add(time.Second)) {
			for _, x := range o.ids {
				delete(held, x)
			}
		}
		if len(held) != 0 || len(tr.flows) != 0 {
			t.Fatalf("%d packets never released", len(held))
		}
	})
}
