package config

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultKeep is how many versions a Store keeps when NewStore is given 0.
const DefaultKeep = 50

var (
	// ErrNoConfig means nothing has been saved in the store yet.
	ErrNoConfig = errors.New("no saved configuration")
	// ErrNoVersion means the requested version is not (or no longer) kept.
	ErrNoVersion = errors.New("no such config version")
)

// headerPrefix starts the first line of every stored file. The metadata lives in a YAML
// comment so that each file is still a plain config an operator can copy and load.
const headerPrefix = "# schoolgate config version: "

// VersionMeta says who saved a version, when and why; it is what the audit log shows.
type VersionMeta struct {
	Time    time.Time `json:"time"` // zero means now
	Author  string    `json:"author"`
	Comment string    `json:"comment,omitempty"`
}

// Version identifies one saved configuration. Numbers only ever grow.
type Version struct {
	Number int `json:"version"`
	VersionMeta
}

// Store keeps the current configuration in one file (the one the daemon runs) and the last
// versions as versionsDir/NNNNNN.yaml. Every write is atomic (temporary file, fsync, rename,
// fsync of the directory), so a power cut leaves the old file or the new one, never a mix.
type Store struct {
	file     string
	versions string
	keep     int
	mu       sync.Mutex // serialises saves, so version numbers are unique
}

// NewStore opens (creating the directories if needed) a store whose current configuration
// is file, keeping the last keep versions (DefaultKeep when keep is 0 or less) in
// versionsDir. The file may be written by hand between saves: it need not carry a version
// header.
func NewStore(file, versionsDir string, keep int) (*Store, error) {
	if keep <= 0 {
		keep = DefaultKeep
	}
	for _, d := range []string{filepath.Dir(file), versionsDir} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			return nil, fmt.Errorf("creating config store: %w", err)
		}
	}
	return &Store{file: file, versions: versionsDir, keep: keep}, nil
}

// Path returns the file of the current configuration.
func (s *Store) Path() string { return s.file }

// Save validates cfg and stores it as the current configuration and a new version.
// An invalid cfg is refused with its *ValidationError and nothing is written.
func (s *Store) Save(cfg *Config, meta VersionMeta) (Version, error) {
	if err := cfg.Validate(); err != nil {
		return Version{}, fmt.Errorf("refusing to save: %w", err)
	}
	data, err := Marshal(cfg)
	if err != nil {
		return Version{}, err
	}
	return s.SaveYAML(data, meta)
}

// SaveYAML stores a configuration as written, keeping its comments, after checking that
// Load accepts it. The web UI's raw editor uses it. A version header already on the first
// line (a stored file saved again) is replaced.
func (s *Store) SaveYAML(data []byte, meta VersionMeta) (Version, error) {
	if _, body, err := splitHeader(data); err == nil {
		data = body
	}
	if _, err := Load(data); err != nil {
		return Version{}, fmt.Errorf("refusing to save: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	nums, err := s.numbers()
	if err != nil {
		return Version{}, err
	}
	v := Version{Number: 1, VersionMeta: meta}
	if len(nums) > 0 {
		v.Number = nums[len(nums)-1] + 1
	}
	if v.Time.IsZero() {
		v.Time = time.Now()
	}
	v.Time = v.Time.UTC().Truncate(time.Second)
	content, err := withHeader(v, data)
	if err != nil {
		return Version{}, err
	}
	if err := writeAtomic(s.versionPath(v.Number), content); err != nil {
		return Version{}, err
	}
	if err := writeAtomic(s.file, content); err != nil {
		return Version{}, err
	}
	nums = append(nums, v.Number)
	for len(nums) > s.keep {
		if err := os.Remove(s.versionPath(nums[0])); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return v, fmt.Errorf("removing old config version %d: %w", nums[0], err)
		}
		nums = nums[1:]
	}
	return v, nil
}

// Current returns the current configuration and its version, or ErrNoConfig. A file
// written by hand, without a version header, is version 0.
func (s *Store) Current() (*Config, Version, error) {
	raw, err := os.ReadFile(s.file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, Version{}, ErrNoConfig
	}
	if err != nil {
		return nil, Version{}, fmt.Errorf("reading current config: %w", err)
	}
	v, body, err := splitHeader(raw)
	if errors.Is(err, errNoHeader) {
		v, body, err = Version{}, raw, nil
	}
	if err != nil {
		return nil, Version{}, fmt.Errorf("reading current config: %w", err)
	}
	cfg, err := s.load(body)
	if err != nil {
		return nil, Version{}, fmt.Errorf("loading current config: %w", err)
	}
	return cfg, v, nil
}

// Versions lists the kept versions, newest first.
func (s *Store) Versions() ([]Version, error) {
	nums, err := s.numbers()
	if err != nil {
		return nil, err
	}
	out := make([]Version, 0, len(nums))
	for _, n := range slices.Backward(nums) {
		raw, err := os.ReadFile(s.versionPath(n))
		if errors.Is(err, fs.ErrNotExist) {
			continue // pruned by a concurrent save
		}
		if err != nil {
			return nil, fmt.Errorf("reading config version %d: %w", n, err)
		}
		v, _, err := splitHeader(raw)
		if err != nil {
			return nil, fmt.Errorf("reading config version %d: %w", n, err)
		}
		v.Number = n
		out = append(out, v)
	}
	return out, nil
}

// Load returns a kept version as saved (without the metadata line) and decoded.
func (s *Store) Load(version int) ([]byte, *Config, error) {
	raw, err := os.ReadFile(s.versionPath(version))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("loading config version %d: %w", version, ErrNoVersion)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("loading config version %d: %w", version, err)
	}
	_, body, err := splitHeader(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("loading config version %d: %w", version, err)
	}
	cfg, err := s.load(body)
	if err != nil {
		return nil, nil, fmt.Errorf("loading config version %d: %w", version, err)
	}
	return body, cfg, nil
}

