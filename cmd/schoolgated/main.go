// Command schoolgated is the schoolgate daemon: it loads the configuration and lists, serves
// filtered DNS through embedded CoreDNS, records every decision, and serves the HTTP API.
// Without -config it runs the embedded demo configuration.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

// errRestart is what run returns when the web UI asked for a restart.
var errRestart = errors.New("restart")

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if errors.Is(err, errRestart) {
		// Everything is closed: start again in this process, with the same arguments, so a
		// service manager sees the same daemon and the pinned packet path is taken over.
		self, serr := os.Executable()
		if serr == nil {
			serr = syscall.Exec(self, os.Args, os.Environ())
		}
		fmt.Fprintln(os.Stderr, "schoolgated: restarting:", serr)
		os.Exit(1)
	}
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "schoolgated:", err)
		}
		stop()
		os.Exit(1)
	}
}

// options are the command-line flags.
type options struct {
	configPath  string
	demo        bool
	upstream    string
	listenDNS   string
	listenHTTP  string
	listenBlock string
	dataDir     string
	pinPath     string
	logLevel    slog.Level
	logJSON     bool
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("schoolgated", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.configPath, "config", "", "configuration file (YAML); without it the embedded demo runs")
	fs.BoolVar(&o.demo, "demo", false, "run the embedded demo configuration")
	fs.StringVar(&o.upstream, "upstream", "", "upstream resolver replacing the configured ones: host:port or tls://host:port")
	fs.StringVar(&o.listenDNS, "listen-dns", "", "DNS listen address (host:port), overriding dns.listen")
	fs.StringVar(&o.listenHTTP, "listen-http", "", "HTTP API listen address (host:port), overriding http.listen")
	fs.StringVar(&o.listenBlock, "listen-block-page", "", "block page listen address (host:port), overriding http.block_page")
	fs.StringVar(&o.dataDir, "data-dir", "", "state directory: event log, list cache (default /var/lib/schoolgate, demo: a temporary directory)")
	fs.StringVar(&o.pinPath, "bpf-pin-path", "/sys/fs/bpf/schoolgate", "where the packet path pins its eBPF programs and maps (on a bpf filesystem); they outlive a crashed daemon")
	fs.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "log level: debug, info, warn, error")
	fs.BoolVar(&o.logJSON, "log-json", false, "log as JSON lines instead of text")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.demo && o.configPath != "" {
		return o, errors.New("-demo and -config are exclusive")
	}
	if o.configPath == "" {
		o.demo = true
	}
	if o.dataDir == "" {
		o.dataDir = "/var/lib/schoolgate"
		if o.demo {
			o.dataDir = filepath.Join(os.TempDir(), "schoolgate-demo")
		}
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	var h slog.Handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: o.logLevel})
	if o.logJSON {
		h = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: o.logLevel})
	}
	logger := slog.New(h)

	// SIGHUP is caught from the start: a reload asked for while lists are still loading
	// must not kill the daemon (the default action), it is handled once running.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	setMemoryLimit(logger)
	d, err := newDaemon(o, logger)
	if err != nil {
		return err
	}
	if err := d.start(ctx); err != nil {
		return errors.Join(err, d.close())
	}
	if o.demo {
		printDemoHelp(stdout, d)
	}

	for {
		select {
		case <-ctx.Done():
			logger.Info("stopping")
			return d.close()
		case <-d.restart:
			logger.Info("restarting")
			if err := d.close(); err != nil {
				return err
			}
			return errRestart
		case <-hup:
			if err := d.reload(ctx); err != nil {
				logger.Error("reload refused; the running configuration stays", "err", err)
			}
		}
	}
}

func printDemoHelp(w io.Writer, d *daemon) {
	dnsAddr := d.cfg.DNS.Listen
	host, port := splitHostPort(dnsAddr)
	block := "off"
	if d.block != nil {
		block = "http://" + addrString(d.block.Addr())
	}
	fmt.Fprintf(w, `
schoolgate demo is running.
  DNS  %[1]s (UDP and TCP)    web UI and API  http://%[3]s    block page  %[7]s

Ask as staff, a pupil or a guest (the source address picks the segment):
  dig @%[2]s -p %[4]s -b 127.0.0.1 facebook.com     # staff: allowed
  dig @%[2]s -p %[4]s -b 127.0.0.2 facebook.com     # pupil: blocked (social)
  dig @%[2]s -p %[4]s -b 127.0.0.2 www.google.com   # pupil: CNAME forcesafesearch.google.com
  dig @%[2]s -p %[4]s -b 127.0.0.3 bet365.com       # guest: blocked (gambling)
The JSON API takes the token in %[6]s (or a logged-in session):
  curl -H "Authorization: Bearer $(cat %[6]s)" 'http://%[3]s/api/explain?client=127.0.0.2&name=facebook.com'
  curl -H "Authorization: Bearer $(cat %[6]s)" 'http://%[3]s/api/events?since=15m'
Reload after editing a config: kill -HUP %[5]d. Stop with Ctrl-C.
`, dnsAddr, host, d.cfg.HTTP.Listen, port, os.Getpid(), filepath.Join(d.opts.dataDir, apiTokenFile), block)
}
