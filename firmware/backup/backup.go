package backup

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

var (
	// ErrPassphrase: the passphrase is not the one the backup was written
	// with (or someone rewrote the header's key fields; see doc.go).
	ErrPassphrase = errors.New("wrong passphrase")
	// ErrWeakPassphrase: Write refuses passphrases shorter than
	// MinPassphraseLength characters or longer than 1024 bytes.
	ErrWeakPassphrase = errors.New("the passphrase must be at least 12 characters and at most 1024 bytes")
	// ErrCorrupt: the file is a backup but damaged, cut short or altered,
	// or its contents break the format's rules.
	ErrCorrupt = errors.New("the backup is damaged or has been altered")
	// ErrFormat: not a schoolgate backup, or a version this firmware cannot read.
	ErrFormat = errors.New("not a schoolgate backup this firmware can read")
	// ErrTooLarge: the backup asks for more than a restore allows.
	ErrTooLarge = errors.New("the backup exceeds the limits of a restore")
)

const (
	// FormatName is Manifest.Format.
	FormatName = "schoolgate-backup"
	// FormatVersion is Manifest.Version.
	FormatVersion = 1
	// MinPassphraseLength is in characters (runes), as in auth: with no
	// second factor in front of an offline attack, length is what counts.
	MinPassphraseLength = 12
	maxPassphraseBytes  = 1024

	// DefaultMaxSize bounds the payload (the tar stream) Read accepts and
	// Write produces unless told otherwise.
	DefaultMaxSize = 4 << 30
	// DefaultMaxFiles bounds the files in a backup.
	DefaultMaxFiles = 1000

	manifestName    = "manifest.json"
	maxManifestSize = 1 << 20
	maxNameLen      = 255
	maxTextLen      = 256
)

// File is one file to put in a backup: Name is its path inside the backup
// (see doc.go for the rules), Path where to read it.
type File struct {
	Name string
	Path string
}

// Manifest describes a backup. It is the first entry of the payload.
type Manifest struct {
	Format          string     `json:"format"`  // FormatName
	Version         int        `json:"version"` // FormatVersion
	Created         time.Time  `json:"created"`
	Appliance       string     `json:"appliance"`
	FirmwareVersion string     `json:"firmware_version"`
	Files           []FileInfo `json:"files"`
}

// FileInfo describes one file of a backup.
type FileInfo struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // lowercase hex
}

// Limits bound what Read accepts. Zero fields take the defaults.
type Limits struct {
	MaxSize  int64 // bytes of payload, tar headers included; DefaultMaxSize
	MaxFiles int   // DefaultMaxFiles

	kdf    kdfCaps // for tests and fuzzing; defaultCaps
	noSync bool    // for fuzzing, where fsync would be most of the time
}

func (l Limits) withDefaults() Limits {
	if l.MaxSize <= 0 {
		l.MaxSize = DefaultMaxSize
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = DefaultMaxFiles
	}
	if l.kdf == (kdfCaps{}) {
		l.kdf = defaultCaps()
	}
	return l
}

// writeOptions are Write's knobs that only tests turn.
type writeOptions struct {
	kdf      kdfParams
	rand     io.Reader
	maxSize  int64
	maxFiles int
}

// Write writes a backup of files to w, encrypted with passphrase. It fills
// in m's Format, Version and Files, and Created when it is zero; the caller
// gives Appliance and FirmwareVersion.
//
// Each file is opened once (all are held open until Write returns),
// hashed, and read again from the same open file while it is written, so a
// file replaced by rename meanwhile (as config saves do) is backed up as it
// was; a file changed in place makes Write fail. Files that change in place, like SQLite databases, should be given
// as a snapshot (VACUUM INTO). After an error w holds an incomplete backup,
// which Read refuses: it cannot be restored by mistake.
func Write(w io.Writer, passphrase string, m Manifest, files []File) error {
	return write(w, passphrase, m, files, writeOptions{kdf: defaultKDF(), rand: rand.Reader, maxSize: DefaultMaxSize, maxFiles: DefaultMaxFiles})
}

