package lists

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schoolgate/schoolgate/firmware/category"
	"github.com/schoolgate/schoolgate/firmware/config"
)

// Errors of the Manager, checked with errors.Is.
var (
	ErrUnknownList = errors.New("unknown list")
	ErrHTTPStatus  = errors.New("unexpected http status")
	ErrNoCacheDir  = errors.New("no cache directory")
	ErrStarted     = errors.New("already started")
)

const (
	defaultMaxSize         = 512 << 20
	defaultMaxUncompressed = 2 << 30
	defaultInterval        = 24 * time.Hour
	// retryAfterFailure is how soon a failed download is tried again (or the interval, if
	// shorter): soon enough to recover from an outage the same day, rare enough not to
	// hammer a provider that is down.
	retryAfterFailure = 30 * time.Minute
	snapshotFile      = "catalog.snap"
	sourcesDir        = "sources"
)

// Config configures a Manager.
type Config struct {
	Lists []config.List
	// FS is where relative File paths are read (the config directory or the embedded demo
	// files). Absolute paths, and relative ones when FS is nil, are read from the OS.
	FS fs.FS
	// CacheDir holds downloads (last good copy plus ETag/Last-Modified metadata) and the
	// compiled catalog snapshot. Required when any list has a URL.
	CacheDir string
	Client   *http.Client // nil → a client with sane timeouts
	Logger   *slog.Logger
	// OnUpdate is called by the updater goroutine, and by Update, with a rebuilt catalog.
	OnUpdate func(*Catalog)
	Now      func() time.Time // nil → time.Now
	// MaxUncompressed caps the decompressed size of a ut1 archive; 0 means 2 GiB.
	MaxUncompressed int64
	// Reuse is a catalog already in memory, typically the one serving while a changed
	// configuration is prepared. The first Load returns it (sharing its sets, with this
	// Manager's source statuses) when it was made from the same inputs: saving a profile
	// then neither reads the snapshot again nor holds the full UT1 set twice. Nil: none.
	Reuse *Catalog
}

// Manager loads the configured lists, keeps downloads fresh and compiles them into Catalogs.
type Manager struct {
	cfg    Config
	log    *slog.Logger
	client *http.Client
	now    func() time.Time

	buildMu sync.Mutex // serialises fetching and building
	mu      sync.Mutex // guards srcs' status and cat
	srcs    []*source
	cat     *Catalog

	compiles atomic.Int64 // catalogs compiled from sources rather than a snapshot

	startMu sync.Mutex
	cancel  context.CancelFunc
	done    chan struct{}
}

type source struct {
	list      config.List
	status    SourceStatus
	nextCheck time.Time // URL sources: when the updater asks again
	// readErr is the last download or file error, compileErr the last configuration or
	// parse error; LastError shows both.
	readErr, compileErr string
}

func (s *source) setLastError() {
	s.status.LastError = s.readErr
	if s.compileErr != "" {
		if s.status.LastError != "" {
			s.status.LastError += "; "
		}
		s.status.LastError += s.compileErr
	}
}

// New checks cfg and returns a Manager. It does no I/O; call Load.
func New(cfg Config) (*Manager, error) {
	m := &Manager{cfg: cfg, log: cfg.Logger, client: cfg.Client, now: cfg.Now}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.client == nil {
		m.client = defaultClient()
	}
	if m.cfg.MaxUncompressed <= 0 {
		m.cfg.MaxUncompressed = defaultMaxUncompressed
	}
	seen := map[string]bool{}
	for _, l := range cfg.Lists {
		if l.Name == "" {
			return nil, errors.New("list without a name")
		}
		if seen[l.Name] {
			return nil, fmt.Errorf("list %q: duplicate name", l.Name)
		}
		seen[l.Name] = true
		if (l.URL == "") == (l.File == "") {
			return nil, fmt.Errorf("list %q: exactly one of url and file is required", l.Name)
		}
		if l.URL != "" && cfg.CacheDir == "" {
			return nil, fmt.Errorf("list %q: %w for downloads", l.Name, ErrNoCacheDir)
		}
		origin := l.URL
		if origin == "" {
			origin = l.File
		}
		m.srcs = append(m.srcs, &source{list: l, status: SourceStatus{
			Name: l.Name, Format: string(listFormat(l)), Origin: origin, Protected: l.Protected,
		}})
	}
	return m, nil
}

