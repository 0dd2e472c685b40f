package exceptions

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/schoolgate/schoolgate/firmware/config"
	"github.com/schoolgate/schoolgate/firmware/internal/sqlitedb"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// protectedSet stands in for the protected lists: exact names only, so that
// the store's walk up the parents is what refuses their subdomains.
type protectedSet struct {
	mu    sync.Mutex
	names map[string]bool
}

func (p *protectedSet) Has(name string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.names[name]
}

func (p *protectedSet) Add(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.names[name] = true
}

type env struct {
	s     *Store
	clock *fakeClock
	prot  *protectedSet
	cfg   Config
}

func newEnv(t *testing.T, mod ...func(*Config)) *env {
	t.Helper()
	e := &env{
		clock: &fakeClock{t: t0},
		prot:  &protectedSet{names: map[string]bool{"iwf-test.example": true}},
	}
	e.cfg = Config{
		Path:      filepath.Join(t.TempDir(), FileName),
		Now:       e.clock.Now,
		Protected: e.prot.Has,
	}
	for _, m := range mod {
		m(&e.cfg)
	}
	e.s = openStore(t, e.cfg)
	return e
}

func openStore(t *testing.T, cfg Config) *Store {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var ctx = context.Background()

// lesson is a typical teacher's request.
func lesson() Exception {
	return Exception{
		Scope:       "profile",
		Target:      "pupils",
		Domain:      "www.Example.com.",
		Action:      "allow",
		Reason:      "  Year 9 history: primary sources on the archive  ",
		Duration:    90 * time.Minute,
		RequestedBy: "mrs.jones",
	}
}

func (e *env) request(t *testing.T, x Exception) Exception {
	t.Helper()
	got, err := e.s.Request(ctx, x)
	if err != nil {
		t.Fatalf("Request: %v", err)
	}
	return got
}

func (e *env) get(t *testing.T, id int64) Exception {
	t.Helper()
	got, err := e.s.Get(ctx, id)
	if err != nil {
		t.Fatalf("Get(%d): %v", id, err)
	}
	return got
}

func (e *env) active(t *testing.T) []config.Exception {
	t.Helper()
	got, err := e.s.Active(ctx)
	if err != nil {
		t.Fatalf("Active: %v", err)
	}
	return got
}

func (e *env) expire(t *testing.T) []Exception {
	t.Helper()
	got, err := e.s.Expire(ctx)
	if err != nil {
		t.Fatalf("Expire: %v", err)
	}
	return got
}

func fieldOf(err error) string {
	var fe *FieldError
	if errors.As(err, &fe) {
		return fe.Field
	}
	return ""
}

func fieldsOf(err error) []string {
	var ve *ValidationError
	if !errors.As(err, &ve) {
		return nil
	}
	var fields []string
	for _, fe := range ve.Errors {
		fields = append(fields, fe.Field)
	}
	return fields
}

func TestRequestApproveExpire(t *testing.T) {
	e := newEnv(t)
	req := e.request(t, lesson())
	want := Exception{
		ID:          req.ID,
		Scope:       "profile",
		Target:      "pupils",
		Domain:      "www.example.com",
		Action:      "allow",
		Reason:      "Year 9 history: primary sources on the archive",
		Duration:    90 * time.Minute,
		Status:      Pending,
		RequestedBy: "mrs.jones",
		Source:      SourceUI,
		Requested:   t0,
	}
	if !reflect.DeepEqual(req, want) {
		t.Fatalf("Request returned\n%+v\nwant\n%+v", req, want)
	}
	if got := e.get(t, req.ID); !reflect.DeepEqual(got, req) {
		t.Errorf("Get = %+v, want what Request returned", got)
	}
	if got := e.active(t); len(got) != 0 {
		t.Errorf("Active while pending = %+v, want none", got)
	}
	if _, ok, err := e.s.NextExpiry(ctx); ok || err != nil {
		t.Errorf("NextExpiry while pending: ok %v, err %v; want none", ok, err)
	}

	// Approved 20 minutes later: it starts then, not at the request.
	e.clock.Advance(20 * time.Minute)
	approvedAt := t0.Add(20 * time.Minute)
	ap, err := e.s.Approve(ctx, req.ID, "dsl.smith", "ok for this lesson", Grant{})
	if err != nil {
		t.Fatalf("Approve: %v", err)
	}
	want.Status, want.DecidedBy, want.Note, want.Decided = Approved, "dsl.smith", "ok for this lesson", approvedAt
	want.Starts, want.Expires = approvedAt, approvedAt.Add(90*time.Minute)
	if !reflect.DeepEqual(ap, want) {
		t.Fatalf("Approve returned\n%+v\nwant\n%+v", ap, want)
	}
	if got := e.get(t, req.ID); !reflect.DeepEqual(got, ap) {
		t.Errorf("Get after approval = %+v, want %+v", got, ap)
	}

	wantActive := []config.Exception{{
		ID: "x1", Scope: "profile", Target: "pupils", Domain: "www.example.com", Action: "allow",
		Reason: want.Reason, RequestedBy: "mrs.jones", ApprovedBy: "dsl.smith",
		Created: approvedAt, Expires: approvedAt.Add(90 * time.Minute),
	}}
	if got := e.active(t); !reflect.DeepEqual(got, wantActive) {
		t.Errorf("Active = %+v\nwant %+v", got, wantActive)
	}
	if next, ok, err := e.s.NextExpiry(ctx); err != nil || !ok || !next.Equal(want.Expires) {
		t.Errorf("NextExpiry = %v, %v, %v; want %v", next, ok, err, want.Expires)
	}
	if got := e.expire(t); len(got) != 0 {
		t.Errorf("Expire before expiry = %+v, want none", got)
	}

	// One millisecond before expiry it still applies; at expiry it does not.
	e.clock.Advance(90*time.Minute - time.Millisecond)
	if got := e.active(t); len(got) != 1 {
		t.Errorf("Active just before expiry: %d exceptions, want 1", len(got))
	}
	e.clock.Advance(time.Millisecond)
	if got := e.active(t); len(got) != 0 {
		t.Errorf("Active at expiry = %+v, want none", got)
	}
	// Not yet marked: NextExpiry says so, in the past, so the daemon expires at once.
	if next, ok, _ := e.s.NextExpiry(ctx); !ok || next.After(e.clock.Now()) {
		t.Errorf("NextExpiry after expiry = %v, %v; want %v", next, ok, want.Expires)
	}

	e.clock.Advance(time.Hour) // the daemon was asleep
	expired := e.expire(t)
	want.Status, want.Ended = Expired, want.Expires
	if len(expired) != 1 || !reflect.DeepEqual(expired[0], want) {
		t.Fatalf("Expire = %+v\nwant [%+v]", expired, want)
	}
	if got := e.get(t, req.ID); !reflect.DeepEqual(got, want) {
		t.Errorf("Get after Expire = %+v, want %+v", got, want)
	}
	if got := e.expire(t); len(got) != 0 {
		t.Errorf("second Expire = %+v, want none", got)
	}
	if _, ok, _ := e.s.NextExpiry(ctx); ok {
		t.Error("NextExpiry after Expire: still reports one")
	}
	if _, err := e.s.Revoke(ctx, req.ID, "dsl.smith", "no longer needed"); !errors.Is(err, ErrWrongState) {
		t.Errorf("Revoke of expired: %v, want ErrWrongState", err)
	}
}

func TestApproveGrant(t *testing.T) {
	e := newEnv(t)
	req := e.request(t, lesson())

	_, err := e.s.Approve(ctx, req.ID, "dsl.smith", "", Grant{Scope: "device"})
	if !errors.Is(err, ErrInvalid) || fieldOf(err) != FieldTarget {
		t.Fatalf("new scope without target: %v, want a target FieldError", err)
	}
	_, err = e.s.Approve(ctx, req.ID, "dsl.smith", "", Grant{Duration: 31 * 24 * time.Hour})
	if fieldOf(err) != FieldDuration {
		t.Fatalf("31 days: %v, want a duration FieldError", err)
	}
	if got := e.get(t, req.ID); got.Status != Pending {
		t.Fatalf("refused approvals changed the request: %+v", got)
	}

	ap, err := e.s.Approve(ctx, req.ID, "dsl.smith", "", Grant{Scope: "Device", Target: "AA-BB-CC-00-11-22", Duration: 45 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if ap.Scope != "device" || ap.Target != "aa:bb:cc:00:11:22" || ap.Duration != 45*time.Minute || !ap.Expires.Equal(t0.Add(45*time.Minute)) {
		t.Errorf("approved with grant: %+v", ap)
	}
	if ap.Note != "" {
		t.Errorf("note = %q, want none", ap.Note)
	}
	// What was asked is kept, for the requester and the DSL to see what changed.
	if ap.AskedScope != req.Scope || ap.AskedTarget != req.Target || ap.AskedDuration != req.Duration {
		t.Errorf("asked: %s %s for %v, want %s %s for %v", ap.AskedScope, ap.AskedTarget, ap.AskedDuration, req.Scope, req.Target, req.Duration)
	}
	if got := e.get(t, req.ID); got.AskedDuration != req.Duration || got.AskedTarget != req.Target {
		t.Errorf("asked, read back: %+v", got)
	}

	// A target alone keeps the scope.
	req2 := e.request(t, lesson())
	ap2, err := e.s.Approve(ctx, req2.ID, "tech", "", Grant{Target: "staff"})
	if err != nil || ap2.Scope != "profile" || ap2.Target != "staff" {
		t.Errorf("target-only grant: %+v, %v", ap2, err)
	}
	if ap2.AskedScope != "profile" || ap2.AskedTarget != req2.Target || ap2.AskedDuration != 0 {
		t.Errorf("target-only grant, asked: %q %q %v; want the target only", ap2.AskedScope, ap2.AskedTarget, ap2.AskedDuration)
	}
}

func TestDeny(t *testing.T) {
	e := newEnv(t)
	req := e.request(t, lesson())
	for _, note := range []string{"", "   ", "no"} {
		_, err := e.s.Deny(ctx, req.ID, "dsl.smith", note)
		if !errors.Is(err, ErrInvalid) || fieldOf(err) != FieldNote {
			t.Errorf("Deny with note %q: %v, want a note FieldError", note, err)
		}
	}
	if _, err := e.s.Deny(ctx, req.ID, "", "not suitable"); fieldOf(err) != FieldBy {
		t.Errorf("Deny without a name: %v, want a by FieldError", err)
	}
	e.clock.Advance(time.Minute)
	d, err := e.s.Deny(ctx, req.ID, "dsl.smith", "Use the school's licensed archive instead.")
	if err != nil {
		t.Fatal(err)
	}
	if d.Status != Denied || d.DecidedBy != "dsl.smith" || d.Note != "Use the school's licensed archive instead." ||
		!d.Decided.Equal(t0.Add(time.Minute)) || !d.Starts.IsZero() || !d.Expires.IsZero() {
		t.Errorf("denied: %+v", d)
	}
	if _, err := e.s.Approve(ctx, req.ID, "tech", "", Grant{}); !errors.Is(err, ErrWrongState) {
		t.Errorf("Approve after Deny: %v, want ErrWrongState", err)
	}
	if _, err := e.s.Deny(ctx, req.ID, "tech", "again, no"); !errors.Is(err, ErrWrongState) {
		t.Errorf("Deny twice: %v, want ErrWrongState", err)
	}
	if got := e.active(t); len(got) != 0 {
		t.Errorf("Active after Deny = %+v", got)
	}
	if _, err := e.s.Deny(ctx, 999, "tech", "no such thing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Deny of unknown: %v, want ErrNotFound", err)
	}
}

func TestRevoke(t *testing.T) {
	e := newEnv(t)
	req := e.request(t, lesson())
	if _, err := e.s.Revoke(ctx, req.ID, "tech", "not approved yet"); !errors.Is(err, ErrWrongState) {
		t.Errorf("Revoke of pending: %v, want ErrWrongState", err)
	}
	ap, err := e.s.Approve(ctx, req.ID, "dsl.smith", "", Grant{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Revoke(ctx, req.ID, "tech", ""); fieldOf(err) != FieldNote {
		t.Errorf("Revoke without note: %v, want a note FieldError", err)
	}
	e.clock.Advance(10 * time.Minute)
	rv, err := e.s.Revoke(ctx, req.ID, "tech", "Pupils found a chat section")
	if err != nil {
		t.Fatal(err)
	}
	if rv.Status != Revoked || rv.EndedBy != "tech" || rv.EndNote != "Pupils found a chat section" ||
		!rv.Ended.Equal(t0.Add(10*time.Minute)) || rv.DecidedBy != "dsl.smith" || !rv.Expires.Equal(ap.Expires) {
		t.Errorf("revoked: %+v", rv)
	}
	if got := e.active(t); len(got) != 0 {
		t.Errorf("Active after Revoke = %+v", got)
	}
	if _, ok, _ := e.s.NextExpiry(ctx); ok {
		t.Error("NextExpiry reports a revoked exception")
	}
	if _, err := e.s.Revoke(ctx, req.ID, "tech", "twice"); !errors.Is(err, ErrWrongState) {
		t.Errorf("Revoke twice: %v, want ErrWrongState", err)
	}
	e.clock.Advance(2 * time.Hour)
	if got := e.expire(t); len(got) != 0 {
		t.Errorf("Expire returned a revoked exception: %+v", got)
	}

	// Approved but past its expiry, not yet marked: nothing left to revoke.
	req2 := e.request(t, lesson())
	if _, err := e.s.Approve(ctx, req2.ID, "tech", "", Grant{}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * time.Hour)
	if _, err := e.s.Revoke(ctx, req2.ID, "tech", "too late"); !errors.Is(err, ErrWrongState) {
		t.Errorf("Revoke after expiry: %v, want ErrWrongState", err)
	}
}

func TestWithdraw(t *testing.T) {
	e := newEnv(t)
	req := e.request(t, lesson())
	for _, by := range []string{"mr.brown", "dsl.smith", "mrs.jones ", "MRS.JONES"} {
		if _, err := e.s.Withdraw(ctx, req.ID, by); !errors.Is(err, ErrNotRequester) {
			t.Errorf("Withdraw by %q: %v, want ErrNotRequester", by, err)
		}
	}
	if got := e.get(t, req.ID); got.Status != Pending {
		t.Fatalf("refused withdrawal changed the request: %+v", got)
	}
	e.clock.Advance(time.Minute)
	w, err := e.s.Withdraw(ctx, req.ID, "mrs.jones")
	if err != nil {
		t.Fatal(err)
	}
	if w.Status != Withdrawn || w.EndedBy != "mrs.jones" || !w.Ended.Equal(t0.Add(time.Minute)) || w.DecidedBy != "" {
		t.Errorf("withdrawn: %+v", w)
	}
	if _, err := e.s.Withdraw(ctx, req.ID, "mrs.jones"); !errors.Is(err, ErrWrongState) {
		t.Errorf("Withdraw twice: %v, want ErrWrongState", err)
	}
	if _, err := e.s.Approve(ctx, req.ID, "tech", "", Grant{}); !errors.Is(err, ErrWrongState) {
		t.Errorf("Approve after Withdraw: %v, want ErrWrongState", err)
	}

	req2 := e.request(t, lesson())
	if _, err := e.s.Approve(ctx, req2.ID, "tech", "", Grant{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Withdraw(ctx, req2.ID, "mrs.jones"); !errors.Is(err, ErrWrongState) {
		t.Errorf("Withdraw of approved: %v, want ErrWrongState", err)
	}

	rv, err := e.s.RequestReview(ctx, Review{Domain: "games.example", Profile: "pupils", ClientAddr: "10.0.20.31", Reason: "for homework"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Withdraw(ctx, rv.ID, rv.RequestedBy); !errors.Is(err, ErrNotRequester) {
		t.Errorf("Withdraw of a block-page request: %v, want ErrNotRequester", err)
	}
	if _, err := e.s.Withdraw(ctx, 999, "mrs.jones"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Withdraw of unknown: %v, want ErrNotFound", err)
	}
}

func TestCreate(t *testing.T) {
	e := newEnv(t)
	x := lesson()
	x.RequestedBy = "ignored"
	x.Action = "Block"
	c, err := e.s.Create(ctx, x, "tech")
	if err != nil {
		t.Fatal(err)
	}
	if c.Status != Approved || c.RequestedBy != "tech" || c.DecidedBy != "tech" || c.Action != "block" ||
		!c.Requested.Equal(t0) || !c.Decided.Equal(t0) || !c.Starts.Equal(t0) || !c.Expires.Equal(t0.Add(90*time.Minute)) {
		t.Errorf("created: %+v", c)
	}
	if got := e.get(t, c.ID); !reflect.DeepEqual(got, c) {
		t.Errorf("Get = %+v, want %+v", got, c)
	}
	if a := e.active(t); len(a) != 1 || a[0].ApprovedBy != "tech" || a[0].Action != "block" {
		t.Errorf("Active = %+v", a)
	}
	if _, err := e.s.Create(ctx, lesson(), ""); fieldOf(err) != FieldBy {
		t.Errorf("Create without a name: %v, want a by FieldError", err)
	}
}

func TestProtected(t *testing.T) {
	e := newEnv(t)
	for _, d := range []string{"iwf-test.example", "IWF-TEST.example.", "www.iwf-test.example", "a.b.iwf-test.example"} {
		x := lesson()
		x.Domain = d
		for _, action := range []string{"allow", "block"} {
			x.Action = action
			_, err := e.s.Request(ctx, x)
			if !errors.Is(err, ErrProtected) || !errors.Is(err, ErrInvalid) || fieldOf(err) != FieldDomain {
				t.Errorf("Request %s of %q: %v, want ErrProtected on domain", action, d, err)
			}
			if _, err := e.s.Create(ctx, x, "tech"); !errors.Is(err, ErrProtected) {
				t.Errorf("Create %s of %q: %v, want ErrProtected", action, d, err)
			}
		}
		if _, err := e.s.RequestReview(ctx, Review{Domain: d, Profile: "pupils", ClientAddr: "10.0.20.31", Reason: "please"}); !errors.Is(err, ErrProtected) {
			t.Errorf("RequestReview of %q: %v, want ErrProtected", d, err)
		}
	}
	// Siblings and the parent are not protected; the engine keeps children of an
	// allowed domain blocked if they are.
	for _, d := range []string{"other.example", "iwf-test2.example", "xiwf-test.example"} {
		x := lesson()
		x.Domain = d
		if _, err := e.s.Request(ctx, x); err != nil {
			t.Errorf("Request of %q: %v", d, err)
		}
	}

	// The lists changed between request and approval.
	x := lesson()
	x.Domain = "later.example"
	req := e.request(t, x)
	e.prot.Add("later.example")
	_, err := e.s.Approve(ctx, req.ID, "dsl.smith", "", Grant{})
	if !errors.Is(err, ErrProtected) || fieldOf(err) != FieldDomain {
		t.Errorf("Approve of a now-protected domain: %v, want ErrProtected", err)
	}
	if !strings.Contains(err.Error(), "protected list") {
		t.Errorf("message %q does not say why", err)
	}
	if got := e.get(t, req.ID); got.Status != Pending {
		t.Errorf("refused approval changed the request: %+v", got)
	}
	if got := e.active(t); len(got) != 0 {
		t.Errorf("Active = %+v", got)
	}
}

func TestValidation(t *testing.T) {
	e := newEnv(t)
	long := strings.Repeat("é", 501)
	tests := []struct {
		name  string
		edit  func(*Exception)
		field string // "" → accepted
		check func(Exception) bool
	}{
		{"lesson", func(*Exception) {}, "", nil},
		{"no scope", func(x *Exception) { x.Scope = "" }, FieldScope, nil},
		{"unknown scope", func(x *Exception) { x.Scope = "school" }, FieldScope, nil},
		{"scope in capitals", func(x *Exception) { x.Scope = " Segment " }, "", func(x Exception) bool { return x.Scope == "segment" }},
		{"no target", func(x *Exception) { x.Target = "  " }, FieldTarget, nil},
		{"target with newline", func(x *Exception) { x.Target = "pupils\nstaff" }, FieldTarget, nil},
		{"target too long", func(x *Exception) { x.Target = strings.Repeat("p", 101) }, FieldTarget, nil},
		{"target trimmed", func(x *Exception) { x.Target = " pupils " }, "", func(x Exception) bool { return x.Target == "pupils" }},
		{"device MAC with dashes", func(x *Exception) { x.Scope, x.Target = "device", "AA-BB-CC-DD-EE-0F" }, "",
			func(x Exception) bool { return x.Target == "aa:bb:cc:dd:ee:0f" }},
		{"device MAC Cisco", func(x *Exception) { x.Scope, x.Target = "device", "aabb.ccdd.ee0f" }, "",
			func(x Exception) bool { return x.Target == "aa:bb:cc:dd:ee:0f" }},
		{"device name, not MAC", func(x *Exception) { x.Scope, x.Target = "device", "ipad-12" }, FieldTarget, nil},
		{"device EUI-64", func(x *Exception) { x.Scope, x.Target = "device", "02:00:5e:10:00:00:00:01" }, FieldTarget, nil},
		{"no domain", func(x *Exception) { x.Domain = "" }, FieldDomain, nil},
		{"URL", func(x *Exception) { x.Domain = "https://www.bbc.co.uk/news" }, FieldDomain, nil},
		{"path", func(x *Exception) { x.Domain = "example.com/page" }, FieldDomain, nil},
		{"wildcard", func(x *Exception) { x.Domain = "*.example.com" }, FieldDomain, nil},
		{"IPv4", func(x *Exception) { x.Domain = "192.0.2.1" }, FieldDomain, nil},
		{"IPv6", func(x *Exception) { x.Domain = "2001:db8::1" }, FieldDomain, nil},
		{"bare TLD", func(x *Exception) { x.Domain = "com" }, FieldDomain, nil},
		{"bare TLD with dot", func(x *Exception) { x.Domain = "uk." }, FieldDomain, nil},
		{"public suffix", func(x *Exception) { x.Domain = "co.uk" }, FieldDomain, nil},
		{"private public suffix", func(x *Exception) { x.Domain = "github.io" }, FieldDomain, nil},
		{"site under public suffix", func(x *Exception) { x.Domain = "bbc.co.uk" }, "", nil},
		{"space in domain", func(x *Exception) { x.Domain = "ex ample.com" }, FieldDomain, nil},
		{"empty label", func(x *Exception) { x.Domain = "example..com" }, FieldDomain, nil},
		{"IDN", func(x *Exception) { x.Domain = "Bücher.de" }, "", func(x Exception) bool { return x.Domain == "xn--bcher-kva.de" }},
		{"no action", func(x *Exception) { x.Action = "" }, FieldAction, nil},
		{"unknown action", func(x *Exception) { x.Action = "permit" }, FieldAction, nil},
		{"no reason", func(x *Exception) { x.Reason = " \t " }, FieldReason, nil},
		{"short reason", func(x *Exception) { x.Reason = " ok " }, FieldReason, nil},
		{"three characters", func(x *Exception) { x.Reason = "art" }, "", nil},
		{"500 characters", func(x *Exception) { x.Reason = long[2:] }, "", nil},
		{"501 characters", func(x *Exception) { x.Reason = long }, FieldReason, nil},
		{"reason with newline", func(x *Exception) { x.Reason = "line one\nline two" }, FieldReason, nil},
		{"reason with NUL", func(x *Exception) { x.Reason = "lesson\x00" + "x" }, FieldReason, nil},
		{"reason with bidi override", func(x *Exception) { x.Reason = "lesson \u202eevil" }, FieldReason, nil},
		{"reason not UTF-8", func(x *Exception) { x.Reason = "lesson \xff" }, FieldReason, nil},
		{"reason with emoji", func(x *Exception) { x.Reason = "Science 🧪 lesson" }, "", nil},
		{"zero duration", func(x *Exception) { x.Duration = 0 }, FieldDuration, nil},
		{"negative duration", func(x *Exception) { x.Duration = -time.Hour }, FieldDuration, nil},
		{"30 seconds", func(x *Exception) { x.Duration = 30 * time.Second }, FieldDuration, nil},
		{"fraction dropped", func(x *Exception) { x.Duration = time.Hour + 1500*time.Millisecond }, "",
			func(x Exception) bool { return x.Duration == time.Hour+time.Second }},
		{"30 days", func(x *Exception) { x.Duration = 30 * 24 * time.Hour }, "", nil},
		{"30 days and a second", func(x *Exception) { x.Duration = 30*24*time.Hour + time.Second }, FieldDuration, nil},
		{"no requester", func(x *Exception) { x.RequestedBy = "" }, FieldRequestedBy, nil},
		{"requester with control", func(x *Exception) { x.RequestedBy = "a\x1bb" }, FieldRequestedBy, nil},
		{"requester kept as given", func(x *Exception) { x.RequestedBy = " Mrs Jones " }, "",
			func(x Exception) bool { return x.RequestedBy == " Mrs Jones " }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := lesson()
			tt.edit(&x)
			got, err := e.s.Request(ctx, x)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if tt.check != nil && !tt.check(got) {
					t.Errorf("stored as %+v", got)
				}
				if again := e.get(t, got.ID); !reflect.DeepEqual(again, got) {
					t.Errorf("Get = %+v, want %+v", again, got)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
			if f := fieldsOf(err); len(f) != 1 || f[0] != tt.field {
				t.Fatalf("fields %v, want [%s]: %v", f, tt.field, err)
			}
			var fe *FieldError
			errors.As(err, &fe)
			if label := strings.ReplaceAll(tt.field, "_", ""); !strings.Contains(strings.ReplaceAll(fe.Message, "_", ""), label) {
				t.Errorf("message %q does not name the field %s", fe.Message, tt.field)
			}
		})
	}
}

func TestValidationReportsEveryField(t *testing.T) {
	e := newEnv(t)
	_, err := e.s.Request(ctx, Exception{Scope: "device", Target: "nope", Domain: "1.2.3.4", Action: "yes", Duration: time.Second})
	want := []string{FieldTarget, FieldDomain, FieldAction, FieldReason, FieldDuration, FieldRequestedBy}
	if got := fieldsOf(err); !reflect.DeepEqual(got, want) {
		t.Errorf("fields %v, want %v (%v)", got, want, err)
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("got %v, want a *ValidationError", err)
	}
	if ve.Field(FieldScope) != "" || ve.Field(FieldReason) == "" {
		t.Errorf("Field lookup: scope %q, reason %q", ve.Field(FieldScope), ve.Field(FieldReason))
	}
	// A pasted web address: the message names the site to give instead.
	x0 := lesson()
	x0.Domain = "https://www.BBC.co.uk/news?id=1"
	if _, err := e.s.Request(ctx, x0); err == nil || !strings.Contains(err.Error(), "here www.bbc.co.uk") {
		t.Errorf("web address: %v, want the host suggested", err)
	}
	// Hostile input is quoted back shortened.
	x := lesson()
	x.Domain = strings.Repeat("a/", 5000)
	_, err = e.s.Request(ctx, x)
	if err == nil || len(err.Error()) > 400 {
		t.Errorf("long input: error of %d bytes: %.100v", len(err.Error()), err)
	}
}

func TestKnownTarget(t *testing.T) {
	known := map[string]bool{"profile/pupils": true, "segment/pupils-wifi": true}
	e := newEnv(t, func(c *Config) {
		c.KnownTarget = func(scope, name string) bool { return known[scope+"/"+name] }
	})
	for _, tt := range []struct {
		scope, target string
		ok            bool
	}{
		{"profile", "pupils", true},
		{"profile", "Pupils", false},
		{"segment", "pupils-wifi", true},
		{"segment", "pupils", false},
		{"device", "aa:bb:cc:dd:ee:ff", true},
	} {
		x := lesson()
		x.Scope, x.Target = tt.scope, tt.target
		_, err := e.s.Request(ctx, x)
		if (err == nil) != tt.ok || (err != nil && fieldOf(err) != FieldTarget) {
			t.Errorf("%s %q: %v, want ok %v", tt.scope, tt.target, err, tt.ok)
		}
	}
}

func TestRequestReview(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.ReviewDuration = 50 * time.Minute })
	r := Review{Domain: "Games.Example", Profile: "pupils", ClientAddr: "[::ffff:10.0.20.31]:51234", ClientMAC: "AA-BB-CC-00-11-22", Reason: " I need it for my homework "}
	got, err := e.s.RequestReview(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	want := Exception{
		ID: got.ID, Scope: "profile", Target: "pupils", Domain: "games.example", Action: "allow",
		Reason: "I need it for my homework", Duration: 50 * time.Minute, Status: Pending,
		RequestedBy: "block page (10.0.20.31)", Source: SourceBlockPage,
		ClientAddr: "10.0.20.31", ClientMAC: "aa:bb:cc:00:11:22", Requested: t0,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("RequestReview = %+v\nwant %+v", got, want)
	}
	if again := e.get(t, got.ID); !reflect.DeepEqual(again, got) {
		t.Errorf("Get = %+v", again)
	}

	// Pressing the button again gives the same request.
	e.clock.Advance(time.Minute)
	r.Reason = "please please please"
	if dup, err := e.s.RequestReview(ctx, r); err != nil || !reflect.DeepEqual(dup, got) {
		t.Errorf("repeat: %+v, %v; want the first request", dup, err)
	}

	// The reviewer narrows it to the device.
	ap, err := e.s.Approve(ctx, got.ID, "dsl.smith", "for tonight's homework only", Grant{Scope: "device", Target: got.ClientMAC, Duration: 3 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if ap.Scope != "device" || ap.Target != "aa:bb:cc:00:11:22" || ap.Duration != 3*time.Hour || ap.Source != SourceBlockPage {
		t.Errorf("approved: %+v", ap)
	}

	for _, tt := range []struct {
		name  string
		r     Review
		field string
	}{
		{"no address", Review{Domain: "a.example", Profile: "pupils", Reason: "homework"}, FieldClientAddr},
		{"bad address", Review{Domain: "a.example", Profile: "pupils", ClientAddr: "pupil-pc", Reason: "homework"}, FieldClientAddr},
		{"bad MAC", Review{Domain: "a.example", Profile: "pupils", ClientAddr: "10.0.20.5", ClientMAC: "zz", Reason: "homework"}, FieldClientMAC},
		{"no profile", Review{Domain: "a.example", ClientAddr: "10.0.20.5", Reason: "homework"}, FieldTarget},
		{"no reason", Review{Domain: "a.example", Profile: "pupils", ClientAddr: "10.0.20.5"}, FieldReason},
		{"IP domain", Review{Domain: "10.1.1.1", Profile: "pupils", ClientAddr: "10.0.20.5", Reason: "homework"}, FieldDomain},
	} {
		if _, err := e.s.RequestReview(ctx, tt.r); fieldOf(err) != tt.field {
			t.Errorf("%s: %v, want a %s FieldError", tt.name, err, tt.field)
		}
	}

	// One device cannot fill the queue.
	for i := range maxPendingPerClient {
		rr := Review{Domain: string(rune('a'+i)) + ".example", Profile: "pupils", ClientAddr: "10.0.20.40", Reason: "homework"}
		if _, err := e.s.RequestReview(ctx, rr); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	_, err = e.s.RequestReview(ctx, Review{Domain: "z.example", Profile: "pupils", ClientAddr: "10.0.20.40", Reason: "homework"})
	if !errors.Is(err, ErrTooManyRequests) {
		t.Errorf("request over the cap: %v, want ErrTooManyRequests", err)
	}
	if _, err := e.s.RequestReview(ctx, Review{Domain: "z.example", Profile: "pupils", ClientAddr: "10.0.20.41", Reason: "homework"}); err != nil {
		t.Errorf("another device: %v", err)
	}
}

func TestList(t *testing.T) {
	e := newEnv(t)
	var ids []int64
	for i, who := range []string{"mrs.jones", "mr.brown", "mrs.jones", "mr.brown"} {
		x := lesson()
		x.RequestedBy = who
		ids = append(ids, e.request(t, x).ID)
		if i < 3 {
			e.clock.Advance(time.Minute)
		}
	}
	if _, err := e.s.Approve(ctx, ids[0], "tech", "", Grant{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.Deny(ctx, ids[1], "tech", "not now"); err != nil {
		t.Fatal(err)
	}
	idsOf := func(f Filter) []int64 {
		t.Helper()
		list, err := e.s.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for _, x := range list {
			out = append(out, x.ID)
		}
		return out
	}
	for _, tt := range []struct {
		name string
		f    Filter
		want []int64
	}{
		{"all, newest first", Filter{}, []int64{4, 3, 2, 1}},
		{"pending", Filter{Status: []Status{Pending}}, []int64{4, 3}},
		{"decided", Filter{Status: []Status{Approved, Denied}}, []int64{2, 1}},
		{"one requester", Filter{RequestedBy: "mrs.jones"}, []int64{3, 1}},
		{"since", Filter{Since: t0.Add(2 * time.Minute)}, []int64{4, 3}},
		{"limit", Filter{Limit: 1}, []int64{4}},
		{"nothing", Filter{Status: []Status{Expired}}, nil},
	} {
		if got := idsOf(tt.f); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestReopen(t *testing.T) {
	e := newEnv(t)
	req := e.request(t, lesson())
	ap, err := e.s.Approve(ctx, req.ID, "dsl.smith", "fine", Grant{})
	if err != nil {
		t.Fatal(err)
	}
	pending := e.request(t, lesson())
	if err := e.s.Close(); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, e.cfg)
	for _, want := range []Exception{ap, pending} {
		got, err := s.Get(ctx, want.ID)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("after reopening: %+v, %v; want %+v", got, err, want)
		}
	}
	if a, err := s.Active(ctx); err != nil || len(a) != 1 || a[0].ID != "x1" {
		t.Errorf("Active after reopening: %+v, %v", a, err)
	}
	next, err := s.Request(ctx, lesson())
	if err != nil || next.ID != 3 {
		t.Errorf("new request after reopening: ID %d, %v; want 3", next.ID, err)
	}
	if fi, err := os.Stat(e.cfg.Path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode: %v, %v; want 0600", fi.Mode(), err)
	}
}

func TestNewRefuses(t *testing.T) {
	dir := t.TempDir()
	no := func(string) bool { return false }

	garbage := filepath.Join(dir, "garbage.db")
	os.WriteFile(garbage, []byte(strings.Repeat("not a database ", 500)), 0o600)
	_, err := New(Config{Path: garbage, Protected: no})
	if !errors.Is(err, ErrCorrupt) {
		t.Errorf("garbage file: got %v, want ErrCorrupt", err)
	} else if !strings.Contains(err.Error(), garbage) {
		t.Errorf("error %q does not name the file", err)
	}

	newer := filepath.Join(dir, "newer.db")
	db, err := sql.Open("sqlite", newer)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := New(Config{Path: newer, Protected: no}); !errors.Is(err, ErrSchemaVersion) {
		t.Errorf("newer schema: got %v, want ErrSchemaVersion", err)
	}

	ok := filepath.Join(dir, "ok.db")
	for name, cfg := range map[string]Config{
		"empty path":          {Protected: no},
		"no protected check":  {Path: ok},
		"tiny maximum":        {Path: ok, Protected: no, MaxDuration: time.Second},
		"review over maximum": {Path: ok, Protected: no, MaxDuration: time.Hour, ReviewDuration: 2 * time.Hour},
	} {
		if s, err := New(cfg); err == nil {
			s.Close()
			t.Errorf("%s: accepted", name)
		}
	}
}

// Two people approving, denying or revoking the same request at once: exactly
// one wins, the others are told it was already decided. Half the racers use a
// second Store on the same file, as the CLI would.
func TestConcurrentDecisions(t *testing.T) {
	e := newEnv(t)
	other := openStore(t, e.cfg)
	const racers = 8
	for round := range 3 {
		req := e.request(t, lesson())
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			won     []Exception
			refused int
		)
		start := make(chan struct{})
		for i := range racers {
			wg.Go(func() {
				s := e.s
				if i%2 == 1 {
					s = other
				}
				<-start
				var (
					x   Exception
					err error
				)
				switch {
				case round == 1 && i%3 == 0:
					x, err = s.Deny(ctx, req.ID, "racer", "denied in the race")
				default:
					x, err = s.Approve(ctx, req.ID, "racer", "", Grant{Duration: time.Duration(i+1) * time.Hour})
				}
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won = append(won, x)
				case errors.Is(err, ErrWrongState):
					refused++
				default:
					t.Errorf("racer %d: %v", i, err)
				}
			})
		}
		close(start)
		wg.Wait()
		if len(won) != 1 || refused != racers-1 {
			t.Fatalf("round %d: %d won, %d refused; want 1 and %d", round, len(won), refused, racers-1)
		}
		if got := e.get(t, req.ID); !reflect.DeepEqual(got, won[0]) {
			t.Errorf("round %d: stored %+v, winner got %+v", round, got, won[0])
		}
	}
	// Expire racing itself returns each exception once.
	e.clock.Advance(24 * time.Hour)
	var (
		wg    sync.WaitGroup
		total [racers]int
	)
	for i := range racers {
		wg.Go(func() {
			s := e.s
			if i%2 == 1 {
				s = other
			}
			got, err := s.Expire(ctx)
			if err != nil {
				t.Error(err)
			}
			total[i] = len(got)
		})
	}
	wg.Wait()
	sum := 0
	for _, n := range total {
		sum += n
	}
	approved, _ := e.s.List(ctx, Filter{Status: []Status{Expired}})
	if sum != len(approved) || sum == 0 {
		t.Errorf("concurrent Expire returned %d in all, want %d (each once)", sum, len(approved))
	}
}

func TestContextCancelled(t *testing.T) {
	e := newEnv(t)
	c, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := e.s.Request(c, lesson()); !errors.Is(err, context.Canceled) {
		t.Errorf("Request with cancelled context: %v", err)
	}
}

func TestHuman(t *testing.T) {
	for d, want := range map[time.Duration]string{
		30 * time.Second:                  "30 seconds",
		time.Minute:                       "1 minute",
		90 * time.Minute:                  "1 hour 30 minutes",
		30 * 24 * time.Hour:               "30 days",
		24*time.Hour + time.Second:        "1 day 1 second",
		2*time.Hour + 3*time.Minute + 4e9: "2 hours 3 minutes 4 seconds",
	} {
		if got := human(d); got != want {
			t.Errorf("human(%v) = %q, want %q", d, got, want)
		}
	}
}

// The resolver-bypass canaries stay answered for everyone: no exception can lift them.
func TestBypassNamesRefused(t *testing.T) {
	s, err := New(Config{Path: t.TempDir() + "/x.db", Protected: func(string) bool { return false },
		Bypass: func(d string) string {
			if d == "mask.icloud.com" {
				return "iCloud Private Relay"
			}
			return ""
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Request(context.Background(), Exception{Scope: "profile", Target: "pupils", Domain: "mask.icloud.com",
		Action: "allow", Reason: "needs it", Duration: time.Hour, RequestedBy: "teach1"})
	var ve *ValidationError
	if !errors.As(err, &ve) || !strings.Contains(ve.Field(FieldDomain), "iCloud Private Relay") {
		t.Errorf("a bypass canary was accepted: %v", err)
	}
}

// A file from before the asked-for columns (schema 1) opens with its exceptions as they
// were, and approvals from then on keep what was asked.
func TestUpgradeFromSchema1(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlitedb.Migrate(db, migrations[:1], ErrSchemaVersion); err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(`INSERT INTO exceptions (scope, target, domain, action, reason, duration_ms, status, requested_by, source,
		requested_ms, decided_by, decided_ms, starts_ms, expires_ms)
		VALUES ('profile', 'pupils', 'scratch.mit.edu', 'allow', 'coding club', 3600000, 'approved', 'ms.patel', 'ui', ?, 'dsl', ?, ?, ?)`,
		t0.UnixMilli(), t0.UnixMilli(), t0.UnixMilli(), t0.Add(time.Hour).UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	e := newEnv(t, func(c *Config) { c.Path = path })
	old := e.get(t, 1)
	if old.Domain != "scratch.mit.edu" || old.Status != Approved || old.AskedScope != "" || old.AskedDuration != 0 {
		t.Errorf("the old exception: %+v", old)
	}
	req := e.request(t, lesson())
	ap, err := e.s.Approve(ctx, req.ID, "dsl.smith", "", Grant{Duration: 30 * time.Minute})
	if err != nil || ap.AskedDuration != req.Duration || ap.AskedScope != "" {
		t.Errorf("approved for less after the upgrade: %+v, %v", ap, err)
	}
}
