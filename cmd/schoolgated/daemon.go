package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schoolgate/schoolgate/firmware/audit"
	"github.com/schoolgate/schoolgate/firmware/auth"
	"github.com/schoolgate/schoolgate/firmware/backup"
	"github.com/schoolgate/schoolgate/firmware/config"
	"github.com/schoolgate/schoolgate/firmware/devices"
	"github.com/schoolgate/schoolgate/firmware/dnsfilter"
	"github.com/schoolgate/schoolgate/firmware/dnssvc"
	"github.com/schoolgate/schoolgate/firmware/eventlog"
	"github.com/schoolgate/schoolgate/firmware/exceptions"
	"github.com/schoolgate/schoolgate/firmware/lists"
	"github.com/schoolgate/schoolgate/firmware/policy"
	"github.com/schoolgate/schoolgate/firmware/tlscert"
	"github.com/schoolgate/schoolgate/webui"
)

// daemon holds the running components. They are started in dependency order (event log,
// lists, policy, DNS, packet path, HTTP) and closed in reverse.
type daemon struct {
	opts    options
	logger  *slog.Logger
	started time.Time

	events     *eventlog.Log
	audit      *audit.Log
	auth       *auth.Store
	engine     *policy.Engine
	filter     *dnsfilter.Filter
	dns        *dnssvc.Service
	gw         *gateway // nil when the configuration names no WAN: DNS filtering only
	http       *webui.Server
	cert       *tlscert.Manager   // the web UI's certificate; nil without http.tls
	block      *webui.BlockServer // nil without http.block_page
	blockError string             // why the block page is not served

	exceptions *exceptions.Store
	devices    *devices.Inventory

	background     sync.WaitGroup // the exceptions' expiry
	stopBackground context.CancelFunc
	expiryKick     chan struct{} // wakes the expiry loop when exceptions change
	restart        chan struct{} // the web UI asked for a restart
	restarting     atomic.Bool
	stopping       atomic.Bool      // close has begun: /api/health says "stopping"
	ready          atomic.Bool      // every part is started: /api/health says "ok"
	restored       *backup.Manifest // the backup applied at this start, if any
	ups            upstreams        // the last probe of the upstream resolvers

	store  *config.Store // the configuration file and its kept versions
	saveMu sync.Mutex    // one reload or save at a time

	mu          sync.Mutex     // guards what a reload, a save or a list update replaces
	base        *config.Config // the configuration as saved; cfg is it as run
	cfg         *config.Config
	fsys        fs.FS
	source      string
	loaded      time.Time
	lists       *lists.Manager
	reloadError string
}

