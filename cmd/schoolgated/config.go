package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/schoolgate/schoolgate/firmware/audit"
	"github.com/schoolgate/schoolgate/firmware/config"
	"github.com/schoolgate/schoolgate/firmware/lists"
	"github.com/schoolgate/schoolgate/firmware/policy"
	"github.com/schoolgate/schoolgate/webui"
)

// The configuration's life in the daemon: where it is read from, and how a change (a reload
// after a hand edit, a save from the web UI) is checked, loaded, swapped in and recorded.
//
// The running configuration is one file: the -config file or, in the demo, the data
// directory's demo-config.yaml once something was saved (the embedded demo until then). Saves
// from the web UI write that file through a config.Store, which keeps the last versions in
// the data directory for the system page's diff and roll-back. Hand edits are picked up by
// SIGHUP; every applied change, whoever made it, is recorded in the audit trail with a diff.

// demoConfigFile is where the demo keeps the configuration saved from the web UI.
const demoConfigFile = "demo-config.yaml"

// configFile is the file the configuration is read from and saved to.
func (o options) configFile() string {
	if o.demo {
		return filepath.Join(o.dataDir, demoConfigFile)
	}
	return o.configPath
}

// configSet is one configuration in its two forms.
type configSet struct {
	base   *config.Config // as in the file: what the web UI edits and saves
	cfg    *config.Config // as run: relative paths resolved, command-line overrides applied
	fsys   fs.FS          // where relative list files are read
	source string         // for people: the file, or "embedded demo"
}

// loadConfig reads the configuration the flags name.
func loadConfig(o options) (configSet, error) {
	var cs configSet
	file := o.configFile()
	raw, err := os.ReadFile(file)
	switch {
	case o.demo && errors.Is(err, fs.ErrNotExist):
		cs.base, cs.fsys = config.Demo()
		cs.source = "embedded demo"
		return cs, cs.resolve(o, "")
	case err != nil:
		return cs, fmt.Errorf("reading the configuration: %w", err)
	}
	if cs.base, err = config.Load(raw); err != nil {
		return cs, fmt.Errorf("loading %s:\n%w", file, err)
	}
	if o.demo {
		_, cs.fsys = config.Demo()
		cs.source = "demo, as saved in " + file
		return cs, cs.resolve(o, "")
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return cs, err
	}
	cs.fsys, cs.source = os.DirFS(filepath.Dir(abs)), abs
	return cs, cs.resolve(o, filepath.Dir(abs))
}

// resolve makes the running form from the base: relative paths resolved against dir (when
// not empty) and the command-line overrides applied.
func (cs *configSet) resolve(o options, dir string) error {
	cfg, err := cs.base.Clone()
	if err != nil {
		return err
	}
	if dir != "" {
		cfg.ResolvePaths(dir)
	}
	if o.upstream != "" {
		u, err := parseUpstream(o.upstream)
		if err != nil {
			return err
		}
		cfg.DNS.Upstreams = []config.Upstream{u}
	}
	if o.listenDNS != "" {
		cfg.DNS.Listen = o.listenDNS
	}
	if o.listenHTTP != "" {
		cfg.HTTP.Listen = o.listenHTTP
	}
	if o.listenBlock != "" {
		cfg.HTTP.BlockPage = o.listenBlock
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("configuration after command-line overrides:\n%w", err)
	}
	cs.cfg = cfg
	return nil
}

// prepared is a configuration with its lists loaded and its policy compiled, ready to be
// swapped in; discard closes its list manager when it is not.
type prepared struct {
	configSet
	lists *lists.Manager
	cat   *lists.Catalog
	snap  *policy.Snapshot
}

func (p *prepared) discard() { p.lists.Close() }

func (d *daemon) prepare(ctx context.Context, cs configSet) (*prepared, error) {
	m, err := d.newLists(cs.cfg, cs.fsys, d.engine.Snapshot().Catalog())
	if err != nil {
		return nil, err
	}
	cat, err := m.Load(ctx)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("loading lists: %w", err)
	}
	snap, err := d.compile(ctx, cs.cfg, cat)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("compiling policy: %w", err)
	}
	return &prepared{configSet: cs, lists: m, cat: cat, snap: snap}, nil
}

