package eventlog

// BenchmarkStorage measures DESIGN.md §7's "≤ 1 GB of storage a month for a 1,000-device
// school": it simulates a secondary school's filtering decisions over simulated days, feeds
// them through Record to a real Log (default configuration: 60 s folding, hourly rollups,
// retention) whose clock is the simulated one, measures the file after each day, and
// extrapolates to a month of 22 school days and 8 weekend days.
//
// The traffic model (storageModel, storageClasses, storageFamilies) is the assumption the
// figure rests on, so it is written out here with the reasoning behind each number.
//
// Devices. The school has 1,000: 200 staff laptops (Windows; staff segment 10.10/16), 700
// pupil devices (Chromebooks and iPads; pupils 10.20/16) and 100 guest-Wi-Fi phones
// (visitors, contractors, staff's own phones; guest 10.30/20), as in
// docs/examples/school.yaml, with its profiles: pupils also block social, chat, games and
// dating, and QUIC; staff and guests block only the "appropriate filtering" categories.
// The network is dual stack: most devices have an IPv6 address (a new privacy address each
// day), some ask DNS over IPv6, and flows to names with AAAA records go over IPv6.
//
// When. On a school day staff arrive 07:30-08:30 and leave 15:45-17:45, pupils are in
// 08:30-15:30, a third of guest phones stay all day and the rest visit for 0.5-3 h; about a
// tenth of staff and pupils are absent. Some devices are left on (desktops, trolley
// Chromebooks: 8% of staff's, 3% of pupils') and keep their background traffic going
// through evenings, nights and weekends; 3% of staff come in on a weekend morning.
//
// What a device asks. Two sources of lookups, as a resolver's log shows them:
//   - Background: every switched-on device runs OS and app services (update checks,
//     telemetry, push, sync, time, captive-portal and certificate checks) that look up a
//     small working set (4-14 names) again each time their answer expires or the service
//     polls: every 0.5, 1, 5, 15 or 60 minutes. When a device wakes up all of them ask
//     within two minutes. A fifth of pupils' devices run an app the profile blocks; a
//     blocked answer lives 60 s (dns.block_ttl), so such an app asks again every one to
//     three minutes all day.
//   - Browsing: while someone uses the device (sessions of 5-20 min on average, then idle
//     spells), a page loads every 40-90 s; two thirds of loads stay on the same site. A new
//     site is a learning platform or work tool (half of pupils' and staff's choices) or any
//     site, by a Zipf law over ~25,000 sites. A page is its host, 0-3 subdomains of its own
//     and 2-12 third parties (CDNs, fonts, analytics, ads) drawn by a Zipf law from ~8,000
//     shared ones. A device asks a name again only once its cached answer has expired (TTLs
//     20 s to 1 h, short ones mostly on CDNs and ads) and opens a new connection to a host
//     only when its last one has been idle for more than keepAlive: that new flow is what
//     the packet path judges and logs (sni, quic, http; pupils' QUIC is dropped, logged as
//     source ip at most 10 a minute, and the browser falls back to TCP).
//   - Each lookup asks A, AAAA when the device has IPv6, and HTTPS (type 65) as browsers
//     and Apple systems do; and a quarter of lookups are asked again by the same device
//     within seconds (another process or tab, a retry, stub caches that do not share). Those
//     repeats, the parallel connections of one page, short-TTL names used across a page's
//     burst and blocked apps retrying are what the 60 s folding catches.
//
// Calibration. The model gives about 4,200 decisions per device on a school day (reported
// as events/device/school-day; staff ~5,900, pupils ~3,800, guests ~3,100): 77% DNS
// questions, 20% TLS flows, the rest QUIC, HTTP and dropped QUIC attempts. For
// comparison, the blog post "My DNS stats" (2021) reports 270,563 queries in 30 days from
// one person's laptop, phone and tablet, about 3,000 per device per day, and Ellis
// Valentiner's "What happens on your network while you're on vacation?" (2019) logs about
// 2,100 a day from a whole home's idle devices; a school device in use for 7-9 hours with a
// browser open sits in the same range, and the packet path adds its flows on top.
//
// Names: about 70,000 in all, of which a 1,000-device school day asks for some 21,000.
// Categories come from the ut1 list (adverts on a third of third parties, social, games,
// streaming... on a few per cent of sites); safe-search hosts are rewritten for every
// profile. The generator is deterministic (seeded); only the database's page layout can
// vary a little with commit timing.
//
// Month. 22 × the mean school day + 8 × the mean weekend day (a month of term: holidays
// would only lower it), each measured as the growth of the database file after a WAL
// checkpoint over that day, in decimal units (1 GB = 10^9 bytes). The first school day
// also pays for interning most names; that is under 1 MB, and a second school day grows
// the file as much as the first.
//
// Cost. A school day at 1,000 devices is some 4.2M events, which the writer takes in
// about 4-4.5 minutes on the 2-core development VM: most of it is SQLite writing WAL frames
// for 86,400 one-second commits, as the real writer would. So the benchmark simulates 500
// devices (100 staff, 350 pupils, 50 guests) and scales the results by 2, reporting
// devices-simulated; the run takes about 2 minutes. Folding works per device, so rows scale
// linearly (a 1,000-device run gave 9.79 GB/month where 500 devices scaled gave 9.67), and
// only the names table, well under 1%, is overstated. SCHOOLGATE_BENCH_STORAGE_DEVICES
// changes the number of devices, SCHOOLGATE_BENCH_STORAGE_DAYS the simulated days from the
// Friday the run starts on (default 2: Friday and Saturday), and
// SCHOOLGATE_BENCH_STORAGE_REPEAT_PCT the share of lookups asked again within seconds
// (default 25): the result hardly depends on it, since repeats fold (0% gives 9.4 GB/month,
// 60% 9.5, 90% 11).

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/schoolgate/schoolgate/firmware/internal/sqlitedb"
)

// storageModel holds the parameters of the traffic model that are not per class.
type storageModel struct {
	seed    uint64
	devices int // devices simulated; the school has 1,000 and results are scaled to it
	days    int // simulated days from a Friday
	// stopAt, when > 0, ends the run after this many simulated seconds (the quick test).
	stopAt int64
	// flushEvery is the simulated seconds between Flush calls: one, like the writer's
	// one-second commits. Folding does not depend on it (it works on event times), only
	// the number of commits does.
	flushEvery int64

	sites        int     // generated sites, after the hand-written popular ones
	eduSites     int     // generated learning platforms and work tools
	thirdParties int     // generated third-party hosts
	bgPerFamily  int     // generated background-service names per OS family, and as many shared
	zipfS        float64 // exponent of the Zipf laws (Go's needs > 1; 1.1 is close to web popularity)

	stay       float64 // chance a page load stays on the previous page's site
	dup        float64 // chance a lookup is asked again by the same device within seconds (and again...)
	dualStack  float64 // share of devices with an IPv6 address
	v6DNS      float64 // share of dual-stack devices that ask DNS over IPv6
	keepAlive  int64   // seconds an idle connection stays open: no new flow while it does
	parallel   float64 // chance a connection to a page's host comes with a second one
	quic       float64 // chance a flow to a QUIC-capable host uses QUIC
	quicBroken int64   // seconds a browser stops trying QUIC to a host after a first dropped attempt
	bgConnect  float64 // chance a background lookup is followed by a connection
}

func defaultStorageModel() storageModel {
	return storageModel{
		seed: 1,
		// Half the school, scaled up: see "Cost" at the top of the file.
		devices:    500,
		days:       2,
		flushEvery: 1,

		// ~25k sites, ~300 learning platforms, ~8k third parties and ~2.2k background
		// names: with subdomains about 70k names, some 21k of them asked on a school day.
		sites:        25000,
		eduSites:     300,
		thirdParties: 8000,
		bgPerFamily:  300,
		zipfS:        1.1,

		stay:      0.65,
		dup:       0.25,
		dualStack: 0.8,
		v6DNS:     0.3,
		// nginx closes idle keep-alive connections after 75 s by default, HTTP/2 servers
		// after one to three minutes; browsers keep theirs a few minutes.
		keepAlive:  90,
		parallel:   0.4,
		quic:       0.6,
		quicBroken: 300, // Chrome marks QUIC broken for an origin for five minutes at first
		bgConnect:  0.5,
	}
}

