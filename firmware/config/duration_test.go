package config

import (
	"errors"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"90d", 90 * Day},
		{"24h", 24 * time.Hour},
		{"30m", 30 * time.Minute},
		{"10s", 10 * time.Second},
		{"1h30m", 90 * time.Minute},
		{"1d12h", 36 * time.Hour},
		{"2d3h4m5s", 2*Day + 3*time.Hour + 4*time.Minute + 5*time.Second},
		{"0", 0},
		{"0s", 0},
		{" 5m ", 5 * time.Minute},
		{"-1h", -time.Hour},
		{"1.5h", 90 * time.Minute},
		{"500ms", 500 * time.Millisecond},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if err != nil || time.Duration(got) != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tt.in, time.Duration(got), err, tt.want)
		}
	}
}

func TestParseDurationErrors(t *testing.T) {
	for _, in := range []string{"", "60", "d", "1w", "1m1h", "1h1h", "h1", "1 d", "99999999999999999999d", "106751d23h47m17s", "--1h", "1.5d"} {
		if got, err := ParseDuration(in); !errors.Is(err, ErrDuration) {
			t.Errorf("ParseDuration(%q) = %v, %v; want ErrDuration", in, got, err)
		}
	}
}

func TestDurationString(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"},
		{10 * time.Second, "10s"},
		{60 * time.Second, "1m"},
		{90 * time.Minute, "90m"},
		{24 * time.Hour, "1d"},
		{36 * time.Hour, "36h"},
		{365 * Day, "365d"},
		{Day + time.Second, "1d1s"},
		{25 * time.Hour, "25h"},
		{-2 * time.Hour, "-2h"},
		{1500 * time.Millisecond, "1.5s"},
	}
	for _, tt := range tests {
		got := Duration(tt.in).String()
		if got != tt.want {
			t.Errorf("Duration(%v).String() = %q, want %q", tt.in, got, tt.want)
		}
		back, err := ParseDuration(got)
		if err != nil || time.Duration(back) != tt.in {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", got, time.Duration(back), err, tt.in)
		}
	}
}

func TestDurationYAML(t *testing.T) {
	var v struct {
		D Duration `yaml:"d"`
	}
	if err := yaml.Unmarshal([]byte("d: 1h30m\n"), &v); err != nil {
		t.Fatal(err)
	}
	if got, want := time.Duration(v.D), 90*time.Minute; got != want {
		t.Errorf("got %v, want %v", got, want)
	}
	out, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), "d: 90m\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if err := yaml.Unmarshal([]byte("d: [1]\n"), &v); err == nil {
		t.Error("decoding a sequence as a Duration succeeded")
	}
}