func write(w io.Writer, passphrase string, m Manifest, files []File, o writeOptions) error {
	if n := utf8.RuneCountInString(passphrase); n < MinPassphraseLength || len(passphrase) > maxPassphraseBytes {
		return ErrWeakPassphrase
	}
	if len(files) > o.maxFiles {
		return fmt.Errorf("%w: %d files, at most %d", ErrTooLarge, len(files), o.maxFiles)
	}
	if err := checkText("appliance", m.Appliance); err != nil {
		return fmt.Errorf("writing backup: %w", err)
	}
	if err := checkText("firmware version", m.FirmwareVersion); err != nil {
		return fmt.Errorf("writing backup: %w", err)
	}
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.Name
	}
	if err := checkNames(names); err != nil {
		return fmt.Errorf("writing backup: %w", err)
	}

	opened := make([]*os.File, 0, len(files))
	defer func() {
		for _, f := range opened {
			f.Close()
		}
	}()
	m.Format, m.Version = FormatName, FormatVersion
	if m.Created.IsZero() {
		m.Created = time.Now()
	}
	m.Created = m.Created.UTC()
	m.Files = make([]FileInfo, len(files))
	var total int64
	for i, file := range files {
		f, info, err := openRegular(file.Path)
		if err != nil {
			return fmt.Errorf("backing up %s: %w", file.Name, err)
		}
		opened = append(opened, f)
		size := info.Size()
		if size > o.maxSize-total {
			return fmt.Errorf("%w: the files come to more than %d bytes", ErrTooLarge, o.maxSize)
		}
		total += size
		h := sha256.New()
		n, err := io.Copy(h, io.LimitReader(f, size+1))
		if err != nil {
			return fmt.Errorf("backing up %s: %w", file.Name, err)
		}
		if n != size {
			return fmt.Errorf("backing up %s: it changed while being read", file.Name)
		}
		m.Files[i] = FileInfo{Name: file.Name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}
	}
	manifest, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("writing backup: %w", err)
	}
	manifest = append(manifest, '\n')

	s, err := newSealer(w, passphrase, o.kdf, o.rand, o.maxSize)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(s)
	hdr := func(name string, size int64) *tar.Header {
		return &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o600, ModTime: m.Created}
	}
	if err := tw.WriteHeader(hdr(manifestName, int64(len(manifest)))); err != nil {
		return fmt.Errorf("writing backup: %w", err)
	}
	if _, err := tw.Write(manifest); err != nil {
		return fmt.Errorf("writing backup: %w", err)
	}
	for i, fi := range m.Files {
		f := opened[i]
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("backing up %s: %w", fi.Name, err)
		}
		if err := tw.WriteHeader(hdr(fi.Name, fi.Size)); err != nil {
			return fmt.Errorf("writing backup: %w", err)
		}
		h := sha256.New()
		n, err := io.Copy(tw, io.TeeReader(io.LimitReader(f, fi.Size), h))
		if err != nil {
			return fmt.Errorf("backing up %s: %w", fi.Name, err)
		}
		if n != fi.Size || hex.EncodeToString(h.Sum(nil)) != fi.SHA256 {
			return fmt.Errorf("backing up %s: it changed while being backed up", fi.Name)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("writing backup: %w", err)
	}
	return s.Close()
}

func openRegular(name string) (*os.File, os.FileInfo, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !info.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s is not a regular file", name)
	}
	return f, info, nil
}

// Read restores the backup read from r into dir, which must be an empty
// directory, and returns its manifest. It checks the header, the
// passphrase, every chunk and the manifest and files against each other
// before it returns nil; on any error it leaves dir empty. Files are
// created 0600 and directories 0700 (a backup holds keys), and synced to
// disk before Read returns. lim bounds what Read accepts; Limits{} gives
// the defaults.
//
// Nothing is moved into dir before the whole file has been read and
// checked: Read extracts into a temporary directory inside dir and renames
// its entries into dir at the end.
func Read(r io.Reader, passphrase, dir string, lim Limits) (Manifest, error) {
	lim = lim.withDefaults()
	if err := checkEmptyDir(dir); err != nil {
		return Manifest{}, err
	}
	br := bufio.NewReader(r) // chunks are read past its buffer, into the opener's
	op, err := openHeader(br, passphrase, lim.kdf, lim.MaxSize)
	if err != nil {
		return Manifest{}, err
	}
	tr := tar.NewReader(op)
	m, err := readManifest(tr, lim)
	if err == nil {
		err = restoreFiles(op, tr, m, dir, lim)
	}
	if op.err != nil {
		// What the tar reader made of a chunk that failed is beside the
		// point.
		err = op.err
	}
	if err != nil {
		return Manifest{}, err
	}
	return m, nil
}

func checkEmptyDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("restoring backup: %w", err)
	}
	defer d.Close()
	names, err := d.Readdirnames(1)
	switch {
	case err == io.EOF:
		return nil
	case err != nil:
		return fmt.Errorf("restoring backup into %s: %w", dir, err)
	case len(names) > 0:
		return fmt.Errorf("restoring backup into %s: the directory is not empty", dir)
	}
	return nil
}

// readManifest reads and checks the payload's first entry.
func readManifest(tr *tar.Reader, lim Limits) (Manifest, error) {
	hdr, err := tr.Next()
	if err == io.EOF {
		return Manifest{}, fmt.Errorf("%w: the archive is empty", ErrCorrupt)
	}
	if err != nil {
		return Manifest{}, tarError(err)
	}
	if hdr.Name != manifestName || hdr.Typeflag != tar.TypeReg {
		return Manifest{}, fmt.Errorf("%w: the first entry is %q (tar type %q), not the file %s", ErrCorrupt, clip(hdr.Name), hdr.Typeflag, manifestName)
	}
	if hdr.Size > maxManifestSize {
		return Manifest{}, fmt.Errorf("%w: %s is %d bytes, more than %d", ErrTooLarge, manifestName, hdr.Size, maxManifestSize)
	}
	data, err := io.ReadAll(tr)
	if err != nil {
		return Manifest{}, tarError(err)
	}
	return parseManifest(data, lim)
}

// restoreFiles extracts the files m lists into a temporary directory inside
// dir, checks that the payload ends with them, and moves them into dir. On
// error it removes what it created.
func restoreFiles(op *opener, tr *tar.Reader, m Manifest, dir string, lim Limits) (err error) {
	tmp, err := os.MkdirTemp(dir, ".restore-")
	if err != nil {
		return fmt.Errorf("restoring backup: %w", err)
	}
	defer os.RemoveAll(tmp) // already empty and removed on success
	root, err := os.OpenRoot(tmp)
	if err != nil {
		return fmt.Errorf("restoring backup: %w", err)
	}
	defer root.Close()

	h := sha256.New()
	for _, fi := range m.Files {
		hdr, err := tr.Next()
		if err == io.EOF {
			return fmt.Errorf("%w: the archive ends before %s", ErrCorrupt, fi.Name)
		}
		if err != nil {
			return tarError(err)
		}
		switch {
		case hdr.Name != fi.Name:
			return fmt.Errorf("%w: entry %q where the manifest lists %s", ErrCorrupt, clip(hdr.Name), fi.Name)
		case hdr.Typeflag != tar.TypeReg:
			return fmt.Errorf("%w: %s is not a regular file (tar type %q)", ErrCorrupt, fi.Name, hdr.Typeflag)
		case hdr.Size != fi.Size:
			return fmt.Errorf("%w: %s is %d bytes, the manifest says %d", ErrCorrupt, fi.Name, hdr.Size, fi.Size)
		}
		if err := extractFile(tr, root, fi, h, !lim.noSync); err != nil {
			return err
		}
	}
	if hdr, err := tr.Next(); err != io.EOF {
		if err != nil {
			return tarError(err)
		}
		return fmt.Errorf("%w: entry %q is not in the manifest", ErrCorrupt, clip(hdr.Name))
	}
	// Read to the end, or a file cut after the archive's last block would
	// never meet the last-chunk check.
	n, err := io.Copy(io.Discard, op)
	if err != nil {
		return err
	}
	if n != 0 {
		return fmt.Errorf("%w: %d bytes after the end of the archive", ErrCorrupt, n)
	}
	if !lim.noSync {
		if err := syncDirs(root, m.Files); err != nil {
			return fmt.Errorf("restoring backup: %w", err)
		}
	}
	if err := moveInto(tmp, dir, m.Files, !lim.noSync); err != nil {
		return fmt.Errorf("restoring backup: %w", err)
	}
	return nil
}