// osFamily is what differs by operating system: background services and how often a
// lookup also asks for the HTTPS record.
type osFamily struct {
	name             string
	httpsFg, httpsBg float64
	bg               []string // hand-written background names, most used first
}

var storageFamilies = []osFamily{
	{"windows", 0.3, 0.05, []string{"login.microsoftonline.com", "settings-win.data.microsoft.com", "v10.events.data.microsoft.com",
		"ctldl.windowsupdate.com", "www.msftconnecttest.com", "time.windows.com", "client.wns.windows.com", "fe3.delivery.mp.microsoft.com",
		"edge.microsoft.com", "config.edge.skype.com", "arc.msn.com", "outlook.office365.com", "graph.microsoft.com",
		"officeclient.microsoft.com", "self.events.data.microsoft.com", "ocsp.digicert.com", "crl.microsoft.com", "wdcp.microsoft.com"}},
	{"chromeos", 0.8, 0.3, []string{"clients4.google.com", "clients2.google.com", "update.googleapis.com", "mtalk.google.com",
		"safebrowsing.googleapis.com", "www.googleapis.com", "accounts.google.com", "oauth2.googleapis.com", "clients3.google.com",
		"content-autofill.googleapis.com", "optimizationguide-pa.googleapis.com", "chromesyncpasswords-pa.googleapis.com", "ocsp.pki.goog"}},
	{"ios", 0.9, 0.6, []string{"gateway.icloud.com", "mesu.apple.com", "captive.apple.com", "gsp-ssl.ls.apple.com", "init.itunes.apple.com",
		"time.apple.com", "mdmenrollment.apple.com", "api.smoot.apple.com", "configuration.apple.com", "bag.itunes.apple.com",
		"p32-keyvalueservice.icloud.com", "ocsp2.apple.com", "weather-data.apple.com"}},
	{"android", 0.7, 0.2, []string{"connectivitycheck.gstatic.com", "mtalk.google.com", "play.googleapis.com", "android.clients.google.com",
		"firebaseinstallations.googleapis.com", "www.googleapis.com", "graph.facebook.com", "g.whatsapp.net", "app-measurement.com",
		"time.android.com", "inbox.google.com", "lh3.googleusercontent.com", "graph.instagram.com"}},
}

// storageClass is a kind of device: its segment and profile, when it is in school, and how
// it is used. Times are seconds after midnight.
type storageClass struct {
	segment, profile string
	prof             int // index of the profile in simName.dec
	per1000          int // devices of the class in a 1,000-device school
	v4               byte
	v6               string
	families         []int // OS families of the class's devices, round robin
	quicBlocked      bool  // the profile drops QUIC (docs/examples/school.yaml: pupils)

	present       float64  // share of devices in school on a school day
	arrive, leave [2]int64 // uniform windows
	allDay        float64  // guests: share staying all day; the rest visit
	visitArrive   [2]int64 // guests: when visitors arrive
	visit         [2]int64 // guests: visit length window
	active, idle  int64    // mean seconds of a session of use and of an idle spell
	pageGap       int64    // mean seconds between page loads in a session
	bgNames       [2]int   // background names per device, uniform
	blockedBg     float64  // share of devices running an app the profile blocks
	edu           float64  // share of new-site choices that are learning platforms or work tools
	leftOn        float64  // share left on outside school hours (background only)
	weekend       float64  // share used on a weekend morning
	weekendWindow [2]int64 // when
	named         float64  // share listed in the config's devices (Event.Device set)
}

const (
	simH = 3600
	simM = 60
)

var storageClasses = []storageClass{
	{
		segment: "staff", profile: "staff", prof: 0, per1000: 200, v4: 10, v6: "2001:db8:10::",
		families: []int{0}, present: 0.9,
		arrive: [2]int64{7*simH + 30*simM, 8*simH + 30*simM}, leave: [2]int64{15*simH + 45*simM, 17*simH + 45*simM},
		active: 20 * simM, idle: 25 * simM, pageGap: 90, bgNames: [2]int{5, 9},
		edu: 0.5, leftOn: 0.08, weekend: 0.03, weekendWindow: [2]int64{10 * simH, 13 * simH}, named: 0.05,
	},
	{
		segment: "pupils", profile: "pupils", prof: 1, per1000: 700, v4: 20, v6: "2001:db8:20::",
		families: []int{1, 1, 1, 2, 2}, quicBlocked: true, present: 0.88,
		arrive: [2]int64{8*simH + 30*simM, 8*simH + 50*simM}, leave: [2]int64{15*simH + 10*simM, 15*simH + 30*simM},
		active: 15 * simM, idle: 30 * simM, pageGap: 55, bgNames: [2]int{4, 9}, blockedBg: 0.2,
		edu: 0.55, leftOn: 0.03, named: 0.005,
	},
	{
		segment: "guest", profile: "guest", prof: 2, per1000: 100, v4: 30, v6: "2001:db8:30::",
		families: []int{3, 2}, present: 1, allDay: 0.35,
		arrive: [2]int64{7*simH + 45*simM, 8*simH + 45*simM}, leave: [2]int64{16 * simH, 17*simH + 30*simM},
		visitArrive: [2]int64{8*simH + 30*simM, 14*simH + 30*simM}, visit: [2]int64{30 * simM, 3 * simH},
		active: 5 * simM, idle: 15 * simM, pageGap: 40, bgNames: [2]int{8, 14},
	},
}

// simName is one name of the universe and the decision each profile makes on it.
type simName struct {
	name   string
	ttl    int64 // seconds a device keeps the answer; for background names the polling period
	quic   bool
	http   bool   // reached over plain HTTP (port 80)
	v6     bool   // has AAAA records: dual-stack devices connect over IPv6
	server string // address:port, the name of a packet-path drop by address
	dec    [3]simDecision
}

type simDecision struct{ action, tier, category, list, rule string }

type simSite struct{ names []int32 } // host first

// Profiles' blocked categories, from docs/examples/school.yaml.
var simBlocked = [3]map[string]bool{
	simWordSet("adult gambling drugs extremism hate self-harm violence malware phishing piracy bypass"),
	simWordSet("adult gambling drugs extremism hate self-harm violence malware phishing piracy bypass dating social chat games mixed-adult dynamic-dns remote-access cheating shorteners"),
	simWordSet("adult gambling drugs extremism hate self-harm violence malware phishing piracy bypass dating"),
}

func simWordSet(words string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(words) {
		m[w] = true
	}
	return m
}

// Safe-search hosts: every profile of the example config enforces safe search or a
// YouTube mode, so their answers are rewritten.
var simSafeSearch = simWordSet("www.google.com www.google.co.uk www.youtube.com m.youtube.com youtubei.googleapis.com www.bing.com")

