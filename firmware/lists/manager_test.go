package lists

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/schoolgate/schoolgate/firmware/category"
	"github.com/schoolgate/schoolgate/firmware/config"
)

// listServer serves one body with an ETag and counts what it was asked.
type listServer struct {
	mu       sync.Mutex
	body     string
	status   int
	requests int
	notMod   int
}

func (ls *listServer) set(body string, status int) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.body, ls.status = body, status
}

func (ls *listServer) counts() (int, int) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.requests, ls.notMod
}

func (ls *listServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.requests++
	if ls.status != 0 && ls.status != http.StatusOK {
		http.Error(w, "broken", ls.status)
		return
	}
	etag := fmt.Sprintf("%q", fmt.Sprint(len(ls.body), ls.body[:min(len(ls.body), 8)]))
	if r.Header.Get("If-None-Match") == etag {
		ls.notMod++
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("ETag", etag)
	w.Write([]byte(ls.body))
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func testFS(t *testing.T) fstest.MapFS {
	ut1 := makeTar(t, true,
		tarFile{name: "blacklists/adult/domains", body: "porn.example\nshared.example\n"},
		tarFile{name: "blacklists/gambling/domains", body: "bet.example\n"},
		tarFile{name: "blacklists/bank/domains", body: "bank.example\n"},
		tarFile{name: "blacklists/newcat/domains", body: "new1.example\nnew2.example\n"},
		tarFile{name: "blacklists/sports/domains", body: "sport.example\n"},
	)
	return fstest.MapFS{
		"lists/phish.txt":  {Data: []byte("phish.example\nshared.example\nbad..line\n")},
		"lists/ads.hosts":  {Data: []byte("127.0.0.1 localhost\n0.0.0.0 ads.example tracker.example\n")},
		"lists/iwf.txt":    {Data: []byte("||illegal.example^\n")},
		"lists/ut1.tar.gz": {Data: ut1},
		"lists/doh.ips":    {Data: []byte("1.1.1.1\n2606:4700::/32\nnope\n")},
	}
}

func testLists(url string) []config.List {
	ls := []config.List{
		{Name: "phish", File: "lists/phish.txt", Format: "domains", Category: "phishing"},
		{Name: "ads", File: "./lists/ads.hosts", Format: "hosts", Category: "ads"},
		{Name: "iwf", File: "lists/iwf.txt", Format: "adblock", Protected: true},
		{Name: "ut1", File: "lists/ut1.tar.gz", Format: "ut1", Mapping: "ut1",
			Categories: map[string]category.ID{"sports": "games"}},
		{Name: "doh-ips", File: "lists/doh.ips", Format: "ips"},
		{Name: "missing", File: "lists/none.txt", Format: "domains", Category: "adult"},
	}
	if url != "" {
		ls = append(ls, config.List{Name: "remote", URL: url, Format: "domains", Category: "malware",
			UpdateInterval: config.Duration(time.Hour)})
	}
	return ls
}

func newTestManager(t *testing.T, cfg Config) *Manager {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func tagOf(t *testing.T, cat *Catalog, s *Set, name string) Tag {
	t.Helper()
	_, v, ok := s.Lookup(name)
	if !ok {
		t.Fatalf("%s not in set", name)
	}
	return cat.Tags[v]
}

func mustSet(t *testing.T, ids ...category.ID) category.Set {
	s, err := category.SetOf(ids...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestManagerLoad(t *testing.T) {
	srv := &listServer{body: "malware.example\n"}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	clk := &clock{t: time.Date(2026, 9, 1, 8, 0, 0, 0, time.UTC)}
	cfg := Config{Lists: testLists(hs.URL + "/list.txt"), FS: testFS(t), CacheDir: t.TempDir(), Now: clk.now}
	m := newTestManager(t, cfg)
	cat, err := m.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}

	if got, want := tagOf(t, cat, cat.Domains, "www.shared.example"), (Tag{mustSet(t, "adult", "phishing"), []string{"phish", "ut1"}}); got.Categories != want.Categories || !slices.Equal(got.Lists, want.Lists) {
		t.Errorf("shared.example tag = %+v, want %+v", got, want)
	}
	if got := tagOf(t, cat, cat.Domains, "tracker.example"); got.Categories != mustSet(t, "ads") {
		t.Errorf("tracker.example categories = %v", got.Categories)
	}
	if got := tagOf(t, cat, cat.Domains, "sport.example"); got.Categories != mustSet(t, "games") {
		t.Errorf("override mapping: sport.example = %v, want games", got.Categories)
	}
	if got := tagOf(t, cat, cat.Domains, "malware.example"); got.Categories != mustSet(t, "malware") || !slices.Equal(got.Lists, []string{"remote"}) {
		t.Errorf("remote list tag = %+v", got)
	}
	for _, name := range []string{"bank.example", "new1.example", "illegal.example", "localhost"} {
		if _, _, ok := cat.Domains.Lookup(name); ok {
			t.Errorf("%s in Domains", name)
		}
	}
	if got := tagOf(t, cat, cat.Protected, "a.illegal.example"); !slices.Equal(got.Lists, []string{"iwf"}) || got.Categories != 0 {
		t.Errorf("protected tag = %+v", got)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("1.1.1.1/32"), netip.MustParsePrefix("2606:4700::/32")}; !slices.Equal(cat.Addresses["doh-ips"], want) {
		t.Errorf("addresses = %v", cat.Addresses)
	}
	seen := map[string]bool{}
	for _, tg := range cat.Tags {
		k := fmt.Sprint(tg.Categories, tg.Lists)
		if seen[k] {
			t.Errorf("duplicate tag %s", k)
		}
		seen[k] = true
	}

	st := map[string]SourceStatus{}
	for _, s := range m.Status() {
		st[s.Name] = s
	}
	if s := st["ut1"]; s.Entries != 4 || s.Categories["adult"] != 2 || s.Categories["games"] != 1 || s.Unmapped["newcat"] != 2 || len(s.Unmapped) != 1 {
		t.Errorf("ut1 status = %+v", s)
	}
	if s := st["phish"]; s.Entries != 2 || s.Skipped != 1 || len(s.Errors) != 1 || s.LastError != "" || s.Categories["phishing"] != 2 {
		t.Errorf("phish status = %+v", s)
	}
	if s := st["missing"]; s.LastError == "" || s.Entries != 0 {
		t.Errorf("missing file status = %+v", s)
	}
	if s := st["remote"]; s.Entries != 1 || !s.Updated.Equal(clk.now()) || s.Origin != hs.URL+"/list.txt" || s.LastError != "" {
		t.Errorf("remote status = %+v", s)
	}
	if !slices.EqualFunc(cat.Sources, m.Status(), func(a, b SourceStatus) bool { return a.Name == b.Name && a.Entries == b.Entries }) {
		t.Errorf("catalog sources differ from Status")
	}
	if m.compiles.Load() != 1 {
		t.Errorf("compiles = %d", m.compiles.Load())
	}

	// A second manager within the update interval neither downloads nor compiles.
	m2 := newTestManager(t, cfg)
	cat2, err := m2.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if req, _ := srv.counts(); req != 1 {
		t.Errorf("requests = %d, want 1 (cache fresh)", req)
	}
	if m2.compiles.Load() != 0 {
		t.Errorf("snapshot not reused: %d compiles", m2.compiles.Load())
	}
	if cat2.Domains.Len() != cat.Domains.Len() || len(cat2.Tags) != len(cat.Tags) || !cat2.Built.Equal(cat.Built) {
		t.Errorf("snapshot catalog differs: %d/%d domains, %d/%d tags", cat2.Domains.Len(), cat.Domains.Len(), len(cat2.Tags), len(cat.Tags))
	}
	if s := m2.Status()[3]; s.Unmapped["newcat"] != 2 || s.Categories["adult"] != 2 {
		t.Errorf("snapshot lost stats: %+v", s)
	}
	if _, v, ok := cat2.Domains.Lookup("shared.example"); !ok || cat2.Tags[v].Categories != mustSet(t, "adult", "phishing") {
		t.Errorf("snapshot lookup wrong")
	}

	// After the interval: a conditional request, 304, still no compile.
	clk.add(2 * time.Hour)
	m3 := newTestManager(t, cfg)
	if _, err := m3.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if req, nm := srv.counts(); req != 2 || nm != 1 {
		t.Errorf("requests %d, 304s %d; want 2, 1", req, nm)
	}
	if m3.compiles.Load() != 0 {
		t.Errorf("recompiled after 304")
	}
	if s := m3.Status()[6]; !s.Checked.Equal(clk.now()) || s.Updated.Equal(clk.now()) {
		t.Errorf("after 304: checked %v updated %v", s.Checked, s.Updated)
	}

	// A changed file recompiles.
	cfg.FS.(fstest.MapFS)["lists/phish.txt"] = &fstest.MapFile{Data: []byte("phish2.example\n")}
	m4 := newTestManager(t, cfg)
	cat4, _ := m4.Load(context.Background())
	if m4.compiles.Load() != 1 {
		t.Errorf("changed file did not recompile")
	}
	if _, _, ok := cat4.Domains.Lookup("phish2.example"); !ok {
		t.Errorf("new file content missing")
	}
}

func TestManagerDownloadFailureKeepsCopy(t *testing.T) {
	srv := &listServer{body: "old.example\n"}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	clk := &clock{t: time.Date(2026, 9, 1, 8, 0, 0, 0, time.UTC)}
	var updates []*Catalog
	cfg := Config{
		Lists:    []config.List{{Name: "remote", URL: hs.URL, Format: "domains", Category: "malware"}},
		CacheDir: t.TempDir(), Now: clk.now,
		OnUpdate: func(c *Catalog) { updates = append(updates, c) },
	}
	m := newTestManager(t, cfg)
	if _, err := m.Load(context.Background()); err != nil {
		t.Fatal(err)
	}

	srv.set("", http.StatusInternalServerError)
	err := m.Update(context.Background(), "remote")
	if !errors.Is(err, ErrHTTPStatus) {
		t.Errorf("Update err = %v, want ErrHTTPStatus", err)
	}
	if len(updates) != 0 {
		t.Errorf("OnUpdate called after failure")
	}
	s := m.Status()[0]
	if !strings.Contains(s.LastError, "500") || !strings.Contains(s.LastError, "using the copy") {
		t.Errorf("LastError = %q", s.LastError)
	}
	if _, _, ok := m.Catalog().Domains.Lookup("old.example"); !ok {
		t.Errorf("catalog lost the last good copy")
	}

	// A restart after the interval while the server is down still uses the copy.
	clk.add(48 * time.Hour)
	m2 := newTestManager(t, cfg)
	cat, _ := m2.Load(context.Background())
	if _, _, ok := cat.Domains.Lookup("old.example"); !ok || m2.Status()[0].LastError == "" {
		t.Errorf("restart with server down: found %v, status %+v", ok, m2.Status()[0])
	}

	// Recovery: Update fetches, rebuilds and calls OnUpdate.
	srv.set("new.example\n", http.StatusOK)
	if err := m2.Update(context.Background(), "remote"); err != nil {
		t.Fatal(err)
	}
	if len(updates) != 1 {
		t.Fatalf("OnUpdate called %d times", len(updates))
	}
	if _, _, ok := updates[0].Domains.Lookup("new.example"); !ok {
		t.Errorf("update missing new content")
	}
	if _, _, ok := updates[0].Domains.Lookup("old.example"); ok {
		t.Errorf("update kept old content")
	}
	if s := m2.Status()[0]; s.LastError != "" {
		t.Errorf("LastError after recovery = %q", s.LastError)
	}
	if err := m2.Update(context.Background(), "nope"); !errors.Is(err, ErrUnknownList) {
		t.Errorf("Update(nope) = %v", err)
	}
}

func TestManagerSizeLimit(t *testing.T) {
	srv := &listServer{body: strings.Repeat("a.example\n", 100)}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	// Without Content-Length the limit is enforced while streaming.
	chunked := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for range 100 {
			w.Write([]byte("b.example\n"))
			w.(http.Flusher).Flush()
		}
	}))
	defer chunked.Close()
	dir := t.TempDir()
	cfg := Config{
		Lists: []config.List{
			{Name: "big", URL: hs.URL, Format: "domains", MaxSize: 100},
			{Name: "chunked", URL: chunked.URL, Format: "domains", MaxSize: 100},
			{Name: "ok", URL: hs.URL, Format: "domains", MaxSize: 1000},
		},
		CacheDir: dir,
	}
	m := newTestManager(t, cfg)
	cat, _ := m.Load(context.Background())
	st := m.Status()
	for _, s := range st[:2] {
		if !strings.Contains(s.LastError, "too large") || !strings.Contains(s.LastError, "no copy") || s.Entries != 0 {
			t.Errorf("%s status = %+v", s.Name, s)
		}
	}
	if st[2].Entries != 100 || cat.Domains.Len() != 1 {
		t.Errorf("ok list: %+v", st[2])
	}
	files, _ := os.ReadDir(filepath.Join(dir, sourcesDir))
	for _, f := range files {
		if strings.Contains(f.Name(), ".tmp") {
			t.Errorf("temporary file left: %s", f.Name())
		}
	}
}

func TestManagerCorruptSnapshot(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Lists: testLists(""), FS: testFS(t), CacheDir: dir}
	m := newTestManager(t, cfg)
	if _, err := m.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, snapshotFile)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-10] ^= 0xff
	os.WriteFile(p, data, 0o644)
	m2 := newTestManager(t, cfg)
	cat, err := m2.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if m2.compiles.Load() != 1 || cat.Domains.Len() == 0 {
		t.Errorf("corrupt snapshot: compiles %d, domains %d", m2.compiles.Load(), cat.Domains.Len())
	}
}