func newDaemon(o options, logger *slog.Logger) (*daemon, error) {
	if err := os.MkdirAll(o.dataDir, 0o750); err != nil {
		return nil, fmt.Errorf("creating data directory: %w", err)
	}
	restored, err := applyPendingRestore(o, logger)
	if err != nil {
		// The appliance must come up: the staged backup is put aside for the technician,
		// and whatever is in place now runs (the files already moved are in before-restore-*).
		failed := filepath.Join(o.dataDir, "restore-failed-"+time.Now().UTC().Format("20060102-150405"))
		logger.Error("the restored backup could not be applied; starting with the files in place", "err", err, "backup_kept_in", failed)
		if rerr := os.Rename(filepath.Join(o.dataDir, restorePending), failed); rerr != nil {
			logger.Error("putting the failed restore aside", "err", rerr)
		}
	}
	cs, err := loadConfig(o)
	if err != nil {
		return nil, err
	}
	d := &daemon{opts: o, logger: logger, restored: restored, expiryKick: make(chan struct{}, 1), restart: make(chan struct{}, 1), base: cs.base, cfg: cs.cfg, fsys: cs.fsys, source: cs.source, loaded: time.Now()}
	d.store, err = config.NewStore(o.configFile(), filepath.Join(o.dataDir, "config-versions"), 0)
	if err != nil {
		return nil, err
	}
	d.lists, err = d.newLists(cs.cfg, cs.fsys, nil)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// newLists makes the list manager of a configuration; reuse, when not nil, is the catalog
// serving now, which the manager takes as it is if the lists have not changed.
func (d *daemon) newLists(cfg *config.Config, fsys fs.FS, reuse *lists.Catalog) (*lists.Manager, error) {
	var m *lists.Manager
	m, err := lists.New(lists.Config{
		Lists:    cfg.Lists,
		FS:       fsys,
		CacheDir: filepath.Join(d.opts.dataDir, "lists"),
		Logger:   d.logger.With("component", "lists"),
		OnUpdate: func(cat *lists.Catalog) { d.listsUpdated(m, cat) },
		Reuse:    reuse,
	})
	if err != nil {
		return nil, fmt.Errorf("configuring lists: %w", err)
	}
	return m, nil
}

func (d *daemon) start(ctx context.Context) error {
	d.started = time.Now()
	cfg := d.cfg
	var err error
	d.events, err = eventlog.New(eventlog.Config{
		Path:      filepath.Join(d.opts.dataDir, "events.db"),
		Logger:    d.logger.With("component", "eventlog"),
		Retention: time.Duration(cfg.Retention.Events),
	})
	if err != nil {
		return fmt.Errorf("opening event log: %w", err)
	}
	if err := d.events.Start(ctx); err != nil {
		return fmt.Errorf("starting event log: %w", err)
	}
	d.audit, err = audit.New(audit.Config{Path: filepath.Join(d.opts.dataDir, audit.FileName),
		Logger: d.logger.With("component", "audit"), Appliance: cfg.Appliance.Name})
	if err != nil {
		return fmt.Errorf("opening the audit trail: %w", err)
	}
	d.record(ctx, audit.Entry{Action: "daemon.start", Object: d.source,
		Summary: fmt.Sprintf("schoolgate %s started with the configuration %s", version, d.source)})
	if m := d.restored; m != nil {
		d.record(ctx, audit.Entry{Action: "system.restore.applied", Object: "backup",
			Summary: fmt.Sprintf("restored the backup of %s made on %s by schoolgate %s (%d files)",
				m.Appliance, m.Created.Format("2 Jan 2006 15:04 MST"), m.FirmwareVersion, len(m.Files))})
	}
	d.recordConfig(ctx, cfg, audit.Entry{Action: "config.change", Summary: "the configuration changed while schoolgate was not running"})

	d.exceptions, err = exceptions.New(exceptions.Config{Path: filepath.Join(d.opts.dataDir, exceptions.FileName),
		Logger: d.logger.With("component", "exceptions"), Protected: d.protected, KnownTarget: d.knownTarget, Bypass: policy.Canary,
		OnChange: d.exceptionsChanged})
	if err != nil {
		return fmt.Errorf("opening the exceptions database: %w", err)
	}
	vendors, err := devices.LoadVendors(devices.RegistryFiles...)
	if err != nil {
		d.logger.Warn("the IEEE registry of MAC address blocks is not readable: device makers are not shown", "err", err)
	}
	d.devices, err = devices.New(devices.Config{Path: filepath.Join(d.opts.dataDir, devices.FileName),
		Logger: d.logger.With("component", "devices"), Vendors: vendors})
	if err != nil {
		return fmt.Errorf("opening the device inventory: %w", err)
	}
	cat, err := d.lists.Load(ctx)
	if err != nil {
		return fmt.Errorf("loading lists: %w", err)
	}
	snap, err := d.compile(ctx, cfg, cat)
	if err != nil {
		return fmt.Errorf("compiling policy: %w", err)
	}
	d.gw = newGateway(cfg, d.opts.pinPath, d.logger)
	if d.engine, err = policy.New(policy.Config{Snapshot: snap, MACs: d.gw.macs()}); err != nil {
		return err
	}

	d.filter, err = dnsfilter.New(dnsfilter.Config{Engine: d.engine, Events: d.events,
		Logger: d.logger.With("component", "dnsfilter")})
	if err != nil {
		return err
	}
	d.dns, err = dnssvc.New(d.dnsConfig(cfg))
	if err != nil {
		return fmt.Errorf("configuring dns: %w", err)
	}
	if err := d.dns.Start(ctx); err != nil {
		return err
	}
	d.auth, err = auth.New(auth.Config{Path: filepath.Join(d.opts.dataDir, "auth.db"),
		Logger: d.logger.With("component", "auth"), Issuer: issuerName(cfg.Appliance.Name)})
	if err != nil {
		return fmt.Errorf("opening the accounts database: %w", err)
	}
	var tc *tls.Config
	if *cfg.HTTP.TLS {
		d.cert, err = tlscert.Open(tlscert.Config{Dir: filepath.Join(d.opts.dataDir, "tls"), Hosts: uiHosts(cfg),
			Logger: d.logger.With("component", "tls")})
		if err != nil {
			return fmt.Errorf("the web UI's certificate: %w", err)
		}
		tc = &tls.Config{GetCertificate: d.cert.GetCertificate, MinVersion: tls.VersionTLS12}
	}
	token, err := apiToken(d.opts.dataDir)
	if err != nil {
		return fmt.Errorf("the API token: %w", err)
	}
	d.http, err = webui.New(webui.Config{TLS: tc, APIToken: token,
		Listen: cfg.HTTP.Listen, Explainer: d.engine, Events: d.events, Status: d.status,
		Logger: d.logger.With("component", "http"), Auth: d.auth, Audit: d.audit, Config: d, Exceptions: d.exceptions, Lists: d,
		Versions: d.store, Certificate: d.cert, Restart: d.requestRestart, Backup: d, Devices: d.devices,
		Health: d.health,
	})
	if err != nil {
		return err
	}
	if err := d.http.Start(ctx); err != nil {
		return err
	}
	d.startBlockPage(ctx, cfg)
	adminPort := uint16(0)
	if a, ok := d.http.Addr().(*net.TCPAddr); ok {
		adminPort = uint16(a.Port)
	}
	d.announceSetup(ctx)
	if err := d.gw.start(ctx, cfg, cat, d.engine, d.events, adminPort); err != nil {
		return err
	}
	bg, stop := context.WithCancel(context.WithoutCancel(ctx))
	d.stopBackground = stop
	d.background.Go(func() { d.expireExceptions(bg) })
	d.background.Go(func() { d.probeUpstreams(bg) })
	if d.gw != nil {
		d.background.Go(func() { d.devices.Poll(bg, 0, d.gw.sightings) })
	}
	// List updates start last: each one is applied to every part started above.
	if err := d.lists.Start(ctx); err != nil {
		return fmt.Errorf("starting list updates: %w", err)
	}
	releaseMemory() // the lists' compile garbage
	d.ready.Store(true)
	d.logger.Info("schoolgate started", "version", version, "config", d.source,
		"dns", cfg.DNS.Listen, "http", cfg.HTTP.Listen, "data_dir", d.opts.dataDir,
		"listed_domains", cat.Domains.Len(), "protected_domains", cat.Protected.Len())
	return nil
}

func (d *daemon) dnsConfig(cfg *config.Config) dnssvc.Config {
	return dnssvc.Config{
		Listen: cfg.DNS.Listen, Upstreams: cfg.DNS.Upstreams, CacheSize: cfg.DNS.CacheSize,
		Filter: d.filter, Logger: d.logger.With("component", "dns"),
	}
}

// listsUpdated is called by a list manager when a scheduled update changed its catalog.
// Updates from a manager that a reload has replaced are ignored.
func (d *daemon) listsUpdated(m *lists.Manager, cat *lists.Catalog) {
	defer releaseMemory() // after the unlock: the old catalog is garbage by then
	d.mu.Lock()
	defer d.mu.Unlock()
	if m != d.lists {
		return
	}
	snap, err := d.compile(context.Background(), d.cfg, cat)
	if err != nil {
		d.logger.Error("compiling policy after list update", "err", err)
		return
	}
	d.engine.Swap(snap)
	if err := d.gw.apply(d.cfg, cat); err != nil {
		d.logger.Error("updating the packet path after list update", "err", err)
	}
	d.record(context.Background(), audit.Entry{Action: "list.update", Object: "lists",
		Summary: fmt.Sprintf("lists updated: %d listed domains, %d protected", cat.Domains.Len(), cat.Protected.Len())})
	d.logger.Info("lists updated", "listed_domains", cat.Domains.Len(), "protected_domains", cat.Protected.Len())
}

// health is what /api/health says: "starting" until every part runs, "ok", then
// "stopping" from the moment close begins.
func (d *daemon) health() string {
	switch {
	case d.stopping.Load():
		return "stopping"
	case d.ready.Load():
		return "ok"
	}
	return "starting"
}

// close stops the components in reverse order of start, each given its chance even when an
// earlier one fails.
func (d *daemon) close() error {
	d.stopping.Store(true)
	var errs []error
	if d.http != nil {
		errs = append(errs, d.http.Close())
	}
	if d.block != nil {
		errs = append(errs, d.block.Close())
	}
	if d.stopBackground != nil {
		d.stopBackground()
		d.background.Wait()
	}
	errs = append(errs, d.gw.close())
	if d.dns != nil {
		errs = append(errs, d.dns.Close())
	}
	d.mu.Lock()
	m := d.lists
	d.mu.Unlock()
	if m != nil {
		errs = append(errs, m.Close())
	}
	if d.audit != nil {
		summary := "schoolgate stopped"
		if d.restarting.Load() {
			summary = "schoolgate stopped to restart, as asked from the system page"
		}
		d.record(context.Background(), audit.Entry{Action: "daemon.stop", Summary: summary})
		errs = append(errs, d.audit.Close())
	}
	if d.auth != nil {
		errs = append(errs, d.auth.Close())
	}
	if d.exceptions != nil {
		errs = append(errs, d.exceptions.Close())
	}
	if d.devices != nil {
		errs = append(errs, d.devices.Close())
	}
	if d.events != nil {
		errs = append(errs, d.events.Close())
	}
	return errors.Join(errs...)
}

// record appends a change to the audit trail; an entry without an actor is a change made by
// the firmware itself. A failure is logged as an error: the change has happened, and the log
// says so.
func (d *daemon) record(ctx context.Context, e audit.Entry) {
	if d.audit == nil {
		return
	}
	if e.Actor == "" {
		e.Actor = audit.ActorSystem
	}
	if _, err := d.audit.Append(ctx, e); err != nil {
		d.logger.Error("recording in the audit trail", "action", e.Action, "err", err)
	}
}

func (d *daemon) status(ctx context.Context) webui.Status {
	d.mu.Lock()
	cfg, source, loaded, m, reloadErr := d.cfg, d.source, d.loaded, d.lists, d.reloadError
	d.mu.Unlock()
	now := time.Now()
	st := webui.Status{
		Version: version, Appliance: cfg.Appliance.Name, Started: d.started,
		UptimeSeconds: int64(now.Sub(d.started) / time.Second),
		Config:        webui.ConfigStatus{Source: source, Loaded: loaded, LastReload: reloadErr},
		Events:        d.events.Stats(),
	}
	snap := d.engine.Snapshot()
	cat := snap.Catalog()

	listState, listDetail := "running", fmt.Sprintf("%d listed domains, %d protected", cat.Domains.Len(), cat.Protected.Len())
	protected := 0
	var oldest time.Time
	for _, s := range m.Status() {
		age := int64(0)
		if !s.Updated.IsZero() {
			age = int64(now.Sub(s.Updated) / time.Second)
			if oldest.IsZero() || s.Updated.Before(oldest) {
				oldest = s.Updated
			}
		}
		st.Lists = append(st.Lists, webui.ListStatus{SourceStatus: s, AgeSeconds: age})
		if s.Protected {
			protected += s.Entries
		}
		if s.LastError != "" {
			listState, listDetail = "degraded", fmt.Sprintf("list %s: %s", s.Name, s.LastError)
		}
	}
	if !oldest.IsZero() && listState == "running" {
		listDetail += "; oldest list updated " + ageText(now.Sub(oldest)) + " ago"
	}
	if protected == 0 {
		listState, listDetail = "degraded", "the protected tier is empty"
	}
	eventState, eventDetail := "running", ""
	if st.Events.LastError != "" {
		eventState, eventDetail = "degraded", st.Events.LastError
	} else if st.Events.Dropped > 0 {
		eventState, eventDetail = "degraded", fmt.Sprintf("%d events dropped: queue overflow", st.Events.Dropped)
	}
	udp, _ := d.dns.Addrs()
	dnsDetail := "listening on " + cfg.DNS.Listen
	if udp != nil {
		dnsDetail = "listening on " + udp.String()
	}
	st.Components = []webui.Component{
		{Name: "config", State: "running", Detail: source},
		{Name: "lists", State: listState, Detail: listDetail},
		{Name: "policy", State: "running", Detail: fmt.Sprintf("%d segments, %d profiles", len(cfg.Segments), len(cfg.Profiles))},
		{Name: "dns", State: "running", Detail: dnsDetail},
		{Name: "eventlog", State: eventState, Detail: eventDetail},
		{Name: "http", State: "running", Detail: d.httpDetail()},
		d.upstreamComponent(),
		clockComponent(),
		diskComponent(d.opts.dataDir),
		memoryComponent(),
	}
	switch {
	case d.block != nil:
		st.Components = append(st.Components, webui.Component{Name: "block page", State: "running", Detail: addrString(d.block.Addr())})
	case d.blockError != "":
		st.Components = append(st.Components, webui.Component{Name: "block page", State: "stopped", Detail: d.blockError})
	}
	if d.gw != nil {
		var c webui.Component
		c, st.PacketPath = d.gw.status()
		st.Components = append(st.Components, c)
	}

	profileOf := map[string]string{}
	for _, seg := range snap.Segments() {
		profileOf[seg.Name] = seg.Profile.Name
		st.Segments = append(st.Segments, webui.SegmentStatus{Segment: seg.Name, Profile: seg.Profile.Name})
	}
	for _, c := range d.filter.Stats() {
		i := len(st.Segments)
		for j := range st.Segments {
			if st.Segments[j].Segment == c.Segment {
				i = j
			}
		}
		if i == len(st.Segments) {
			st.Segments = append(st.Segments, webui.SegmentStatus{Segment: c.Segment, Profile: profileOf[c.Segment]})
		}
		s := &st.Segments[i]
		s.Queries, s.Blocked, s.Rewritten, s.Malformed = c.Queries, c.Blocked, c.Rewritten, c.Malformed
	}
	return st
}

// parseUpstream reads the -upstream flag: "ip:port" for plain DNS, "tls://ip:port" for DNS
// over TLS checked against the IP address, or "tls://name:port", whose name is looked up once
// with the system resolver and then checked on the certificate.
func parseUpstream(s string) (config.Upstream, error) {
	hostport, tls := strings.CutPrefix(s, "tls://")
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return config.Upstream{}, fmt.Errorf("-upstream %q: want host:port or tls://host:port", s)
	}
	if !tls {
		return config.Upstream{Address: hostport}, nil
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return config.Upstream{Address: s, TLSServerName: host}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return config.Upstream{}, fmt.Errorf("-upstream %q: looking up %s: %v", s, host, err)
	}
	return config.Upstream{
		Address:       "tls://" + net.JoinHostPort(addrs[0].Unmap().String(), port),
		TLSServerName: host,
	}, nil
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

func splitHostPort(addr string) (string, string) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, "53"
	}
	return h, p
}