// simTop are hand-written popular sites, most visited first: host, category, own and
// third-party names, whether it speaks QUIC.
var simTop = []struct {
	host, cat string
	names     []string
	quic      bool
}{
	{"www.google.com", "", []string{"www.gstatic.com", "apis.google.com", "ogs.google.com", "lh3.googleusercontent.com"}, true},
	{"www.youtube.com", "streaming", []string{"i.ytimg.com", "yt3.ggpht.com", "youtubei.googleapis.com", "rr3---sn-aigl6nzr.googlevideo.com", "rr1---sn-aigzrn7e.googlevideo.com"}, true},
	{"www.bbc.co.uk", "", []string{"static.files.bbci.co.uk", "ichef.bbci.co.uk", "emp.bbc.co.uk", "session.bbc.co.uk"}, false},
	{"en.wikipedia.org", "", []string{"upload.wikimedia.org", "login.wikimedia.org"}, false},
	{"www.instagram.com", "social", []string{"static.cdninstagram.com", "scontent-lhr8-1.cdninstagram.com", "graph.instagram.com"}, true},
	{"www.tiktok.com", "social", []string{"sf16-website-login.neutral.ttwstatic.com", "mon.tiktokv.com", "v16-webapp.tiktok.com"}, false},
	{"www.roblox.com", "games", []string{"apis.roblox.com", "css.rbxcdn.com", "js.rbxcdn.com", "tr.rbxcdn.com"}, false},
	{"www.amazon.co.uk", "shopping", []string{"m.media-amazon.com", "images-eu.ssl-images-amazon.com", "fls-eu.amazon.co.uk"}, false},
	{"www.bing.com", "", []string{"th.bing.com", "r.bing.com"}, false},
	{"chatgpt.com", "gen-ai", []string{"cdn.oaistatic.com", "ab.chatgpt.com"}, false},
	{"www.reddit.com", "social", []string{"www.redditstatic.com", "styles.redditmedia.com", "preview.redd.it", "i.redd.it"}, false},
	{"open.spotify.com", "streaming", []string{"open.spotifycdn.com", "apresolve.spotify.com", "i.scdn.co"}, false},
	{"www.netflix.com", "streaming", []string{"assets.nflxext.com", "occ-0-1168-299.1.nflxso.net"}, false},
	{"discord.com", "chat", []string{"cdn.discordapp.com", "gateway.discord.gg", "media.discordapp.net"}, false},
	{"www.snapchat.com", "social", []string{"web.snapchat.com", "cf-st.sc-cdn.net"}, false},
	{"poki.com", "games", []string{"game-cdn.poki.com", "api.poki.com"}, false},
	{"web.whatsapp.com", "chat", []string{"static.whatsapp.net", "mmg.whatsapp.net"}, true},
	{"x.com", "social", []string{"abs.twimg.com", "pbs.twimg.com", "api.x.com"}, false},
	{"www.twitch.tv", "streaming", []string{"static.twitchcdn.net", "gql.twitch.tv"}, false},
	{"www.pinterest.com", "social", []string{"i.pinimg.com", "s.pinimg.com"}, false},
	{"mail.google.com", "webmail", []string{"www.gstatic.com", "ssl.gstatic.com"}, true},
	{"www.coolmathgames.com", "games", []string{"cdn.coolmathgames.com"}, false},
	{"www.facebook.com", "social", []string{"static.xx.fbcdn.net", "scontent.xx.fbcdn.net", "connect.facebook.net"}, true},
	{"www.theguardian.com", "", []string{"assets.guim.co.uk", "i.guim.co.uk", "api.nextgen.guardianapps.co.uk"}, false},
}

// simEdu are hand-written learning platforms and work tools, most used first.
var simEdu = []struct {
	host  string
	names []string
}{
	{"classroom.google.com", []string{"www.gstatic.com", "apis.google.com", "lh3.googleusercontent.com"}},
	{"docs.google.com", []string{"www.gstatic.com", "docs.googleusercontent.com", "apis.google.com"}},
	{"teams.microsoft.com", []string{"statics.teams.cdn.office.net", "login.microsoftonline.com", "teams.events.data.microsoft.com"}},
	{"www.office.com", []string{"res.cdn.office.net", "login.microsoftonline.com", "substrate.office.com"}},
	{"drive.google.com", []string{"www.gstatic.com", "drive-thirdparty.googleusercontent.com"}},
	{"www.bbc.co.uk", []string{"static.files.bbci.co.uk", "ichef.bbci.co.uk"}},
	{"app.senecalearning.com", []string{"cdn.senecalearning.com", "api.senecalearning.com"}},
	{"kahoot.it", []string{"assets-cdn.kahoot.it", "play.kahoot.it"}},
	{"quizlet.com", []string{"assets.quizlet.com", "o.quizlet.com"}},
	{"scratch.mit.edu", []string{"cdn2.scratch.mit.edu", "api.scratch.mit.edu"}},
	{"www.canva.com", []string{"static.canva.com", "media.canva.com"}},
	{"login.arbor.sc", []string{"static.arbor.sc"}},
	{"outlook.office.com", []string{"res.cdn.office.net", "login.microsoftonline.com"}},
	{"www.mathsgenie.co.uk", nil},
	{"www.desmos.com", []string{"static.desmos.com"}},
}

// simThird are hand-written third parties, most used first, and their categories.
var simThird = []struct{ name, cat string }{
	{"www.googletagmanager.com", "ads"}, {"fonts.googleapis.com", ""}, {"fonts.gstatic.com", ""},
	{"www.google-analytics.com", "ads"}, {"cdn.jsdelivr.net", ""}, {"cdnjs.cloudflare.com", ""},
	{"ajax.googleapis.com", ""}, {"securepubads.g.doubleclick.net", "ads"}, {"stats.g.doubleclick.net", "ads"},
	{"connect.facebook.net", "ads"}, {"cdn.cookielaw.org", ""}, {"static.cloudflareinsights.com", ""},
	{"www.recaptcha.net", ""}, {"challenges.cloudflare.com", ""}, {"code.jquery.com", ""}, {"use.typekit.net", ""},
	{"js.stripe.com", ""}, {"maps.googleapis.com", ""}, {"pagead2.googlesyndication.com", "ads"}, {"unpkg.com", ""},
}

// storageUniverse is every name the simulated school can ask about, built once per seed.
type storageUniverse struct {
	names []simName
	index map[string]int32
	sites []simSite // popular first
	edu   []simSite
	third []int32
	// bg[f] is family f's background pool, most used first; shared names are interleaved.
	bg [][]int32
	// blockedApps are names of sites blocked for pupils that apps keep asking for.
	blockedApps []int32
}

var simSyllables = strings.Fields("ba be bi bo ca co da de di do fa fe fi ga go ha he ja jo ka ki ko la le li lo lu ma me mi mo mu na ne ni no pa pe pi po ra re ri ro ru sa se si so ta te ti to tu va ve vi vo wa we ya yo za zo an en in on ar er or el al ix ex ly ry st tr br cl pl")

// simTLDs are weighted by repetition.
var simTLDs = strings.Fields("com com com com com com com com com com co.uk co.uk co.uk org org net net io uk de fr app ac.uk org.uk")

func simWord(r *rand.Rand, lo, hi int) string {
	var b strings.Builder
	for range lo + r.IntN(hi-lo+1) {
		b.WriteString(simSyllables[r.IntN(len(simSyllables))])
	}
	return b.String()
}

// simRegDomain is the registrable part of a name: the suffix a list entry usually is.
func simRegDomain(name string) string {
	labels := strings.Split(name, ".")
	n := 2
	if len(labels) >= 3 {
		switch labels[len(labels)-2] + "." + labels[len(labels)-1] {
		case "co.uk", "ac.uk", "org.uk", "sch.uk":
			n = 3
		}
	}
	if len(labels) <= n {
		return name
	}
	return strings.Join(labels[len(labels)-n:], ".")
}

// simTTL draws a TTL from weighted choices.
func simTTL(r *rand.Rand, choices []int64, weights []float64) int64 {
	p := r.Float64()
	for i, w := range weights {
		if p < w {
			return choices[i]
		}
		p -= w
	}
	return choices[len(choices)-1]
}

var (
	// Site hosts mostly keep 5 min or 1 h TTLs.
	simSiteTTLs, simSiteW = []int64{60, 300, 600, 3600}, []float64{0.15, 0.45, 0.10, 0.30}
	// CDNs, trackers and ad servers use short ones (Akamai 20 s, many 60 s).
	simThirdTTLs, simThirdW = []int64{20, 60, 300, 3600}, []float64{0.10, 0.35, 0.40, 0.15}
	// A background service asks again when its answer expires or when it polls, whichever
	// is later.
	simBgPeriods, simBgW = []int64{30, 60, 300, 900, 3600}, []float64{0.05, 0.05, 0.25, 0.30, 0.35}
)