// swapIn makes a prepared configuration the running one. Anything that fails leaves the
// running configuration in force; queries are answered throughout (the policy snapshot is
// swapped atomically and CoreDNS hands its sockets over on restart).
func (d *daemon) swapIn(ctx context.Context, p *prepared) error {
	if err := d.dns.Reconfigure(d.dnsConfig(p.cfg)); err != nil {
		p.discard()
		return fmt.Errorf("reconfiguring dns: %w", err)
	}
	if d.gw == nil && p.cfg.Appliance.WAN != "" {
		d.logger.Warn("appliance.wan takes effect at the next restart")
	}
	d.mu.Lock()
	// Under d.mu, so that a list update of the old configuration cannot overtake it.
	if err := d.gw.apply(p.cfg, p.cat); err != nil {
		d.mu.Unlock()
		p.discard()
		return fmt.Errorf("reconfiguring the packet path: %w", err)
	}
	if p.cfg.HTTP.Listen != d.cfg.HTTP.Listen {
		d.logger.Warn("http.listen changes take effect at the next restart", "running", d.cfg.HTTP.Listen)
	}
	old := d.lists
	d.base, d.cfg, d.fsys, d.source, d.loaded, d.lists = p.base, p.cfg, p.fsys, p.source, time.Now(), p.lists
	d.engine.Swap(p.snap)
	d.mu.Unlock()
	old.Close()
	if err := p.lists.Start(ctx); err != nil {
		d.logger.Error("starting list updates", "err", err)
	}
	d.logger.Info("configuration applied", "source", p.source,
		"listed_domains", p.cat.Domains.Len(), "protected_domains", p.cat.Protected.Len())
	releaseMemory() // the old catalog, and the new one's compile garbage
	return nil
}

// compile joins a configuration with the lists and the exceptions approved in the web UI.
// The exceptions are added after validation: one for a profile deleted since still compiles
// (it matches nothing). Failing to read them is logged, and filtering goes on without them.
func (d *daemon) compile(ctx context.Context, cfg *config.Config, cat *lists.Catalog) (*policy.Snapshot, error) {
	active, err := d.exceptions.Active(ctx)
	if err != nil {
		d.logger.Error("reading the active exceptions; compiling without them", "err", err)
	}
	if len(active) > 0 {
		merged := *cfg
		merged.Exceptions = append(slices.Clip(cfg.Exceptions), active...)
		cfg = &merged
	}
	return policy.Compile(cfg, cat)
}

// exceptionsChanged recompiles the policy with the exceptions now active; the exceptions
// store calls it after every approval, creation and revocation.
func (d *daemon) exceptionsChanged() {
	d.mu.Lock()
	snap, err := d.compile(context.Background(), d.cfg, d.engine.Snapshot().Catalog())
	if err == nil {
		d.engine.Swap(snap)
	}
	d.mu.Unlock()
	if err != nil {
		d.logger.Error("compiling policy after an exception changed", "err", err)
	}
	select {
	case d.expiryKick <- struct{}{}:
	default:
	}
}

// expireExceptions ends exceptions when their time is up: it sleeps until the next expiry
// (or an hour, or a change), marks the due ones expired, records each in the audit trail and
// recompiles. The engine already ignores an exception past its expiry, so a late wake-up
// never lets one run over; this keeps the store, the audit trail and the snapshot tidy.
func (d *daemon) expireExceptions(ctx context.Context) {
	for {
		wait := time.Hour
		if next, ok, err := d.exceptions.NextExpiry(ctx); err != nil {
			d.logger.Error("reading the next exception expiry", "err", err)
			wait = time.Minute
		} else if ok {
			wait = min(max(time.Until(next), 0), time.Hour)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-d.expiryKick:
			t.Stop()
		case <-t.C:
		}
		expired, err := d.exceptions.Expire(ctx)
		if err != nil {
			if ctx.Err() == nil {
				d.logger.Error("expiring exceptions", "err", err)
			}
			continue
		}
		for _, e := range expired {
			d.record(ctx, audit.Entry{Action: "exception.expire", Object: fmt.Sprintf("exception %d", e.ID),
				Summary: fmt.Sprintf("exception %d expired: %s of %s for %s %s ended", e.ID, e.Action, e.Domain, e.Scope, e.Target)})
		}
		if len(expired) > 0 {
			d.exceptionsChanged()
		}
	}
}

// protected reports whether a domain is on the protected tier's lists now.
func (d *daemon) protected(domain string) bool {
	_, _, ok := d.engine.Snapshot().Catalog().Protected.Lookup(domain)
	return ok
}

// knownTarget reports whether a profile or segment exists in the running configuration.
func (d *daemon) knownTarget(scope, name string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch scope {
	case config.ScopeProfile:
		return slices.ContainsFunc(d.cfg.Profiles, func(p config.Profile) bool { return p.Name == name })
	case config.ScopeSegment:
		return slices.ContainsFunc(d.cfg.Segments, func(s config.Segment) bool { return s.Name == name })
	}
	return true
}