// announceSetup prints the one-time setup link while no account exists: there is no default
// password, and the first account made through the link is a technician. The link carries
// the setup token; it is the only secret the daemon ever logs, because the person at the
// console must be able to open it. A new token replaces it at each start.
func (d *daemon) announceSetup(ctx context.Context) {
	need, err := d.auth.NeedsSetup(ctx)
	if err != nil {
		d.logger.Error("checking for first-start setup", "err", err)
		return
	}
	if !need {
		return
	}
	tok, err := d.auth.SetupToken(ctx)
	if err != nil {
		d.logger.Error("issuing the setup token", "err", err)
		return
	}
	d.logger.Info("open this link once to create the first technician account",
		"url", setupURL(d.http.Addr(), d.cert != nil, tok))
}

// setupURL builds the link from the address the HTTP server listens on; an unspecified
// address (0.0.0.0, ::) is shown as loopback, which works on the box itself.
func setupURL(addr net.Addr, https bool, token string) string {
	host, port := "127.0.0.1", ""
	if a, ok := addr.(*net.TCPAddr); ok {
		port = strconv.Itoa(a.Port)
		if !a.IP.IsUnspecified() {
			host = a.IP.String()
		}
	}
	scheme := "http://"
	if https {
		scheme = "https://"
	}
	return scheme + net.JoinHostPort(host, port) + "/setup?token=" + url.QueryEscape(token)
}