func newStorageUniverse(seed uint64, m storageModel) *storageUniverse {
	r := rand.New(rand.NewPCG(seed, 0x5107a9e))
	u := &storageUniverse{index: map[string]int32{}}
	add := func(name, cat string, ttl int64, quic bool) int32 {
		if i, ok := u.index[name]; ok {
			return i
		}
		n := simName{name: name, ttl: ttl, quic: quic, v6: r.IntN(2) == 0}
		n.server = fmt.Sprintf("%d.%d.%d.%d:443", 23+r.IntN(180), r.IntN(256), r.IntN(256), 1+r.IntN(254))
		for p := range n.dec {
			d := simDecision{action: "allow", tier: "default"}
			if cat != "" {
				d.category, d.list, d.rule = cat, "ut1", simRegDomain(name)
				if simBlocked[p][cat] {
					d.action, d.tier = "block", "profile"
				}
			}
			if d.action == "allow" && simSafeSearch[name] {
				d.action, d.tier = "rewrite", "safesearch"
				if d.rule == "" {
					d.rule = name
				}
			}
			n.dec[p] = d
		}
		u.names = append(u.names, n)
		i := int32(len(u.names) - 1)
		u.index[name] = i
		return i
	}
	unique := func(gen func() string) string {
		for {
			s := gen()
			if _, taken := u.index[s]; !taken {
				return s
			}
		}
	}

	// Third parties: the hand-written ones, then hosts under generated providers; a third
	// of providers are ad or tracking networks (ut1 lists them; no profile blocks adverts).
	for _, t := range simThird {
		u.third = append(u.third, add(t.name, t.cat, simTTL(r, simThirdTTLs, simThirdW), strings.Contains(t.name, "google")))
	}
	type provider struct {
		domain, cat string
		quic        bool
	}
	providers := make([]provider, 300)
	for i := range providers {
		p := provider{domain: simWord(r, 2, 5) + []string{"cdn.net", ".net", ".com", "-static.com", ".io", ".edgekey.net", ".azureedge.net"}[r.IntN(7)]}
		if r.Float64() < 0.33 {
			p.cat = "ads"
		}
		p.quic = r.Float64() < 0.25
		providers[i] = p
	}
	for len(u.third) < len(simThird)+m.thirdParties {
		// Popular providers have many hosts.
		p := providers[min(int(r.ExpFloat64()*60), len(providers)-1)]
		name := unique(func() string {
			switch r.IntN(3) {
			case 0:
				return simWord(r, 2, 4) + "." + p.domain
			case 1:
				return fmt.Sprintf("%s%d.%s", simWord(r, 1, 2), r.IntN(100), p.domain)
			default:
				const alnum = "abcdefghijklmnopqrstuvwxyz0123456789"
				b := make([]byte, 10+r.IntN(4))
				for i := range b {
					b[i] = alnum[r.IntN(len(alnum))]
				}
				return string(b) + "." + p.domain
			}
		})
		u.third = append(u.third, add(name, p.cat, simTTL(r, simThirdTTLs, simThirdW), p.quic))
	}
	thirdZipf := rand.NewZipf(r, m.zipfS, 1, uint64(len(u.third)-1))
	deps := func(k int) []int32 {
		var out []int32
		for range k {
			out = append(out, u.third[thirdZipf.Uint64()])
		}
		return out
	}

	// Sites: the hand-written popular ones, then generated ones with the categories ut1
	// gives a few per cent of the web.
	for _, t := range simTop {
		s := simSite{names: []int32{add(t.host, t.cat, simTTL(r, simSiteTTLs, simSiteW), t.quic)}}
		for _, n := range t.names {
			cat := t.cat
			if simRegDomain(n) != simRegDomain(t.host) {
				cat = "" // a CDN domain of the site, unlisted
			}
			s.names = append(s.names, add(n, cat, simTTL(r, simThirdTTLs, simThirdW), t.quic))
		}
		s.names = append(s.names, deps(2+r.IntN(4))...)
		u.sites = append(u.sites, s)
	}
	siteCats := []struct {
		cat string
		p   float64
	}{
		{"shopping", 0.06}, {"streaming", 0.03}, {"games", 0.03}, {"social", 0.015}, {"adult", 0.008},
		{"chat", 0.007}, {"gambling", 0.004}, {"piracy", 0.003}, {"gen-ai", 0.003}, {"webmail", 0.003},
		{"dating", 0.002}, {"shorteners", 0.002}, {"bypass", 0.002}, {"malware", 0.001}, {"phishing", 0.001},
	}
	subs := strings.Fields("static cdn api img assets login media files cdn-eu static-assets images auth")
	genSite := func(tlds []string) simSite {
		reg := unique(func() string { return simWord(r, 2, 5) + "." + tlds[r.IntN(len(tlds))] })
		cat, p := "", r.Float64()
		for _, c := range siteCats {
			if p < c.p {
				cat = c.cat
				break
			}
			p -= c.p
		}
		quic := r.Float64() < 0.2 // behind Cloudflare or Google
		host := reg
		if r.Float64() < 0.7 {
			host = "www." + reg
		}
		s := simSite{names: []int32{add(host, cat, simTTL(r, simSiteTTLs, simSiteW), quic)}}
		for range r.IntN(4) {
			s.names = append(s.names, add(subs[r.IntN(len(subs))]+"."+reg, cat, simTTL(r, simSiteTTLs, simSiteW), quic))
		}
		s.names = append(s.names, deps(2+r.IntN(11))...)
		return s
	}
	for range m.sites {
		u.sites = append(u.sites, genSite(simTLDs))
	}
	for _, t := range simEdu {
		s := simSite{names: []int32{add(t.host, "", simTTL(r, simSiteTTLs, simSiteW), false)}}
		for _, n := range t.names {
			s.names = append(s.names, add(n, "", simTTL(r, simThirdTTLs, simThirdW), strings.Contains(n, "google")))
		}
		s.names = append(s.names, deps(1+r.IntN(4))...)
		u.edu = append(u.edu, s)
	}
	for range m.eduSites {
		s := genSite(strings.Fields("sch.uk ac.uk co.uk com org.uk"))
		for _, n := range s.names {
			// Learning platforms are unlisted: undo a category genSite drew.
			for p := range u.names[n].dec {
				if u.names[n].dec[p].list == "ut1" && u.names[n].dec[p].category != "ads" {
					u.names[n].dec[p] = simDecision{action: "allow", tier: "default"}
				}
			}
		}
		u.edu = append(u.edu, s)
	}

	// Background pools: each family's hand-written names, then generated app and service
	// names, half of them shared by every family (Microsoft 365, Google, Zoom, antivirus...),
	// interleaved so the shared ones are as popular as the family's own.
	shared := make([]int32, m.bgPerFamily)
	for i := range shared {
		name := unique(func() string {
			return []string{"api", "sync", "telemetry", "push", "update", "config", "events", "auth"}[r.IntN(8)] + "." + simWord(r, 2, 3) + []string{".com", ".net", ".io", ".co.uk"}[r.IntN(4)]
		})
		shared[i] = add(name, "", simTTL(r, simBgPeriods, simBgW), r.Float64() < 0.15)
	}
	for _, f := range storageFamilies {
		var pool []int32
		for _, n := range f.bg {
			pool = append(pool, add(n, "", simTTL(r, simBgPeriods, simBgW), strings.Contains(n, "google")))
		}
		for i := range m.bgPerFamily {
			name := unique(func() string {
				return simWord(r, 1, 2) + []string{"-prod", "-api", "-svc", ""}[r.IntN(4)] + "." + simWord(r, 2, 3) + []string{".com", ".net", ".io"}[r.IntN(3)]
			})
			pool = append(pool, add(name, "", simTTL(r, simBgPeriods, simBgW), r.Float64() < 0.15), shared[i])
		}
		u.bg = append(u.bg, pool)
	}
	// Captive-portal, OCSP and CRL checks and update metadata go over plain HTTP.
	for _, n := range []string{"www.msftconnecttest.com", "ctldl.windowsupdate.com", "ocsp.digicert.com", "crl.microsoft.com",
		"captive.apple.com", "ocsp2.apple.com", "connectivitycheck.gstatic.com", "clients3.google.com", "ocsp.pki.goog"} {
		i, ok := u.index[n]
		if !ok {
			panic("storage model: no background name " + n)
		}
		u.names[i].http = true
	}
	for _, s := range u.sites {
		if u.names[s.names[0]].dec[1].action == "block" {
			for _, n := range s.names {
				if u.names[n].dec[1].action == "block" {
					u.blockedApps = append(u.blockedApps, n)
				}
			}
		}
		if len(u.blockedApps) > 200 {
			break
		}
	}
	return u
}

