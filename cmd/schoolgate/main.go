// Command schoolgate is the administrator's command-line tool: it checks configuration files
// before they are deployed, asks a running appliance to explain a decision, and exports and
// verifies the audit trail.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/schoolgate/schoolgate/firmware/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "schoolgate:", err)
		}
		stop()
		os.Exit(1)
	}
}

const usage = `usage:
  schoolgate check FILE                      validate a configuration file
  schoolgate explain [-api URL] CLIENT NAME  ask a running appliance why NAME is (not) blocked for CLIENT
  schoolgate audit verify FILE               check an exported audit trail offline
  schoolgate audit export [-data-dir DIR] [-o FILE]
                                             write the appliance's audit trail as a verifiable file
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "check":
		return check(args[1:], stdout)
	case "explain":
		return explain(ctx, args[1:], stdout, stderr)
	case "audit":
		return auditCmd(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func check(args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return errors.New("check: want one configuration file")
	}
	cfg, err := config.LoadFile(args[0])
	if err != nil {
		return fmt.Errorf("%s:\n%w", args[0], err)
	}
	fmt.Fprintf(stdout, "%s: valid (%d segments, %d profiles, %d lists, %d exceptions)\n",
		args[0], len(cfg.Segments), len(cfg.Profiles), len(cfg.Lists), len(cfg.Exceptions))
	return nil
}

func explain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := fs.String("api", "http://127.0.0.1:8080", "the appliance's API address")
	dataDir := fs.String("data-dir", defaultDataDir(), "the appliance's data directory, for its API token and certificate")
	if err := fs.Parse(args); err != nil {
		return err
	}
	client, token, err := apiClient(*dataDir)
	if err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return errors.New("explain: want CLIENT and NAME")
	}
	u := fmt.Sprintf("%s/api/explain?client=%s&name=%s", *api, url.QueryEscape(fs.Arg(0)), url.QueryEscape(fs.Arg(1)))
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("asking %s: %w", *api, err)
	}
	defer resp.Body.Close()
	var out struct {
		Error   string
		Summary string
		Steps   []string
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, out.Error)
	}
	fmt.Fprintln(stdout, out.Summary)
	for _, s := range out.Steps {
		fmt.Fprintln(stdout, "  -", s)
	}
	return nil
}

// defaultDataDir is the appliance's data directory, or the demo's when only that exists.
func defaultDataDir() string {
	if _, err := os.Stat("/var/lib/schoolgate/api-token"); err != nil {
		demo := filepath.Join(os.TempDir(), "schoolgate-demo")
		if _, err := os.Stat(filepath.Join(demo, "api-token")); err == nil {
			return demo
		}
	}
	return "/var/lib/schoolgate"
}

// apiClient reads the API token the daemon keeps in its data directory (readable by root)
// and trusts the web UI's certificate kept there, so HTTPS works with a self-signed one.
func apiClient(dataDir string) (*http.Client, string, error) {
	tok, err := os.ReadFile(filepath.Join(dataDir, "api-token"))
	if err != nil {
		return nil, "", fmt.Errorf("reading the API token (run as root on the appliance, or give -data-dir): %w", err)
	}
	client := &http.Client{}
	if pem, err := os.ReadFile(filepath.Join(dataDir, "tls", "web.crt")); err == nil {
		pool, _ := x509.SystemCertPool()
		if pool == nil {
			pool = x509.NewCertPool()
		}
		pool.AppendCertsFromPEM(pem)
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	}
	return client, strings.TrimSpace(string(tok)), nil
}