// Rollback makes an old version current by saving its content as a new version, so the
// history stays linear and the rollback itself is recorded.
func (s *Store) Rollback(version int, meta VersionMeta) (Version, error) {
	body, _, err := s.Load(version)
	if err != nil {
		return Version{}, err
	}
	if meta.Comment == "" {
		meta.Comment = fmt.Sprintf("rollback to version %d", version)
	}
	return s.SaveYAML(body, meta)
}

// load resolves relative list files against the directory of the current file, as
// LoadFile does.
func (s *Store) load(body []byte) (*Config, error) {
	cfg, err := Load(body)
	if err != nil {
		return nil, err
	}
	cfg.ResolvePaths(filepath.Dir(s.file))
	return cfg, nil
}

func (s *Store) versionPath(n int) string {
	return filepath.Join(s.versions, fmt.Sprintf("%06d.yaml", n))
}

// numbers lists kept version numbers in ascending order, ignoring temporary files left by
// an interrupted save.
func (s *Store) numbers() ([]int, error) {
	entries, err := os.ReadDir(s.versions)
	if err != nil {
		return nil, fmt.Errorf("listing config versions: %w", err)
	}
	var nums []int
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".yaml")
		if !ok || e.IsDir() {
			continue
		}
		if n, err := strconv.Atoi(name); err == nil && n > 0 {
			nums = append(nums, n)
		}
	}
	slices.Sort(nums)
	return nums, nil
}

func withHeader(v Version, body []byte) ([]byte, error) {
	meta, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding version metadata: %w", err)
	}
	var b bytes.Buffer
	b.WriteString(headerPrefix)
	b.Write(meta)
	b.WriteByte('\n')
	b.Write(body)
	return b.Bytes(), nil
}

var errNoHeader = errors.New("missing version header")

// splitHeader separates the version header line from the configuration.
func splitHeader(raw []byte) (Version, []byte, error) {
	line, body, _ := bytes.Cut(raw, []byte("\n"))
	js, ok := bytes.CutPrefix(line, []byte(headerPrefix))
	if !ok {
		return Version{}, raw, errNoHeader
	}
	var v Version
	if err := json.Unmarshal(js, &v); err != nil {
		return Version{}, nil, fmt.Errorf("reading version header: %w", err)
	}
	return v, body, nil
}

// writeAtomic replaces path with data so that readers and a power cut see either the old
// or the new content.
func writeAtomic(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	w := bufio.NewWriter(f)
	if _, err = w.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = w.Flush(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = f.Chmod(0o640); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("replacing %s: %w", path, err)
	}
	// The rename is only durable once the directory entry is.
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	defer d.Close()
	if err = d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