func defaultClient() *http.Client {
	return &http.Client{
		// Long enough for a large archive over a slow school line, short enough that a
		// stalled transfer does not hold the updater for ever.
		Timeout: 30 * time.Minute,
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   30 * time.Second,
			ResponseHeaderTimeout: 2 * time.Minute,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConns:          4,
		},
	}
}

func interval(l config.List) time.Duration {
	if d := time.Duration(l.UpdateInterval); d > 0 {
		return d
	}
	return defaultInterval
}

func maxSize(l config.List) int64 {
	if l.MaxSize > 0 {
		return l.MaxSize
	}
	return defaultMaxSize
}

// Load builds the catalog. Files are read; URLs come from the cache when checked within
// their update interval, otherwise they are fetched. A failed fetch falls back to the last
// good copy, and a source with no copy at all is empty; both are reported in the source's
// LastError and are not fatal, because filtering with most lists beats not filtering.
// When the snapshot in CacheDir was compiled from the same inputs, it is loaded instead of
// compiling. The error is for a cancelled ctx only.
func (m *Manager) Load(ctx context.Context) (*Catalog, error) {
	m.buildMu.Lock()
	defer m.buildMu.Unlock()
	for _, s := range m.srcs {
		if s.list.URL != "" {
			m.fetch(ctx, s, false)
		}
	}
	return m.rebuild(ctx)
}

// Status returns the state of every source, in configuration order.
func (m *Manager) Status() []SourceStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]SourceStatus, len(m.srcs))
	for i, s := range m.srcs {
		out[i] = s.status.clone()
	}
	return out
}

// Catalog returns the last catalog built, or nil before Load.
func (m *Manager) Catalog() *Catalog {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cat
}

// Update fetches one source now (a file is simply read again), rebuilds the catalog and
// passes it to OnUpdate. A failed download is returned and leaves the catalog as it was.
func (m *Manager) Update(ctx context.Context, name string) error {
	var src *source
	for _, s := range m.srcs {
		if s.list.Name == name {
			src = s
		}
	}
	if src == nil {
		return fmt.Errorf("updating %q: %w", name, ErrUnknownList)
	}
	m.buildMu.Lock()
	if src.list.URL != "" {
		if _, err := m.fetch(ctx, src, true); err != nil {
			m.buildMu.Unlock()
			return fmt.Errorf("updating %q: %w", name, err)
		}
	}
	cat, err := m.rebuild(ctx)
	m.buildMu.Unlock()
	if err != nil {
		return fmt.Errorf("updating %q: %w", name, err)
	}
	if m.cfg.OnUpdate != nil {
		m.cfg.OnUpdate(cat)
	}
	return nil
}

// Start runs the updater: each URL source is fetched again after its UpdateInterval, and
// when one changed the catalog is rebuilt and passed to OnUpdate. Call Load first.
func (m *Manager) Start(ctx context.Context) error {
	m.startMu.Lock()
	defer m.startMu.Unlock()
	if m.cancel != nil {
		return ErrStarted
	}
	ctx, m.cancel = context.WithCancel(ctx)
	m.done = make(chan struct{})
	go m.run(ctx, m.done)
	return nil
}

// Close stops the updater and waits for it.
func (m *Manager) Close() error {
	m.startMu.Lock()
	defer m.startMu.Unlock()
	if m.cancel != nil {
		m.cancel()
		<-m.done
	}
	return nil
}

func (m *Manager) run(ctx context.Context, done chan struct{}) {
	defer close(done)
	for {
		next, ok := m.nextDue()
		var wait <-chan time.Time
		var t *time.Timer
		if ok {
			t = time.NewTimer(max(0, next.Sub(m.now())))
			wait = t.C
		}
		select {
		case <-ctx.Done():
			if t != nil {
				t.Stop()
			}
			return
		case <-wait:
		}
		m.updateDue(ctx)
	}
}

func (m *Manager) nextDue() (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var next time.Time
	found := false
	for _, s := range m.srcs {
		if s.list.URL == "" {
			continue
		}
		if !found || s.nextCheck.Before(next) {
			next, found = s.nextCheck, true
		}
	}
	return next, found
}

