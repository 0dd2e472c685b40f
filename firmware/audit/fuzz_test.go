package audit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// fuzzSeeds are the committed corpus of FuzzVerifyExport. TestFuzzSeeds
// checks they are on disk; `go test -run TestFuzzSeeds -update` writes them.
func fuzzSeeds(t *testing.T) [][]byte {
	golden, err := os.ReadFile(filepath.Join("testdata", "export-v1.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	g := string(golden)
	hdr, rest, _ := strings.Cut(g, "\n")
	first, _, _ := strings.Cut(rest, "\n")
	return [][]byte{
		golden,
		[]byte(hdr + "\n"),
		[]byte(hdr + "\n" + first + "\n" + first + "\n"),
		[]byte(strings.ReplaceAll(g, "\n", "\r\n")),
		[]byte(g[:len(g)/2]),
		[]byte(strings.Replace(g, `"seq":2`, `"seq":9223372036854775807`, 1)),
		[]byte(strings.Replace(g, `"seq":2`, `"seq":-9223372036854775808`, 1)),
		[]byte(strings.Replace(g, `"seq":2`, `"seq":1e400`, 1)),
		[]byte(strings.Replace(hdr, `"entries":5`, `"entries":99999999999999999999`, 1) + "\n" + rest),
		[]byte(strings.Replace(g, `"time":"2026-03-02T10:`, `"time":"+10000-03-02T10:`, 1)),
		[]byte(hdr + "\n" + `{"seq":1,"seq":2,"time":null,"actor":"\ud800","role":"","address":"","action":"","object":"","summary":"","detail":"","reason":"","prev_hash":"","hash":""}` + "\n"),
		[]byte(hdr + "\n" + `{"seq":1}{"seq":2}` + "\n" + "\x00\xff\xfe" + "\n"),
		[]byte(`{"format":"schoolgate-audit","version":1,"entries":0,"head_seq":0,"head":"` + Genesis + `"}`),
		[]byte(`{"format":"schoolgate-audit","version":1,"entries":3,"head_seq":-1,"head":""}` + "\n"),
		[]byte(`{"format":"schoolgate-audit","version":1,"entries":0,"head_seq":0,"head":"x","appliance":"\u202e","exported_at":"yesterday"}` + "\n"),
		[]byte("\ufeff" + g),
		[]byte(""),
	}
}

func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzVerifyExport")
	if *update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i, s := range fuzzSeeds(t) {
			data := "go test fuzz v1\n[]byte(" + strconv.Quote(string(s)) + ")\n"
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%d", i)), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "seed0")); err != nil {
		t.Errorf("missing seed corpus (run with -update): %v", err)
	}
}

// FuzzVerifyExport feeds VerifyExport arbitrary files: exports arrive from
// anywhere (a USB stick, an email), so it must never panic, and its verdict
// must be self-consistent.
func FuzzVerifyExport(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := VerifyExport(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrNotExport) {
				t.Fatalf("error from an in-memory file is not ErrNotExport: %v", err)
			}
			if res != (Result{}) {
				t.Fatalf("error with a result: %+v", res)
			}
			return
		}
		if res.Header == nil {
			t.Fatal("no header in a result")
		}
		if res.OK != (res.Problem == "") {
			t.Fatalf("OK %v with problem %q", res.OK, res.Problem)
		}
		if res.OK {
			h := res.Header
			if res.FirstBroken != 0 || int64(res.Entries) != h.Entries || res.HeadSeq != h.HeadSeq || res.Head != h.Head {
				t.Fatalf("OK but inconsistent with its header: %+v, %+v", res, *h)
			}
			if res.HeadSeq != int64(res.Entries) {
				t.Fatalf("OK with %d entries ending at seq %d", res.Entries, res.HeadSeq)
			}
			return
		}
		if res.FirstBroken < 1 {
			t.Fatalf("broken at entry %d: %q", res.FirstBroken, res.Problem)
		}
	})
}
