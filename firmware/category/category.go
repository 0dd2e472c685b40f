// Package category is schoolgate's content taxonomy: the categories a profile blocks, aligned
// with the UK Safer Internet Centre's "appropriate filtering" headings and extended with what
// schools also block, plus the mappings from list providers' own category names onto it.
//
// Categories are identified by short lowercase IDs (used in config files, events and the API)
// and, inside a compiled policy, by a bit in a Set so that "is any of this domain's categories
// blocked for this profile" is a single AND.
package category

import (
	"fmt"
	"slices"
	"strings"
)

// ID is a category identifier such as "adult" or "gambling".
type ID string

// Info describes one category for people: the UI, docs and explanations.
type Info struct {
	ID   ID
	Name string
	// UKSIC is true for the categories the UK Safer Internet Centre lists under
	// "appropriate filtering"; schools are expected to block these for pupils.
	UKSIC       bool
	Description string
}

// all is the taxonomy in a fixed order: a category's index is its bit in a Set, and the order
// is part of the compiled list snapshot format, so new categories are only ever appended.
var all = [...]Info{
	{"adult", "Pornography", true, "Sexually explicit content."},
	{"gambling", "Gambling", true, "Betting, casinos, lotteries and gambling-like games."},
	{"drugs", "Drugs and substance abuse", true, "Promotion or sale of illegal drugs and substance misuse."},
	{"extremism", "Extremism", true, "Promotion of terrorism or violent extremist ideologies."},
	{"hate", "Discrimination and hate", true, "Promotion of hatred or discrimination against protected groups."},
	{"self-harm", "Self-harm and suicide", true, "Promotion of self-harm, suicide or eating disorders."},
	{"violence", "Violence", true, "Promotion of violence, aggression or weapons."},
	{"malware", "Malware and hacking", true, "Malware, cryptojacking, stalkerware, DDoS and hacking tools."},
	{"phishing", "Phishing and fraud", true, "Credential phishing and scam sites."},
	{"piracy", "Piracy and copyright theft", true, "Illegal distribution of copyrighted material."},
	{"bypass", "Filter bypass", false, "Proxies, VPNs, DNS-over-HTTPS resolvers and other ways around filtering."},
	{"dating", "Dating", false, "Dating and hook-up services."},
	{"social", "Social networks", false, "Social networks and media-sharing communities."},
	{"chat", "Chat and messaging", false, "Web chat and instant messaging."},
	{"games", "Games", false, "Online games and gaming sites."},
	{"streaming", "Streaming media", false, "Audio and video streaming."},
	{"gen-ai", "Generative AI", false, "Chatbots and generative AI tools."},
	{"misinformation", "Misinformation", false, "Known fake-news and disinformation sites."},
	{"mixed-adult", "Mixed adult content", false, "Sites mixing adult and general content."},
	{"lingerie", "Lingerie and swimwear", false, "Suggestive but not explicit imagery."},
	{"dynamic-dns", "Dynamic DNS", false, "Dynamic DNS providers, often used to host bypass and malware."},
	{"remote-access", "Remote access", false, "Remote desktop and remote-control services."},
	{"filehosting", "File hosting", false, "File lockers and anonymous file sharing."},
	{"crypto", "Cryptocurrency", false, "Cryptocurrency exchanges and trading."},
	{"shopping", "Shopping", false, "Online shops and auctions."},
	{"ads", "Advertising", false, "Advertising and tracking networks."},
	{"cheating", "Cheating", false, "Essay mills and exam-cheating services."},
	{"cults", "Sects and cults", false, "Sects and cult movements."},
	{"webmail", "Webmail", false, "Web-based email."},
	{"shorteners", "URL shorteners", false, "Link shorteners that hide a destination."},
	{"sex-education", "Sex education", false, "Sex and relationships education (usually allowed)."},
}

// Max is the number of categories a Set can hold.
const Max = 64

// All returns the taxonomy in its canonical order.
func All() []Info { return slices.Clone(all[:]) }

// Lookup returns the category with the given ID.
func Lookup(id ID) (Info, bool) {
	i := index(id)
	if i < 0 {
		return Info{}, false
	}
	return all[i], true
}

// Valid reports whether id names a category of the taxonomy.
func Valid(id ID) bool { return index(id) >= 0 }

// IDs returns every category ID, for error messages and docs.
func IDs() []string {
	out := make([]string, len(all))
	for i, c := range all {
		out[i] = string(c.ID)
	}
	return out
}

func index(id ID) int {
	for i := range all {
		if all[i].ID == id {
			return i
		}
	}
	return -1
}

// Set is a set of categories as a bit mask, one bit per taxonomy index.
type Set uint64

// SetOf returns the set of the given categories; unknown IDs are an error.
func SetOf(ids ...ID) (Set, error) {
	var s Set
	for _, id := range ids {
		i := index(id)
		if i < 0 {
			return 0, fmt.Errorf("unknown category %q", id)
		}
		s |= 1 << i
	}
	return s, nil
}

// Has reports whether id is in s.
func (s Set) Has(id ID) bool {
	i := index(id)
	return i >= 0 && s&(1<<i) != 0
}

// IDs returns the categories of s in taxonomy order.
func (s Set) IDs() []ID {
	var out []ID
	for i := range all {
		if s&(1<<i) != 0 {
			out = append(out, all[i].ID)
		}
	}
	return out
}

// First returns the first category of s in taxonomy order, or "" when s is empty.
// The taxonomy is ordered so that the most serious category comes first, which makes this
// the category to show when a domain is in several.
func (s Set) First() ID {
	for i := range all {
		if s&(1<<i) != 0 {
			return all[i].ID
		}
	}
	return ""
}

// String lists the categories comma-separated.
func (s Set) String() string {
	ids := s.IDs()
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = string(id)
	}
	return strings.Join(parts, ",")
}