// reload re-reads the configuration file and lists and swaps them in (SIGHUP).
func (d *daemon) reload(ctx context.Context) (err error) {
	d.logger.Info("reloading configuration")
	d.saveMu.Lock()
	defer d.saveMu.Unlock()
	defer func() {
		d.mu.Lock()
		d.reloadError = ""
		if err != nil {
			d.reloadError = err.Error()
		}
		d.mu.Unlock()
		if err != nil {
			// The last line names the field and the reason; the rest says which file.
			msg := strings.TrimSpace(err.Error())
			last := msg[strings.LastIndex(msg, "\n")+1:]
			d.record(ctx, audit.Entry{Action: "config.reload.refused", Object: d.opts.configFile(),
				Summary: "reload refused, the running configuration stays: " + last, Detail: msg})
		}
	}()
	cs, err := loadConfig(d.opts)
	if err != nil {
		return err
	}
	// The lists are compiled beside the ones serving: start from what is live, not from a
	// heap full of the last minutes' garbage.
	releaseMemory()
	p, err := d.prepare(ctx, cs)
	if err != nil {
		return err
	}
	if err := d.swapIn(ctx, p); err != nil {
		return err
	}
	d.recordConfig(ctx, p.cfg, audit.Entry{Action: "config.reload", Summary: "configuration reloaded"})
	return nil
}

// EditableConfig returns a copy of the configuration as saved, without command-line
// overrides, for the web UI to change and hand to SaveConfig.
func (d *daemon) EditableConfig() (*config.Config, error) {
	d.mu.Lock()
	base := d.base
	d.mu.Unlock()
	return base.Clone()
}

// SaveConfig checks a configuration changed in the web UI, loads its lists, saves it as a
// new version of the configuration file and swaps it in; the change is recorded in the audit
// trail with the person, their reason and a diff. An invalid configuration is refused with its
// *config.ValidationError and nothing is written.
func (d *daemon) SaveConfig(ctx context.Context, base *config.Config, ch webui.Change) (config.Version, error) {
	d.saveMu.Lock()
	defer d.saveMu.Unlock()
	if err := base.Validate(); err != nil {
		return config.Version{}, err
	}
	data, err := config.Marshal(base)
	if err != nil {
		return config.Version{}, err
	}
	cs := configSet{base: base}
	d.mu.Lock()
	cs.fsys, cs.source = d.fsys, d.source
	d.mu.Unlock()
	dir := ""
	if !d.opts.demo {
		dir = filepath.Dir(cs.source)
	} else {
		cs.source = "demo, as saved in " + d.store.Path()
	}
	if err := cs.resolve(d.opts, dir); err != nil {
		return config.Version{}, err
	}
	p, err := d.prepare(ctx, cs)
	if err != nil {
		return config.Version{}, err
	}
	before, _ := os.ReadFile(d.store.Path())
	v, err := d.store.SaveYAML(data, config.VersionMeta{Author: ch.Actor, Comment: ch.Reason})
	if err != nil {
		p.discard()
		return config.Version{}, fmt.Errorf("saving the configuration: %w", err)
	}
	if err := d.swapIn(ctx, p); err != nil {
		// Put the file back as it was, so that a restart runs what is running now.
		if before != nil {
			if _, rerr := d.store.SaveYAML(before, config.VersionMeta{Author: audit.ActorSystem,
				Comment: fmt.Sprintf("version %d could not be applied: %v", v.Number, err)}); rerr != nil {
				d.logger.Error("restoring the configuration file", "err", rerr)
			}
		}
		return config.Version{}, err
	}
	d.recordConfig(ctx, p.cfg, audit.Entry{Actor: ch.Actor, Role: ch.Role, Address: ch.Address,
		Action: "config.change", Summary: fmt.Sprintf("%s (version %d)", ch.Summary, v.Number), Reason: ch.Reason})
	return v, nil
}

// appliedConfig is the data directory's copy of the configuration last applied, normalised,
// so that every change, even one made while the daemon was stopped, is recorded with a diff.
const appliedConfig = "applied-config.yaml"

// recordConfig records e for cfg in the audit trail with a diff against the configuration
// last applied, when they differ, and keeps cfg as the new reference. An entry without an
// actor is the firmware's own.
func (d *daemon) recordConfig(ctx context.Context, cfg *config.Config, e audit.Entry) {
	now, err := config.Marshal(cfg)
	if err != nil {
		d.logger.Error("writing the configuration for the audit trail", "err", err)
		return
	}
	path := filepath.Join(d.opts.dataDir, appliedConfig)
	before, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		d.logger.Error("reading the last applied configuration", "err", err)
	}
	e.Object = d.source
	switch e.Detail = config.Diff("before", "after", before, now); {
	case e.Detail != "" && before == nil:
		e.Summary = "first configuration applied"
		d.record(ctx, e)
	case e.Detail != "":
		d.record(ctx, e)
	case e.Action == "config.reload":
		e.Summary += ": configuration unchanged, lists read again"
		d.record(ctx, e)
	case e.Actor != "":
		e.Summary += ": nothing changed"
		d.record(ctx, e)
	}
	tmp := path + ".tmp"
	werr := os.WriteFile(tmp, now, 0o640)
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		d.logger.Error("keeping the applied configuration", "err", werr)
	}
}
