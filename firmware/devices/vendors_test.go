package devices

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestVendorsSample(t *testing.T) {
	v := sampleVendors(t)
	for mac, want := range map[string]string{
		"dc:a6:32:12:34:56": "Raspberry Pi Trading Ltd",
		"B8-27-EB-12-34-56": "Raspberry Pi Foundation",
		"f4bd.9e12.3456":    "Cisco Systems, Inc",                                     // quoted, with a comma
		"c4:04:d8:00:00:01": "Aviva Links Inc.",                                       // address over two lines
		"98:ba:39:00:00:01": "Doro AB",                                                // UTF-8 in the address
		"20:85:93:b1:23:45": "IOG Products LLC",                                       // MA-M 208593B
		"20:85:93:d0:00:00": "Shanghai Kenmyond Industrial Network Equipment Co.,Ltd", // MA-M 208593D
		"20:85:93:c0:00:00": "",                                                       // under the RA's MA-L, not assigned: no maker rather than the RA
		"70:b3:d5:f2:ff:ff": "TELEPLATFORMS",                                          // MA-S 70B3D5F2F
		"70:b3:d5:f3:00:00": "",                                                       // next MA-S block, not in the sample
		"70:b3:d5:6f:40:01": "",                                                       // MA-S registered as "Private"
		"60:8b:0e:00:00:01": "Apple, Inc.",
		"88:b2:91:00:00:01": "Apple, Inc.",
		"62:8b:0e:00:00:01": "", // Apple's block with the local bit: a private address
		"00:00:01:00:00:01": "",
		"not a mac":         "",
		"":                  "",
	} {
		if got := v.Lookup(mac); got != want {
			t.Errorf("Lookup(%q) = %q, want %q", mac, got, want)
		}
	}
	// 8 MA-L (two assigned to the IEEE RA itself are left out), 2 MA-M, 1 MA-S ("Private" left out).
	if got := v.Len(); got != 11 {
		t.Errorf("Len = %d, want 11", got)
	}
	if v.names != strings.Join([]string{"Raspberry Pi Trading Ltd", "Raspberry Pi Foundation", "Cisco Systems, Inc", "Apple, Inc.",
		"Intel Corporate", "Doro AB", "Aviva Links Inc.", "IOG Products LLC", "Shanghai Kenmyond Industrial Network Equipment Co.,Ltd",
		"TELEPLATFORMS"}, "") {
		t.Errorf("names are not kept once each: %q", v.names)
	}
	var none *Vendors
	if none.Lookup("dc:a6:32:12:34:56") != "" || none.Len() != 0 {
		t.Error("a nil table knows something")
	}
}

func TestParseVendorsHostile(t *testing.T) {
	parse := func(s string) (*Vendors, error) { return ParseVendors(strings.NewReader(s)) }
	for _, in := range []string{"", "Registry,Assignment,Organization Name,Organization Address\n", "hello world\n",
		"MA-L,XYZXYZ,Foo,\nMA-L,00112,Short,\nMA-M,001122,Too short,\nMA-L,001122,,\nMA-L\n", "\x00\x01\x02", "# only a comment\n"} {
		if _, err := parse(in); !errors.Is(err, ErrRegistry) {
			t.Errorf("ParseVendors(%q): %v; want ErrRegistry", in, err)
		}
	}
	long := strings.Repeat("Ü", 500)
	v, err := parse("\ufeffRegistry,Assignment,Organization Name\n" +
		"MA-L,001122,\"Evil\u202eCorp\x07\n  Ltd\",x\n" +
		"MA-L,001122,Second listing,\n" + // the first listing wins
		"MA-L,A8BBCC,\xff\xfeBroken UTF-8,\n" +
		"MA-L,344455," + long + ",\n" +
		"MA-L,0011223,seven digits in MA-L,\n" +
		"CID,0A1B2C,A company ID,\n" +
		"MA-L,667788,\"unterminated quote,\n")
	if err != nil {
		t.Fatal(err)
	}
	for mac, want := range map[string]string{
		"00:11:22:00:00:00": "EvilCorp Ltd",
		"a8:bb:cc:00:00:00": "Broken UTF-8",
		"0a:1b:2c:00:00:00": "",
	} {
		if got := v.Lookup(mac); got != want {
			t.Errorf("Lookup(%s) = %q, want %q", mac, got, want)
		}
	}
	if got := v.Lookup("34:44:55:00:00:00"); utf8.RuneCountInString(got) != maxVendorRunes || !strings.HasSuffix(got, "…") {
		t.Errorf("a long name is kept as %d runes", utf8.RuneCountInString(got))
	}
}

func TestLoadVendors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("<html>not found</html>\n"), 0o644)
	v, err := LoadVendors(filepath.Join("testdata", "oui-sample.csv"), filepath.Join(dir, "missing.csv"), bad)
	if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, ErrRegistry) {
		t.Errorf("LoadVendors: %v; want it to name the missing and the bad file", err)
	}
	if v == nil || v.Lookup("dc:a6:32:00:00:01") != "Raspberry Pi Trading Ltd" {
		t.Error("the good file was not loaded alongside the bad ones")
	}
}

// TestVendorsRegistry reads Debian's ieee-data files when they are installed.
func TestVendorsRegistry(t *testing.T) {
	if _, err := os.Stat(RegistryFiles[0]); err != nil {
		t.Skipf("no IEEE registry installed (apt-get install ieee-data): %v", err)
	}
	v, err := LoadVendors(RegistryFiles...)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	if v.Len() < 30000 {
		t.Errorf("only %d blocks in the registry", v.Len())
	}
	for mac, want := range map[string]string{"b8:27:eb:00:00:01": "Raspberry Pi Foundation", "dc:a6:32:00:00:01": "Raspberry Pi Trading Ltd"} {
		if got := v.Lookup(mac); got != want {
			t.Errorf("Lookup(%s) = %q, want %q", mac, got, want)
		}
	}
	t.Logf("%d blocks, %d names in %d bytes", v.Len(), len(v.ends), len(v.names))
}

func BenchmarkLoadVendors(b *testing.B) {
	if _, err := os.Stat(RegistryFiles[0]); err != nil {
		b.Skip("no IEEE registry installed")
	}
	for b.Loop() {
		if _, err := LoadVendors(RegistryFiles...); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	v := sampleVendors(b)
	for b.Loop() {
		if v.Lookup("20:85:93:b1:23:45") == "" {
			b.Fatal("not found")
		}
	}
}