// issuerName makes the appliance's name usable as a TOTP issuer, which may not hold ':'.
func issuerName(appliance string) string {
	name := strings.TrimSpace(strings.ReplaceAll(appliance, ":", " "))
	if name == "" {
		return "schoolgate"
	}
	return name
}

// startBlockPage serves the block page when the configuration asks for it. A failure is
// reported in the status rather than stopping the appliance: filtering works without it.
func (d *daemon) startBlockPage(ctx context.Context, cfg *config.Config) {
	if cfg.HTTP.BlockPage == "" {
		return
	}
	b, err := webui.NewBlockServer(webui.BlockServerConfig{
		Listen: cfg.HTTP.BlockPage, Judge: d.engine, Exceptions: d.exceptions, Audit: d.audit,
		Appliance: d.appliance, Logger: d.logger.With("component", "blockpage"),
		UIPort: d.uiPort(), UITLS: d.cert != nil,
	})
	if err == nil {
		err = b.Start(ctx)
	}
	if err != nil {
		d.blockError = err.Error()
		d.logger.Error("the block page is not served", "err", err)
		return
	}
	d.block = b
}

// appliance is the school's name and time zone, as the block page shows them.
func (d *daemon) appliance() (string, *time.Location) {
	d.mu.Lock()
	name, zone := d.cfg.Appliance.Name, d.cfg.Appliance.Timezone
	d.mu.Unlock()
	loc, err := time.LoadLocation(zone)
	if err != nil {
		loc = time.UTC
	}
	return name, loc
}