func (m *Manager) updateDue(ctx context.Context) {
	m.buildMu.Lock()
	now := m.now()
	changed := false
	for _, s := range m.srcs {
		m.mu.Lock()
		due := s.list.URL != "" && !now.Before(s.nextCheck)
		m.mu.Unlock()
		if !due {
			continue
		}
		c, err := m.fetch(ctx, s, true)
		if err == nil && c {
			changed = true
		}
	}
	var cat *Catalog
	if changed {
		var err error
		if cat, err = m.rebuild(ctx); err != nil {
			cat = nil
		}
	}
	m.buildMu.Unlock()
	if cat != nil && m.cfg.OnUpdate != nil {
		m.cfg.OnUpdate(cat)
	}
}

// cacheMeta is stored next to each downloaded copy.
type cacheMeta struct {
	URL          string    `json:"url"`
	ETag         string    `json:"etag,omitempty"`
	LastModified string    `json:"last_modified,omitempty"`
	SHA256       string    `json:"sha256"`
	Size         int64     `json:"size"`
	Updated      time.Time `json:"updated"`
	Checked      time.Time `json:"checked"`
}

// cachePaths names a source's files after the list name plus a hash of it, so any name is a
// safe file name and two names never share files.
func (m *Manager) cachePaths(l config.List) (data, meta string) {
	var b strings.Builder
	for _, r := range strings.ToLower(l.Name) {
		if 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	sum := sha256.Sum256([]byte(l.Name))
	base := filepath.Join(m.cfg.CacheDir, sourcesDir, fmt.Sprintf("%.40s-%x", b.String(), sum[:4]))
	return base + ".data", base + ".json"
}

// readMeta returns the metadata of the cached copy, if there is a usable one for l's URL.
func (m *Manager) readMeta(l config.List) (cacheMeta, bool) {
	dataPath, metaPath := m.cachePaths(l)
	b, err := os.ReadFile(metaPath)
	if err != nil {
		return cacheMeta{}, false
	}
	var meta cacheMeta
	if json.Unmarshal(b, &meta) != nil || meta.URL != l.URL || meta.SHA256 == "" {
		return cacheMeta{}, false
	}
	if fi, err := os.Stat(dataPath); err != nil || fi.Size() != meta.Size {
		return cacheMeta{}, false
	}
	return meta, true
}

// fetch brings the cached copy of a URL source up to date; unless force, only when it was
// last checked more than an interval ago. It reports whether the content changed. The
// status is updated either way.
func (m *Manager) fetch(ctx context.Context, s *source, force bool) (changed bool, err error) {
	l := s.list
	meta, have := m.readMeta(l)
	now := m.now()
	if !force && have && now.Before(meta.Checked.Add(interval(l))) {
		m.setFetchStatus(s, meta, have, nil, meta.Checked.Add(interval(l)))
		return false, nil
	}
	newMeta, changed, err := m.download(ctx, l, meta, have)
	if err != nil {
		m.log.Warn("list download failed", "list", l.Name, "url", l.URL, "err", err, "have_copy", have)
		m.setFetchStatus(s, meta, have, err, now.Add(min(interval(l), retryAfterFailure)))
		return false, err
	}
	if changed {
		m.log.Info("list downloaded", "list", l.Name, "bytes", newMeta.Size)
	}
	m.setFetchStatus(s, newMeta, true, nil, newMeta.Checked.Add(interval(l)))
	return changed, nil
}

func (m *Manager) setFetchStatus(s *source, meta cacheMeta, have bool, err error, next time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s.nextCheck = next
	if have {
		s.status.Updated, s.status.Checked = meta.Updated, meta.Checked
	}
	switch {
	case err == nil:
		s.readErr = ""
	case have:
		s.readErr = fmt.Sprintf("%v (using the copy from %s)", err, meta.Updated.Format(time.RFC3339))
	default:
		s.readErr = fmt.Sprintf("%v (no copy: list is empty)", err)
	}
	s.setLastError()
}

func (m *Manager) download(ctx context.Context, l config.List, old cacheMeta, have bool) (cacheMeta, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.URL, nil)
	if err != nil {
		return old, false, fmt.Errorf("fetching: %w", err)
	}
	req.Header.Set("User-Agent", "schoolgate")
	if have {
		if old.ETag != "" {
			req.Header.Set("If-None-Match", old.ETag)
		}
		if old.LastModified != "" {
			req.Header.Set("If-Modified-Since", old.LastModified)
		}
	}
	resp, err := m.client.Do(req)
	if err != nil {
		return old, false, fmt.Errorf("fetching: %w", err)
	}
	defer resp.Body.Close()
	now := m.now()
	if resp.StatusCode == http.StatusNotModified && have {
		old.Checked = now
		if err := m.writeMeta(l, old); err != nil {
			return old, false, err
		}
		return old, false, nil
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return old, false, fmt.Errorf("fetching: %w %s", ErrHTTPStatus, resp.Status)
	}
	limit := maxSize(l)
	if resp.ContentLength > limit {
		return old, false, fmt.Errorf("fetching: %d bytes, limit %d: %w", resp.ContentLength, limit, ErrTooLarge)
	}
	dataPath, _ := m.cachePaths(l)
	h := sha256.New()
	n, err := writeAtomic(dataPath, func(w io.Writer) (int64, error) {
		n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(resp.Body, limit+1))
		if err == nil && n > limit {
			err = fmt.Errorf("more than %d bytes: %w", limit, ErrTooLarge)
		}
		return n, err
	})
	if err != nil {
		return old, false, fmt.Errorf("fetching: %w", err)
	}
	meta := cacheMeta{
		URL: l.URL, ETag: resp.Header.Get("ETag"), LastModified: resp.Header.Get("Last-Modified"),
		SHA256: hex.EncodeToString(h.Sum(nil)), Size: n, Updated: now, Checked: now,
	}
	changed := !have || meta.SHA256 != old.SHA256
	if !changed {
		meta.Updated = old.Updated
	}
	if err := m.writeMeta(l, meta); err != nil {
		return old, false, err
	}
	return meta, changed, nil
}

