package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// maxNodes bounds the work of walking a document, so that alias bombs fed to Load (it sees
// uploads from the web UI) cost a bounded amount of time.
const maxNodes = 200_000

// lineMap maps a field path such as "profiles[1].block_categories[2]" to its line in the
// YAML it was loaded from.
type lineMap map[string]int

// Load decodes a YAML configuration strictly (unknown fields are errors), fills in defaults,
// canonicalises names and addresses, and validates it. Any problem with the document is
// returned as a *ValidationError naming the field and line.
func Load(data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, syntaxError(err)
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode {
		if len(doc.Content) == 0 {
			doc = nil
		} else {
			doc = doc.Content[0]
		}
	} else if doc.Kind == 0 {
		doc = nil
	}

	cfg := &Config{lines: lineMap{}}
	if doc != nil {
		w := walker{lines: cfg.lines}
		w.walk(doc, reflect.TypeFor[Config](), "")
		if len(w.errs) > 0 {
			return nil, newValidationError(w.errs)
		}
		if err := doc.Decode(cfg); err != nil {
			return nil, decodeError(err, cfg.lines)
		}
		cfg.lines = w.lines // Decode may not touch unexported fields, but be explicit.
	}
	cfg.ApplyDefaults()
	cfg.canonicalise()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// LoadFile loads a configuration file. Relative list files are made relative to the
// file's directory, which is where the operator expects them to be.
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cfg, err := Load(data)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", path, err)
	}
	cfg.ResolvePaths(filepath.Dir(path))
	return cfg, nil
}

// ResolvePaths makes the relative file names in c (list files, upstream CA files) relative
// to dir, the directory of the file c was read from.
func (c *Config) ResolvePaths(dir string) {
	for i := range c.Lists {
		if f := c.Lists[i].File; f != "" && !filepath.IsAbs(f) {
			c.Lists[i].File = filepath.Join(dir, f)
		}
	}
	for i := range c.DNS.Upstreams {
		if f := c.DNS.Upstreams[i].TLSCA; f != "" && !filepath.IsAbs(f) {
			c.DNS.Upstreams[i].TLSCA = filepath.Join(dir, f)
		}
	}
}

// Clone returns a deep copy of a valid c, for changing a copy while c stays in use.
func (c *Config) Clone() (*Config, error) {
	data, err := Marshal(c)
	if err != nil {
		return nil, err
	}
	return Load(data)
}

// ApplyDefaults fills every unset field that has a default. Load calls it; code that
// builds a Config in Go calls it before handing the Config on.
func (c *Config) ApplyDefaults() {
	setDefault(&c.Appliance.Timezone, "Europe/London")
	setDefault(&c.Appliance.FailureMode, FailClosed)
	setDefault(&c.DNS.Listen, "0.0.0.0:53")
	if c.DNS.CacheSize == 0 {
		c.DNS.CacheSize = 10000
	}
	if c.DNS.BlockTTL == 0 {
		c.DNS.BlockTTL = Duration(60 * time.Second)
	}
	for i := range c.Schedules {
		if c.Schedules[i].Days == nil {
			c.Schedules[i].Days = []string{"mon", "tue", "wed", "thu", "fri"}
		}
	}
	setDefault(&c.HTTP.Listen, "127.0.0.1:8080")
	if c.HTTP.BlockPage == "" && c.Appliance.WAN != "" {
		c.HTTP.BlockPage = ":80" // a gateway serves the block page, and sends its own address to the UI
	}
	if c.HTTP.TLS == nil {
		on := c.Appliance.WAN != ""
		c.HTTP.TLS = &on
	}
	if c.HTTP.AdminSegments == nil && slices.ContainsFunc(c.Segments, func(s Segment) bool { return s.Name == "staff" && !s.Guest }) {
		c.HTTP.AdminSegments = []string{"staff"}
	}
	for i := range c.Profiles {
		p := &c.Profiles[i]
		setDefault(&p.BlockResponse, BlockNXDomain)
		setDefault(&p.SafeSearch, SafeSearchOff)
		if p.SafeSearch == SafeSearchStrict {
			setDefault(&p.UnsafeEngines, "block")
		} else {
			setDefault(&p.UnsafeEngines, "allow")
		}
		setDefault(&p.YouTube, YouTubeOff)
		setDefault(&p.QUIC, QUICInspect)
		setDefault(&p.NoSNI, "block")
		for _, b := range []**bool{&p.Bypass.Canaries, &p.Bypass.StripECH, &p.Bypass.BlockDoT} {
			if *b == nil {
				t := true
				*b = &t
			}
		}
	}
	for i := range c.Lists {
		l := &c.Lists[i]
		if l.UpdateInterval == 0 {
			l.UpdateInterval = Duration(24 * time.Hour)
		}
		if l.MaxSize == 0 {
			l.MaxSize = 512 << 20
		}
	}
	if c.Retention.Events == 0 {
		c.Retention.Events = Duration(365 * Day)
	}
}

