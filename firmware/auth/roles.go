package auth

import (
	"fmt"
	"strings"
)

// Role is what an account may do. Stored in the database by its string value.
type Role string

// The roles of issue 4, "Accounts".
const (
	Technician Role = "technician" // everything
	DSL        Role = "dsl"        // Designated Safeguarding Lead
	Teacher    Role = "teacher"    // requests exceptions for lessons
	Viewer     Role = "viewer"     // e.g. a governor: read-only
)

// Roles lists every role, most powerful first.
func Roles() []Role { return []Role{Technician, DSL, Teacher, Viewer} }

// Valid reports whether r is one of the four roles.
func (r Role) Valid() bool { return r.index() >= 0 }

func (r Role) index() int {
	switch r {
	case Technician:
		return 0
	case DSL:
		return 1
	case Teacher:
		return 2
	case Viewer:
		return 3
	}
	return -1
}

// ParseRole accepts a role name in any case.
func ParseRole(s string) (Role, error) {
	r := Role(strings.ToLower(strings.TrimSpace(s)))
	if !r.Valid() {
		return "", fmt.Errorf("%w: %q (want technician, dsl, teacher or viewer)", ErrBadRole, s)
	}
	return r, nil
}

// totpRequiredByDefault is the rule: TOTP is required for technician
// and DSL accounts unless a technician turns that off.
func (r Role) totpRequiredByDefault() bool { return r == Technician || r == DSL }

// Permission is one thing a role may be allowed to do. The web UI maps every
// page, form and API route to exactly one Permission and asks Can.
type Permission uint8

// Permissions, in the order of the pages. Never reuse a name for a
// different meaning: the route table of the web UI is written against them.
const (
	// DashboardRead: the dashboard (component health, counts, top blocked).
	DashboardRead Permission = iota + 1
	// PolicyRead: profiles, segments, lists, exceptions' effect and the explain box
	// (name + device → decision and why), read-only.
	PolicyRead
	// PolicyEdit: change profiles, segments, lists ("update now" included).
	PolicyEdit
	// LogsRead: the monitoring logs, per-device drill-down, CSV download.
	LogsRead
	// DevicesRead: the device inventory.
	DevicesRead
	// DevicesEdit: a device's name and profile override. The override changes
	// filtering, which is policy, so the DSL (policy read-only) does not hold it.
	DevicesEdit
	// AlertsRead: safeguarding alerts.
	AlertsRead
	// ReportsRead: reports and weekly exports.
	ReportsRead
	// ExceptionRead: every exception, active and past, and every request.
	ExceptionRead
	// ExceptionCreate: create an exception directly (with a reason).
	ExceptionCreate
	// ExceptionApprove: approve or deny a request.
	ExceptionApprove
	// ExceptionRequest: ask for an exception, which waits for approval.
	ExceptionRequest
	// ExceptionReadOwn: the exceptions and requests one made oneself.
	ExceptionReadOwn
	// AuditRead: the audit trail, its verification and export.
	AuditRead
	// AccountsManage: create accounts, set roles, disable, reset passwords and
	// TOTP, turn the TOTP requirement on or off.
	AccountsManage
	// SystemManage: config versions and roll-back, backup and restore,
	// certificate, time, restart.
	SystemManage
	// OwnAccount: change one's own password, enrol one's own TOTP, renew one's
	// recovery codes, log out. Every role holds it.
	OwnAccount

	numPermissions = iota + 1 // one more than the last permission
)

var permissionNames = [numPermissions]string{
	DashboardRead:    "DashboardRead",
	PolicyRead:       "PolicyRead",
	PolicyEdit:       "PolicyEdit",
	LogsRead:         "LogsRead",
	DevicesRead:      "DevicesRead",
	DevicesEdit:      "DevicesEdit",
	AlertsRead:       "AlertsRead",
	ReportsRead:      "ReportsRead",
	ExceptionRead:    "ExceptionRead",
	ExceptionCreate:  "ExceptionCreate",
	ExceptionApprove: "ExceptionApprove",
	ExceptionRequest: "ExceptionRequest",
	ExceptionReadOwn: "ExceptionReadOwn",
	AuditRead:        "AuditRead",
	AccountsManage:   "AccountsManage",
	SystemManage:     "SystemManage",
	OwnAccount:       "OwnAccount",
}

func (p Permission) String() string {
	if p > 0 && int(p) < len(permissionNames) {
		return permissionNames[p]
	}
	return fmt.Sprintf("Permission(%d)", uint8(p))
}

// Permissions lists every permission in declaration order.
func Permissions() []Permission {
	ps := make([]Permission, 0, numPermissions-1)
	for p := Permission(1); p < numPermissions; p++ {
		ps = append(ps, p)
	}
	return ps
}

const (
	yes = true
	no  = false
)

// grants is the whole authorisation policy: one row per permission, one
// column per role. Audit it here; nothing else grants anything.
var grants = [numPermissions][4]bool{
	// permission:     {technician, dsl, teacher, viewer}
	DashboardRead:    {yes, yes, no, yes},
	PolicyRead:       {yes, yes, no, no},
	PolicyEdit:       {yes, no, no, no},
	LogsRead:         {yes, yes, no, no},
	DevicesRead:      {yes, yes, no, no},
	DevicesEdit:      {yes, no, no, no},
	AlertsRead:       {yes, yes, no, no},
	ReportsRead:      {yes, yes, no, yes},
	ExceptionRead:    {yes, yes, no, no},
	ExceptionCreate:  {yes, yes, no, no},
	ExceptionApprove: {yes, yes, no, no},
	ExceptionRequest: {yes, no, yes, no},
	ExceptionReadOwn: {yes, yes, yes, no},
	AuditRead:        {yes, yes, no, yes},
	AccountsManage:   {yes, no, no, no},
	SystemManage:     {yes, no, no, no},
	OwnAccount:       {yes, yes, yes, yes},
}

// Can reports whether role holds permission. Unknown roles and permissions
// hold nothing.
func Can(role Role, p Permission) bool {
	i := role.index()
	if i < 0 || p == 0 || p >= numPermissions {
		return false
	}
	return grants[p][i]
}