func extractFile(tr *tar.Reader, root *os.Root, fi FileInfo, h hash.Hash, sync bool) error {
	if d := path.Dir(fi.Name); d != "." {
		if err := root.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("restoring %s: %w", fi.Name, err)
		}
	}
	f, err := root.OpenFile(fi.Name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("restoring %s: %w", fi.Name, err)
	}
	defer f.Close()
	h.Reset()
	n, err := io.Copy(io.MultiWriter(f, h), tr)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return fmt.Errorf("restoring %s: %w", fi.Name, err)
		}
		return tarError(err)
	}
	if n != fi.Size {
		return fmt.Errorf("%w: %s is cut short", ErrCorrupt, fi.Name)
	}
	if hex.EncodeToString(h.Sum(nil)) != fi.SHA256 {
		return fmt.Errorf("%w: %s does not match its SHA-256 in the manifest", ErrCorrupt, fi.Name)
	}
	if sync {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("restoring %s: %w", fi.Name, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("restoring %s: %w", fi.Name, err)
	}
	return nil
}

// tarError reports what archive/tar found wrong with authenticated
// plaintext: a well-formed backup never gives it any.
func tarError(err error) error {
	if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrTooLarge) {
		return err
	}
	return fmt.Errorf("%w: malformed archive: %v", ErrCorrupt, err)
}

// manifestJSON is what parseManifest decodes: pointers tell a missing key
// from a zero value.
type manifestJSON struct {
	Format          *string     `json:"format"`
	Version         *int        `json:"version"`
	Created         *time.Time  `json:"created"`
	Appliance       *string     `json:"appliance"`
	FirmwareVersion *string     `json:"firmware_version"`
	Files           *[]fileJSON `json:"files"`
}

type fileJSON struct {
	Name   *string `json:"name"`
	Size   *int64  `json:"size"`
	SHA256 *string `json:"sha256"`
}

