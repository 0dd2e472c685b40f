package webui

import (
	"bytes"
	"html/template"
	"time"

	"github.com/schoolgate/schoolgate/firmware/policy"
)

// BlockPageMax is the largest block page BlockPage returns, in bytes: the packet path sends
// the page in one TCP segment of at most 1280 bytes with its headers.
const BlockPageMax = 900

// The block page says what was blocked, why in plain words, and a reference a member of
// staff can look up in the event log. It names no person and shows no address.
var blockPage = template.Must(template.New("block").Parse(`<!doctype html><meta charset=utf-8><meta name=viewport content="width=device-width"><title>Blocked</title>` +
	`<body style="font:18px sans-serif;max-width:36em;margin:3em auto;padding:0 1em">` +
	`<h1>This site is blocked</h1><p><b>{{.Host}}</b> is not available on {{.School}}'s network{{with .Why}}: {{.}}{{end}}.</p>` +
	`<p>If you need it for your work, {{with .Review}}<a href="{{.}}">ask for a review</a>, or {{end}}ask a member of staff and give them this reference: <b>{{.Ref}}</b></p>`))

// BlockPage renders the page shown for a blocked plain-HTTP request to host, at most
// BlockPageMax bytes. review, when not empty, is the block page server's address for this
// site, where the review form is.
func BlockPage(school, host, review string, d policy.Decision, at time.Time) []byte {
	if school == "" {
		school = "the school"
	}
	why := whyBlocked(d)
	if len(host) > 253 {
		host = host[:253]
	}
	ref := at.UTC().Format("2006-01-02 15:04:05 UTC")
	if p := d.ProfileName(); p != "" {
		ref += ", " + p
	}
	var b bytes.Buffer
	if err := blockPage.Execute(&b, map[string]string{"Host": host, "School": school, "Why": why, "Ref": ref, "Review": review}); err != nil || b.Len() > BlockPageMax {
		// Only a very long school name or host gets here; the short page still says it.
		b.Reset()
		template.Must(template.New("short").Parse(`<!doctype html><title>Blocked</title><h1>This site is blocked</h1><p>Reference: {{.}}</p>`)).Execute(&b, ref)
	}
	return b.Bytes()
}
