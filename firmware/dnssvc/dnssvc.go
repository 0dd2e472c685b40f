// Package dnssvc embeds CoreDNS: it chooses the plugins schoolgate uses and their order,
// generates the Corefile from the configuration, and starts, restarts and stops the server.
// Filtering decisions live in the schoolfilter plugin (package dnsfilter); this package only
// wires it in front of cache and forward.
package dnssvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coredns/caddy"
	"github.com/coredns/coredns/core/dnsserver"

	// The only CoreDNS plugins schoolgate uses; importing them registers them.
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"

	"github.com/schoolgate/schoolgate/firmware/config"
	"github.com/schoolgate/schoolgate/firmware/dnsfilter"
)

// directives is the plugin chain in execution order. schoolfilter sits before cache because
// the cache key ignores the client: answers that differ per profile must be made first.
var directives = []string{"bind", "errors", dnsfilter.PluginName, "cache", "forward"}

// Config configures the DNS service.
type Config struct {
	Listen    string // host:port, UDP and TCP
	Upstreams []config.Upstream
	CacheSize int
	Filter    *dnsfilter.Filter
	// NoFilter leaves schoolfilter out of the chain: a plain caching forwarder, which is the
	// baseline the DNS benchmark compares against. Never used in production.
	NoFilter bool
	Logger   *slog.Logger
}

// Service is the embedded CoreDNS server.
type Service struct {
	cfg    Config
	id     string
	logger *slog.Logger

	mu   sync.Mutex
	inst *caddy.Instance
}

var (
	setupOnce sync.Once
	setupErr  error
	nextID    atomic.Uint64
)

// setupCoreDNS selects the plugin chain and registers schoolfilter. CoreDNS keeps both
// process-wide, so it is done once, before the first server starts.
func setupCoreDNS() error {
	setupOnce.Do(func() {
		caddy.Quiet, dnsserver.Quiet = true, true
		setupErr = dnsserver.SetDirectives(directives)
		dnsfilter.RegisterPlugin()
	})
	return setupErr
}

// ErrNoUpstream is returned when no upstream resolver is configured.
var ErrNoUpstream = errors.New("no upstream resolver configured")

// New checks cfg and prepares a service; Start opens the listeners.
func New(cfg Config) (*Service, error) {
	if cfg.Filter == nil && !cfg.NoFilter {
		return nil, errors.New("dnssvc: no filter")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if _, err := Corefile(cfg, "check"); err != nil {
		return nil, err
	}
	if err := setupCoreDNS(); err != nil {
		return nil, fmt.Errorf("setting up coredns: %w", err)
	}
	return &Service{cfg: cfg, id: "sg" + strconv.FormatUint(nextID.Add(1), 10), logger: cfg.Logger}, nil
}

// Corefile renders the server block for cfg, with the filter referred to by id.
func Corefile(cfg Config, id string) (string, error) {
	ap, err := netip.ParseAddrPort(cfg.Listen)
	if err != nil {
		return "", fmt.Errorf("dns listen address %q: %w", cfg.Listen, err)
	}
	if len(cfg.Upstreams) == 0 {
		return "", ErrNoUpstream
	}
	// forward keeps one TLS configuration for its whole pool, so DNS-over-TLS upstreams
	// must agree on the name and CA they are checked against.
	var addrs []string
	serverName, ca := "", ""
	for _, u := range cfg.Upstreams {
		addrs = append(addrs, u.Address)
		if !strings.HasPrefix(u.Address, "tls://") {
			continue
		}
		if serverName != "" && u.TLSServerName != serverName {
			return "", fmt.Errorf("upstreams over TLS must share one tls_server_name, got %q and %q",
				serverName, u.TLSServerName)
		}
		if ca != "" && u.TLSCA != ca {
			return "", fmt.Errorf("upstreams over TLS must share one tls_ca, got %q and %q", ca, u.TLSCA)
		}
		serverName, ca = u.TLSServerName, u.TLSCA
		if strings.ContainsAny(ca, " \t\n\"{}") {
			return "", fmt.Errorf("tls_ca path %q: spaces, quotes and braces are not supported", ca)
		}
	}
	size := cfg.CacheSize
	if size <= 0 {
		size = 10000
	}
	var b strings.Builder
	fmt.Fprintf(&b, ".:%d {\n", ap.Port())
	if !ap.Addr().IsUnspecified() {
		fmt.Fprintf(&b, "\tbind %s\n", ap.Addr())
	}
	b.WriteString("\terrors\n")
	if !cfg.NoFilter {
		fmt.Fprintf(&b, "\t%s %s\n", dnsfilter.PluginName, id)
	}
	fmt.Fprintf(&b, "\tcache {\n\t\tsuccess %d\n\t\tdenial %d\n\t}\n", size, size)
	fmt.Fprintf(&b, "\tforward . %s {\n", strings.Join(addrs, " "))
	if ca != "" {
		fmt.Fprintf(&b, "\t\ttls %s\n", ca)
	}
	if serverName != "" {
		fmt.Fprintf(&b, "\t\ttls_servername %s\n", serverName)
	}
	b.WriteString("\t\thealth_check 5s\n\t}\n}\n")
	return b.String(), nil
}

// Start opens the listeners and serves until Close.
func (s *Service) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	routeLogs(s.logger)
	corefile, err := Corefile(s.cfg, s.id)
	if err != nil {
		return err
	}
	dnsfilter.Register(s.id, s.cfg.Filter)
	inst, err := caddy.Start(input(corefile))
	if err != nil {
		dnsfilter.Unregister(s.id)
		return fmt.Errorf("starting coredns on %s: %w", s.cfg.Listen, err)
	}
	s.mu.Lock()
	s.inst = inst
	s.mu.Unlock()
	s.logger.Info("dns service started", "listen", s.cfg.Listen, "upstreams", len(s.cfg.Upstreams))
	return nil
}