// Task kinds of the simulation's calendar.
const (
	simArrive = iota
	simLeave
	simToggle // a session of use ends or starts
	simPage
	simUse    // a name a page load needs a moment after its host
	simBg     // a background service asks for its name
	simRepeat // the same question asked again within seconds
	simFlow   // a second connection to a host
)

// Question types, as flag bits in simTask.flags.
const (
	simAskA = 1 << iota
	simAskAAAA
	simAskHTTPS
)

type simTask struct {
	dev   int32
	arg   int32 // name, or background slot
	epoch uint32
	ms    uint16 // millisecond within the second
	kind  uint8
	flags uint8
}

// nameState is what a device remembers about a name: until when its answer is cached,
// until when a connection to it stays open, until when it does not try QUIC. Times are
// milliseconds since the start of the run.
type nameState struct {
	dnsUntil, connUntil, quicRetry int64
	quicFails                      uint8
}

type simDevice struct {
	ci      int // index of the class
	class   *storageClass
	fam     *osFamily
	mac     string
	device  string
	v4, v6  netip.Addr // v6 invalid on a v4-only device
	dnsV6   bool
	bg      []int32
	bgEvery []int64
	leftOn  bool

	on, present, active bool
	bgEpoch, fgEpoch    uint32
	site                int32 // -1: none
	state               map[int32]nameState
	ipMinute            int64
	ipCount             int
}

// simCounts are the events a stretch of the run generated.
type simCounts struct {
	events, blocked, rewritten uint64
	bySource                   map[string]uint64
	byClass                    []uint64
}

type storageSim struct {
	m       storageModel
	u       *storageUniverse
	r       *rand.Rand
	start   time.Time
	devs    []simDevice
	ring    [][]simTask
	record  func(Event)
	counts  simCounts
	siteZ   *rand.Zipf
	eduZ    *rand.Zipf
	bgZ     []*rand.Zipf
	classes []storageClass
}

const ringSeconds = 2 * 86400 // no task is scheduled a day or more ahead

func newStorageSim(m storageModel, u *storageUniverse, start time.Time, record func(Event)) *storageSim {
	r := rand.New(rand.NewPCG(m.seed, 0xd0e5))
	s := &storageSim{m: m, u: u, r: r, start: start, record: record, ring: make([][]simTask, ringSeconds)}
	s.siteZ = rand.NewZipf(r, m.zipfS, 1, uint64(len(u.sites)-1))
	s.eduZ = rand.NewZipf(r, m.zipfS, 1, uint64(len(u.edu)-1))
	for _, pool := range u.bg {
		s.bgZ = append(s.bgZ, rand.NewZipf(r, m.zipfS, 1, uint64(len(pool)-1)))
	}
	s.classes = storageClasses
	s.counts = simCounts{bySource: map[string]uint64{}, byClass: make([]uint64, len(s.classes))}
	for ci := range s.classes {
		c := &s.classes[ci]
		n := max(1, int(math.Round(float64(c.per1000)*float64(m.devices)/1000)))
		for i := range n {
			d := simDevice{ci: ci, class: c, fam: &storageFamilies[c.families[i%len(c.families)]], site: -1, state: map[int32]nameState{}}
			d.v4 = netip.AddrFrom4([4]byte{10, c.v4, byte(i / 250), byte(2 + i%250)})
			mac := [6]byte{0x3c, 0x22, 0xfb, byte(ci), byte(i >> 8), byte(i)}
			if c.segment == "guest" {
				mac[0] = 0x0a | byte(r.IntN(16))<<4 // phones randomise their MAC per network
			}
			d.mac = fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5])
			if r.Float64() < c.named {
				d.device = fmt.Sprintf("%s-%03d", c.segment, i)
			}
			if r.Float64() < m.dualStack {
				d.v6 = netip.MustParseAddr(c.v6 + "1") // replaced by a privacy address each day
				d.dnsV6 = r.Float64() < m.v6DNS
			}
			pool := u.bg[c.families[i%len(c.families)]]
			z := s.bgZ[c.families[i%len(c.families)]]
			seen := map[int32]bool{}
			for len(d.bg) < c.bgNames[0]+r.IntN(c.bgNames[1]-c.bgNames[0]+1) {
				if n := pool[z.Uint64()]; !seen[n] {
					seen[n] = true
					d.bg = append(d.bg, n)
					d.bgEvery = append(d.bgEvery, u.names[n].ttl)
				}
			}
			if r.Float64() < c.blockedBg {
				for range 1 + r.IntN(2) {
					d.bg = append(d.bg, u.blockedApps[min(int(r.ExpFloat64()*20), len(u.blockedApps)-1)])
					d.bgEvery = append(d.bgEvery, 60+r.Int64N(121))
				}
			}
			d.leftOn = r.Float64() < c.leftOn
			s.devs = append(s.devs, d)
		}
	}
	return s
}

func (s *storageSim) at(ms int64, t simTask) {
	t.ms = uint16(ms % 1000)
	i := (ms / 1000) % ringSeconds
	s.ring[i] = append(s.ring[i], t)
}

func (s *storageSim) uniform(w [2]int64) int64 { return w[0] + s.r.Int64N(w[1]-w[0]+1) }

// expMs draws an exponential duration in milliseconds of the given mean in seconds, capped.
func (s *storageSim) expMs(mean int64) int64 {
	return min(int64(s.r.ExpFloat64()*float64(mean)*1000), 6*simH*1000) + 1
}

// run simulates from the start, calling dayDone(day, school) after each simulated day and
// flush(at) every flushEvery simulated seconds in which something happened.
func (s *storageSim) run(flush func(at time.Time), dayDone func(day int, school bool)) {
	for i := range s.devs {
		if s.devs[i].leftOn {
			s.turnOn(int32(i), 0, true)
		}
	}
	end := int64(s.m.days) * 86400
	if s.m.stopAt > 0 {
		end = min(end, s.m.stopAt)
	}
	pending := false
	for sec := int64(0); sec < end; sec++ {
		if sec%86400 == 0 {
			s.planDay(int(sec / 86400))
		}
		slot := sec % ringSeconds
		for i := 0; i < len(s.ring[slot]); i++ {
			before := s.counts.events
			s.step(s.ring[slot][i], sec*1000+int64(s.ring[slot][i].ms))
			pending = pending || s.counts.events != before
		}
		s.ring[slot] = s.ring[slot][:0]
		if pending && (sec+1)%s.m.flushEvery == 0 {
			flush(s.start.Add(time.Duration(sec+1) * time.Second))
			pending = false
		}
		if (sec+1)%86400 == 0 {
			flush(s.start.Add(time.Duration(sec+1) * time.Second))
			pending = false
			day := int(sec / 86400)
			dayDone(day, s.schoolDay(day))
		}
	}
	flush(s.start.Add(time.Duration(end) * time.Second))
}

func (s *storageSim) schoolDay(day int) bool {
	wd := s.start.AddDate(0, 0, day).Weekday()
	return wd != time.Saturday && wd != time.Sunday
}

