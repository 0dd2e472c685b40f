package policy

import "strings"

// Safe-search enforcement works by answering a search engine's name with a CNAME to the
// engine's own "safe" endpoint, which serves only filtered results whatever the user sets.
// These targets are the ones the engines document for network administrators.
const (
	googleSafe      = "forcesafesearch.google.com"
	youtubeStrict   = "restrict.youtube.com"
	youtubeModerate = "restrictmoderate.youtube.com"
	bingSafe        = "strict.bing.com"
	duckduckgoSafe  = "safe.duckduckgo.com"
	ecosiaSafe      = "strict-safe-search.ecosia.org"
	pixabaySafe     = "safesearch.pixabay.com"
)

// searchRewrites maps exact names to their safe endpoint, for engines other than Google
// (whose country domains are matched structurally by isGoogleSearch).
var searchRewrites = map[string]string{
	"bing.com":              bingSafe,
	"www.bing.com":          bingSafe,
	"edgeservices.bing.com": bingSafe,
	"duckduckgo.com":        duckduckgoSafe,
	"www.duckduckgo.com":    duckduckgoSafe,
	"start.duckduckgo.com":  duckduckgoSafe,
	"html.duckduckgo.com":   duckduckgoSafe,
	"ecosia.org":            ecosiaSafe,
	"www.ecosia.org":        ecosiaSafe,
	"pixabay.com":           pixabaySafe,
	"www.pixabay.com":       pixabaySafe,
}

// youtubeNames are the names Google documents for YouTube restricted mode by DNS.
var youtubeNames = map[string]bool{
	"youtube.com":              true,
	"www.youtube.com":          true,
	"m.youtube.com":            true,
	"youtubei.googleapis.com":  true,
	"youtube.googleapis.com":   true,
	"www.youtube-nocookie.com": true,
}

// unsafeEngines are search engines (and their image/video search hosts) that cannot be
// forced into safe search by DNS. Profiles with unsafe_engines: block block them, since a
// pupil could otherwise search unfiltered images by simply switching engine.
var unsafeEngines = []string{
	"search.yahoo.com",
	"images.search.yahoo.com",
	"video.search.yahoo.com",
	"startpage.com",
	"search.brave.com",
	"baidu.com",
	"ask.com",
	"dogpile.com",
	"mojeek.com",
	"qwant.com",
	"yandex.com",
	"yandex.ru",
	"ya.ru",
	"yep.com",
	"swisscows.com",
	"metager.org",
	"searx.be",
	"presearch.com",
	"you.com",
}

// safeSearchTarget returns the CNAME target that enforces safe search or YouTube restricted
// mode for name under the given modes, or "" when the name is not rewritten.
func safeSearchTarget(name string, safeSearch, youtube string) string {
	if youtube != "off" && youtubeNames[name] {
		if youtube == "strict" {
			return youtubeStrict
		}
		return youtubeModerate
	}
	if safeSearch == "off" {
		return ""
	}
	if t, ok := searchRewrites[name]; ok {
		return t
	}
	if isGoogleSearch(name) {
		return googleSafe
	}
	return ""
}

// isGoogleSearch matches google.<tld> and www.google.<tld> for every Google search domain:
// google.com, google.cat, google.<cc>, google.co.<cc> and google.com.<cc>. Matching the shape
// rather than a fixed list keeps new country domains covered.
func isGoogleSearch(name string) bool {
	name = strings.TrimPrefix(name, "www.")
	rest, ok := strings.CutPrefix(name, "google.")
	if !ok {
		return false
	}
	first, second, two := strings.Cut(rest, ".")
	if !two {
		return rest == "com" || rest == "cat" || isCC(rest)
	}
	return (first == "co" || first == "com") && isCC(second)
}

func isCC(s string) bool {
	return len(s) == 2 && s[0] >= 'a' && s[0] <= 'z' && s[1] >= 'a' && s[1] <= 'z'
}

// matchUnsafeEngine returns the listed engine name that name is, or is under.
func matchUnsafeEngine(name string) (string, bool) {
	for _, e := range unsafeEngines {
		if name == e || (strings.HasSuffix(name, e) && name[len(name)-len(e)-1] == '.') {
			return e, true
		}
	}
	return "", false
}

// Canaries are names that clients look up to decide whether to bypass the local resolver.
// Answering them NXDOMAIN keeps Firefox from enabling DNS over HTTPS, Apple devices from
// using iCloud Private Relay, and clients from discovering an encrypted resolver (DDR).
// Canary names what a resolver-bypass canary switches off ("iCloud Private Relay"), or ""
// when name is not one. Exceptions may not lift them.
func Canary(name string) string { return canaries[normalise(name)] }

var canaries = map[string]string{
	"use-application-dns.net": "Firefox DNS-over-HTTPS canary",
	"mask.icloud.com":         "iCloud Private Relay",
	"mask-h2.icloud.com":      "iCloud Private Relay",
	"_dns.resolver.arpa":      "designated resolver discovery (DDR)",
}