func setDefault(s *string, v string) {
	if *s == "" {
		*s = v
	}
}

// canonicalise rewrites values that have several spellings into one, so that comparisons
// elsewhere are plain string equality. Values it cannot read are left for Validate.
func (c *Config) canonicalise() {
	nilEmpty(reflect.ValueOf(c))
	for i := range c.Devices {
		c.Devices[i].MAC = canonicalMAC(c.Devices[i].MAC)
	}
	for i := range c.Profiles {
		p := &c.Profiles[i]
		for j := range p.Allow {
			p.Allow[j] = canonicalDomain(p.Allow[j])
		}
		for j := range p.Block {
			p.Block[j] = canonicalDomain(p.Block[j])
		}
		for j := range p.Bypass.VPNPorts {
			p.Bypass.VPNPorts[j] = strings.ToLower(strings.TrimSpace(p.Bypass.VPNPorts[j]))
		}
	}
	for i := range c.Exceptions {
		e := &c.Exceptions[i]
		e.Domain = canonicalDomain(e.Domain)
		if e.Scope == ScopeDevice {
			e.Target = canonicalMAC(e.Target)
		}
	}
}

// nilEmpty replaces empty slices and maps by nil, so that "lists: []" and no lists at all
// load to the same Config.
func nilEmpty(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			nilEmpty(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				nilEmpty(v.Field(i))
			}
		}
	case reflect.Slice:
		if v.Len() == 0 {
			v.SetZero()
			return
		}
		for i := range v.Len() {
			nilEmpty(v.Index(i))
		}
	case reflect.Map:
		if v.Len() == 0 {
			v.SetZero()
		}
	}
}

func canonicalMAC(s string) string {
	hw, err := net.ParseMAC(strings.TrimSpace(s))
	if err != nil || len(hw) != 6 {
		return s
	}
	return hw.String()
}

// canonicalDomain is deliberately simple: the lists package does IDN normalisation.
func canonicalDomain(s string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
}

// walker records the line of every field and reports unknown fields and unreadable
// addresses, prefixes and durations itself: the YAML decoder stops at the first of those
// without a line number, and an operator wants them all, with lines.
type walker struct {
	lines lineMap
	errs  []FieldError
	nodes int
}

var (
	typeAddr     = reflect.TypeFor[netip.Addr]()
	typePrefix   = reflect.TypeFor[netip.Prefix]()
	typeDuration = reflect.TypeFor[Duration]()
	typeTime     = reflect.TypeFor[time.Time]()
)

func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) {
	w.nodes++
	if w.nodes > maxNodes {
		if w.nodes == maxNodes+1 {
			w.errs = append(w.errs, FieldError{Field: path, Line: n.Line, Msg: "document too large or too deeply aliased"})
		}
		return
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias != nil {
			w.walk(n.Alias, t, path)
		}
		return
	}
	if _, ok := w.lines[path]; !ok && path != "" {
		w.lines[path] = n.Line
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t {
	case typeAddr:
		w.scalar(n, path, func(s string) error {
			_, err := netip.ParseAddr(s)
			return err
		}, "an IP address")
		return
	case typePrefix:
		w.scalar(n, path, func(s string) error {
			_, err := netip.ParsePrefix(s)
			return err
		}, "an address prefix like 10.20.0.0/16")
		return
	case typeDuration:
		w.scalar(n, path, func(s string) error {
			_, err := ParseDuration(s)
			return err
		}, "a duration like 24h")
		return
	case typeTime:
		w.scalar(n, path, parseTime, "a time like 2026-03-01T08:30:00Z")
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return // the decoder reports the type mismatch with its line
		}
		w.mapping(n, path, func(key *yaml.Node, val *yaml.Node) {
			f, ok := fieldByTag(t, key.Value)
			if !ok {
				w.errs = append(w.errs, FieldError{
					Field: join(path, key.Value), Line: key.Line,
					Msg: fmt.Sprintf("unknown field %q; known: %s", key.Value, strings.Join(fieldNames(t), ", ")),
				})
				return
			}
			p := join(path, key.Value)
			w.lines[p] = key.Line
			w.walk(val, f.Type, p)
		})
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		w.mapping(n, path, func(key *yaml.Node, val *yaml.Node) {
			p := join(path, key.Value)
			w.lines[p] = key.Line
			w.walk(val, t.Elem(), p)
		})
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, item := range n.Content {
			w.walk(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
	}
}

// mapping calls fn for each pair of a mapping node, following "<<" merge keys.
func (w *walker) mapping(n *yaml.Node, path string, fn func(key, val *yaml.Node)) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		if key.Tag == "!!merge" || (key.Kind == yaml.ScalarNode && key.Value == "<<" && key.Tag != "!!str") {
			w.merge(val, path, fn)
			continue
		}
		fn(key, val)
	}
}

