package config

import (
	"bufio"
	"io/fs"
	"strings"
	"testing"

	"github.com/schoolgate/schoolgate/firmware/category"
)

func TestDemo(t *testing.T) {
	cfg, files := Demo()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, got, want string }{
		{"appliance.name", cfg.Appliance.Name, "Demo School"},
		{"dns.listen", cfg.DNS.Listen, "127.0.0.1:5353"},
		{"http.listen", cfg.HTTP.Listen, "127.0.0.1:8080"},
		{"upstream", cfg.DNS.Upstreams[0].Address, "tls://1.1.1.1:853"},
		{"tls_server_name", cfg.DNS.Upstreams[0].TLSServerName, "cloudflare-dns.com"},
		{"block_page_ipv4", cfg.DNS.BlockPageIPv4.String(), "127.0.0.1"},
		{"block_page_ipv6", cfg.DNS.BlockPageIPv6.String(), "::1"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, tt.got, tt.want)
		}
	}

	segs := map[string]string{}
	for _, s := range cfg.Segments {
		for _, p := range s.Subnets {
			segs[p.String()] = s.Name + "/" + s.Profile
		}
	}
	for prefix, want := range map[string]string{
		"127.0.0.1/32": "staff/staff", "::1/128": "staff/staff",
		"127.0.0.2/32": "pupils/pupils", "127.0.0.3/32": "guest/guest",
	} {
		if got := segs[prefix]; got != want {
			t.Errorf("segment of %s: got %q, want %q", prefix, got, want)
		}
	}

	// The pupils profile blocks at least the UK Safer Internet Centre set.
	for _, p := range cfg.Profiles {
		if p.Name != "pupils" {
			continue
		}
		set, err := category.SetOf(p.BlockCategories...)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range category.All() {
			if c.UKSIC && !set.Has(c.ID) {
				t.Errorf("pupils does not block UKSIC category %s", c.ID)
			}
		}
	}

	// Every list file exists, and the names the end-to-end tests rely on are where they
	// expect them.
	byName := map[string]List{}
	for _, l := range cfg.Lists {
		byName[l.Name] = l
		if l.URL != "" {
			t.Errorf("list %s: demo lists must be files, got url %s", l.Name, l.URL)
			continue
		}
		if _, err := fs.Stat(files, l.File); err != nil {
			t.Errorf("list %s: %v", l.Name, err)
		}
	}
	canonical := []struct{ domain, list string }{
		{"pornhub.com", "adult"},
		{"bet365.com", "gambling"},
		{"facebook.com", "social"},
		{"instagram.com", "social"},
		{"tiktok.com", "social"},
		{"roblox.com", "games"},
		{"nordvpn.com", "bypass"},
		{"protected-abuse.test", "protected-test"},
	}
	for _, c := range canonical {
		var in []string
		for _, l := range cfg.Lists {
			if l.Format != FormatIPs && contains(t, files, l, c.domain) {
				in = append(in, l.Name)
			}
		}
		if len(in) != 1 || in[0] != c.list {
			t.Errorf("%s is in lists %v, want only %s", c.domain, in, c.list)
		}
	}
	if !byName["protected-test"].Protected {
		t.Error("protected-test is not protected")
	}
	formats := map[string]bool{}
	for _, l := range cfg.Lists {
		formats[l.Format] = true
	}
	for _, f := range []string{FormatDomains, FormatHosts, FormatAdblock, FormatIPs} {
		if !formats[f] {
			t.Errorf("no demo list of format %s", f)
		}
	}
}

// contains is a minimal reader of the demo formats; the lists package has the real parsers.
func contains(t *testing.T, files fs.FS, l List, domain string) bool {
	t.Helper()
	f, err := files.Open(l.File)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch l.Format {
		case FormatHosts:
			if fields := strings.Fields(line); len(fields) == 2 {
				line = fields[1]
			}
		case FormatAdblock:
			line = strings.TrimSuffix(strings.TrimPrefix(line, "||"), "^")
		}
		if line == domain {
			return true
		}
	}
	return false
}

func TestDemoListHeaders(t *testing.T) {
	_, files := Demo()
	err := fs.WalkDir(files, "lists", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(files, path)
		if err != nil {
			return err
		}
		head := string(data[:min(len(data), 800)])
		if !strings.Contains(head, "schoolgate demo list") {
			t.Errorf("%s: no header comment", path)
		}
		if strings.Contains(head, "UT1 blacklists") && !strings.Contains(head, "CC BY-SA 4.0") {
			t.Errorf("%s: UT1 entries without the license", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