// uiHosts are the names and addresses the web UI's generated certificate is made for: the
// listen address when it is a specific one, and the gateway addresses of the admin segments.
func uiHosts(cfg *config.Config) []string {
	hosts := []string{"schoolgate"}
	if h, _ := splitHostPort(cfg.HTTP.Listen); h != "" {
		if a, err := netip.ParseAddr(h); err == nil && !a.IsUnspecified() {
			hosts = append(hosts, a.String())
		}
	}
	for _, s := range cfg.Segments {
		if slices.Contains(cfg.HTTP.AdminSegments, s.Name) {
			for _, g := range s.Gateway {
				if !slices.Contains(hosts, g.String()) {
					hosts = append(hosts, g.String())
				}
			}
		}
	}
	return hosts
}

// uiPort is the port the web UI listens on.
func (d *daemon) uiPort() int {
	if a, ok := d.http.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}

// httpDetail says where the web UI is, and the certificate's fingerprint for the technician
// to compare with what the browser shows.
func (d *daemon) httpDetail() string {
	if d.cert == nil {
		return "http://" + addrString(d.http.Addr())
	}
	info := d.cert.Info()
	detail := "https://" + addrString(d.http.Addr()) + ", certificate SHA-256 " + info.Fingerprint
	if info.Expired {
		detail += " (expired " + info.NotAfter.Format("2 Jan 2006") + ")"
	}
	return detail
}