// planDay gives each device its day: a new IPv6 privacy address, forgotten expired state,
// and when it arrives and leaves.
func (s *storageSim) planDay(day int) {
	base := int64(day) * 86400
	school := s.schoolDay(day)
	for i := range s.devs {
		d := &s.devs[i]
		c := d.class
		if d.v6.IsValid() {
			a := d.v6.As16()
			for j := 8; j < 16; j++ {
				a[j] = byte(s.r.IntN(256))
			}
			d.v6 = netip.AddrFrom16(a)
		}
		now := base * 1000
		for n, st := range d.state {
			if st.dnsUntil < now && st.connUntil < now && st.quicRetry < now {
				delete(d.state, n)
			}
		}
		var arrive, leave int64
		switch {
		case school && s.r.Float64() < c.present:
			arrive, leave = s.uniform(c.arrive), s.uniform(c.leave)
			if c.visit[1] > 0 && s.r.Float64() >= c.allDay {
				arrive = s.uniform(c.visitArrive)
				leave = arrive + s.uniform(c.visit)
			}
		case !school && s.r.Float64() < c.weekend:
			arrive = s.uniform(c.weekendWindow)
			leave = arrive + s.uniform([2]int64{simH, 3 * simH})
		default:
			continue
		}
		s.at((base+arrive)*1000+s.r.Int64N(1000), simTask{dev: int32(i), kind: simArrive})
		s.at((base+leave)*1000+s.r.Int64N(1000), simTask{dev: int32(i), kind: simLeave})
	}
}

// turnOn starts a device's background services: all within two minutes of waking, or, for
// a device already on when the run starts, at a random point of their period.
func (s *storageSim) turnOn(dev int32, ms int64, steady bool) {
	d := &s.devs[dev]
	d.on = true
	d.bgEpoch++
	for slot, every := range d.bgEvery {
		spread := min(every, 120)
		if steady {
			spread = every
		}
		s.at(ms+s.r.Int64N(spread*1000), simTask{dev: dev, arg: int32(slot), epoch: d.bgEpoch, kind: simBg})
	}
}

func (s *storageSim) step(t simTask, ms int64) {
	d := &s.devs[t.dev]
	switch t.kind {
	case simArrive:
		d.present = true
		if !d.on {
			s.turnOn(t.dev, ms, false)
		}
		d.fgEpoch++
		d.active = false
		s.step(simTask{dev: t.dev, epoch: d.fgEpoch, kind: simToggle}, ms)
	case simLeave:
		d.present, d.active = false, false
		d.fgEpoch++
		if !d.leftOn {
			d.on = false
			d.bgEpoch++
		}
	case simToggle:
		if t.epoch != d.fgEpoch || !d.present {
			return
		}
		d.active = !d.active
		if d.active {
			d.site = -1
			s.at(ms+s.expMs(d.class.active), simTask{dev: t.dev, epoch: d.fgEpoch, kind: simToggle})
			s.step(simTask{dev: t.dev, epoch: d.fgEpoch, kind: simPage}, ms)
		} else {
			s.at(ms+s.expMs(d.class.idle), simTask{dev: t.dev, epoch: d.fgEpoch, kind: simToggle})
		}
	case simPage:
		if t.epoch != d.fgEpoch || !d.active {
			return
		}
		s.page(t.dev, ms)
		s.at(ms+max(s.expMs(d.class.pageGap), 2000), simTask{dev: t.dev, epoch: d.fgEpoch, kind: simPage})
	case simUse:
		s.use(t.dev, t.arg, ms, true)
	case simBg:
		if t.epoch != d.bgEpoch || !d.on {
			return
		}
		n := d.bg[t.arg]
		st := d.state[n]
		s.lookup(t.dev, n, ms, false)
		st.dnsUntil = ms + d.bgEvery[t.arg]*1000
		if s.u.names[n].dec[d.class.prof].action != "block" && s.r.Float64() < s.m.bgConnect {
			if ms >= st.connUntil {
				s.flow(t.dev, n, ms, &st)
			}
			st.connUntil = ms + s.m.keepAlive*1000
		}
		d.state[n] = st
		next := float64(d.bgEvery[t.arg]*1000) * (0.9 + 0.2*s.r.Float64())
		s.at(ms+int64(next), simTask{dev: t.dev, arg: t.arg, epoch: t.epoch, kind: simBg})
	case simRepeat:
		s.ask(t.dev, t.arg, ms, t.flags)
		if s.r.Float64() < s.m.dup {
			s.at(ms+200+s.r.Int64N(8000), t)
		}
	case simFlow:
		st := d.state[t.arg]
		s.flow(t.dev, t.arg, ms, &st)
		d.state[t.arg] = st
	}
}

// page loads a page: the same site as the last one, a learning platform or work tool, or
// any site.
func (s *storageSim) page(dev int32, ms int64) {
	d := &s.devs[dev]
	var site *simSite
	switch {
	case d.site >= 0 && s.r.Float64() < s.m.stay:
		site = s.siteOf(d.site)
	case s.r.Float64() < d.class.edu:
		d.site = int32(len(s.u.sites)) + int32(s.eduZ.Uint64())
		site = s.siteOf(d.site)
	default:
		d.site = int32(s.siteZ.Uint64())
		site = s.siteOf(d.site)
	}
	host := site.names[0]
	if s.u.names[host].dec[d.class.prof].action == "block" {
		// The browser shows the block page (served by the appliance itself, so no flow to
		// judge) and the user goes elsewhere.
		s.use(dev, host, ms, true)
		d.site = -1
		return
	}
	s.use(dev, host, ms, true)
	for _, n := range site.names[1:] {
		// The page's other names follow within two seconds.
		s.at(ms+50+s.r.Int64N(2000), simTask{dev: dev, arg: n, kind: simUse})
	}
}

func (s *storageSim) siteOf(i int32) *simSite {
	if int(i) >= len(s.u.sites) {
		return &s.u.edu[int(i)-len(s.u.sites)]
	}
	return &s.u.sites[i]
}

// use is a device needing a name: a lookup if its cached answer expired, a new flow if no
// connection to it is open.
func (s *storageSim) use(dev, n int32, ms int64, fg bool) {
	d := &s.devs[dev]
	st := d.state[n]
	blocked := s.u.names[n].dec[d.class.prof].action == "block"
	if ms >= st.dnsUntil {
		s.lookup(dev, n, ms, fg)
		ttl := s.u.names[n].ttl
		if blocked {
			ttl = 60 // dns.block_ttl
		}
		st.dnsUntil = ms + ttl*1000
	}
	if !blocked {
		if ms >= st.connUntil {
			s.flow(dev, n, ms, &st)
			if fg && s.r.Float64() < s.m.parallel {
				s.at(ms+100+s.r.Int64N(2000), simTask{dev: dev, arg: n, kind: simFlow})
			}
		}
		st.connUntil = ms + s.m.keepAlive*1000
	}
	d.state[n] = st
}

// lookup asks for a name (A, AAAA when the device has IPv6, HTTPS as the system does) and
// maybe asks again within seconds.
func (s *storageSim) lookup(dev, n int32, ms int64, fg bool) {
	d := &s.devs[dev]
	flags := uint8(simAskA)
	if d.v6.IsValid() || s.r.Float64() < 0.1 {
		flags |= simAskAAAA
	}
	https := d.fam.httpsBg
	if fg {
		https = d.fam.httpsFg
	}
	if s.r.Float64() < https {
		flags |= simAskHTTPS
	}
	s.ask(dev, n, ms, flags)
	if s.r.Float64() < s.m.dup {
		s.at(ms+200+s.r.Int64N(8000), simTask{dev: dev, arg: n, kind: simRepeat, flags: flags})
	}
}

func (s *storageSim) ask(dev, n int32, ms int64, flags uint8) {
	d := &s.devs[dev]
	client := d.v4
	if d.dnsV6 && d.v6.IsValid() {
		client = d.v6
	}
	for i, qt := range [...]string{"A", "AAAA", "HTTPS"} {
		if flags&(1<<i) != 0 {
			s.emit(dev, n, client, "dns", qt, ms+int64(i)*3)
		}
	}
}

