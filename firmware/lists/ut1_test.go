package lists

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
)

type tarFile struct {
	name string
	body string
	typ  byte
}

func makeTar(t testing.TB, gz bool, files ...tarFile) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.Writer = &buf
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(&buf)
		w = zw
	}
	tw := tar.NewWriter(w)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: f.typ}
		if f.typ == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Typeflag == tar.TypeSymlink || h.Typeflag == tar.TypeDir {
			h.Size = 0
			h.Linkname = f.body
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(f.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if zw != nil {
		zw.Close()
	}
	return buf.Bytes()
}

func TestParseUT1(t *testing.T) {
	archive := makeTar(t, true,
		tarFile{name: "blacklists/", typ: tar.TypeDir},
		tarFile{name: "blacklists/adult/domains", body: "porn.example\nBAD..x\n1.2.3.4\n"},
		tarFile{name: "blacklists/adult/urls", body: "porn.example/page\n"},
		tarFile{name: "./blacklists/gambling/domains", body: "bet.example\n"},
		tarFile{name: "phishing/domains", body: "phish.example\n"},
		tarFile{name: "blacklists/porn", body: "adult", typ: tar.TypeSymlink},
		tarFile{name: "blacklists/README", body: "hello"},
		tarFile{name: "domains", body: "toplevel.example\n"},
	)
	var got []string
	st, err := ParseUT1(bytes.NewReader(archive), 1<<20, func(c, n string) { got = append(got, c+":"+n) })
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"adult:porn.example", "gambling:bet.example", "phishing:phish.example"}
	if !slices.Equal(got, want) {
		t.Errorf("entries = %q, want %q", got, want)
	}
	if st.Entries != 3 || st.Skipped != 2 || st.Lines != 5 {
		t.Errorf("stats = %+v", st)
	}
	if len(st.Errors) != 2 || !strings.HasPrefix(st.Errors[0].Err, "adult/domains: ") {
		t.Errorf("errors = %+v", st.Errors)
	}

	// A plain tar is accepted too.
	plain := makeTar(t, false, tarFile{name: "blacklists/vpn/domains", body: "vpn.example\n"})
	got = nil
	if _, err := ParseUT1(bytes.NewReader(plain), 1<<20, func(c, n string) { got = append(got, c+":"+n) }); err != nil || !slices.Equal(got, []string{"vpn:vpn.example"}) {
		t.Errorf("plain tar: %q, %v", got, err)
	}
}

func TestParseUT1Bomb(t *testing.T) {
	// 64 MiB of one repeated name compresses to about 64 KiB.
	body := strings.Repeat("aaaaaaaaaaaaaaa.example\n", (64<<20)/24)
	archive := makeTar(t, true, tarFile{name: "blacklists/adult/domains", body: body})
	if len(archive) > 1<<20 {
		t.Fatalf("archive is %d bytes, expected it to compress well", len(archive))
	}
	n := 0
	_, err := ParseUT1(bytes.NewReader(archive), 8<<20, func(string, string) { n++ })
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if n == 0 || n > (8<<20)/24 {
		t.Errorf("added %d names before the cap", n)
	}
}

func TestParseUT1Damaged(t *testing.T) {
	archive := makeTar(t, true, tarFile{name: "blacklists/adult/domains", body: strings.Repeat("x.example\n", 1000)})
	for _, data := range [][]byte{archive[:len(archive)/2], []byte("\x1f\x8bnot gzip"), []byte("not a tar at all, just text")} {
		if _, err := ParseUT1(bytes.NewReader(data), 1<<20, func(string, string) {}); err == nil {
			t.Errorf("no error for damaged archive %q", data[:min(len(data), 16)])
		}
	}
}

func TestUT1Category(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"blacklists/adult/domains", "adult", true},
		{"./blacklists/adult/domains", "adult", true},
		{"adult/domains", "adult", true},
		{"/x/blacklists/Mixed_Adult/domains", "mixed_adult", true},
		{"blacklists/domains", "", false},
		{"domains", "", false},
		{"blacklists/adult/urls", "", false},
		{"blacklists/a b/domains", "", false},
	}
	for _, tt := range tests {
		got, ok := ut1Category(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ut1Category(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