func (m *Manager) writeMeta(l config.List, meta cacheMeta) error {
	_, metaPath := m.cachePaths(l)
	b, err := json.Marshal(meta)
	if err != nil {
		return err
	}
	_, err = writeAtomic(metaPath, func(w io.Writer) (int64, error) {
		n, err := w.Write(b)
		return int64(n), err
	})
	return err
}

// writeAtomic writes a file through a temporary file, fsync and rename, so a crash or power
// cut leaves either the old or the new content, never a torn file.
func writeAtomic(name string, write func(io.Writer) (int64, error)) (int64, error) {
	dir := filepath.Dir(name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, fmt.Errorf("creating %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(name)+".tmp*")
	if err != nil {
		return 0, fmt.Errorf("creating temporary file: %w", err)
	}
	tmp := f.Name()
	n, err := write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
		return n, err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // make the rename itself durable
		d.Close()
	}
	return n, nil
}

// openFile opens a File source.
func (m *Manager) openFile(name string) (fs.File, error) {
	if filepath.IsAbs(name) || m.cfg.FS == nil {
		return os.Open(name)
	}
	return m.cfg.FS.Open(path.Clean(strings.TrimPrefix(filepath.ToSlash(name), "./")))
}

// inputs resolves every source to its bytes and their hash, and records read problems of
// file sources in their status.
func (m *Manager) inputs() []input {
	now := m.now()
	ins := make([]input, len(m.srcs))
	for i, s := range m.srcs {
		l := s.list
		ins[i].list = l
		if l.URL != "" {
			meta, ok := m.readMeta(l)
			if !ok {
				continue
			}
			dataPath, _ := m.cachePaths(l)
			ins[i].sum = meta.SHA256
			ins[i].open = func() (io.ReadCloser, error) { return os.Open(dataPath) }
			continue
		}
		sum, mod, err := m.hashFile(l.File)
		m.mu.Lock()
		s.status.Checked = now
		if err != nil {
			s.readErr = err.Error()
		} else {
			s.readErr = ""
			s.status.Updated = mod
		}
		s.setLastError()
		m.mu.Unlock()
		if err != nil {
			m.log.Warn("list file unreadable", "list", l.Name, "file", l.File, "err", err)
			continue
		}
		file := l.File
		ins[i].sum = sum
		ins[i].open = func() (io.ReadCloser, error) { return m.openFile(file) }
	}
	return ins
}

func (m *Manager) hashFile(name string) (string, time.Time, error) {
	f, err := m.openFile(name)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("opening %s: %w", name, err)
	}
	defer f.Close()
	var mod time.Time
	if fi, err := f.Stat(); err == nil {
		mod = fi.ModTime()
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", time.Time{}, fmt.Errorf("reading %s: %w", name, err)
	}
	return hex.EncodeToString(h.Sum(nil)), mod, nil
}