// flow is a new connection the packet path judges: plain HTTP, QUIC, or TLS. A pupil's QUIC
// attempt is dropped in the kernel, logged as source ip (at most 10 a minute per client),
// and the browser falls back to TLS and leaves QUIC alone for that host a while.
func (s *storageSim) flow(dev, n int32, ms int64, st *nameState) {
	d := &s.devs[dev]
	nm := &s.u.names[n]
	client := d.v4
	if nm.v6 && d.v6.IsValid() {
		client = d.v6
	}
	switch {
	case nm.http:
		s.emit(dev, n, client, "http", "", ms)
	case nm.quic && s.r.Float64() < s.m.quic:
		if !d.class.quicBlocked {
			s.emit(dev, n, client, "quic", "", ms)
			return
		}
		if ms >= st.quicRetry {
			// Chrome doubles the time it leaves a broken QUIC origin alone at each failure.
			st.quicRetry = ms + s.m.quicBroken*1000<<min(st.quicFails, 8)
			st.quicFails++
			if ms/60000 != d.ipMinute {
				d.ipMinute, d.ipCount = ms/60000, 0
			}
			if d.ipCount++; d.ipCount <= 10 {
				s.emitIP(dev, n, d.v4, ms) // the name is an IPv4 server address
			}
		}
		s.emit(dev, n, client, "sni", "", ms+300)
	default:
		s.emit(dev, n, client, "sni", "", ms)
	}
}

func (s *storageSim) event(dev int32, client netip.Addr, ms int64) Event {
	d := &s.devs[dev]
	return Event{
		Time: s.start.Add(time.Duration(ms) * time.Millisecond), Client: client, MAC: d.mac, Device: d.device,
		Segment: d.class.segment, Profile: d.class.profile, Count: 1,
	}
}

func (s *storageSim) emit(dev, n int32, client netip.Addr, source, qtype string, ms int64) {
	d := &s.devs[dev]
	dec := &s.u.names[n].dec[d.class.prof]
	e := s.event(dev, client, ms)
	e.Source, e.Name, e.QType = source, s.u.names[n].name, qtype
	e.Action, e.Tier, e.Category, e.List, e.Rule = dec.action, dec.tier, dec.category, dec.list, dec.rule
	s.count(dev, &e)
}

func (s *storageSim) emitIP(dev, n int32, client netip.Addr, ms int64) {
	e := s.event(dev, client, ms)
	e.Source, e.Name = "ip", s.u.names[n].server
	e.Action, e.Tier, e.Rule = "block", "profile", "QUIC blocked for the profile"
	s.count(dev, &e)
}

func (s *storageSim) count(dev int32, e *Event) {
	c := &s.counts
	c.events++
	c.bySource[e.Source]++
	switch e.Action {
	case "block":
		c.blocked++
	case "rewrite":
		c.rewritten++
	}
	c.byClass[s.devs[dev].ci]++
	s.record(*e)
}

// storageDay is one simulated day as measured.
type storageDay struct {
	school        bool
	counts        simCounts
	rows          uint64
	bytes         int64 // growth of the database over the day
	walBefore     int64 // the WAL's size before the day's checkpoint
	wall          time.Duration
	distinctNames int64
}

type storageResult struct {
	days        []storageDay
	tables      string // dbstat: bytes per table and index
	wall        time.Duration
	sumCount    int64
	meanNameLen float64
	universe    int // names the school could ask for
}

var storageCache struct {
	sync.Mutex
	key string
	res *storageResult
}