func TestManagerStartUpdates(t *testing.T) {
	srv := &listServer{body: "v1.example\n"}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	got := make(chan *Catalog, 10)
	m := newTestManager(t, Config{
		Lists: []config.List{{Name: "remote", URL: hs.URL, Format: "domains",
			UpdateInterval: config.Duration(50 * time.Millisecond)}},
		CacheDir: t.TempDir(),
		OnUpdate: func(c *Catalog) { got <- c },
	})
	if _, err := m.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := m.Start(context.Background()); !errors.Is(err, ErrStarted) {
		t.Errorf("second Start = %v", err)
	}
	srv.set("v2.example\n", http.StatusOK)
	select {
	case c := <-got:
		if _, _, ok := c.Domains.Lookup("v2.example"); !ok {
			t.Errorf("updated catalog lacks v2.example")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no OnUpdate from the updater")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	// Unchanged content (304s) must not call OnUpdate; after Close nothing runs.
	select {
	case <-got:
		t.Errorf("OnUpdate after Close")
	case <-time.After(150 * time.Millisecond):
	}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"no name", Config{Lists: []config.List{{File: "x"}}}},
		{"duplicate", Config{Lists: []config.List{{Name: "a", File: "x"}, {Name: "a", File: "y"}}}},
		{"both", Config{Lists: []config.List{{Name: "a", File: "x", URL: "http://x"}}}},
		{"url without cache", Config{Lists: []config.List{{Name: "a", URL: "http://x"}}}},
	}
	for _, tt := range tests {
		if _, err := New(tt.cfg); err == nil {
			t.Errorf("%s: New accepted", tt.name)
		}
	}
}

