package devices

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite the committed fuzz seeds")

// vendorSeeds are the committed corpus of FuzzParseVendors besides the sample file.
// TestFuzzSeeds checks they are on disk; `go test -run TestFuzzSeeds ./firmware/devices
// -update` writes them.
var vendorSeeds = []string{
	"Registry,Assignment,Organization Name,Organization Address\nMA-L,DCA632,Raspberry Pi Trading Ltd,\"Maurice Wilkes Building, Cowley Road Cambridge  GB CB4 0DS \"\n",
	"MA-M,208593B,IOG Products LLC,9737 LURLINE AVENUE\nMA-S,70B3D5F2F,TELEPLATFORMS,\"Polbina st., 3/1\nMoscow  RU 109388 \"\nIAB,0050C27D5,DEUTA-WERKE GmbH,x\n",
	"\ufeffRegistry,Assignment,Organization Name\r\nMA-L,001122,\"Evil\u202eCorp\x07\n  Ltd\",x\r\nMA-L,001122,Second,\r\n",
	"MA-L,AABBCC,\xff\xfe\x00,\nMA-L,\"00\"\"11\",x,\nMA-L,001122,\"unterminated\n",
	"MA-L,FFFFFF,Broadcast Corp,\nMA-S,FFFFFFFFF,All Ones,\nMA-M,000000,Zero,\nCID,0A1B2C,Company ID,\n",
	"# comment\nMA-L,001122," + strings.Repeat("Ü", 300) + ",\nMA-L,001122\n,,,,,,\n\"\n",
}

func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzParseVendors")
	for i, s := range vendorSeeds {
		path := filepath.Join(dir, fmt.Sprintf("seed-%d", i))
		want := "go test fuzz v1\n[]byte(" + strconv.Quote(s) + ")\n"
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != want {
			t.Errorf("seed %s is missing or stale (run with -update): %v", path, err)
		}
	}
}

// FuzzParseVendors: the parser never panics, keeps only names that are safe to show, and
// every block it keeps is found again by Lookup.
func FuzzParseVendors(f *testing.F) {
	sample, err := os.ReadFile(filepath.Join("testdata", "oui-sample.csv"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sample)
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := ParseVendors(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrRegistry) {
				t.Fatalf("error not matching ErrRegistry: %v", err)
			}
			return
		}
		if v.Len() == 0 {
			t.Fatal("no error and no block")
		}
		for i, tbl := range v.blocks {
			bits := prefixBits[i]
			for j, e := range tbl {
				if j > 0 && tbl[j-1]>>nameBits >= e>>nameBits {
					t.Fatalf("table %d not sorted or not unique at %d", bits, j)
				}
				name := v.name(uint32(e & (1<<nameBits - 1)))
				if name == "" || !utf8.ValidString(name) || utf8.RuneCountInString(name) > maxVendorRunes ||
					strings.ContainsFunc(name, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }) ||
					name != strings.TrimSpace(name) {
					t.Fatalf("unsafe name %q", name)
				}
				// The block's first address, unless it has the local bit (then it is private).
				x := (e >> nameBits) << (48 - bits)
				mac := fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", byte(x>>40), byte(x>>32), byte(x>>24), byte(x>>16), byte(x>>8), byte(x))
				if got := v.Lookup(mac); byte(x>>40)&2 == 0 && got == "" {
					t.Fatalf("Lookup(%s) found nothing for a kept block", mac)
				}
			}
		}
	})
}
