package category

// A Mapping translates a list provider's category names onto the taxonomy. A provider name
// mapped to "" is known and deliberately ignored (for example UT1's allow-list categories).
type Mapping map[string]ID

// Mappings holds the built-in mappings by provider name, usable from config as
// `mapping: ut1`.
func Mappings() map[string]Mapping {
	return map[string]Mapping{"ut1": UT1()}
}

// UT1 maps the category folders of the Université Toulouse Capitole blacklists.
func UT1() Mapping {
	return Mapping{
		"adult":               "adult",
		"agressif":            "violence",
		"ai":                  "gen-ai",
		"arjel":               "gambling",
		"gambling":            "gambling",
		"audio-video":         "streaming",
		"radio":               "streaming",
		"bitcoin":             "crypto",
		"chat":                "chat",
		"cryptojacking":       "malware",
		"dangerous_material":  "violence",
		"dating":              "dating",
		"ddos":                "malware",
		"doh":                 "bypass",
		"drogue":              "drugs",
		"dynamic-dns":         "dynamic-dns",
		"fakenews":            "misinformation",
		"filehosting":         "filehosting",
		"games":               "games",
		"hacking":             "malware",
		"lingerie":            "lingerie",
		"malware":             "malware",
		"mixed_adult":         "mixed-adult",
		"phishing":            "phishing",
		"publicite":           "ads",
		"redirector":          "bypass",
		"strict_redirector":   "bypass",
		"strong_redirector":   "bypass",
		"remote-control":      "remote-access",
		"residential-proxies": "bypass",
		"sect":                "cults",
		"sexual_education":    "sex-education",
		"shopping":            "shopping",
		"shortener":           "shorteners",
		"social_networks":     "social",
		"stalkerware":         "malware",
		"tricheur":            "cheating",
		"tricheur_pix":        "cheating",
		"vpn":                 "bypass",
		"warez":               "piracy",
		"webmail":             "webmail",
		// Known UT1 categories schoolgate does not block by category: allow-lists, neutral
		// topics and French-specific lists.
		"associations_religieuses": "", "astrology": "", "bank": "", "blog": "", "celebrity": "",
		"child": "", "cleaning": "", "cooking": "", "dialer": "", "download": "",
		"educational_games": "", "examen_pix": "", "exceptions_liste_bu": "", "financial": "",
		"forums": "", "jobsearch": "", "liste_blanche": "", "liste_bu": "", "manga": "",
		"marketingware": "", "mobile-phone": "", "press": "", "reaffected": "", "special": "",
		"sports": "", "translation": "", "update": "", "webhosting": "",
	}
}