// A manager for a changed configuration whose lists did not change takes the serving
// catalog as it is: no snapshot read, no second copy of the sets. Its later builds, and a
// manager whose lists did change, build their own.
func TestManagerReusesCatalog(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Lists: testLists(""), FS: testFS(t), CacheDir: dir}
	m := newTestManager(t, cfg)
	cat, err := m.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, snapshotFile)); err != nil {
		t.Fatal(err)
	}

	cfg.Reuse = cat
	m2 := newTestManager(t, cfg)
	cat2, err := m2.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if cat2.Domains != cat.Domains || cat2.Protected != cat.Protected || m2.compiles.Load() != 0 {
		t.Errorf("not reused: same sets %v, compiles %d", cat2.Domains == cat.Domains, m2.compiles.Load())
	}
	if s := m2.Status()[3]; s.Entries != 4 || s.Unmapped["newcat"] != 2 {
		t.Errorf("a reused catalog's source status: %+v", s)
	}
	// The snapshot removed above (or one another configuration left) is written again from
	// the reused catalog, for the next start.
	m4 := newTestManager(t, Config{Lists: cfg.Lists, FS: cfg.FS, CacheDir: dir})
	if _, err := m4.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if m4.compiles.Load() != 0 {
		t.Error("the snapshot was not rewritten when the catalog was reused")
	}

	// The same manager's next build, after a list changed, compiles.
	cfg.FS.(fstest.MapFS)["lists/phish.txt"] = &fstest.MapFile{Data: []byte("phish2.example\n")}
	cat3, err := m2.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := cat3.Domains.Lookup("phish2.example"); !ok || m2.compiles.Load() != 1 {
		t.Errorf("after the list changed: phish2.example listed %v, compiles %d", ok, m2.compiles.Load())
	}

	// A new manager given the old catalog, with a list changed since, builds its own (from
	// the snapshot m2 wrote).
	m3 := newTestManager(t, cfg)
	cat4, err := m3.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if cat4.Domains == cat.Domains {
		t.Errorf("a stale catalog was reused")
	}
	if _, _, ok := cat4.Domains.Lookup("phish2.example"); !ok {
		t.Error("the changed list's name is missing")
	}
}
