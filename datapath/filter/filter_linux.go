package filter

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// bpffsRoot is where bpffs is mounted when the pin path has none.
const bpffsRoot = "/sys/fs/bpf"

// Filter owns the loaded programs and their maps. Its methods are safe for concurrent use.
type Filter struct {
	log      *slog.Logger
	pinPath  string
	mapsDir  string
	linksDir string
	objs     schoolgateObjects

	mu    sync.Mutex           // serialises attach and map replacement
	links map[string]link.Link // by pin path

	// closing is closed by Close and Remove, stopping ReadDrops; readers counts the
	// running ReadDrops calls, readingDrops says one is running (under mu).
	closing      chan struct{}
	readers      sync.WaitGroup
	readingDrops bool

	// noTCX makes attach use clsact and a bpf filter, as on kernels before 6.6; the
	// tests set it to exercise that path on this kernel.
	noTCX bool
}

// New loads the programs. Maps already pinned under cfg.PinPath are reused, so a restarted
// daemon keeps the flow verdicts, rules and counters the attached programs used while it
// was away; a pinned map whose layout no longer matches the programs is replaced.
func New(cfg Config) (*Filter, error) {
	f := &Filter{
		log:     cfg.Logger,
		pinPath: cfg.PinPath,
		links:   map[string]link.Link{},
		closing: make(chan struct{}),
	}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	if f.pinPath == "" {
		f.pinPath = DefaultPinPath
	}
	f.mapsDir = filepath.Join(f.pinPath, "maps")
	f.linksDir = filepath.Join(f.pinPath, "links")

	if err := ensureBPFFS(f.pinPath); err != nil {
		return nil, err
	}
	for _, dir := range []string{f.mapsDir, f.linksDir} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("creating pin directory: %w", err)
		}
	}

	spec, err := loadSchoolgate()
	if err != nil {
		return nil, fmt.Errorf("loading program spec: %w", err)
	}
	f.dropIncompatiblePins(spec)
	opts := &ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: f.mapsDir}}
	if err := spec.LoadAndAssign(&f.objs, opts); err != nil {
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			f.log.Error("verifier rejected program", "log", strings.Join(verr.Log, "\n"))
		}
		return nil, fmt.Errorf("loading programs: %w", err)
	}
	return f, nil
}

// dropIncompatiblePins removes pinned maps a new version of the programs cannot use, and
// those it no longer has (an older version's); loading then creates the missing ones
// afresh. Programs still attached keep their old maps until their links are updated.
func (f *Filter) dropIncompatiblePins(spec *ebpf.CollectionSpec) {
	entries, err := os.ReadDir(f.mapsDir)
	if err != nil {
		f.log.Warn("listing pinned maps", "err", err)
	}
	for _, e := range entries {
		if ms, ok := spec.Maps[e.Name()]; ok && ms.Pinning == ebpf.PinByName {
			continue
		}
		f.log.Warn("removing pinned map no longer used", "map", e.Name())
		if err := os.Remove(filepath.Join(f.mapsDir, e.Name())); err != nil {
			f.log.Error("removing pinned map", "map", e.Name(), "err", err)
		}
	}
	for name, ms := range spec.Maps {
		if ms.Pinning != ebpf.PinByName {
			continue
		}
		path := filepath.Join(f.mapsDir, name)
		m, err := ebpf.LoadPinnedMap(path, nil)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err == nil {
			err = ms.Compatible(m)
			m.Close()
		}
		if err != nil {
			f.log.Warn("replacing pinned map", "map", name, "reason", err)
			if err := os.Remove(path); err != nil {
				f.log.Error("removing pinned map", "map", name, "err", err)
			}
		}
	}
}

// stopReaders makes running ReadDrops calls return and waits for them; later calls
// return at once.
func (f *Filter) stopReaders() {
	f.mu.Lock()
	select {
	case <-f.closing:
	default:
		close(f.closing)
	}
	f.mu.Unlock()
	f.readers.Wait()
}

// ensureBPFFS checks that pinPath lives on a bpffs and mounts one on /sys/fs/bpf when
// the pin path is under it and nothing is mounted there yet (minimal systems, containers).
func ensureBPFFS(pinPath string) error {
	if onBPFFS(pinPath) {
		return nil
	}
	if !strings.HasPrefix(filepath.Clean(pinPath)+"/", bpffsRoot+"/") {
		return fmt.Errorf("pin path %s is not on a bpf filesystem", pinPath)
	}
	if err := os.MkdirAll(bpffsRoot, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", bpffsRoot, err)
	}
	if err := unix.Mount("bpffs", bpffsRoot, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mounting bpffs on %s: %w", bpffsRoot, err)
	}
	if !onBPFFS(pinPath) {
		return fmt.Errorf("pin path %s is not on a bpf filesystem after mounting %s", pinPath, bpffsRoot)
	}
	return nil
}

// onBPFFS reports whether the nearest existing ancestor of path is on a bpffs.
func onBPFFS(path string) bool {
	for p := filepath.Clean(path); ; p = filepath.Dir(p) {
		var st unix.Statfs_t
		err := unix.Statfs(p, &st)
		if err == nil {
			return uint32(st.Type) == unix.BPF_FS_MAGIC
		}
		if !errors.Is(err, unix.ENOENT) || p == "/" {
			return false
		}
	}
}

// Close releases the filter's file descriptors. Programs, links and maps stay pinned and
// attached, so packets are still filtered until the next daemon takes over. ReadDrops
// calls return first; drop events from then on wait in the pinned ring buffer.
func (f *Filter) Close() error {
	f.stopReaders()
	f.mu.Lock()
	defer f.mu.Unlock()
	var errs []error
	for path, l := range f.links {
		errs = append(errs, l.Close())
		delete(f.links, path)
	}
	errs = append(errs, f.objs.Close())
	return errors.Join(errs...)
}

// Remove stops filtering: it detaches the programs from every interface of the current
// network namespace, unpins everything and removes the pin directory.
func (f *Filter) Remove() error {
	f.stopReaders()
	f.mu.Lock()
	defer f.mu.Unlock()
	var errs []error
	for path, l := range f.links {
		errs = append(errs, unpinAndClose(l))
		delete(f.links, path)
	}
	// Links pinned by an earlier daemon for interfaces this one never attached.
	entries, err := os.ReadDir(f.linksDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("listing pinned links: %w", err))
	}
	for _, e := range entries {
		l, err := link.LoadPinnedLink(filepath.Join(f.linksDir, e.Name()), nil)
		if err != nil {
			errs = append(errs, fmt.Errorf("loading pinned link %s: %w", e.Name(), err))
			continue
		}
		errs = append(errs, unpinAndClose(l))
	}
	errs = append(errs, f.removeNetlinkFilters(0, nil))
	errs = append(errs, f.objs.Close())
	if err := os.RemoveAll(f.pinPath); err != nil {
		errs = append(errs, fmt.Errorf("removing pin directory: %w", err))
	}
	return errors.Join(errs...)
}

// unpinAndClose detaches a link: once unpinned, closing its last descriptor releases it.
func unpinAndClose(l link.Link) error {
	err := l.Unpin()
	return errors.Join(err, l.Close())
}
