package webui

import (
	"bytes"
	"net/http"

	"github.com/schoolgate/schoolgate/firmware/auth"
)

// dashboardData is what dashboard.html shows.
type dashboardData struct {
	CanDashboard bool
	Components   []Component
}

// handleDashboard is the start page of every role: who is logged in, and, for the roles
// that hold DashboardRead, the components' health.
func (s *Server) handleDashboard(w http.ResponseWriter, r *http.Request) {
	sess := sessionFrom(r)
	d := dashboardData{CanDashboard: auth.Can(sess.Role, auth.DashboardRead)}
	if d.CanDashboard {
		d.Components = s.cfg.Status(r.Context()).Components
	}
	s.render(w, r, http.StatusOK, "dashboard", page{Title: "Start", Data: d})
}

// handleComponents is the htmx fragment that refreshes the components table.
func (s *Server) handleComponents(w http.ResponseWriter, r *http.Request) {
	var b bytes.Buffer
	if err := s.pages["dashboard"].ExecuteTemplate(&b, "components", s.cfg.Status(r.Context()).Components); err != nil {
		s.cfg.Logger.Error("rendering components", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(b.Bytes())
}