// storageRun runs the simulation into a fresh Log in dir, measuring each day, and checks
// that the stored counts add up to the events generated.
func storageRun(tb testing.TB, m storageModel, dir string) *storageResult {
	start := time.Date(2026, 3, 6, 0, 0, 0, 0, time.UTC) // a Friday
	u := newStorageUniverse(m.seed, m)
	path := filepath.Join(dir, "events.db")
	var clock atomic.Int64
	clock.Store(start.UnixNano())
	l, err := New(Config{Path: path, Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	if err := l.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	// A connection of our own for checkpoints and measurements: the writer holds the
	// Log's only writing connection.
	meter, err := sqlitedb.Open(path, "_pragma=busy_timeout(10000)", 1, ErrCorrupt)
	if err != nil {
		tb.Fatal(err)
	}
	defer meter.Close()

	res := &storageResult{}
	sim := newStorageSim(m, u, start, l.Record)
	size := func() (file, wal int64) {
		wal = storageFileSize(tb, path+"-wal")
		var busy, logFrames, done int
		if err := meter.QueryRow(`PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &done); err != nil || busy != 0 {
			tb.Fatalf("checkpoint: busy=%d err=%v", busy, err)
		}
		var pages, pageSize, free int64
		for q, p := range map[string]*int64{"page_count": &pages, "page_size": &pageSize, "freelist_count": &free} {
			if err := meter.QueryRow(`PRAGMA ` + q).Scan(p); err != nil {
				tb.Fatal(err)
			}
		}
		file = storageFileSize(tb, path) + storageFileSize(tb, path+"-wal")
		if file != pages*pageSize || free != 0 {
			tb.Logf("file %d bytes, pages %d × %d, %d free", file, pages, pageSize, free)
		}
		return file, wal
	}
	prevFile, _ := size()
	prev := simCounts{bySource: map[string]uint64{}, byClass: make([]uint64, len(storageClasses))}
	var prevRows uint64
	begin, dayBegin := time.Now(), time.Now()
	flush := func(at time.Time) {
		clock.Store(at.UnixNano())
		if err := l.Flush(ctx); err != nil {
			tb.Fatal(err)
		}
	}
	dayDone := func(day int, school bool) {
		file, wal := size()
		st := l.Stats()
		c := sim.counts
		d := storageDay{school: school, rows: st.Written - prevRows, bytes: file - prevFile, walBefore: wal, wall: time.Since(dayBegin)}
		d.counts = simCounts{events: c.events - prev.events, blocked: c.blocked - prev.blocked, rewritten: c.rewritten - prev.rewritten,
			bySource: map[string]uint64{}, byClass: make([]uint64, len(c.byClass))}
		for k, v := range c.bySource {
			d.counts.bySource[k] = v - prev.bySource[k]
		}
		for i := range c.byClass {
			d.counts.byClass[i] = c.byClass[i] - prev.byClass[i]
		}
		if err := meter.QueryRow(`SELECT count(*) FROM names`).Scan(&d.distinctNames); err != nil {
			tb.Fatal(err)
		}
		res.days = append(res.days, d)
		tb.Logf("day %d (%s, school %v): %d events, %d rows, %.1f MB, WAL %.1f MB before checkpoint, %d names interned so far, %v",
			day, start.AddDate(0, 0, day).Weekday(), school, d.counts.events, d.rows, float64(d.bytes)/1e6, float64(wal)/1e6,
			d.distinctNames, d.wall.Round(time.Second))
		prevFile, prevRows, dayBegin = file, st.Written, time.Now()
		prev = simCounts{events: c.events, blocked: c.blocked, rewritten: c.rewritten, bySource: map[string]uint64{}, byClass: append([]uint64(nil), c.byClass...)}
		for k, v := range c.bySource {
			prev.bySource[k] = v
		}
	}
	sim.run(flush, dayDone)
	res.wall = time.Since(begin)

	// The stored rows, their counts and the rollups must add up to what was generated.
	st := l.Stats()
	if st.Dropped != 0 || st.LastError != "" || st.Queued != sim.counts.events || st.Written+st.Folded != st.Queued {
		tb.Fatalf("stats %+v, generated %d events", st, sim.counts.events)
	}
	var rows, rolled int64
	if err := meter.QueryRow(`SELECT count(*), coalesce(sum(count), 0) FROM events`).Scan(&rows, &res.sumCount); err != nil {
		tb.Fatal(err)
	}
	if err := meter.QueryRow(`SELECT coalesce(sum(queries), 0) FROM rollup`).Scan(&rolled); err != nil {
		tb.Fatal(err)
	}
	if uint64(rows) != st.Written || uint64(res.sumCount) != sim.counts.events || uint64(rolled) != sim.counts.events {
		tb.Fatalf("%d rows (written %d), counts sum to %d and rollups to %d, for %d events", rows, st.Written, res.sumCount, rolled, sim.counts.events)
	}
	if err := meter.QueryRow(`SELECT avg(length(name)) FROM names`).Scan(&res.meanNameLen); err != nil {
		tb.Fatal(err)
	}
	res.tables = storageTables(tb, meter)
	res.universe = len(u.names)
	return res
}

func storageFileSize(tb testing.TB, path string) int64 {
	fi, err := os.Stat(path)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		tb.Fatal(err)
	}
	return fi.Size()
}

// storageTables lists the bytes each table and index takes.
func storageTables(tb testing.TB, db *sql.DB) string {
	rows, err := db.Query(`SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC`)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	var parts []string
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			tb.Fatal(err)
		}
		parts = append(parts, fmt.Sprintf("%s %.1f MB", name, float64(n)/1e6))
	}
	return strings.Join(parts, ", ")
}

func storageEnv(tb testing.TB, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		tb.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// BenchmarkStorage reports the event log's storage for a month of a 1,000-device school; the
// target is ≤ 1 GB/month. The simulation runs once per process whatever b.N is (it takes
// minutes, so the default -benchtime runs it once anyway).
func BenchmarkStorage(b *testing.B) {
	m := defaultStorageModel()
	m.devices = storageEnv(b, "SCHOOLGATE_BENCH_STORAGE_DEVICES", m.devices)
	m.days = storageEnv(b, "SCHOOLGATE_BENCH_STORAGE_DAYS", m.days)
	if v := os.Getenv("SCHOOLGATE_BENCH_STORAGE_REPEAT_PCT"); v != "" {
		// For sensitivity runs: the share of lookups asked again within seconds.
		pct, err := strconv.Atoi(v)
		if err != nil || pct < 0 || pct > 95 {
			b.Fatalf("SCHOOLGATE_BENCH_STORAGE_REPEAT_PCT=%q: want 0-95", v)
		}
		m.dup = float64(pct) / 100
	}
	if m.days < 2 {
		b.Fatal("SCHOOLGATE_BENCH_STORAGE_DAYS: need at least 2 (a Friday and a Saturday)")
	}
	key := fmt.Sprint(m.devices, m.days, m.dup)
	storageCache.Lock()
	res := storageCache.res
	if res == nil || storageCache.key != key {
		res = storageRun(b, m, b.TempDir())
		storageCache.key, storageCache.res = key, res
	}
	storageCache.Unlock()

	// Mean school day and weekend day, scaled to 1,000 devices.
	scale := 1000 / float64(m.devices)
	var school, weekend storageDay
	var nSchool, nWeekend float64
	var bySource = map[string]uint64{}
	var byClass = make([]uint64, len(storageClasses))
	for _, d := range res.days {
		if d.school {
			school.counts.events += d.counts.events
			school.counts.blocked += d.counts.blocked
			school.counts.rewritten += d.counts.rewritten
			school.rows += d.rows
			school.bytes += d.bytes
			for k, v := range d.counts.bySource {
				bySource[k] += v
			}
			for i, v := range d.counts.byClass {
				byClass[i] += v
			}
			nSchool++
		} else {
			weekend.counts.events += d.counts.events
			weekend.rows += d.rows
			weekend.bytes += d.bytes
			nWeekend++
		}
	}
	events := float64(school.counts.events) / nSchool * scale
	rows := float64(school.rows) / nSchool * scale
	schoolBytes := float64(school.bytes) / nSchool * scale
	weekendBytes := float64(weekend.bytes) / nWeekend * scale
	month := 22*schoolBytes + 8*weekendBytes

	b.ReportMetric(month/1e9, "GB/month")
	b.ReportMetric(schoolBytes/1e6, "MB/school-day")
	b.ReportMetric(weekendBytes/1e6, "MB/weekend-day")
	b.ReportMetric(events, "events/school-day")
	b.ReportMetric(rows, "rows/school-day")
	b.ReportMetric(float64(weekend.counts.events)/nWeekend*scale, "events/weekend-day")
	b.ReportMetric(float64(weekend.rows)/nWeekend*scale, "rows/weekend-day")
	b.ReportMetric(events/rows, "events/row")
	b.ReportMetric(schoolBytes/rows, "bytes/row")
	b.ReportMetric(schoolBytes/events, "bytes/event")
	b.ReportMetric(events/1000, "events/device/school-day")
	b.ReportMetric(100*float64(school.counts.blocked)/float64(school.counts.events), "blocked-%")
	b.ReportMetric(float64(m.devices), "devices-simulated")
	b.ReportMetric(float64(m.days), "days-simulated")
	b.ReportMetric(100*m.dup, "repeat-%")

	var mix []string
	for _, src := range []string{"dns", "sni", "quic", "http", "ip"} {
		mix = append(mix, fmt.Sprintf("%s %.1f%%", src, 100*float64(bySource[src])/float64(school.counts.events)))
	}
	var perDevice []string
	for i, c := range storageClasses {
		n := max(1, int(math.Round(float64(c.per1000)*float64(m.devices)/1000)))
		perDevice = append(perDevice, fmt.Sprintf("%s %.0f", c.segment, float64(byClass[i])/nSchool/float64(n)))
	}
	b.Logf("school day: sources %s; rewritten %.1f%%; events per device by class: %s",
		strings.Join(mix, ", "), 100*float64(school.counts.rewritten)/float64(school.counts.events), strings.Join(perDevice, ", "))
	b.Logf("database after %d days (%d devices): %s; %d of %d names interned, mean %.1f characters; simulated in %v",
		m.days, m.devices, res.tables, res.days[len(res.days)-1].distinctNames, res.universe, res.meanNameLen, res.wall.Round(time.Second))
}

// TestStorageModel checks the storage benchmark's simulation on a small school for a
// morning: the stored rows' counts and the rollups add up to the events generated (which
// storageRun asserts), every segment and source shows up, some decisions are blocked, and the
// generator is deterministic.
func TestStorageModel(t *testing.T) {
	m := defaultStorageModel()
	// A commit a simulated minute: folding works on event times, so only speed changes.
	m.devices, m.days, m.stopAt, m.flushEvery = 20, 1, 10*simH, 60
	m.sites, m.thirdParties, m.bgPerFamily = 2000, 1000, 50
	res := storageRun(t, m, t.TempDir())
	if res.sumCount < 1000 {
		t.Fatalf("only %d events in a morning of %d devices", res.sumCount, m.devices)
	}

	gen := func() simCounts {
		u := newStorageUniverse(m.seed, m)
		segs := map[string]bool{}
		sim := newStorageSim(m, u, time.Date(2026, 3, 6, 0, 0, 0, 0, time.UTC), func(e Event) { segs[e.Segment] = true })
		sim.run(func(time.Time) {}, func(int, bool) {})
		if len(segs) != 3 {
			t.Errorf("segments %v", segs)
		}
		return sim.counts
	}
	a, b := gen(), gen()
	if a.events != b.events || a.blocked != b.blocked || fmt.Sprint(a.bySource) != fmt.Sprint(b.bySource) {
		t.Errorf("not deterministic: %+v then %+v", a, b)
	}
	if uint64(res.sumCount) != a.events {
		t.Errorf("stored counts sum to %d, the generator made %d", res.sumCount, a.events)
	}
	for _, src := range []string{"dns", "sni", "quic", "http"} {
		if a.bySource[src] == 0 {
			t.Errorf("no %s events: %v", src, a.bySource)
		}
	}
	if a.blocked == 0 || a.rewritten == 0 {
		t.Errorf("blocked %d, rewritten %d of %d", a.blocked, a.rewritten, a.events)
	}
}