// Reconfigure applies new DNS settings with a graceful CoreDNS restart: the listening
// sockets are handed over, so no query is dropped. The filter stays the same (policy changes
// need no restart: they swap the engine's snapshot). On error the old server keeps running.
func (s *Service) Reconfigure(cfg Config) error {
	cfg.Filter, cfg.NoFilter, cfg.Logger = s.cfg.Filter, s.cfg.NoFilter, s.cfg.Logger
	corefile, err := Corefile(cfg, s.id)
	if err != nil {
		return err
	}
	old, _ := Corefile(s.cfg, s.id)
	if corefile == old {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inst == nil {
		return errors.New("dns service not started")
	}
	inst, err := s.inst.Restart(input(corefile))
	if inst != nil && inst != s.inst {
		// Caddy can hand back the new, running instance together with an error from
		// stopping the old one: the new one is what is serving now.
		s.inst = inst
	}
	if err != nil {
		return fmt.Errorf("restarting coredns: %w", err)
	}
	s.inst, s.cfg = inst, cfg
	s.logger.Info("dns service reconfigured", "listen", cfg.Listen)
	return nil
}

// Addrs returns the bound UDP and TCP addresses (useful with port 0).
func (s *Service) Addrs() (udp, tcp net.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inst == nil {
		return nil, nil
	}
	for _, sl := range s.inst.Servers() {
		if a := sl.LocalAddr(); a != nil && udp == nil {
			udp = a
		}
		if a := sl.Addr(); a != nil && tcp == nil {
			tcp = a
		}
	}
	return udp, tcp
}

// Close stops the server, waiting up to a few seconds for it.
func (s *Service) Close() error {
	s.mu.Lock()
	inst := s.inst
	s.inst = nil
	s.mu.Unlock()
	if inst == nil {
		return nil
	}
	errs := inst.ShutdownCallbacks()
	errs = append(errs, inst.Stop())
	done := make(chan struct{})
	go func() { inst.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		errs = append(errs, errors.New("coredns did not stop within 5s"))
	}
	dnsfilter.Unregister(s.id)
	return errors.Join(errs...)
}

func input(corefile string) caddy.Input {
	return caddy.CaddyfileInput{Filepath: "Corefile", Contents: []byte(corefile), ServerTypeName: "dns"}
}
