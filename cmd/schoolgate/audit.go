package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/schoolgate/schoolgate/firmware/audit"
)

const auditUsage = `usage:
  schoolgate audit verify [-anchor SEQ:HASH]... FILE    check an exported audit trail offline ("-" reads stdin)
  schoolgate audit export [-data-dir DIR] [-o FILE] [-appliance NAME]
                                                        write the appliance's audit trail as a verifiable file
`

// errBroken makes the command exit non-zero after the verdict is printed.
var errBroken = errors.New("the audit trail is broken")

func auditCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, auditUsage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "verify":
		return auditVerify(args[1:], stdout, stderr)
	case "export":
		return auditExport(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, auditUsage)
		return nil
	}
	fmt.Fprint(stderr, auditUsage)
	return fmt.Errorf("audit: unknown command %q", args[0])
}

func auditVerify(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var anchors []audit.Anchor
	fs.Func("anchor", "`SEQ:HASH` of an earlier export's head, which this trail must still contain (repeatable)", func(s string) error {
		a, err := audit.ParseAnchor(s)
		if err != nil {
			return err
		}
		anchors = append(anchors, a)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("audit verify: want one export file")
	}
	name := fs.Arg(0)
	var r io.Reader = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("audit verify: %w", err)
		}
		defer f.Close()
		r = f
	}
	res, err := audit.VerifyExport(r, anchors...)
	if err != nil {
		return fmt.Errorf("audit verify: %s: %w", name, err)
	}
	printVerdict(stdout, res)
	if !res.OK {
		return fmt.Errorf("audit verify: %s: %w", name, errBroken)
	}
	return nil
}

// printVerdict writes the verdict line, then what the export says about
// itself and how to anchor it.
func printVerdict(w io.Writer, res audit.Result) {
	if !res.OK {
		// Problems usually start with the entry they name; it is in the verdict already.
		problem := strings.TrimPrefix(res.Problem, fmt.Sprintf("entry %d: ", res.FirstBroken))
		fmt.Fprintf(w, "BROKEN at entry %d: %s\n", res.FirstBroken, problem)
		return
	}
	fmt.Fprintf(w, "OK: %s entries, chain intact, head %s\n", thousands(int64(res.Entries)), res.Head)
	if h := res.Header; h != nil {
		from := ""
		if h.Appliance != "" {
			from = fmt.Sprintf(" from %q", h.Appliance)
		}
		if !h.ExportedAt.IsZero() {
			fmt.Fprintf(w, "  exported %s%s\n", h.ExportedAt.Format("2006-01-02 15:04:05 MST"), from)
		}
	}
	if res.HeadSeq > 0 {
		fmt.Fprintf(w, "  a later export must still contain this head: schoolgate audit verify -anchor %s LATER-FILE\n",
			audit.Anchor{Seq: res.HeadSeq, Hash: res.Head})
	}
}

func auditExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("audit export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data-dir", "/var/lib/schoolgate", "the daemon's state directory, holding "+audit.FileName)
	out := fs.String("o", "", "write to `FILE` instead of standard output")
	appliance := fs.String("appliance", "", "the appliance's `NAME`, written in the export's header")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("audit export: unexpected argument %q", fs.Arg(0))
	}
	path := filepath.Join(*dataDir, audit.FileName)
	// New would create an empty trail; a mistyped directory should say so instead.
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("audit export: no audit trail in %s: %w", *dataDir, err)
	}
	l, err := audit.New(audit.Config{Path: path, Appliance: *appliance})
	if err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	defer l.Close()

	if *out == "" {
		return l.Export(ctx, stdout)
	}
	if err := writeExport(ctx, l, *out); err != nil {
		return err
	}
	// Read the file back: the technician learns at once whether what they
	// hand over verifies, and gets its head to write down.
	f, err := os.Open(*out)
	if err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	defer f.Close()
	res, err := audit.VerifyExport(f)
	if err != nil {
		return fmt.Errorf("audit export: reading back %s: %w", *out, err)
	}
	fmt.Fprintf(stdout, "wrote %s\n", *out)
	printVerdict(stdout, res)
	if !res.OK {
		return fmt.Errorf("audit export: %s: %w", *out, errBroken)
	}
	return nil
}

// writeExport writes the export to a temporary file next to name and renames
// it into place, so an interrupted export leaves no partial file behind.
func writeExport(ctx context.Context, l *audit.Log, name string) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	if err := l.Export(ctx, tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("audit export: %w", err)
	}
	if err := errors.Join(tmp.Sync(), tmp.Close()); err != nil {
		return fmt.Errorf("audit export: writing %s: %w", name, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	return nil
}

// thousands writes n with commas: 1234567 → "1,234,567".
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