// inputHash identifies everything a compiled catalog depends on: the compiler and
// taxonomy versions, each list's settings including its effective category mapping (so a
// firmware update that changes a mapping recompiles), and each source's bytes.
func (m *Manager) inputHash(ins []input) [32]byte {
	h := sha256.New()
	fmt.Fprintf(h, "schoolgate catalog %d set %d uncompressed %d\n", catalogVersion, setVersion, m.cfg.MaxUncompressed)
	for _, c := range category.IDs() {
		fmt.Fprintf(h, "%s,", c)
	}
	for _, in := range ins {
		l := in.list
		var mapping category.Mapping
		if listFormat(l) == FormatUT1 {
			mapping, _ = effectiveMapping(l)
		}
		writeJSON(h, struct {
			Name, Format, Origin string
			Category             category.ID
			Mapping              string
			Effective            category.Mapping
			Protected            bool
			Sum                  string
		}{l.Name, string(listFormat(l)), l.URL + "|" + l.File, l.Category, l.Mapping, mapping, l.Protected, in.sum})
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func writeJSON(h hash.Hash, v any) {
	b, _ := json.Marshal(v)
	h.Write(b)
	h.Write([]byte{'\n'})
}

// writeSnapshot saves the compiled catalog for the next start; failing only costs a
// compile then.
func (m *Manager) writeSnapshot(path string, sum [32]byte, cat *Catalog, stats []compileStats) {
	_, err := writeAtomic(path, func(w io.Writer) (int64, error) {
		return 0, writeCatalog(w, sum, cat, stats)
	})
	if err != nil {
		m.log.Warn("writing list snapshot", "file", path, "err", err)
	}
}

// rebuild compiles the catalog, or loads the snapshot compiled from the same inputs, and
// makes it current. Called with buildMu held.
func (m *Manager) rebuild(ctx context.Context) (*Catalog, error) {
	start := time.Now()
	ins := m.inputs()
	sum := m.inputHash(ins)
	snapPath := filepath.Join(m.cfg.CacheDir, snapshotFile)

	var cat *Catalog
	var stats []compileStats
	fromSnapshot, reused := false, false
	// Only the first build may reuse: later ones must not keep the old catalog alive.
	if r := m.cfg.Reuse; r != nil {
		m.cfg.Reuse = nil
		if r.inputs == sum && len(r.stats) == len(ins) {
			c := *r
			cat, stats, reused = &c, r.stats, true
			// The snapshot on disk may be another's (a configuration prepared and then
			// discarded wrote its own) or missing: the next start must find this one.
			if m.cfg.CacheDir != "" && !snapshotOf(snapPath, sum) {
				m.writeSnapshot(snapPath, sum, cat, stats)
			}
		}
	}
	if cat == nil && m.cfg.CacheDir != "" {
		if f, err := os.Open(snapPath); err == nil {
			var size int64
			if fi, err := f.Stat(); err == nil {
				size = fi.Size()
			}
			c, st, err := readCatalog(f, size, sum)
			f.Close()
			switch {
			case err != nil:
				m.log.Warn("list snapshot unusable, recompiling", "file", snapPath, "err", err)
			case c != nil && len(st) == len(ins):
				cat, stats, fromSnapshot = c, st, true
				cat.inputs, cat.stats = sum, st
			}
		}
	}
	if cat == nil {
		var err error
		cat, stats, err = compile(ctx, ins, m.cfg.MaxUncompressed)
		if err != nil {
			return nil, fmt.Errorf("compiling lists: %w", err)
		}
		m.compiles.Add(1)
		cat.Built = m.now()
		cat.inputs, cat.stats = sum, stats
		if m.cfg.CacheDir != "" {
			m.writeSnapshot(snapPath, sum, cat, stats)
		}
	}

	m.mu.Lock()
	cat.Sources = make([]SourceStatus, len(m.srcs))
	for i, s := range m.srcs {
		st := stats[i]
		s.status.Entries, s.status.Skipped = st.Entries, st.Skipped
		s.status.Errors, s.status.Categories, s.status.Unmapped = st.Errors, st.Categories, st.Unmapped
		s.compileErr = st.Err
		s.setLastError()
		cat.Sources[i] = s.status.clone()
	}
	m.cat = cat
	m.mu.Unlock()
	m.log.Info("lists loaded", "domains", cat.Domains.Len(), "protected", cat.Protected.Len(),
		"tags", len(cat.Tags), "snapshot", fromSnapshot, "reused", reused, "took", time.Since(start).Round(time.Millisecond))
	return cat, nil
}
