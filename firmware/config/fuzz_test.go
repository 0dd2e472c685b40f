package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad feeds Load arbitrary documents: it reads uploads from the web UI, so it must
// never panic, and whatever it accepts must survive a Marshal round trip unchanged.
func FuzzLoad(f *testing.F) {
	f.Add(DemoYAML())
	f.Add([]byte(minimal))
	for _, p := range []string{
		filepath.Join("..", "..", "docs", "examples", "school.yaml"),
		filepath.Join("testdata", "invalid.yaml"),
	} {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Load(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		out, err := Marshal(cfg)
		if err != nil {
			t.Fatalf("Marshal of a loaded config: %v", err)
		}
		again, err := Load(out)
		if err != nil {
			t.Fatalf("Load(Marshal(cfg)): %v\n%s", err, out)
		}
		if !equal(cfg, again) {
			t.Fatalf("round trip changed the config:\n%s", out)
		}
	})
}
