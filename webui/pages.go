package webui

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"

	"github.com/schoolgate/schoolgate/firmware/auth"
)

// pageFiles are the templates that are whole pages; each is parsed with layout.html (and
// the shared partials) into a set of its own, so that every page can define "content".
var pageFiles = []string{"login", "totp", "recovery", "setup", "message", "dashboard", "profiles", "profile", "audit", "exceptions", "schedules"}

// shared are parsed into every page's set.
var sharedFiles = []string{"templates/layout.html", "templates/components.html"}

func parsePages(a *assets) (map[string]*template.Template, error) {
	base, err := template.New("").Funcs(template.FuncMap{"asset": a.url, "selectOf": selectOf, "contains": strings.Contains}).ParseFS(templateFiles, sharedFiles...)
	if err != nil {
		return nil, fmt.Errorf("parsing layout: %w", err)
	}
	pages := make(map[string]*template.Template, len(pageFiles))
	for _, name := range slices.Concat(pageFiles, accountPageFiles, logPageFiles, networkPageFiles, systemPageFiles, devicePageFiles) {
		t, err := template.Must(base.Clone()).ParseFS(templateFiles, "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("parsing page %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// page is what every page template gets.
type page struct {
	Title   string
	Narrow  bool          // a single form: keep the column narrow
	Session *auth.Session // nil before login
	PreCSRF string        // the pre-session CSRF token for login and setup forms
	Notice  string
	Error   string            // an error about the whole form
	Form    map[string]string // submitted values to show again (never passwords)
	Data    any
	Nav     []navItem // filled by render from the session's role
	Refresh string    // a meta refresh, "8;url=/system", for pages shown while restarting

	fieldErrs map[string]string
}

// navItem is one link of the navigation bar.
type navItem struct {
	Href, Label string
	Current     bool
}

// navigation lists the pages, each shown to the roles that may open it.
var navigation = []struct {
	href, label string
	perm        auth.Permission
}{
	{"/", "Dashboard", auth.OwnAccount},
	{"/logs", "Logs", auth.LogsRead},
	{"/exceptions", "Exceptions", auth.ExceptionReadOwn},
	{"/profiles", "Profiles", auth.PolicyRead},
	{"/devices", "Devices", auth.DevicesRead},
	{"/segments", "Segments", auth.PolicyRead},
	{"/lists", "Lists", auth.PolicyRead},
	{"/audit", "Audit trail", auth.AuditRead},
	{"/accounts", "Accounts", auth.AccountsManage},
	{"/system", "System", auth.SystemManage},
	{"/account", "My account", auth.OwnAccount},
}

func navFor(sess *auth.Session, path string) []navItem {
	if sess == nil {
		return nil
	}
	var out []navItem
	for _, n := range navigation {
		if auth.Can(sess.Role, n.perm) {
			cur := path == n.href || (n.href != "/" && strings.HasPrefix(path, n.href+"/"))
			out = append(out, navItem{Href: n.href, Label: n.label, Current: cur})
		}
	}
	return out
}

// fieldError is what the "field-error" template shows next to a field.
type fieldError struct{ ID, Msg string }

// FieldError returns the error for one form field, or nil.
func (p page) FieldError(field string) *fieldError {
	if msg, ok := p.fieldErrs[field]; ok {
		return &fieldError{ID: field, Msg: msg}
	}
	return nil
}

// render writes a page with status. It renders into a buffer first so that a template
// error becomes a clean 500 rather than half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	t, ok := s.pages[name]
	if !ok {
		s.cfg.Logger.Error("rendering an unknown page", "page", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if p.Session == nil {
		p.Session = sessionFrom(r)
	}
	p.Nav = navFor(p.Session, r.URL.Path)
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, "layout", p); err != nil {
		s.cfg.Logger.Error("rendering page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// renderMessage shows a short page with a title and one sentence.
func (s *Server) renderMessage(w http.ResponseWriter, r *http.Request, status int, title, msg string) {
	s.render(w, r, status, "message", page{Title: title, Error: msg, Narrow: true})
}

// selectField is what the "select" template shows: a labelled drop-down with its error.
type selectField struct {
	Name, Label, Value string
	Err                *fieldError
	Options            []selectOption
}

type selectOption struct{ Value, Label string }

// selectOf builds a selectField from the page's form values; pairs are value, label, ...
func selectOf(p page, name, label string, pairs ...string) selectField {
	f := selectField{Name: name, Label: label, Value: p.Form[name], Err: p.FieldError(name)}
	for i := 0; i+1 < len(pairs); i += 2 {
		f.Options = append(f.Options, selectOption{pairs[i], pairs[i+1]})
	}
	return f
}