func (w *walker) merge(n *yaml.Node, path string, fn func(key, val *yaml.Node)) {
	w.nodes++
	if w.nodes > maxNodes {
		return
	}
	switch n.Kind {
	case yaml.AliasNode:
		if n.Alias != nil {
			w.merge(n.Alias, path, fn)
		}
	case yaml.MappingNode:
		w.mapping(n, path, fn)
	case yaml.SequenceNode:
		for _, item := range n.Content {
			w.merge(item, path, fn)
		}
	}
}

func (w *walker) scalar(n *yaml.Node, path string, parse func(string) error, want string) {
	if n.Kind != yaml.ScalarNode {
		w.errs = append(w.errs, FieldError{Field: path, Line: n.Line, Msg: "want " + want})
		return
	}
	if n.Value == "" {
		return
	}
	if err := parse(n.Value); err != nil {
		msg := err.Error()
		if !errors.Is(err, ErrDuration) {
			msg = fmt.Sprintf("%q is not %s", n.Value, want)
		}
		w.errs = append(w.errs, FieldError{Field: path, Line: n.Line, Msg: msg})
	}
}

// timeFormats are the timestamp forms the YAML decoder accepts.
var timeFormats = []string{
	time.RFC3339Nano,
	"2006-1-2T15:4:5.999999999Z07:00",
	"2006-1-2t15:4:5.999999999Z07:00",
	"2006-1-2 15:4:5.999999999",
	"2006-1-2",
}

func parseTime(s string) error {
	for _, f := range timeFormats {
		if _, err := time.Parse(f, s); err == nil {
			return nil
		}
	}
	return errors.New("not a time")
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if f.IsExported() && tagName(f) == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func fieldNames(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		if n := tagName(f); f.IsExported() && n != "" && n != "-" {
			out = append(out, n)
		}
	}
	return out
}

func tagName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "" {
		return strings.ToLower(f.Name)
	}
	return name
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// syntaxError turns a YAML parse error into a ValidationError so that the UI shows it the
// same way as any other problem.
func syntaxError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return newValidationError([]FieldError{{Line: line, Msg: "yaml syntax: " + m[2]}})
	}
	return newValidationError([]FieldError{{Msg: "yaml syntax: " + msg}})
}

// decodeError turns the decoder's "line N: cannot unmarshal ..." messages into field errors,
// finding the field from the line.
func decodeError(err error, lines lineMap) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return newValidationError([]FieldError{{Msg: strings.TrimPrefix(err.Error(), "yaml: ")}})
	}
	var fes []FieldError
	for _, e := range te.Errors {
		fe := FieldError{Msg: e}
		if m := yamlLine.FindStringSubmatch(e); m != nil {
			fe.Line, _ = strconv.Atoi(m[1])
			fe.Msg = m[2]
			fe.Field = fieldAtLine(lines, fe.Line)
		}
		fes = append(fes, fe)
	}
	return newValidationError(fes)
}

// fieldAtLine returns the deepest field path on a line.
func fieldAtLine(lines lineMap, line int) string {
	best := ""
	for p, l := range lines {
		if l == line && (len(p) > len(best) || len(p) == len(best) && p < best) {
			best = p
		}
	}
	return best
}

// line returns the line of path, or of its nearest parent present in the document (a
// missing field is reported where its parent is).
func (c *Config) line(path string) int {
	for path != "" {
		if l, ok := c.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

func newValidationError(fes []FieldError) *ValidationError {
	sort.SliceStable(fes, func(i, j int) bool { return fes[i].Line < fes[j].Line })
	return &ValidationError{Errors: slices.Clip(fes)}
}
