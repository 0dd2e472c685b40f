package lists

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr error
	}{
		{"example.com", "example.com", nil},
		{"Example.COM.", "example.com", nil},
		{"bücher.de", "xn--bcher-kva.de", nil},
		{"BÜCHER.de", "xn--bcher-kva.de", nil},
		{"xn--bcher-kva.de", "xn--bcher-kva.de", nil},
		{"XN--BCHER-KVA.DE", "xn--bcher-kva.de", nil},
		{"_dmarc.example.com", "_dmarc.example.com", nil},
		{"ad_server.example.com", "ad_server.example.com", nil},
		{"-cdn.example.com", "-cdn.example.com", nil},
		{"a.b.c.d.example.co.uk", "a.b.c.d.example.co.uk", nil},
		{"1.example.com", "1.example.com", nil},
		{"例え.jp", "xn--r8jz45g.jp", nil},
		{"", "", ErrInvalidName},
		{".", "", ErrInvalidName},
		{"example..com", "", ErrInvalidName},
		{".example.com", "", ErrInvalidName},
		{"example.com..", "", ErrInvalidName},
		{"exa mple.com", "", ErrInvalidName},
		{"example.com/path", "", ErrInvalidName},
		{"*.example.com", "", ErrInvalidName},
		{strings.Repeat("a", 64) + ".com", "", ErrInvalidName},
		{strings.Repeat("a", 63) + ".com", strings.Repeat("a", 63) + ".com", nil},
		{strings.Repeat("abcdefghi.", 26) + "com", "", ErrInvalidName},
		{"localhost", "", ErrSingleLabel},
		{"zip", "", ErrSingleLabel},
		{"1.2.3.4", "", ErrIPAddress},
		{"1.2.3.400", "", ErrIPAddress},
		{"::1", "", ErrIPAddress},
		{"2001:db8::1", "", ErrIPAddress},
		{"xn--zz.com", "", ErrInvalidName},
	}
	for _, tt := range tests {
		got, err := Normalize(tt.in)
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Normalize(%q) = %q, %v; want error %v", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestNormalizeSuffix(t *testing.T) {
	got, err := NormalizeSuffix("ZIP.")
	if err != nil || got != "zip" {
		t.Errorf("NormalizeSuffix(ZIP.) = %q, %v; want zip", got, err)
	}
	if _, err := NormalizeSuffix("10"); !errors.Is(err, ErrIPAddress) {
		t.Errorf("NormalizeSuffix(10) error = %v, want ErrIPAddress", err)
	}
}