func parseManifest(data []byte, lim Limits) (Manifest, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var mj manifestJSON
	if err := dec.Decode(&mj); err != nil {
		return Manifest{}, fmt.Errorf("%w: %s is not valid: %v", ErrCorrupt, manifestName, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Manifest{}, fmt.Errorf("%w: %s has data after its object", ErrCorrupt, manifestName)
	}
	if mj.Format == nil || *mj.Format != FormatName {
		return Manifest{}, fmt.Errorf("%w: %s does not name the format %s", ErrFormat, manifestName, FormatName)
	}
	if mj.Version == nil || *mj.Version != FormatVersion {
		return Manifest{}, fmt.Errorf("%w: %s has no version or one other than %d", ErrFormat, manifestName, FormatVersion)
	}
	if mj.Created == nil || mj.Appliance == nil || mj.FirmwareVersion == nil || mj.Files == nil {
		return Manifest{}, fmt.Errorf("%w: %s lacks created, appliance, firmware_version or files", ErrCorrupt, manifestName)
	}
	m := Manifest{Format: *mj.Format, Version: *mj.Version, Created: *mj.Created, Appliance: *mj.Appliance, FirmwareVersion: *mj.FirmwareVersion}
	if err := checkText("appliance", m.Appliance); err != nil {
		return Manifest{}, fmt.Errorf("%w: %s: %v", ErrCorrupt, manifestName, err)
	}
	if err := checkText("firmware version", m.FirmwareVersion); err != nil {
		return Manifest{}, fmt.Errorf("%w: %s: %v", ErrCorrupt, manifestName, err)
	}
	files := *mj.Files
	if len(files) > lim.MaxFiles {
		return Manifest{}, fmt.Errorf("%w: %d files, at most %d", ErrTooLarge, len(files), lim.MaxFiles)
	}
	m.Files = make([]FileInfo, len(files))
	names := make([]string, len(files))
	var total int64
	for i, f := range files {
		if f.Name == nil || f.Size == nil || f.SHA256 == nil {
			return Manifest{}, fmt.Errorf("%w: %s: file %d lacks name, size or sha256", ErrCorrupt, manifestName, i)
		}
		fi := FileInfo{Name: *f.Name, Size: *f.Size, SHA256: *f.SHA256}
		if fi.Size < 0 {
			return Manifest{}, fmt.Errorf("%w: %s: file %d has size %d", ErrCorrupt, manifestName, i, fi.Size)
		}
		if fi.Size > lim.MaxSize-total {
			return Manifest{}, fmt.Errorf("%w: the files come to more than %d bytes", ErrTooLarge, lim.MaxSize)
		}
		total += fi.Size
		if !isSHA256Hex(fi.SHA256) {
			return Manifest{}, fmt.Errorf("%w: %s: file %d has a malformed sha256", ErrCorrupt, manifestName, i)
		}
		m.Files[i], names[i] = fi, fi.Name
	}
	if err := checkNames(names); err != nil {
		return Manifest{}, fmt.Errorf("%w: %s: %v", ErrCorrupt, manifestName, err)
	}
	return m, nil
}

func isSHA256Hex(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// checkNames checks names by doc.go's rules, which make them safe to join
// to a directory on any system and leave no two that collide.
func checkNames(names []string) error {
	files := make(map[string]bool, len(names))
	for _, name := range names {
		if err := checkName(name); err != nil {
			return err
		}
		if files[name] {
			return fmt.Errorf("file name %q appears twice", name)
		}
		files[name] = true
	}
	for _, name := range names {
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			if files[d] {
				return fmt.Errorf("file name %q is also the directory of %q", d, name)
			}
		}
	}
	return nil
}

func checkName(name string) error {
	if name == "" || len(name) > maxNameLen {
		return fmt.Errorf("file name %q: want 1 to %d bytes", clip(name), maxNameLen)
	}
	if name == manifestName {
		return fmt.Errorf("file name %q is reserved", name)
	}
	for elem := range strings.SplitSeq(name, "/") {
		if elem == "" || elem == "." || elem == ".." {
			return fmt.Errorf("file name %q: not a clean relative path", clip(name))
		}
		for _, c := range []byte(elem) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
				return fmt.Errorf("file name %q: only A-Z a-z 0-9 . _ - and / are allowed", clip(name))
			}
		}
	}
	return nil
}

// checkText checks the manifest's free text, which the web UI shows and
// the log records.
func checkText(what, s string) error {
	if len(s) > maxTextLen || !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
		return fmt.Errorf("%s %q: want at most %d bytes of UTF-8 without control characters", what, clip(s), maxTextLen)
	}
	return nil
}

// syncDirs syncs the directories extract created, the root included, so
// that the files' names are on disk before they are moved into place.
func syncDirs(root *os.Root, files []FileInfo) error {
	dirs := []string{"."}
	for _, fi := range files {
		for d := path.Dir(fi.Name); d != "."; d = path.Dir(d) {
			dirs = append(dirs, d)
		}
	}
	slices.Sort(dirs)
	for _, d := range slices.Compact(dirs) {
		f, err := root.Open(d)
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// moveInto renames the top-level entries of tmp into dir, removes tmp and
// syncs dir. If a rename fails it moves nothing: it removes what it moved.
func moveInto(tmp, dir string, files []FileInfo, sync bool) error {
	var tops []string
	for _, fi := range files {
		top, _, _ := strings.Cut(fi.Name, "/")
		if !slices.Contains(tops, top) {
			tops = append(tops, top)
		}
	}
	for i, top := range tops {
		if err := os.Rename(filepath.Join(tmp, top), filepath.Join(dir, top)); err != nil {
			for _, moved := range tops[:i] {
				os.RemoveAll(filepath.Join(dir, moved))
			}
			return err
		}
	}
	if err := os.Remove(tmp); err != nil {
		for _, moved := range tops {
			os.RemoveAll(filepath.Join(dir, moved))
		}
		return err
	}
	if !sync {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
