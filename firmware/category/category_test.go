package category

import "testing"

func TestMappingsTargetKnownCategories(t *testing.T) {
	for provider, m := range Mappings() {
		for from, to := range m {
			if to != "" && !Valid(to) {
				t.Errorf("%s mapping %q → %q: not a category", provider, from, to)
			}
		}
	}
}

func TestTaxonomy(t *testing.T) {
	if n := len(All()); n > Max {
		t.Fatalf("%d categories do not fit a Set of %d bits", n, Max)
	}
	seen := map[ID]bool{}
	for _, c := range All() {
		if seen[c.ID] || c.Name == "" || c.Description == "" {
			t.Errorf("category %q duplicated or undescribed", c.ID)
		}
		seen[c.ID] = true
	}
	// The UK Safer Internet Centre's headings must all be present and marked.
	for _, id := range []ID{"adult", "gambling", "drugs", "extremism", "hate", "self-harm", "violence", "malware", "piracy"} {
		if c, ok := Lookup(id); !ok || !c.UKSIC {
			t.Errorf("UKSIC category %q missing or unmarked", id)
		}
	}
}

func TestSet(t *testing.T) {
	s, err := SetOf("social", "adult", "games")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.String(); got != "adult,social,games" {
		t.Errorf("String: got %q (want taxonomy order)", got)
	}
	if s.First() != "adult" || !s.Has("games") || s.Has("gambling") {
		t.Errorf("First/Has wrong for %s", s)
	}
	if _, err := SetOf("porn"); err == nil {
		t.Error("SetOf accepted an unknown category")
	}
	if Set(0).First() != "" {
		t.Error("empty set has a first category")
	}
}