// UpdateList fetches one list source now (the lists page's "update now"); the result is
// applied and audited like a scheduled update.
func (d *daemon) UpdateList(ctx context.Context, name string) error {
	d.mu.Lock()
	m := d.lists
	d.mu.Unlock()
	return m.Update(ctx, name)
}

// requestRestart asks the main loop to close everything and start again.
func (d *daemon) requestRestart() {
	d.restarting.Store(true)
	select {
	case d.restart <- struct{}{}:
	default:
	}
}

// apiTokenFile holds the JSON API's token, readable by root only: the admin CLI on the box
// (schoolgate explain) reads it; anyone else logs in.
const apiTokenFile = "api-token"

// apiToken returns the API token, making it on first start.
func apiToken(dataDir string) (string, error) {
	path := filepath.Join(dataDir, apiTokenFile)
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= 32 {
		return strings.TrimSpace(string(b)), nil
	}
	b := make([]byte, 32)
	rand.Read(b)
	tok := base64.RawURLEncoding.EncodeToString(b)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(tok+"\n"), 0o600); err != nil {
		return "", err
	}
	return tok, os.Rename(tmp, path)
}

// ageText says how long ago in the largest whole unit: "3 days", "5 hours", "12 minutes".
func ageText(d time.Duration) string {
	unit := func(n int64, name string) string {
		if n == 1 {
			return "1 " + name
		}
		return fmt.Sprintf("%d %ss", n, name)
	}
	switch {
	case d >= 48*time.Hour:
		return unit(int64(d/(24*time.Hour)), "day")
	case d >= 2*time.Hour:
		return unit(int64(d/time.Hour), "hour")
	case d >= time.Minute:
		return unit(int64(d/time.Minute), "minute")
	}
	return "less than a minute"
}
